"""The compare runner (interleaved rounds) on a fake clock, the comparison table, and a failing
variant that does not sink the others.

With a fake clock every round's figures are known exactly: a candidate whose forward takes
10 ms against one that takes 5 ms has a speed-up of exactly 2 in every round, so the geometric
mean is 2 and the CI collapses onto it; a scripted alternation gives a CI worked out by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from scenario_helpers import by_name, easy_csv, fine_tune_yaml, suite_yaml

import hf_cost.measure.timing as timing_module
from hf_cost.cli import main
from hf_cost.config.schema import CompareScenario
from hf_cost.data.performance_set import PerformanceSet
from hf_cost.models.context import RunContext
from hf_cost.progress import Progress
from hf_cost.steps.compare import CompareRunner


class FakeClock:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> float:
        return self.ms / 1000


class Timed:
    """A candidate whose k-th forward takes ``cost(k)`` fake milliseconds."""

    def __init__(self, name: str, clock: FakeClock, cost: Any):
        self.name, self.clock, self.cost, self.calls = name, clock, cost, 0
        self.device = torch.device("cpu")

    def forward(self, batch: dict[str, Any]) -> Any:
        self.calls += 1
        self.clock.ms += self.cost(self.calls)
        return batch["input_ids"]

    def synchronize(self) -> None:
        pass


def ctx(candidate: Any) -> RunContext:
    ids = torch.arange(32).reshape(4, 8)
    pset = PerformanceSet({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, "ids", 0, 8)
    return RunContext(candidate=candidate, perf_set=pset, flops_per_sample=None, peak_tflops=None,
                      baseline_rss_bytes=0, progress=Progress(enabled=False))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(timing_module, "clock", fake)
    return fake


def scenario(**kw: Any) -> CompareScenario:
    return CompareScenario.model_validate({"kind": "compare", "name": "cmp", "warmup_queries": 0, **kw})


def test_a_candidate_twice_as_fast_has_a_speedup_of_exactly_two(clock: FakeClock) -> None:
    slow, fast = Timed("slow", clock, lambda k: 10), Timed("fast", clock, lambda k: 5)
    results = CompareRunner().run_many(scenario(rounds=4, round_duration_s=0.097), [ctx(slow), ctx(fast)])
    ref, other = results
    assert ref.candidate == "slow" and ref.metrics.speedup_vs_reference is None
    assert ref.metrics.per_round == pytest.approx([10.0] * 4)
    s = other.metrics.speedup_vs_reference
    assert s.per_round == pytest.approx([2.0] * 4)
    assert s.ratio_geomean == pytest.approx(2.0) and s.ci_low == pytest.approx(2.0) and s.ci_high == pytest.approx(2.0)
    # 0.097 s rounds: 10 queries of 10 ms, 20 of 5 ms per round (the last one ends past 97 ms), 4 rounds
    assert len(ref.raw["latencies_ms"]) == 40 and len(other.raw["latencies_ms"]) == 80
    assert other.raw["round_index"][:20] == [0] * 20 and other.raw["round_index"][-1] == 3


def test_rounds_alternate_their_order_abba(clock: FakeClock) -> None:
    order: list[str] = []

    class Logged(Timed):
        def forward(self, batch: dict[str, Any]) -> Any:
            if not order or order[-1] != self.name:
                order.append(self.name)
            return super().forward(batch)

    a, b = Logged("a", clock, lambda k: 10), Logged("b", clock, lambda k: 10)
    CompareRunner().run_many(scenario(rounds=4, round_duration_s=0.05), [ctx(a), ctx(b)])
    # rounds a b | b a | a b | b a; back-to-back runs of one candidate merge: a b a b a
    # (plain alternation a b | a b | ... would give 8 runs)
    assert order == ["a", "b", "a", "b", "a"]


def test_speedup_ci_from_scripted_rounds_matches_a_hand_computed_t_interval(clock: FakeClock) -> None:
    # reference always 10 ms; subject 5 ms in even rounds and 8 ms in odd ones (one query per round:
    # round_duration_s below one forward). Per-round speed-ups 2.0, 1.25, 2.0, 1.25.
    ref = Timed("ref", clock, lambda k: 10)
    sub = Timed("sub", clock, lambda k: 5 if k % 2 == 1 else 8)
    [_, r] = CompareRunner().run_many(scenario(rounds=4, round_duration_s=0.001), [ctx(ref), ctx(sub)])
    s = r.metrics.speedup_vs_reference
    assert s.per_round == pytest.approx([2.0, 1.25, 2.0, 1.25])
    logs = [math.log(2.0), math.log(1.25)] * 2
    mean = sum(logs) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 3)
    t = 3.182446305284263  # Student t, 0.975 quantile, 3 degrees of freedom (tables)
    assert s.ratio_geomean == pytest.approx(math.sqrt(2.5))
    assert s.ci_low == pytest.approx(math.exp(mean - t * sd / 2))
    assert s.ci_high == pytest.approx(math.exp(mean + t * sd / 2))


def test_offline_mode_compares_throughput(clock: FakeClock) -> None:
    a, b = Timed("a", clock, lambda k: 40), Timed("b", clock, lambda k: 10)  # per batch of 4
    [ra, rb] = CompareRunner().run_many(scenario(mode="offline", batch_size=4, rounds=2, round_duration_s=0.08),
                                        [ctx(a), ctx(b)])
    assert ra.metrics.per_round == pytest.approx([100.0, 100.0])  # 4 samples / 40 ms
    assert rb.metrics.per_round == pytest.approx([400.0, 400.0])
    assert rb.metrics.speedup_vs_reference.ratio_geomean == pytest.approx(4.0)


@pytest.mark.parametrize("text, key", [
    ("{kind: compare, rounds: 1}", "rounds"),
    ("{kind: compare, candidates: [base]}", "candidates"),
])
def test_compare_settings_that_cannot_give_a_ci_are_refused(text: str, key: str) -> None:
    import yaml
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=key):
        CompareScenario.model_validate(yaml.safe_load(text))


# --- end to end: two fine-tuned candidates, one that fails, a comparison ------------------------


@pytest.fixture(scope="module")
def compared(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import hf_cost.steps.fine_tune as ft

    tmp = tmp_path_factory.mktemp("compared")
    data = easy_csv(tmp / "easy.csv", tiny_bert_dir, n=80)
    steps = (
        fine_tune_yaml(data, name="a", max_steps=30, eval_every=10)
        + fine_tune_yaml(data, name="b", max_steps=30, eval_every=10, learning_rate=5e-4)
        + fine_tune_yaml(data, name="broken", max_steps=2, eval_every=2)
        + fine_tune_yaml(data, name="after-broken", max_steps=2, eval_every=2).replace(
            "name: after-broken", "name: after-broken\n    from: broken")
        + f"""
  - kind: single_stream
    candidates: [a, b, broken]
    warmup_queries: 1
    min_duration_s: 0.05
    min_query_count: 10
  - kind: compare
    candidates: [a, b]
    rounds: 2
    round_duration_s: 0.05
    warmup_queries: 1
  - kind: accuracy
    name: acc
    dataset: {{path: {json.dumps(str(data))}, label_column: label, select: holdout}}
    bootstrap_resamples: 50
"""
    )
    path = tmp / "cmp.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, steps) + "reference: a\n", encoding="utf-8")
    original = ft.FineTuneBuilder.run

    def run(self: Any, scenario: Any, context: Any) -> Any:
        if scenario.name == "broken":
            raise RuntimeError("simulated exporter crash")
        return original(self, scenario, context)

    mp = pytest.MonkeyPatch()
    mp.setattr(ft.FineTuneBuilder, "run", run)
    try:
        code = main(["run", str(path), "--output", str(tmp / "out"), "--quiet"])
    finally:
        mp.undo()
    results = json.loads((tmp / "out" / "results.json").read_text(encoding="utf-8"))
    return {"code": code, "results": results, "report": (tmp / "out" / "report.md").read_text(encoding="utf-8")}


def test_a_failed_variant_is_reported_and_the_others_are_measured(compared: dict[str, Any]) -> None:
    assert compared["code"] == 3  # results written, but a step failed
    rows = by_name(compared["results"])
    assert rows["broken"]["status"] == "failed" and "simulated exporter crash" in rows["broken"]["error"]
    assert rows["after-broken"]["status"] == "failed" and "not built" in rows["after-broken"]["error"]
    measured = {s["candidate"] for s in compared["results"]["scenarios"] if s["kind"] == "single_stream"}
    assert measured == {"a", "b"}
    assert "## Failed steps" in compared["report"] and "simulated exporter crash" in compared["report"]


def test_the_comparison_table_is_relative_to_the_named_reference(compared: dict[str, Any]) -> None:
    cmp = compared["results"]["comparison"]
    assert cmp["reference"] == "a"
    rows = {r["candidate"]: r for r in cmp["rows"]}
    assert rows["broken"]["status"] == "failed"
    b = rows["b"]
    assert b["interleaved_speedup"]["rounds"] == 2 and b["interleaved_speedup"]["reference"] == "a"
    p50 = {s["candidate"]: s["metrics"]["latency_ms"]["percentiles_ms"]["p50"]
           for s in compared["results"]["scenarios"] if s["kind"] == "single_stream"}
    assert b["p50_ratio_vs_reference"] == pytest.approx(p50["a"] / p50["b"])
    [quality] = b["quality"]
    acc = {s["candidate"]: s for s in compared["results"]["scenarios"] if s["kind"] == "accuracy"}
    preds_a, preds_b = acc["a"]["raw"]["predictions"], acc["b"]["raw"]["predictions"]
    refs = acc["a"]["raw"]["references"]
    hand_delta = (sum(p == r for p, r in zip(preds_b, refs)) - sum(p == r for p, r in zip(preds_a, refs))) / len(refs)
    assert quality["delta_vs_reference"]["value"] == pytest.approx(hand_delta)
    hand_agree = sum(x == y for x, y in zip(preds_a, preds_b)) / len(refs)
    assert quality["agreement_with_reference"]["value"] == pytest.approx(hand_agree)
    assert rows["a"]["quality"][0]["delta_vs_reference"] is None
    assert "## Candidates compared (reference: a)" in compared["report"]


def test_a_reference_that_is_not_a_candidate_is_refused(tiny_bert_dir: Path, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, "\n  - kind: offline\n") + "reference: nope\n", encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reference" in err[0] and "'nope'" in err[0] and str(path) in err[0]
