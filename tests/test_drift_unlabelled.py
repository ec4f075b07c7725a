"""Drift over a dataset whose later periods have no labels yet (issue 18): a normal case. Those
periods get label-free estimates, input drift and trust labels, not errors; partly labelled
periods are scored on their labelled rows; decay, the backtest and the comparison cells use
labelled rows only."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_scenario
from drift_helpers import drifting_csv
from scenario_helpers import run_cli
from test_drift_mode import drift_step, fine_tune_step, only_drift, periods_of, suite


def blank_labels(src: Path, dst: Path, rule: Any) -> dict[str, int]:
    """A copy of ``src`` with the label cell emptied where ``rule(row, i)``; unlabelled rows per quarter."""
    with src.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    blanked: dict[str, int] = {}
    for i, row in enumerate(rows):
        if rule(row, i):
            row["label"] = ""
            blanked[row["quarter"]] = blanked.get(row["quarter"], 0) + 1
    with dst.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return blanked


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Any]:
    """Trained on Q1 (fully labelled); Q3 half labelled; Q4 has no label at all."""
    d = tmp_path_factory.mktemp("drift-unlabelled")
    full = drifting_csv(d / "full.csv", tiny_bert_dir, per_period=120)
    data = d / "data.csv"
    blanked = blank_labels(full, data, lambda row, i: row["quarter"] == "Q4" or (row["quarter"] == "Q3" and i % 2))
    scenario = write_scenario(d, suite(tiny_bert_dir, fine_tune_step(data) + drift_step(data)))
    results = run_cli(scenario, d / "out")
    return {"results": results, "result": only_drift(results), "blanked": blanked, "out": d / "out"}


def test_a_period_without_labels_is_kept_and_estimated(run: dict[str, Any]) -> None:
    r = run["result"]
    assert r["status"] == "ok", r.get("error")
    assert run["blanked"] == {"Q3": 60, "Q4": 120}
    by = periods_of(r)
    q4 = by["2023-Q4"]
    assert q4["n"] == 120 and q4["labelled_rows"] == 0
    assert q4["accuracy"] is None and "no labels" in q4["note"]
    assert q4["label_free"]["headline_estimate"]["value"] is not None
    assert q4["label_free"]["errors"] is None
    assert isinstance(q4["label_free"]["trusted"], bool)
    assert q4["input_drift"]["domain_classifier"]["auc"] is not None
    assert q4["input_drift"]["label_prior_shift"] is None  # no labels to compare
    assert r["metrics"]["dropped_rows"] == {}  # blank labels are not dropped rows


def test_a_partly_labelled_period_is_scored_on_its_labelled_rows(run: dict[str, Any]) -> None:
    r = run["result"]
    raw = r["raw"]
    periods, refs = np.asarray(raw["periods"]), np.asarray(raw["references"])
    preds = np.asarray(raw["predictions"])
    q3 = periods_of(r)["2023-Q3"]
    mine = (periods == "2023-Q3") & (refs >= 0)
    assert q3["n"] == 120 and q3["labelled_rows"] == int(mine.sum()) == 60
    assert q3["accuracy"]["n"] == 60
    assert q3["accuracy"]["value"] == pytest.approx(float((preds[mine] == refs[mine]).mean()))
    assert set(refs[periods == "2023-Q4"].tolist()) == {-1}  # raw keeps every row; -1: no label


def test_decay_and_backtest_use_labelled_periods_only(run: dict[str, Any]) -> None:
    m = run["result"]["metrics"]
    assert [p["period"] for p in m["decay"]["periods"]] == ["2023-Q1", "2023-Q2", "2023-Q3"]
    used = {p for s in m["label_free"]["backtest"]["summary"].values() for p in s["periods"]}
    assert "2023-Q4" not in used
    report = (run["out"] / "report.md").read_text(encoding="utf-8")
    assert "no labels" in report


def test_a_dataset_without_any_label_is_a_result_not_an_error(tmp_path: Path, tiny_bert_dir: Path) -> None:
    """Trained on a labelled file, drift on a copy whose every label is empty: input drift per
    period, no accuracy, no decay, and no estimate (nothing labelled in the window to calibrate on)."""
    full = drifting_csv(tmp_path / "full.csv", tiny_bert_dir, per_period=40)
    data = tmp_path / "data.csv"
    blank_labels(full, data, lambda row, i: True)
    scenario = write_scenario(tmp_path, suite(tiny_bert_dir, fine_tune_step(full) + drift_step(data)))
    r = only_drift(run_cli(scenario, tmp_path / "out"))
    assert r["status"] == "ok", r.get("error")
    m = r["metrics"]
    assert m["decay"] is None and m["label_free"] is None
    assert m["unlabelled_rows"] == m["scored_rows"] > 0
    assert all(p["accuracy"] is None and p["input_drift"]["unseen_word_rate"] is not None for p in m["periods"])
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "No period has labels" in report
