"""A run with `select:`, a price, a workload and energy on: the selection, cost and energy end to
end, and the `select` command over the run's results.json (same answer, plot, bad input)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_scenario
from drift_helpers import drifting_csv
from scenario_helpers import SEQ, fine_tune_yaml

from hf_cost.cli import main
from hf_cost.measure.energy import METHODS


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("selection")
    data = drifting_csv(d / "data.csv", tiny_bert_dir)
    text = f"""
name: selection-test
model: {{path: {json.dumps(str(tiny_bert_dir))}, device: cpu, task: feature-extraction}}
inputs: {{kind: synthetic, sequence_length: {SEQ}, num_samples: 32}}
hardware: {{price_per_hour: 3.6, currency: EUR}}
workload: {{inferences_per_day: 1000}}
energy: {{enabled: true}}
select:
  constraints: [{{metric: p90_latency_ms, max: 10000}}]
  objectives: [{{metric: accuracy, direction: max}}, {{metric: p90_latency_ms, direction: min}}]
scenarios:{fine_tune_yaml(data, name="ft", max_steps=30)}
  - kind: single_stream
    min_duration_s: 0.5
    min_query_count: 20
  - kind: offline
    batch_sizes: [4]
    min_duration_s: 0.5
    min_sample_count: 20
  - kind: drift
    dataset: {{path: {json.dumps(str(data))}, label_column: label}}
    period_column: date
    granularity: quarter
    bootstrap_resamples: 100
    domain_classifier: false
"""
    scenario = write_scenario(d, text)
    out = d / "out"
    assert main(["run", str(scenario), "--output", str(out), "--quiet"]) == 0
    return {"out": out, "results": json.loads((out / "results.json").read_text(encoding="utf-8")), "dir": d}


def test_selection_in_the_run(run: dict[str, Any]) -> None:
    sel = run["results"]["selection"]
    # base has no classifier head, so no accuracy: only ft can be ranked
    assert sel["recommended"] == "ft" and sel["feasible"] == ["base", "ft"]
    assert "accuracy not measured" in sel["verdicts"]["base"]
    assert (run["out"] / "plots" / "selection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (run["out"] / "report.md").read_text(encoding="utf-8")
    assert "## Selection" in report and "plots/selection.png" in report and "## Cost" in report


def test_energy_is_attached_and_labelled(run: dict[str, Any]) -> None:
    with_energy = [s for s in run["results"]["scenarios"] if s.get("energy")]
    assert {s["kind"] for s in with_energy} >= {"fine_tune", "single_stream", "offline", "drift"}
    for s in with_energy:
        assert s["energy"]["method"] in METHODS and s["name"] in s["energy"]["covers"]
        assert s["energy"]["energy_kwh"] > 0
    costs = {r["candidate"]: r for r in run["results"]["costs"]["rows"]}
    ft = costs["ft"]
    e = next(s for s in with_energy if s["kind"] == "offline" and s["candidate"] == "ft")
    samples = e["metrics"]["samples"]
    assert ft["energy_per_1k_inferences"]["value"] == pytest.approx(e["energy"]["energy_kwh"] / samples * 1000)
    assert e["energy"]["method"] in ft["energy_per_1k_inferences"]["derived_from"]
    assert ft["training_energy"]["value"] > 0
    # price 3.6 EUR/h: cost per 1M = 1e6 / rate / 3600 x 3.6 = 1000 / rate
    rate = e["metrics"]["throughput_samples_per_s"]
    assert ft["per_million_at_throughput"]["value"] == pytest.approx(1000 / rate)


def test_select_command_agrees_and_plots(run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    d = run["dir"]
    spec = d / "constraints.yaml"
    spec.write_text("constraints: [{metric: p90_latency_ms, max: 10000}]\n"
                    "objectives: [{metric: accuracy, direction: max}, {metric: p90_latency_ms, direction: min}]\n")
    plot, js = d / "sel.png", d / "sel.json"
    assert main(["select", str(run["out"] / "results.json"), "--constraints", str(spec),
                 "--plot", str(plot), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "recommended: ft" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(js.read_text())["recommended"] == run["results"]["selection"]["recommended"]


def test_select_over_two_files_qualifies_names(run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    results = run["out"] / "results.json"
    assert main(["select", str(results), str(results)]) == 0
    out = capsys.readouterr().out
    assert "ft@selection-test" in out and "ft@selection-test#2" in out


@pytest.mark.parametrize("text, fragment", [
    ("objectives: [{metric: accuracy, direction: up}]\n", "objectives[0].direction"),
    ("constraints: [{metric: x, max: 1, min: 0}]\nobjectives: [{metric: accuracy, direction: max}]\n", "max"),
])
def test_bad_constraints_file_is_one_line(run: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                          text: str, fragment: str) -> None:
    spec = run["dir"] / "bad.yaml"
    spec.write_text(text)
    assert main(["select", str(run["out"] / "results.json"), "--constraints", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(spec) in err and fragment in err


def test_not_a_results_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert main(["select", str(bad)]) == 2
    assert "not an hf_cost results.json" in capsys.readouterr().err
