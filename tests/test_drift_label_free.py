"""The drift step's calibrated, backtested label-free estimates and their trust labels, end to end on a
tiny BERT fine-tuned on the first quarter of a CSV whose class markers change (drift_helpers), and the
trust rule on hand-built input-drift figures. The estimators themselves: tests/test_label_free.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import write_scenario
from drift_helpers import drifting_csv
from scenario_helpers import run_cli
from test_drift_mode import drift_step, fine_tune_step, only_drift, periods_of, refused, suite

from hf_cost.drift.label_free import trust

LEVELS = SimpleNamespace(untrusted_domain_auc=0.80, untrusted_unseen_word_rate=0.10)


def drift_figures(auc: float | None = None, p_value: float | None = None, unseen: float | None = None) -> dict:
    dc = None if auc is None else {"auc": auc, "permutation": None if p_value is None else
                                   {"n": 20, "p_value": p_value, "auc_p95": 0.7}}
    return {"domain_classifier": dc, "unseen_word_rate": None if unseen is None else {"value": unseen}}


@pytest.mark.parametrize(("figures", "trusted", "reasons"), [
    (drift_figures(auc=0.79, unseen=0.09), True, 0),            # below both levels
    (drift_figures(auc=0.80), False, 1),                        # at the AUC level, no permutation (large sides)
    (drift_figures(auc=0.95, p_value=1 / 21), False, 1),        # beats every label permutation
    (drift_figures(auc=0.95, p_value=0.30), True, 0),           # small sides: no better than permuted labels
    (drift_figures(unseen=0.10), False, 1),                     # at the unseen-word level
    (drift_figures(auc=0.99, unseen=0.30), False, 2),           # both reasons given
    (None, True, 0),                                            # no input drift measured: nothing to say
])
def test_trust_rule_on_hand_built_figures(figures: dict | None, trusted: bool, reasons: int) -> None:
    ok, why = trust(figures, LEVELS)
    assert (ok, len(why)) == (trusted, reasons), why
    assert all(isinstance(w, str) and w for w in why)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Any]:
    """Q1 trained (120 rows a quarter: 24 held-out Q1 rows calibrate), Q2..Q4 shift to new markers."""
    d = tmp_path_factory.mktemp("drift-label-free")
    data = drifting_csv(d / "data.csv", tiny_bert_dir, per_period=120)
    scenario = write_scenario(d, suite(tiny_bert_dir, fine_tune_step(data) + drift_step(data)))
    results = run_cli(scenario, d / "out")
    return {"result": only_drift(results), "out": d / "out", "dir": d, "data": data}


def test_every_period_gets_every_estimator_with_a_band(run: dict[str, Any]) -> None:
    r = run["result"]
    assert r["status"] == "ok", r.get("error")
    lf = r["metrics"]["label_free"]
    assert lf["calibration"]["chosen"] in ("none", "temperature", "isotonic")
    assert lf["calibration"]["n"] == r["metrics"]["id_rows"] == 24
    names = {"average_confidence", "average_confidence_calibrated", "atc", "atc_calibrated", "doc", "cbpe",
             "cbpe_f1_macro"}
    for p in r["metrics"]["periods"]:
        est = p["label_free"]["estimates"]
        assert names <= set(est)
        for band in est.values():
            assert band["ci_low"] - 1e-12 <= band["value"] <= band["ci_high"] + 1e-12
        assert p["label_free"]["headline"] == lf["headline"]
        assert p["label_free"]["headline_estimate"] == est[lf["headline"]]


def test_backtest_errors_are_estimate_minus_the_periods_own_accuracy(run: dict[str, Any]) -> None:
    """The period's accuracy comes from the quality code (scoring.score_classification), the
    estimate from the estimators: their difference is the backtest's error for every estimator."""
    r = run["result"]
    raw = r["raw"]
    periods, correct = np.asarray(raw["periods"]), np.asarray(raw["predictions"]) == np.asarray(raw["references"])
    out_of_window = []
    for p in r["metrics"]["periods"]:
        truth = float(correct[periods == p["period"]].mean())
        assert p["accuracy"]["value"] == pytest.approx(truth)
        for name, err in p["label_free"]["errors"].items():
            if name == "cbpe_f1_macro":
                continue
            assert err["value"] == pytest.approx(p["label_free"]["estimates"][name]["value"] - truth, abs=1e-9)
        if not p["in_window"]:
            out_of_window.append(p)
    summary = r["metrics"]["label_free"]["backtest"]["summary"]
    for name, s in summary.items():
        errors = [abs(p["label_free"]["errors"][name]["value"]) for p in out_of_window]
        assert s["mean_abs_error"] == pytest.approx(float(np.mean(errors)))
    best = min((n for n in summary if n != "cbpe_f1_macro"), key=lambda n: summary[n]["mean_abs_error"])
    assert summary[r["metrics"]["label_free"]["headline"]]["mean_abs_error"] == pytest.approx(
        summary[best]["mean_abs_error"])


def test_the_period_that_left_the_training_text_is_untrusted_everywhere(run: dict[str, Any]) -> None:
    r = run["result"]
    by = periods_of(r)
    q4 = by["2023-Q4"]  # every marker word replaced: the domain classifier tells it apart
    assert q4["input_drift"]["domain_classifier"]["auc"] >= 0.8
    assert q4["label_free"]["trusted"] is False and q4["label_free"]["untrusted_because"]
    assert "2023-Q4" in r["metrics"]["label_free"]["untrusted_periods"]
    assert by["2023-Q1"]["label_free"]["trusted"] is True
    report = (run["out"] / "report.md").read_text(encoding="utf-8")
    assert "UNTRUSTED" in report and "Untrusted: " in report
    assert "What drifted" in report
    assert "raw" in r and len(r["raw"]["logits"]) == len(r["raw"]["predictions"])


def test_trust_levels_come_from_the_scenario(run: dict[str, Any], tiny_bert_dir: Path) -> None:
    d = run["dir"] / "lenient"
    d.mkdir()
    extra = "\n    label_free: {untrusted_domain_auc: 1.0, untrusted_unseen_word_rate: 1.0}"
    scenario = write_scenario(d, suite(tiny_bert_dir, fine_tune_step(run["data"]) + drift_step(run["data"], extra)))
    r = only_drift(run_cli(scenario, d / "out"))
    for p in r["metrics"]["periods"]:  # at levels of 1.0 only a perfect separation can untrust a period
        drift = p["input_drift"]
        perfect = drift["domain_classifier"]["auc"] == 1.0 or drift["unseen_word_rate"]["value"] == 1.0
        assert p["label_free"]["trusted"] or perfect, (p["period"], p["label_free"]["untrusted_because"])
    assert "1.00" in r["metrics"]["label_free"]["trust_rule"]
    first = periods_of(run["result"])
    assert any(not first[p]["label_free"]["trusted"] for p in first)  # the default levels did untrust


def test_label_free_settings_refused_where_they_cannot_work(tmp_path: Path, tiny_bert_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = drifting_csv(tmp_path / "data.csv", tiny_bert_dir, per_period=10)
    bad = "\n    label_free: {calibration_folds: 1}"
    scenario = write_scenario(tmp_path, suite(tiny_bert_dir, fine_tune_step(data) + drift_step(data, bad)))
    refused(capsys, scenario, tmp_path / "out", ["calibration_folds"], command="validate")
    bad = "\n    label_free: {untrusted_domain_auc: 0.4}"
    scenario = write_scenario(tmp_path, suite(tiny_bert_dir, fine_tune_step(data) + drift_step(data, bad)))
    refused(capsys, scenario, tmp_path / "out", ["untrusted_domain_auc"], command="validate")
    bad = "\n    label_free: {alert_lower: 0.9, alert_upper: 0.8}"
    scenario = write_scenario(tmp_path, suite(tiny_bert_dir, fine_tune_step(data) + drift_step(data, bad)))
    refused(capsys, scenario, tmp_path / "out", ["alert_lower", "below alert_upper"], command="validate")


def _period(name: str, rng: np.random.Generator, in_window: bool = False, trusted: bool = True) -> dict[str, Any]:
    logits = rng.normal(size=(60, 3)) * 2
    labels = np.where(rng.random(60) < 0.8, logits.argmax(axis=1), rng.integers(0, 3, 60))
    return {"period": name, "in_window": in_window, "logits": logits, "labels": labels, "trusted": trusted}


def test_the_headline_is_chosen_on_trusted_periods_only() -> None:
    """An untrusted period breaks the estimators' assumption: its errors are reported, but it does
    not pick the estimator; with no trusted period left, every labelled one is used, and said so."""
    from hf_cost.drift.calibration import choose_calibrator
    from hf_cost.drift.estimators import backtest, fit_estimators

    rng = np.random.default_rng(0)
    ident = _period("id", rng, in_window=True)
    fitted = fit_estimators(ident["logits"], ident["labels"],
                            choose_calibrator(ident["logits"], ident["labels"], n_resamples=100))
    periods = [ident, _period("a", rng), _period("b", rng, trusted=False), _period("c", rng)]
    bt = backtest(fitted, periods, n_resamples=100)
    assert bt["summary"]["atc"]["periods"] == ["a", "c"]
    assert all(row["errors"] for row in bt["periods"])  # errors everywhere there are labels
    mean = np.mean([abs(row["errors"]["doc"]["value"]) for row in bt["periods"] if row["period"] in ("a", "c")])
    assert bt["summary"]["doc"]["mean_abs_error"] == pytest.approx(mean)
    for p in periods[1:]:
        p["trusted"] = False
    bt = backtest(fitted, periods, n_resamples=100)
    assert bt["summary"]["atc"]["periods"] == ["a", "b", "c"]
    assert "all untrusted" in bt["headline_reason"]


def test_alert_thresholds_are_the_in_window_chunks_mean_plus_minus_three_sd(run: dict[str, Any]) -> None:
    lf = run["result"]["metrics"]["label_free"]
    t = lf["alert_thresholds"]
    values = np.asarray(t["chunk_values"], dtype=float)
    assert len(values) == 5
    mean, sd = values.mean(), values.std(ddof=1)  # numpy's sample sd, recomputed here
    assert t["lower"] == pytest.approx(max(0.0, mean - 3 * sd))
    assert t["upper"] == pytest.approx(min(1.0, mean + 3 * sd))
    for p in run["result"]["metrics"]["periods"]:
        v = p["label_free"]["headline_estimate"]["value"]
        expected = "below" if v < t["lower"] else "above" if v > t["upper"] else None
        assert p["label_free"]["alert"] == expected
    assert lf["alert_periods"] == [p["period"] for p in run["result"]["metrics"]["periods"] if p["label_free"]["alert"]]


def test_constant_alert_thresholds_from_the_scenario(run: dict[str, Any], tiny_bert_dir: Path) -> None:
    d = run["dir"] / "constant"
    d.mkdir()
    extra = "\n    label_free: {alert_lower: 0.999999, alert_upper: 1.0}"
    scenario = write_scenario(d, suite(tiny_bert_dir, fine_tune_step(run["data"]) + drift_step(run["data"], extra)))
    r = only_drift(run_cli(scenario, d / "out"))
    t = r["metrics"]["label_free"]["alert_thresholds"]
    assert (t["lower"], t["upper"]) == (0.999999, 1.0) and t["source"]["lower"] == "scenario"
    below = [p["period"] for p in r["metrics"]["periods"] if p["label_free"]["headline_estimate"]["value"] < 0.999999]
    assert below and r["metrics"]["label_free"]["alert_periods"] == below
    assert "ALERT" in (d / "out" / "report.md").read_text(encoding="utf-8")
