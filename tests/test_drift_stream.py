"""Eval-Stream (drift `horizon`): candidates trained on growing windows (periods up to t), each
scored on the periods right after its window; figures recomputed from the raw rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_scenario
from drift_helpers import drifting_csv
from scenario_helpers import SEQ

from hf_cost.cli import main


def _fine_tune(name: str, data: Path, quarters: list[str]) -> str:
    ds = f'{{path: {json.dumps(str(data))}, label_column: label, where: {{quarter: {quarters}}}'
    return f"""
  - kind: fine_tune
    name: {name}
    train: {ds}, select: train}}
    eval: {ds}, select: holdout}}
    target: {{metric: accuracy, value: 0.95}}
    sequence_length: {SEQ}
    batch_size: 8
    learning_rate: 1.0e-3
    max_steps: 40
    eval_every_steps: 10"""


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("stream")
    data = drifting_csv(d / "data.csv", tiny_bert_dir)
    text = f"""
name: stream-test
model: {{path: {json.dumps(str(tiny_bert_dir))}, device: cpu}}
inputs: {{kind: synthetic, sequence_length: {SEQ}, num_samples: 32}}
scenarios:{_fine_tune("q1", data, ["Q1"])}{_fine_tune("q12", data, ["Q1", "Q2"])}{_fine_tune("q4", data, ["Q4"])}
  - kind: drift
    dataset: {{path: {json.dumps(str(data))}, label_column: label}}
    period_column: date
    granularity: quarter
    bootstrap_resamples: 200
    domain_classifier: false
    horizon: 2
"""
    out = d / "out"
    assert main(["run", str(write_scenario(d, text)), "--output", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return {r["candidate"]: r for r in results["scenarios"] if r["kind"] == "drift"} | {"_out": out}


def _accuracy(result: dict[str, Any], periods: list[str]) -> float:
    raw = result["raw"]
    keep = [i for i, p in enumerate(raw["periods"]) if p in periods]
    return float(np.mean([raw["predictions"][i] == raw["references"][i] for i in keep]))


def test_each_window_is_scored_on_the_periods_after_it(stream: dict[str, Any]) -> None:
    q1, q12 = stream["q1"]["metrics"]["stream"], stream["q12"]["metrics"]["stream"]
    assert (q1["after"], q1["periods"]) == ("2023-Q1", ["2023-Q2", "2023-Q3"])
    assert (q12["after"], q12["periods"]) == ("2023-Q2", ["2023-Q3", "2023-Q4"])
    assert stream["q12"]["metrics"]["training_window"] == ["2023-Q1", "2023-Q2"]
    for name, s in (("q1", q1), ("q12", q12)):
        # the unweighted mean of the per-period accuracies, recomputed from the raw rows
        expected = np.mean([_accuracy(stream[name], [p]) for p in s["periods"]])
        assert s["average"]["value"] == pytest.approx(expected)
        assert s["average"]["ci_low"] <= s["average"]["value"] <= s["average"]["ci_high"]
        assert s["note"] is None


def test_a_window_at_the_end_has_no_periods_after_it(stream: dict[str, Any]) -> None:
    s = stream["q4"]["metrics"]["stream"]
    assert s["after"] == "2023-Q4" and s["periods"] == [] and s["average"] is None
    assert "no period after 2023-Q4" in s["note"]


def test_report_says_it(stream: dict[str, Any]) -> None:
    report = (stream["_out"] / "report.md").read_text(encoding="utf-8")
    assert "Eval-Stream (trained up to 2023-Q1, next 2): mean accuracy" in report
    assert "Eval-Stream: no period after 2023-Q4 in the data." in report
