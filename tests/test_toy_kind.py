"""A measuring kind defined entirely in this file costs one module and one `register` line.

`toy_stream` times a fixed number of single-sample queries through the shared timing loop
(measure/timing.py). Once registered, nothing else in hf_cost is edited, and yet:
`validate` and `run` accept it (the scenario schema's union follows the registry), its row is
in the console table and report.md (its `summary_cells`), its figures are in results.json
(typed by its own model) and read back through the results loader, the comparison reads its
latency (`latency()`), the results JSON Schema lists it, and `select` ranks the candidates by
the p90 it bootstraps from the kind's raw latencies (`latency_samples`).

Files touched to add it: this one (its config, metrics and step classes, and `register`).
A built-in kind would be its module in hf_cost/steps/, one `register` line in
hf_cost/steps/__init__.py, its docs and its tests (docs/architecture.md, "Adding a kind").
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field

from hf_cost.cli import main
from hf_cost.config.base import MeasuredStep
from hf_cost.config.fields import PosInt
from hf_cost.core.bounds import better
from hf_cost.core.registry import register, unregister
from hf_cost.core.results import KindMetrics, Latency, ScenarioResult, SummaryCells
from hf_cost.models.context import RunContext
from hf_cost.steps.base import MeasureStep

# --- the kind: everything it is, in one place ------------------------------------------------


class ToyStreamScenario(MeasuredStep):
    """`queries` single-sample queries, one after the other."""

    kind: Literal["toy_stream"]
    queries: PosInt = 12


class ToyStreamMetrics(KindMetrics):
    queries: int
    p50_ms: float = better(False, "median latency over the queries")
    p90_ms: float = better(False, "LoadGen's sorted[int(0.9 n)] over the queries")
    total_ms: float = Field(description="sum of the latencies")

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        return SummaryCells(n=f"{self.queries} toy queries", headline=f"toy p50 {self.p50_ms:.3f} ms",
                            spread=f"toy p90 {self.p90_ms:.3f} ms")

    def latency(self) -> Latency:
        return Latency(p50_ms=self.p50_ms, p90_ms=self.p90_ms, queries=self.queries)

    def latency_samples(self, result: ScenarioResult) -> list[float]:
        return result.raw["latencies_ms"]


class ToyStreamStep(MeasureStep):
    kind = "toy_stream"
    config = ToyStreamScenario
    metrics = ToyStreamMetrics

    def run(self, cfg: ToyStreamScenario, ctx: RunContext) -> list[ScenarioResult]:
        from hf_cost.measure.timing import StopRule, one_sample_queries, run_queries

        pset, cand = ctx.perf_set, ctx.candidate
        samples = [{k: t[i : i + 1] for k, t in pset.tensors.items()} for i in range(pset.num_samples)]
        source = one_sample_queries(len(samples), samples.__getitem__, random.Random(pset.seed))
        with ctx.memory() as memory:
            t = run_queries(cand.forward, cand.synchronize, source, StopRule(min_count=cfg.queries,
                                                                            max_count=cfg.queries))
        lat = sorted(t.latency_ms)
        n = len(lat)
        return [ScenarioResult(
            name=cfg.name, kind=self.kind, candidate=cand.name,
            settings=cfg.model_dump(mode="json", by_alias=True), memory=memory.to_dict(),
            metrics=ToyStreamMetrics(queries=n, p50_ms=lat[int(n * 0.5)], p90_ms=lat[int(n * 0.9)],
                                     total_ms=sum(lat)),
            raw={"latencies_ms": t.latency_ms, "sample_indices": [i[0] for i in t.indices]},
        )]


@pytest.fixture
def toy_kind():
    register(ToyStreamStep)  # the one registry line
    yield ToyStreamStep
    unregister("toy_stream")


# --- what the rest of hf_cost does with it, unchanged -----------------------------------------


@pytest.fixture
def toy_run(toy_kind: Any, tiny_bert_dir: Path, tmp_path: Path, write_scenario: Any,
            capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    scenario = write_scenario(tmp_path, f"""
name: toy
model: {{path: {json.dumps(str(tiny_bert_dir))}, device: cpu}}
inputs: {{kind: synthetic, sequence_length: 8, num_samples: 16}}
scenarios:
  - {{kind: quanto, name: q8, weights: int8}}
  - {{kind: toy_stream, queries: 15}}
""")
    out = tmp_path / "out"
    assert main(["validate", str(scenario)]) == 0
    capsys.readouterr()
    assert main(["run", str(scenario), "--output", str(out)]) == 0
    return {"out": out, "console": capsys.readouterr().out, "results": json.loads((out / "results.json").read_text())}


def test_a_scenario_naming_the_kind_is_refused_until_it_is_registered(tiny_bert_dir: Path, tmp_path: Path,
                                                                      write_scenario: Any,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    scenario = write_scenario(tmp_path, f"""
model: {{path: {json.dumps(str(tiny_bert_dir))}, device: cpu}}
scenarios: [{{kind: toy_stream}}]
""")
    assert main(["validate", str(scenario)]) == 2
    assert "toy_stream" in capsys.readouterr().err


def test_it_runs_and_its_figures_are_in_results_json(toy_run: dict[str, Any]) -> None:
    entries = [s for s in toy_run["results"]["scenarios"] if s["kind"] == "toy_stream"]
    assert [s["candidate"] for s in entries] == ["base", "q8"]  # every candidate built so far
    for s in entries:
        m, lat = s["metrics"], sorted(s["raw"]["latencies_ms"])
        assert m["queries"] == len(lat) == 15
        assert m["p90_ms"] == lat[int(15 * 0.9)] and m["p50_ms"] == lat[7]  # recomputable from raw
        assert m["total_ms"] == pytest.approx(sum(lat))
        assert s["memory"]["peak_rss_mib"] > 0


def test_its_rows_are_in_the_console_and_report(toy_run: dict[str, Any]) -> None:
    report = (toy_run["out"] / "report.md").read_text()
    for text in (toy_run["console"], report):
        assert "15 toy queries" in text and "toy p50" in text
    rows = [line for line in report.splitlines() if line.startswith("| toy_stream")]
    assert len(rows) == 2 and "toy p90" in rows[0]


def test_the_comparison_reads_its_latency(toy_run: dict[str, Any]) -> None:
    by_name = {r["candidate"]: r for r in toy_run["results"]["comparison"]["rows"]}
    toy = {s["candidate"]: s["metrics"] for s in toy_run["results"]["scenarios"] if s["kind"] == "toy_stream"}
    for name in ("base", "q8"):
        assert by_name[name]["p50_ms"] == toy[name]["p50_ms"] and by_name[name]["latency_queries"] == 15


def test_the_loader_and_the_json_schema_know_it(toy_run: dict[str, Any]) -> None:
    from hf_cost.report.results_file import load_results_file
    from hf_cost.report.schema import results_json_schema

    run = load_results_file(toy_run["out"] / "results.json")
    toy = [s for s in run.scenarios if s.kind == "toy_stream"]
    assert toy and all(isinstance(s.metrics, ToyStreamMetrics) for s in toy)
    assert "ToyStreamMetrics" in results_json_schema()["$defs"]


def test_select_ranks_by_the_kinds_latency(toy_run: dict[str, Any], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    spec, js = tmp_path / "spec.yaml", tmp_path / "sel.json"
    spec.write_text("objectives: [{metric: p90_latency_ms, direction: min}]\n")
    capsys.readouterr()
    assert main(["select", str(toy_run["out"] / "results.json"), "--constraints", str(spec), "--json", str(js)]) == 0
    chosen = json.loads(js.read_text())
    p90 = {s["candidate"]: s["metrics"]["p90_ms"] for s in toy_run["results"]["scenarios"]
           if s["kind"] == "toy_stream"}
    for name, figure in p90.items():
        assert chosen["points"][name]["metrics"]["p90_latency_ms"]["value"] == figure
    assert chosen["recommended"] == min(p90, key=p90.get) or chosen["ties"]
