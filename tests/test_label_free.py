"""Calibration (ECE, temperature, isotonic, choice) and label-free estimators against hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_cost.drift.calibration import (
    apply_isotonic,
    apply_isotonic_counted,
    choose_calibrator,
    ece_interval,
    expected_calibration_error,
    fit_isotonic,
    fit_temperature,
    softmax,
)
from hf_cost.drift.estimators import ESTIMATORS, backtest, estimate, fit_estimators


def _sample_labels(probs: np.ndarray, seed: int) -> np.ndarray:
    """One label per row drawn from that row's probabilities (inverse CDF)."""
    u = np.random.default_rng(seed).random(len(probs))
    return (u[:, None] > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, probs.shape[1] - 1)


def _calibrated_set(n: int, k: int = 3, scale: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits z and labels drawn from softmax(z): a perfectly calibrated model in expectation."""
    z = np.random.default_rng(seed).normal(size=(n, k)) * scale
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return z, _sample_labels(p, seed + 1)


def _mean_nll(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    total = 0.0
    for row, label in zip(logits / t, labels):
        total += -math.log(math.exp(row[label]) / sum(math.exp(v) for v in row))
    return total / len(labels)


# ---- ECE


def test_ece_hand_case_two_bins():
    # Bin (0, .5]: confs .1, .3, 1 of 2 right: |0.5 - 0.2| * 2/4 = 0.15.
    # Bin (.5, 1]: confs .6, .9, both right: |1 - 0.75| * 2/4 = 0.125.
    ece = expected_calibration_error(np.array([0.1, 0.3, 0.6, 0.9]), np.array([0, 1, 1, 1]), n_bins=2)
    assert ece == pytest.approx(0.275)


def test_ece_bin_edges_are_right_closed_and_zero_is_in_the_first_bin():
    # 0.5 belongs to (0, .5] with B = 2: |1 - .5| / 2 + |0 - 1| / 2 = 0.75 (0.25 if it joined 1.0's bin).
    assert expected_calibration_error(np.array([0.5, 1.0]), np.array([1, 0]), n_bins=2) == pytest.approx(0.75)
    # 0 and 0.2 share bin 0: acc 0.5, conf 0.1 -> 0.4.
    assert expected_calibration_error(np.array([0.0, 0.2]), np.array([0, 1]), n_bins=2) == pytest.approx(0.4)
    # 0.6 with B = 5 is in (0.4, 0.6], not (0.6, 0.8]: alone with 0.5 there, acc 1, conf .55 -> 0.45 * 2/3;
    # 0.7 alone, wrong: 0.7 / 3.
    got = expected_calibration_error(np.array([0.5, 0.6, 0.7]), np.array([1, 1, 0]), n_bins=5)
    assert got == pytest.approx(0.45 * 2 / 3 + 0.7 / 3)


def test_ece_near_zero_when_calibrated_and_large_when_over_confident():
    z, y = _calibrated_set(20000)
    p = softmax(z)
    correct = p.argmax(axis=1) == y
    assert expected_calibration_error(p.max(axis=1), correct) < 0.02
    sharp = softmax(z * 3)  # same predictions, far more confident
    assert expected_calibration_error(sharp.max(axis=1), correct) > 0.1


def test_ece_interval_brackets_the_value():
    z, y = _calibrated_set(2000, seed=3)
    p = softmax(z * 2)
    out = ece_interval(p.max(axis=1), p.argmax(axis=1) == y, n_resamples=300)
    assert out["ci_low"] <= out["value"] <= out["ci_high"]
    assert out["ci_high"] > out["ci_low"]
    assert (out["n"], out["n_bins"], out["ci_level"]) == (2000, 15, 0.95)
    assert "bootstrap" in out["method"]


# ---- temperature


def test_fit_temperature_recovers_a_known_temperature():
    z, y = _calibrated_set(20000, scale=1.5, seed=5)
    t = fit_temperature(z * 2.5, y)
    assert t == pytest.approx(2.5, rel=0.06)
    small = z[:2000] * 2.5, y[:2000]
    t_small = fit_temperature(*small)
    nll = _mean_nll(*small, t_small)
    for other in (1.0, t_small * 1.2, t_small / 1.2):
        assert nll < _mean_nll(*small, other)


# ---- isotonic


def test_isotonic_rows_sum_to_one():
    z, y = _calibrated_set(500, k=4, seed=7)
    p = softmax(z)
    out = apply_isotonic(fit_isotonic(p, y), softmax(z[:100] * 1.7))
    assert out.shape == (100, 4)
    assert np.allclose(out.sum(axis=1), 1.0)
    assert np.all(out >= 0)


def test_isotonic_hand_case_and_all_zero_row_keeps_the_input():
    train = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.2, 0.2, 0.6], [0.15, 0.15, 0.7]])
    labels = np.array([0, 1, 0, 1])
    # class 0: x .05 .15 .2 .9 -> y 0 0 1 1 (already monotone). class 1: x .05 .15 .2 .9 -> 0 1 0 1,
    # pooled to 0 .5 .5 1. class 2 never occurs: 0 everywhere.
    models = fit_isotonic(train, labels)
    rows = np.array([[0.05, 0.05, 0.9], [0.9, 0.05, 0.05], [0.2, 0.15, 0.65]])
    out, kept = apply_isotonic_counted(models, rows)
    assert kept == 1
    assert out[0] == pytest.approx([0.05, 0.05, 0.9])  # calibrated (0, 0, 0): the input row is kept
    assert out[1] == pytest.approx([1.0, 0.0, 0.0])
    assert out[2] == pytest.approx([2 / 3, 1 / 3, 0.0])  # (1, .5, 0) renormalised


# ---- choose_calibrator


def test_calibration_helps_an_over_confident_model():
    z, y = _calibrated_set(600, seed=11)
    result = choose_calibrator(z * 3, y, n_resamples=200)
    report = result["report"]
    assert result["chosen"] in ("temperature", "isotonic")
    assert report["ece_after"]["value"] < report["ece_before"]["value"]
    assert report["candidates"]["temperature"]["temperature"] == pytest.approx(3.0, rel=0.25)
    assert result["oof_probabilities"].shape == (600, 3)
    assert np.allclose(result["oof_probabilities"].sum(axis=1), 1.0)
    applied = result["apply"](z[:10] * 3)
    assert np.allclose(applied.sum(axis=1), 1.0)
    assert result["chosen"] in report["reason"] and "lowered" in report["reason"]
    assert (report["folds"], report["n"], report["chosen"]) == (5, 600, result["chosen"])


def _exactly_calibrated_id() -> tuple[np.ndarray, np.ndarray]:
    """40 rows, K = 2, always predicting class 0: 20 at confidence .8 (16 right), 20 at .6 (12 right).

    Each confidence is exactly its group's accuracy, so the raw ECE is 0 (up to rounding); any
    calibrator fitted on 4/5 of the rows sees other group frequencies and can only move away.
    """
    logits = np.zeros((40, 2))
    logits[:20, 0] = math.log(0.8 / 0.2)
    logits[20:, 0] = math.log(0.6 / 0.4)
    labels = np.array([0] * 16 + [1] * 4 + [0] * 12 + [1] * 8)
    return logits, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibration_is_refused_when_it_raises_held_out_ece(seed):
    logits, labels = _exactly_calibrated_id()
    result = choose_calibrator(logits, labels, seed=seed, n_resamples=100)
    report = result["report"]
    assert report["ece_before"]["value"] == pytest.approx(0.0, abs=1e-12)
    assert result["chosen"] == "none" == report["chosen"]
    assert "kept uncalibrated" in report["reason"]
    assert report["ece_after"] == report["ece_before"]
    assert np.allclose(result["oof_probabilities"], softmax(logits))
    assert np.allclose(result["apply"](logits), softmax(logits))
    for name in ("temperature", "isotonic"):
        assert report["candidates"][name]["ece_oof"]["value"] > 0


def test_too_few_rows_per_class_uses_fewer_folds_or_none():
    z, y = _calibrated_set(60, seed=13)
    y[:3] = 2
    y[3:] = np.where(y[3:] == 2, 0, y[3:])  # class 2 has exactly 3 rows: 3 folds
    assert choose_calibrator(z * 3, y, n_resamples=50)["report"]["folds"] == 3
    y[:3] = [2, 0, 0]  # class 2 has 1 row: no stratified split possible
    result = choose_calibrator(z * 3, y, n_resamples=50)
    assert result["chosen"] == "none"
    assert "rarest class has 1 ID row" in result["report"]["reason"]
    tiny = choose_calibrator(z[:3] * 3, np.array([0, 0, 1]), n_resamples=50)
    assert tiny["chosen"] == "none" and "3 ID rows" in tiny["report"]["reason"]
    assert tiny["report"]["ece_after"] == tiny["report"]["ece_before"]


def test_labels_need_not_cover_every_class():
    z, y = _calibrated_set(300, k=4, seed=17)
    y = np.where(y == 3, 0, y)
    result = choose_calibrator(z * 3, y, n_resamples=50)
    assert result["oof_probabilities"].shape == (300, 4)
    assert result["apply"](z[:5]).shape == (5, 4)


# ---- estimators

# K = 2, logits (ln a, ln b): raw top probability a / (a + b). The "calibrator" is temperature 2
# given by hand: sqrt(a) / (sqrt(a) + sqrt(b)). ln 9 -> .9 raw, .75 calibrated; ln 4 -> .8, 2/3;
# ln 16 -> 16/17, .8; 0 -> .5, .5.
L9, L4, L16 = math.log(9), math.log(4), math.log(16)
ID_LOGITS = np.array([[L9, 0], [L4, 0], [0, L16], [L4, 0]])
ID_LABELS = np.array([0, 0, 1, 1])  # right, right, right, wrong: ID accuracy 3/4
PERIOD_LOGITS = np.array([[L9, 0], [0, L4], [L16, 0], [0, 0], [0, L9]])  # predicted 0 1 0 0 1
PERIOD_LABELS = np.array([0, 1, 1, 0, 0])  # right right wrong right wrong: accuracy 0.6


def _hand_temperature_two() -> dict:
    return {"chosen": "temperature", "oof_probabilities": softmax(ID_LOGITS / 2), "apply": lambda x: softmax(x / 2)}


HAND_ESTIMATES = {
    "average_confidence": (0.9 + 0.8 + 16 / 17 + 0.5 + 0.9) / 5,
    "average_confidence_calibrated": (0.75 + 2 / 3 + 0.8 + 0.5 + 0.75) / 5,
    # raw ID confidences .9 .8 16/17 .8, 3 right: t = smallest = .8; period above .8: .9, 16/17, .9.
    "atc": 3 / 5,
    # calibrated ID .75 2/3 .8 2/3: t = 2/3; period above: .75, .8, .75.
    "atc_calibrated": 3 / 5,
    "doc": 0.75 - ((0.9 + 0.8 + 16 / 17 + 0.8) / 4 - (0.9 + 0.8 + 16 / 17 + 0.5 + 0.9) / 5),
    "cbpe": (0.75 + 2 / 3 + 0.8 + 0.5 + 0.75) / 5,
    # calibrated rows (.75,.25) (1/3,2/3) (.8,.2) (.5,.5) (.25,.75), predicted 0 1 0 0 1.
    # class 0: TP .75+.8+.5 = 2.05, FP .25+.2+.5 = .95, FN 1/3+.25; class 1: TP 2/3+.75, FP 1/3+.25,
    # FN .25+.2+.5.
    "cbpe_f1_macro": (
        2 * 2.05 / (2 * 2.05 + 0.95 + 7 / 12) + 2 * (17 / 12) / (2 * (17 / 12) + 7 / 12 + 0.95)
    )
    / 2,
}


def test_estimators_hand_case():
    fitted = fit_estimators(ID_LOGITS, ID_LABELS, _hand_temperature_two())
    assert fitted.atc_threshold == pytest.approx(0.8)
    assert fitted.atc_threshold_calibrated == pytest.approx(2 / 3)
    out = estimate(fitted, PERIOD_LOGITS, n_resamples=200)
    assert set(ESTIMATORS) | {"cbpe_f1_macro", "method"} <= set(out)
    for name, expected in HAND_ESTIMATES.items():
        assert out[name]["value"] == pytest.approx(expected), name
        assert out[name]["ci_low"] <= out[name]["value"] + 1e-12 <= out[name]["ci_high"] + 2e-12, name
    assert "bootstrap" in out["method"] and "held fixed" in out["method"]


def test_backtest_hand_case_errors_are_estimate_minus_truth():
    fitted = fit_estimators(ID_LOGITS, ID_LABELS, _hand_temperature_two())
    periods = [{"period": "p", "in_window": False, "logits": PERIOD_LOGITS, "labels": PERIOD_LABELS}]
    result = backtest(fitted, periods, n_resamples=200)
    row = result["periods"][0]
    assert row["labelled"] and row["true_accuracy"] == pytest.approx(0.6)
    # true F1: class 0 TP 2 FP 1 FN 1 -> 2/3; class 1 TP 1 FP 1 FN 1 -> 1/2; macro 7/12.
    for name, expected in HAND_ESTIMATES.items():
        truth = 7 / 12 if name == "cbpe_f1_macro" else 0.6
        err = row["errors"][name]
        assert err["value"] == pytest.approx(expected - truth), name
        assert err["ci_low"] <= err["ci_high"]
        assert result["summary"][name]["mean_abs_error"] == pytest.approx(abs(expected - truth))
    assert result["summary"]["doc"]["periods"] == ["p"]


def test_cbpe_is_unbiased_when_labels_follow_the_calibrated_probabilities():
    z_id, y_id = _calibrated_set(400, seed=21)
    fitted = fit_estimators(z_id, y_id, choose_calibrator(z_id, y_id, n_resamples=50))
    z, y = _calibrated_set(20000, seed=23)
    probs = fitted.apply(z)
    y = _sample_labels(probs, 29)  # labels drawn from the probabilities the estimator uses
    out = estimate(fitted, z, n_resamples=200)
    predicted = z.argmax(axis=1)
    true_accuracy = np.mean(predicted == y)
    assert out["cbpe"]["value"] == pytest.approx(true_accuracy, abs=0.01)
    f1s = []
    for k in range(3):
        tp = np.sum((predicted == k) & (y == k))
        f1s.append(2 * tp / (np.sum(predicted == k) + np.sum(y == k)))
    assert out["cbpe_f1_macro"]["value"] == pytest.approx(np.mean(f1s), abs=0.015)
    for name in (*ESTIMATORS, "cbpe_f1_macro"):
        assert out[name]["ci_low"] <= out[name]["value"] <= out[name]["ci_high"], name
        assert out[name]["ci_high"] - out[name]["ci_low"] < 0.05, name


def test_backtest_headline_is_the_clearly_best_estimator():
    # ID: labels follow softmax(2 z) while the model says softmax(z): under-confident, so ID accuracy
    # is well above ID confidence. Out of window the labels follow softmax(z) itself: only the raw
    # average confidence is right; DoC adds the ID gap, calibration sharpens, ATC thresholds on ID.
    z_id, _ = _calibrated_set(600, seed=31)
    y_id = _sample_labels(softmax(2 * z_id), 32)
    fitted = fit_estimators(z_id, y_id, choose_calibrator(z_id, y_id, n_resamples=50))
    periods = [{"period": "id", "in_window": True, "logits": z_id, "labels": y_id}]
    for i in range(2):
        z, _ = _calibrated_set(3000, seed=40 + i)
        labels = _sample_labels(softmax(z), 50 + i)
        periods.append({"period": f"ood{i}", "in_window": False, "logits": z, "labels": labels})
    periods.append({"period": "unlabelled", "in_window": False, "logits": z, "labels": None})
    result = backtest(fitted, periods, n_resamples=100)
    assert result["headline"] == "average_confidence"
    assert "average_confidence" in result["headline_reason"]
    summary = result["summary"]
    assert summary["average_confidence"]["periods"] == ["ood0", "ood1"]
    assert summary["average_confidence"]["mean_abs_error"] < 0.02
    for name in ESTIMATORS[1:]:
        assert summary[name]["mean_abs_error"] > summary["average_confidence"]["mean_abs_error"] + 0.03, name
    unlabelled = result["periods"][-1]
    assert unlabelled["labelled"] is False and unlabelled["errors"] == {} and unlabelled["true_accuracy"] is None
    ood0 = result["periods"][1]
    direct = estimate(fitted, periods[1]["logits"], n_resamples=10)
    truth = np.mean(periods[1]["logits"].argmax(axis=1) == periods[1]["labels"])
    assert ood0["true_accuracy"] == pytest.approx(truth)
    for name in ESTIMATORS:
        assert ood0["errors"][name]["value"] == pytest.approx(direct[name]["value"] - truth)


def test_backtest_without_labelled_out_of_window_period_defaults_to_cbpe():
    fitted = fit_estimators(ID_LOGITS, ID_LABELS, _hand_temperature_two())
    periods = [
        {"period": "in", "in_window": True, "logits": ID_LOGITS, "labels": ID_LABELS},
        {"period": "later", "in_window": False, "logits": PERIOD_LOGITS, "labels": None},
    ]
    result = backtest(fitted, periods, n_resamples=50)
    assert result["headline"] is None
    assert result["headline_or_default"] == "cbpe"
    assert "cbpe" in result["headline_reason"] and "no labelled out-of-window" in result["headline_reason"]
    # in-window errors are still reported: ID raw confidences .9 .8 16/17 .8 with t = .8 (a tie):
    # 2 of 4 above, ATC 0.5 against the true 0.75.
    assert result["periods"][0]["labelled"]
    assert result["periods"][0]["errors"]["atc"]["value"] == pytest.approx(-0.25)
    assert result["summary"]["cbpe"]["mean_abs_error"] is None and result["summary"]["cbpe"]["periods"] == []
