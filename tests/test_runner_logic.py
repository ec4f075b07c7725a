"""Runner loop and validity logic, with a dummy model that sleeps a fixed time per forward.

Timing assertions are only ever about the sleep floor and the harness's own bookkeeping, never
about how fast a real model is.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import torch

from hf_cost.config.schema import OfflineScenario, SingleStreamScenario, Suite
from hf_cost.data.performance_set import PerformanceSet
from hf_cost.measure.latency import LatencyStats
from hf_cost.measure.memory import current_rss_bytes
from hf_cost.pipeline import peak_for
from hf_cost.progress import Progress
from hf_cost.report.schema import ScenarioResult, Validity
from hf_cost.runners import RUNNERS, RunContext
from hf_cost.runners.offline import OfflineRunner
from hf_cost.runners.single_stream import SingleStreamRunner

SLEEP_S = 0.002
FLOPS = 1_000_000


class SleepyCandidate:
    """Quacks like hf_cost.models.candidate.Candidate: forward sleeps a fixed time.

    ``measuring`` is switched on by `PhaseContext` while a runner's measured block runs, so
    the dummy can run at a different speed during warm-up/calibration (``warm_sleep_s``)
    and counts the calls of each phase separately.
    """

    def __init__(self, sleep_s: float = SLEEP_S, warm_sleep_s: float | None = None):
        self.name = "dummy"
        self.sleep_s = sleep_s
        self.warm_sleep_s = sleep_s if warm_sleep_s is None else warm_sleep_s
        self.measuring = False
        self.calls: list[tuple[bool, int]] = []  # (measuring, rows) per forward
        self.syncs = 0
        self.device = torch.device("cpu")

    @property
    def is_cuda(self) -> bool:
        return False

    def forward(self, batch: dict[str, Any]) -> Any:
        time.sleep(self.sleep_s if self.measuring else self.warm_sleep_s)
        rows = {t.shape[0] for t in batch.values()}
        assert len(rows) == 1, "every input tensor must have the same number of rows"
        self.calls.append((self.measuring, rows.pop()))
        return batch["input_ids"]

    def synchronize(self) -> None:
        self.syncs += 1

    def rows(self, measuring: bool) -> list[int]:
        return [r for m, r in self.calls if m is measuring]


class PhaseContext(RunContext):
    """A RunContext that tells the dummy when the measured block (inside memory()) runs."""

    def memory(self) -> Any:
        tracker = super().memory()
        cand = self.candidate

        class Measured:
            def __enter__(self) -> Any:
                peak = tracker.__enter__()
                cand.measuring = True
                return peak

            def __exit__(self, *exc: object) -> None:
                cand.measuring = False
                tracker.__exit__(*exc)

        return Measured()


def perf_set(num_samples: int = 16, seq: int = 8, seed: int = 0) -> PerformanceSet:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (num_samples, seq), generator=g)
    return PerformanceSet(
        tensors={"input_ids": ids, "attention_mask": torch.ones_like(ids)},
        source="random ids", seed=seed, sequence_length=seq,
    )


def context(candidate: Any, flops: int | None = FLOPS, peak: float | None = None) -> RunContext:
    return PhaseContext(
        candidate=candidate, perf_set=perf_set(), flops_per_sample=flops, peak_tflops=peak,
        baseline_rss_bytes=current_rss_bytes(), progress=Progress(enabled=False),
    )


def single_stream(**kw: Any) -> SingleStreamScenario:
    return SingleStreamScenario(**{"kind": "single_stream", "name": "single_stream", **kw})


def offline(**kw: Any) -> OfflineScenario:
    return OfflineScenario(**{"kind": "offline", "name": "offline", **kw})


# --- single stream --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ss_run() -> tuple[SleepyCandidate, ScenarioResult, SingleStreamScenario]:
    cand = SleepyCandidate()
    sc = single_stream(min_duration_s=0.2, min_query_count=70, warmup_queries=2)
    results = SingleStreamRunner().run(sc, context(cand))
    assert len(results) == 1
    return cand, results[0], sc


def test_single_stream_stops_after_duration_and_count(ss_run) -> None:
    cand, r, sc = ss_run
    n = r.metrics["queries"]
    assert n >= 70
    assert r.metrics["final_query_issued_s"] >= 0.2
    assert r.raw["issued_s"][-1] == r.metrics["final_query_issued_s"]
    # it stopped at the first query that satisfied both, not later
    issued = r.raw["issued_s"]
    assert not (issued[-2] >= 0.2 and n - 1 >= 70)
    assert r.name == "single_stream" and r.kind == "single_stream"


def test_single_stream_warmup_not_counted(ss_run) -> None:
    cand, r, sc = ss_run
    n = r.metrics["queries"]
    assert len(cand.calls) == sc.warmup_queries + n
    assert len(cand.rows(measuring=False)) == sc.warmup_queries  # warm-up ran outside the measured block
    assert len(cand.rows(measuring=True)) == n
    assert cand.calls[: sc.warmup_queries] == [(False, 1)] * sc.warmup_queries  # and before it
    assert len(r.raw["latencies_ms"]) == len(r.raw["issued_s"]) == len(r.raw["sample_indices"]) == n
    assert {rows for _, rows in cand.calls} == {1}  # one sample per query
    assert cand.syncs >= n  # synchronised after every timed forward


def test_single_stream_latencies_have_sleep_floor(ss_run) -> None:
    _, r, _ = ss_run
    assert min(r.raw["latencies_ms"]) >= SLEEP_S * 1e3
    issued = r.raw["issued_s"]
    assert all(b > a for a, b in zip(issued, issued[1:]))
    # closed loop: the next query is issued only after the previous one completed
    for i in range(1, len(issued)):
        assert issued[i] - issued[i - 1] >= r.raw["latencies_ms"][i - 1] / 1e3


def test_single_stream_metrics_recompute_from_raw(ss_run) -> None:
    _, r, sc = ss_run
    raw = r.raw["latencies_ms"]
    assert LatencyStats.from_values(raw).to_dict() == r.metrics["latency_ms"]
    ordered = sorted(raw)
    n = len(raw)
    assert r.metrics["p90_latency_ms"] == ordered[int(n * 0.9)]
    es = r.metrics["early_stopping"]
    assert r.metrics["early_stopping_p90_latency_ms"] == ordered[es["estimate_index"]]
    assert r.metrics["qps_without_overhead"] == pytest.approx(1e3 / r.metrics["latency_ms"]["mean_ms"])
    assert r.metrics["qps_with_overhead"] == pytest.approx((n - 1) / r.metrics["final_query_issued_s"])
    assert r.metrics["duration_s"] == pytest.approx(r.metrics["final_query_issued_s"] + raw[-1] / 1e3)
    assert r.settings["batch_size"] == 1
    assert all(0 <= i < 16 for i in r.raw["sample_indices"])


def test_single_stream_valid_and_reduced(ss_run) -> None:
    _, r, _ = ss_run
    v = r.validity
    assert v is not None
    assert v.result == "VALID"
    assert v.min_duration_satisfied and v.min_queries_satisfied
    assert v.early_stopping_satisfied is True
    assert v.reduced_settings is True  # 0.2 s / 70 queries is below LoadGen's 10 s / 100
    assert any("reduced" in rec for rec in v.recommendations)


def test_single_stream_compute_metrics(ss_run) -> None:
    _, r, _ = ss_run
    m = r.metrics
    assert m["achieved_gflops_per_s"] == pytest.approx(FLOPS * m["qps_without_overhead"] / 1e9)
    assert m["mfu"] is None  # peak unknown


def test_single_stream_memory_recorded(ss_run) -> None:
    _, r, _ = ss_run
    assert r.memory["peak_rss_mib"] > 0
    assert r.memory["peak_rss_delta_mib"] >= 0
    assert r.memory["rss_method"]
    assert r.memory["cuda_max_memory_allocated_mib"] is None


def test_single_stream_too_few_queries_for_early_stopping() -> None:
    cand = SleepyCandidate()
    sc = single_stream(min_duration_s=0.01, min_query_count=20, warmup_queries=0)
    (r,) = SingleStreamRunner().run(sc, context(cand))
    n = r.metrics["queries"]
    assert 20 <= n < 64
    v = r.validity
    assert v.min_duration_satisfied and v.min_queries_satisfied
    assert v.early_stopping_satisfied is False
    assert v.result == "INVALID"
    assert any("64" in rec for rec in v.recommendations)
    assert r.metrics["early_stopping_p90_latency_ms"] is None
    assert cand.calls == [(True, 1)] * n  # warmup_queries=0: every forward is measured


def test_single_stream_cut_short_by_max_duration() -> None:
    cand = SleepyCandidate()
    sc = single_stream(min_duration_s=5.0, min_query_count=70, warmup_queries=0, max_duration_s=0.05)
    t0 = time.perf_counter()
    (r,) = SingleStreamRunner().run(sc, context(cand))
    assert time.perf_counter() - t0 < 4.0  # stopped by max_duration_s, far before min_duration_s
    v = r.validity
    assert v.result == "INVALID"
    assert v.min_duration_satisfied is False
    assert v.min_queries_satisfied is (r.metrics["queries"] >= 70)
    assert any("max_duration_s" in rec for rec in v.recommendations)


def test_single_stream_mfu_with_known_peak() -> None:
    cand = SleepyCandidate()
    sc = single_stream(min_duration_s=0.01, min_query_count=64, warmup_queries=0)
    (r,) = SingleStreamRunner().run(sc, context(cand, peak=2.0))
    m = r.metrics
    assert m["mfu"] == pytest.approx(m["achieved_gflops_per_s"] * 1e9 / 2.0e12)


def test_compute_metrics_without_flops() -> None:
    ctx = context(SleepyCandidate(), flops=None, peak=1.0)
    assert ctx.compute_metrics(100.0) == {"achieved_gflops_per_s": None, "mfu": None}
    ctx = context(SleepyCandidate(), flops=2_000_000_000, peak=None)
    assert ctx.compute_metrics(10.0) == {"achieved_gflops_per_s": 20.0, "mfu": None}
    ctx = context(SleepyCandidate(), flops=2_000_000_000, peak=0.1)
    assert ctx.compute_metrics(10.0)["mfu"] == pytest.approx(0.2)


def test_peak_for_unknown_on_cpu_and_from_file() -> None:
    base = {"model": {"path": "/nonexistent"}, "scenarios": [{"kind": "single_stream"}]}
    suite = Suite.model_validate(base)
    assert peak_for(suite, {"device": "cpu", "dtype": "float32"}) == (None, "peak unknown")
    suite = Suite.model_validate({**base, "hardware": {"peak_tflops": 12.5}})
    peak, source = peak_for(suite, {"device": "cpu", "dtype": "float32"})
    assert peak == 12.5 and "hardware.peak_tflops" in source


def test_runner_registry() -> None:
    assert RUNNERS["single_stream"] is SingleStreamRunner
    assert RUNNERS["offline"] is OfflineRunner
    assert all(kind == cls.kind for kind, cls in RUNNERS.items())


# --- offline --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline_run() -> tuple[SleepyCandidate, list[ScenarioResult], OfflineScenario]:
    cand = SleepyCandidate()
    sc = offline(batch_sizes=[1, 4], min_duration_s=0.2, min_sample_count=30, warmup_batches=2)
    return cand, OfflineRunner().run(sc, context(cand)), sc


def test_offline_one_result_per_batch_size(offline_run) -> None:
    _, results, _ = offline_run
    assert [r.name for r in results] == ["offline[bs=1]", "offline[bs=4]"]
    assert [r.settings["batch_size"] for r in results] == [1, 4]
    assert all(r.kind == "offline" for r in results)


def test_offline_samples_and_batches(offline_run) -> None:
    cand, results, sc = offline_run
    expected_calls = 0
    for r in results:
        bs = r.settings["batch_size"]
        samples = r.metrics["samples"]
        sizes = r.raw["batch_sizes"]
        assert samples >= 30
        assert sum(sizes) == samples
        assert all(s == bs for s in sizes[:-1]) and 1 <= sizes[-1] <= bs
        assert len(sizes) == r.metrics["batches"] == math.ceil(samples / bs)
        assert len(r.raw["batch_latencies_ms"]) == len(r.raw["batch_completed_s"]) == len(sizes)
        assert len(r.raw["warmup_batch_s"]) >= sc.warmup_batches
        expected_calls += len(r.raw["warmup_batch_s"]) + math.ceil(samples / bs)
    assert len(cand.calls) == expected_calls
    # what the model saw, in order: per batch size, full warm-up batches outside the measured
    # block, then exactly the planned batches inside it (all prepared, none skipped)
    pos = 0
    for r in results:
        bs, warm, sizes = r.settings["batch_size"], len(r.raw["warmup_batch_s"]), r.raw["batch_sizes"]
        assert cand.calls[pos : pos + warm] == [(False, bs)] * warm
        pos += warm
        assert cand.calls[pos : pos + len(sizes)] == [(True, s) for s in sizes]
        pos += len(sizes)
    assert pos == len(cand.calls)


def test_offline_throughput_from_raw(offline_run) -> None:
    _, results, _ = offline_run
    for r in results:
        m, raw = r.metrics, r.raw
        assert m["duration_s"] == raw["batch_completed_s"][-1]
        assert m["throughput_samples_per_s"] == pytest.approx(m["samples"] / raw["batch_completed_s"][-1])
        assert m["throughput_tokens_per_s"] == pytest.approx(m["throughput_samples_per_s"] * 8)
        assert min(raw["batch_latencies_ms"]) >= SLEEP_S * 1e3
        done = raw["batch_completed_s"]
        assert all(b > a for a, b in zip(done, done[1:]))
        assert LatencyStats.from_values(raw["batch_latencies_ms"]).to_dict() == m["batch_latency_ms"]
        assert m["achieved_gflops_per_s"] == pytest.approx(FLOPS * m["throughput_samples_per_s"] / 1e9)
        assert m["mfu"] is None


def test_offline_validity(offline_run) -> None:
    _, results, _ = offline_run
    for r in results:
        v = r.validity
        assert v.early_stopping_satisfied is None  # does not apply offline
        assert v.min_queries_satisfied is True
        assert v.reduced_settings is True
        assert v.min_duration_satisfied == (r.metrics["duration_s"] >= 0.2)
        assert (v.result == "VALID") == v.min_duration_satisfied


def test_offline_faster_after_calibration_is_flagged() -> None:
    """Calibration sees slow batches, so the query is sized too small for min_duration_s."""
    cand = SleepyCandidate(sleep_s=SLEEP_S, warm_sleep_s=5 * SLEEP_S)
    sc = offline(batch_sizes=[1], min_duration_s=0.5, min_sample_count=30, warmup_batches=2)
    (r,) = OfflineRunner().run(sc, context(cand))
    v = r.validity
    duration = r.metrics["duration_s"]
    assert v.min_duration_satisfied == (duration >= sc.min_duration_s)
    # calibrated at ~100 samples/s -> ~63 samples, which at 2 ms each cannot fill 0.5 s
    assert duration < sc.min_duration_s
    assert v.result == "INVALID"
    assert any("min_duration_s" in rec for rec in v.recommendations)


def test_offline_slower_after_calibration_still_consistent() -> None:
    cand = SleepyCandidate(sleep_s=5 * SLEEP_S, warm_sleep_s=SLEEP_S)
    sc = offline(batch_sizes=[2], min_duration_s=0.05, min_sample_count=10, warmup_batches=2)
    (r,) = OfflineRunner().run(sc, context(cand))
    v = r.validity
    duration = r.metrics["duration_s"]
    assert v.min_duration_satisfied == (duration >= sc.min_duration_s)
    assert duration >= sc.min_duration_s
    assert v.result == "VALID"


# --- Validity.decide ------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [True, False])
@pytest.mark.parametrize("queries", [True, False])
@pytest.mark.parametrize("early", [True, False, None])
@pytest.mark.parametrize("reduced", [True, False])
def test_validity_truth_table(duration: bool, queries: bool, early: bool | None, reduced: bool) -> None:
    v = Validity.decide(
        min_duration_satisfied=duration,
        min_queries_satisfied=queries,
        early_stopping_satisfied=early,
        reduced_settings=reduced,
        recommendations=["x"],
    )
    expected = "VALID" if (duration and queries and early in (True, None)) else "INVALID"
    assert v.result == expected
    assert v.early_stopping_satisfied is early
    assert v.reduced_settings is reduced  # reduced settings never make a run INVALID
    assert v.recommendations == ["x"]
