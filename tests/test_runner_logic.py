"""Runner loops and validity, driven by a fake clock so every figure can be worked out by hand.

The runners read time only through ``hf_cost.measure.timing.clock``. Here it is replaced by a
`FakeClock` that stands still except when the dummy model runs: each forward advances it by a
scripted number of milliseconds. Every run below therefore has one exact schedule, and the
expected query counts, percentiles, durations and VALID/INVALID verdicts are written literally,
each derived by hand in a comment. No test asserts anything about wall-clock time.

Reported times are clock differences of ``ms / 1000`` floats, so they are compared with
``pytest.approx``; stopping thresholds are chosen between clock ticks so no decision sits on
a rounding edge.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
import yaml
from pydantic import BaseModel

import hf_cost.measure.timing as timing_module
from hf_cost.config.base import MeasuredStep
from hf_cost.config.schema import (
    OfflineScenario,
    SingleStreamScenario,
    load_suite,
    suite_model,
)
from hf_cost.core import registry
from hf_cost.core.results import ScenarioResult
from hf_cost.data.performance_set import PerformanceSet
from hf_cost.errors import ConfigError
from hf_cost.measure.memory import current_rss_bytes
from hf_cost.measure.peak_flops import peak_for
from hf_cost.models.context import RunContext
from hf_cost.progress import Progress
from hf_cost.steps.offline import OfflineRunner
from hf_cost.steps.single_stream import SingleStreamRunner

REPO = Path(__file__).resolve().parents[1]
FLOPS = 1_000_000
SEQ = 8
NUM_SAMPLES = 16


class FakeClock:
    """Replaces ``time.perf_counter`` in the runners; advances only through `advance`."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> float:
        return self.ms / 1000

    def advance(self, ms: int) -> None:
        self.ms += ms


class FakeModel:
    """Quacks like hf_cost.models.candidate.Candidate; each forward takes scripted fake time.

    ``measured_ms(k)`` is the cost of the k-th forward inside the measured block (k from 1);
    ``warm_ms`` the cost of every forward outside it (warm-up, offline calibration).
    ``measuring`` is switched by `PhaseContext` while a runner's measured block runs.
    """

    def __init__(self, clock: FakeClock, measured_ms: int | Callable[[int], int], warm_ms: int | None = None):
        self.name = "dummy"
        self.clock = clock
        self.measured_ms = measured_ms if callable(measured_ms) else (lambda k, ms=measured_ms: ms)
        self.warm_ms = warm_ms if warm_ms is not None else self.measured_ms(1)
        self.measuring = False
        self.calls: list[tuple[bool, int]] = []  # (measuring, rows) per forward
        self.syncs = 0
        self.device = torch.device("cpu")

    @property
    def is_cuda(self) -> bool:
        return False

    def forward(self, batch: dict[str, Any]) -> Any:
        rows = {t.shape[0] for t in batch.values()}
        assert len(rows) == 1, "every input tensor must have the same number of rows"
        self.calls.append((self.measuring, rows.pop()))
        k = len(self.rows(measuring=True))
        self.clock.advance(self.measured_ms(k) if self.measuring else self.warm_ms)
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


def perf_set(seed: int = 0) -> PerformanceSet:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (NUM_SAMPLES, SEQ), generator=g)
    return PerformanceSet(
        tensors={"input_ids": ids, "attention_mask": torch.ones_like(ids)},
        source="random ids", seed=seed, sequence_length=SEQ,
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


def run_with_fake_clock(
    runner: Any, scenario: Any, measured_ms: int | Callable[[int], int], warm_ms: int | None = None,
    peak: float | None = None,
) -> tuple[FakeModel, list[ScenarioResult]]:
    clock = FakeClock()
    model = FakeModel(clock, measured_ms, warm_ms)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timing_module, "clock", clock)
        results = runner.run(scenario, context(model, peak=peak))
    return model, results


def flags(r: ScenarioResult) -> dict[str, Any]:
    assert r.validity is not None
    return r.validity.model_dump(exclude={"recommendations"})


# --- single stream: stopped by min_query_count ------------------------------------------------
#
# The k-th measured query takes k ms. min_query_count=64, min_duration_s=0.05.
# Query k is issued at 1 + 2 + ... + (k-1) = k(k-1)/2 ms, so the duration condition holds
# from query 11 on (55 ms >= 50 ms) and the count condition decides: exactly 64 queries.
#   final query issued at 64*63/2 = 2016 ms; it takes 64 ms, so duration_s = 2.080
#   latencies 1..64 ms: mean 32.5, min 1, max 64, sample stdev sqrt(64*65/12) = 18.61899
#   p50 = sorted[int(32.0)] = sorted[32] = 33;  p90 = sorted[int(57.6)] = sorted[57] = 58
#   p95 = sorted[60] = 61;  p97 = sorted[62] = 63;  p99 = p99.9 = sorted[63] = 64
#   early stopping p90 at n = 64 (the minimum): t = 1, estimate sorted[63] = 64, 0 discarded
#   qps_with_overhead = (64 - 1) / 2.016 s = 31.25;  qps_without_overhead = 1000 / 32.5 = 30.769
#   achieved = 1e6 FLOP * 30.769 /s = 0.030769 GFLOP/s
#   VALID: duration, count and early stopping all hold; reduced (0.05 s / 64 < 10 s / 100).

@pytest.fixture(scope="module")
def count_bound() -> tuple[FakeModel, ScenarioResult]:
    sc = single_stream(min_duration_s=0.05, min_query_count=64, warmup_queries=2)
    model, results = run_with_fake_clock(SingleStreamRunner(), sc, measured_ms=lambda k: k, warm_ms=100)
    assert len(results) == 1
    return model, results[0]


def test_count_bound_is_valid(count_bound) -> None:
    _, r = count_bound
    assert flags(r) == {
        "result": "VALID",
        "min_duration_satisfied": True,
        "min_queries_satisfied": True,
        "early_stopping_satisfied": True,
        "convergence_satisfied": None,
        "reduced_settings": True,
    }
    assert r.validity.recommendations == [
        "reduced settings: below LoadGen's defaults (min_duration_s 10, min_query_count 100)"
    ]
    assert r.name == "single_stream" and r.kind == "single_stream"


def test_count_bound_queries_and_times(count_bound) -> None:
    _, r = count_bound
    m = r.metrics.model_dump()
    assert m["queries"] == 64
    assert r.raw["latencies_ms"] == pytest.approx([float(k) for k in range(1, 65)])
    assert r.raw["issued_s"] == pytest.approx([k * (k - 1) / 2 / 1000 for k in range(1, 65)])
    assert m["final_query_issued_s"] == pytest.approx(2.016)
    assert m["duration_s"] == pytest.approx(2.080)
    assert m["qps_with_overhead"] == pytest.approx(31.25)
    assert m["qps_without_overhead"] == pytest.approx(30.769230769)


def test_count_bound_latency_statistics(count_bound) -> None:
    _, r = count_bound
    lat = r.metrics.model_dump()["latency_ms"]
    assert lat["n"] == 64
    assert lat["mean_ms"] == pytest.approx(32.5)
    assert lat["stdev_ms"] == pytest.approx(18.6189867, rel=1e-7)
    assert lat["min_ms"] == pytest.approx(1.0) and lat["max_ms"] == pytest.approx(64.0)
    assert lat["percentiles_ms"] == pytest.approx(
        {"p50": 33.0, "p90": 58.0, "p95": 61.0, "p97": 63.0, "p99": 64.0, "p99.9": 64.0}
    )
    assert r.metrics.model_dump()["target_percentile"] == 0.9
    assert r.metrics.model_dump()["target_latency_ms"] == pytest.approx(58.0)
    assert r.metrics.model_dump()["early_stopping_latency_ms"] == pytest.approx(64.0)
    es = r.metrics.model_dump()["early_stopping"]
    assert (es["min_queries"], es["estimate_index"], es["discarded_highest"]) == (64, 63, 0)


def test_count_bound_compute_metrics(count_bound) -> None:
    _, r = count_bound
    assert r.metrics.model_dump()["achieved_gflops_per_s"] == pytest.approx(0.030769230769)
    assert r.metrics.model_dump()["mfu"] is None  # peak unknown


def test_count_bound_warmup_not_counted(count_bound) -> None:
    model, r = count_bound
    # 2 warm-up forwards outside the measured block, before it; then 64 measured, one row each
    assert model.calls == [(False, 1)] * 2 + [(True, 1)] * 64
    assert model.syncs == 1 + 64  # once after warm-up, then after every timed forward
    assert r.settings["batch_size"] == 1
    assert len(r.raw["sample_indices"]) == 64
    assert all(0 <= i < NUM_SAMPLES for i in r.raw["sample_indices"])


def test_count_bound_memory_recorded(count_bound) -> None:
    _, r = count_bound
    assert r.memory.peak_rss_mib > 0
    assert r.memory.peak_rss_delta_mib >= 0
    assert r.memory.rss_method
    assert r.memory.cuda_max_memory_allocated_mib is None


def test_mfu_with_known_peak() -> None:
    # Same schedule as above with a 2 TFLOP/s peak: 3.0769e7 FLOP/s / 2e12 FLOP/s = 1.5385e-5
    sc = single_stream(min_duration_s=0.05, min_query_count=64, warmup_queries=0)
    _, (r,) = run_with_fake_clock(SingleStreamRunner(), sc, measured_ms=lambda k: k, peak=2.0)
    assert r.metrics.model_dump()["mfu"] == pytest.approx(1.5384615e-5)


# --- single stream: stopped by min_duration_s ---------------------------------------------------


def test_duration_bound_is_valid() -> None:
    # 10 ms per query; query k is issued at 10(k-1) ms. min_duration_s=0.995 first holds at
    # query 101 (issued 1.000 s; query 100 was issued at 0.990 s), and 101 >= 64 queries.
    # Early stopping p90 at n = 101: h(3) + 3 = 97 <= 101 < h(4) + 4 = 113, so t = 3:
    # estimate sorted[98], 2 highest discarded.
    sc = single_stream(min_duration_s=0.995, min_query_count=64, warmup_queries=0)
    model, (r,) = run_with_fake_clock(SingleStreamRunner(), sc, measured_ms=10)
    assert r.metrics.model_dump()["queries"] == 101
    assert r.metrics.model_dump()["final_query_issued_s"] == pytest.approx(1.0)
    assert r.metrics.model_dump()["duration_s"] == pytest.approx(1.01)
    assert r.metrics.model_dump()["qps_with_overhead"] == pytest.approx(100.0)  # 100 / 1.0 s
    assert r.metrics.model_dump()["qps_without_overhead"] == pytest.approx(100.0)  # 1000 / 10 ms
    es = r.metrics.model_dump()["early_stopping"]
    assert (es["estimate_index"], es["discarded_highest"]) == (98, 2)
    assert r.metrics.model_dump()["early_stopping_latency_ms"] == pytest.approx(10.0)
    assert flags(r) == {
        "result": "VALID",
        "min_duration_satisfied": True,
        "min_queries_satisfied": True,
        "early_stopping_satisfied": True,
        "convergence_satisfied": None,
        "reduced_settings": True,
    }
    assert model.calls == [(True, 1)] * 101  # warmup_queries=0: every forward is measured


# --- single stream: INVALID runs --------------------------------------------------------------


def test_too_few_queries_for_early_stopping_is_invalid() -> None:
    # 10 ms per query, min_duration_s=0.045, min_query_count=5: query 6 is the first issued at
    # or after 45 ms (50 ms), so the run stops at 6 queries. Both minimums hold, but a p90
    # early-stopping estimate needs 64 queries: INVALID, 58 more needed.
    sc = single_stream(min_duration_s=0.045, min_query_count=5, warmup_queries=0)
    _, (r,) = run_with_fake_clock(SingleStreamRunner(), sc, measured_ms=10)
    assert r.metrics.model_dump()["queries"] == 6
    assert r.metrics.model_dump()["final_query_issued_s"] == pytest.approx(0.05)
    assert flags(r) == {
        "result": "INVALID",
        "min_duration_satisfied": True,
        "min_queries_satisfied": True,
        "early_stopping_satisfied": False,
        "convergence_satisfied": None,
        "reduced_settings": True,
    }
    assert r.metrics.model_dump()["early_stopping_latency_ms"] is None
    assert r.metrics.model_dump()["early_stopping"]["estimate_index"] is None
    (es_rec,) = [rec for rec in r.validity.recommendations if "early-stopping" in rec]
    assert "need at least 64" in es_rec and "58 more" in es_rec


def test_cut_short_by_max_duration_is_invalid() -> None:
    # 10 ms per query except query 80, which stalls for 1000 ms. Query 80 is issued at 0.79 s
    # and ends at 1.79 s >= max_duration_s 1.5: the hard stop fires after 80 queries, the
    # last issued at 0.79 s < min_duration_s 1.0. 80 >= 64 queries, and early stopping holds
    # (h(1) + 1 = 64 <= 80 < h(2) + 2 = 81, so t = 1): only the duration flag fails.
    # p90 = sorted[int(72.0)] = 10 ms; the early-stopping estimate sorted[79] = 1000 ms.
    sc = single_stream(min_duration_s=1.0, min_query_count=64, warmup_queries=0, max_duration_s=1.5)
    _, (r,) = run_with_fake_clock(
        SingleStreamRunner(), sc, measured_ms=lambda k: 1000 if k == 80 else 10
    )
    assert r.metrics.model_dump()["queries"] == 80
    assert r.metrics.model_dump()["final_query_issued_s"] == pytest.approx(0.79)
    assert r.metrics.model_dump()["duration_s"] == pytest.approx(1.79)
    assert r.metrics.model_dump()["target_latency_ms"] == pytest.approx(10.0)
    assert r.metrics.model_dump()["early_stopping_latency_ms"] == pytest.approx(1000.0)
    assert flags(r) == {
        "result": "INVALID",
        "min_duration_satisfied": False,
        "min_queries_satisfied": True,
        "early_stopping_satisfied": True,
        "convergence_satisfied": None,
        "reduced_settings": True,
    }
    (rec,) = [rec for rec in r.validity.recommendations if rec.startswith("final query issued")]
    assert "< min_duration_s 1" in rec and "stopped by max_duration_s" in rec


def test_cut_short_before_min_query_count_is_invalid() -> None:
    # 10 ms per query, max_duration_s=0.995: after query k the clock reads 10k ms, so the hard
    # stop fires after query 100 (1.000 s), issued at 0.990 s >= min_duration_s 0.005. Only
    # min_query_count=200 fails; early stopping holds (100 >= 64 queries).
    sc = single_stream(min_duration_s=0.005, min_query_count=200, warmup_queries=0, max_duration_s=0.995)
    _, (r,) = run_with_fake_clock(SingleStreamRunner(), sc, measured_ms=10)
    assert r.metrics.model_dump()["queries"] == 100
    assert flags(r) == {
        "result": "INVALID",
        "min_duration_satisfied": True,
        "min_queries_satisfied": False,
        "early_stopping_satisfied": True,
        "convergence_satisfied": None,
        "reduced_settings": True,
    }
    assert "100 queries < min_query_count 200; run 100 more" in r.validity.recommendations


# --- offline ------------------------------------------------------------------------------------
#
# Calibration runs at least warmup_batches batches and at least CALIBRATION_S = 1 s (at most
# 50 batches); the expected rate is batch_size / median(warm-up batch times after the first),
# and the query is max(min_sample_count, ceil(rate * min_duration_s * 1.25)) samples.
#
# Sweep bs=[1, 4], every forward 32 ms, min_duration_s=0.5, min_sample_count=30:
#   calibration: 32 batches (31 * 32 = 992 ms < 1 s, 32 * 32 = 1024 ms >= 1 s)
#   bs=1: rate 1 / 0.032 = 31.25/s; ceil(31.25 * 0.5 * 1.25) = ceil(19.53) = 20 < 30 -> 30 samples
#         in 30 batches of 1 -> 30 * 32 ms = 0.96 s; 30 / 0.96 = 31.25 samples/s
#   bs=4: rate 4 / 0.032 = 125/s; ceil(125 * 0.5 * 1.25) = ceil(78.125) = 79 samples
#         in 19 batches of 4 and one of 3 -> 20 * 32 ms = 0.64 s; 79 / 0.64 = 123.4375 samples/s
#   both VALID (0.96 s and 0.64 s >= 0.5 s; 30 and 79 >= 30 samples), reduced.

@pytest.fixture(scope="module")
def offline_sweep() -> tuple[FakeModel, list[ScenarioResult]]:
    sc = offline(batch_sizes=[1, 4], min_duration_s=0.5, min_sample_count=30, warmup_batches=2)
    return run_with_fake_clock(OfflineRunner(), sc, measured_ms=32)


def test_offline_one_result_per_batch_size(offline_sweep) -> None:
    _, results = offline_sweep
    assert [r.name for r in results] == ["offline[bs=1]", "offline[bs=4]"]
    assert [r.settings["batch_size"] for r in results] == [1, 4]
    assert [r.settings["expected_qps"] for r in results] == pytest.approx([31.25, 125.0])
    assert all(r.kind == "offline" for r in results)


def test_offline_samples_and_batches(offline_sweep) -> None:
    model, (r1, r4) = offline_sweep
    assert (r1.metrics.model_dump()["samples"], r1.metrics.model_dump()["batches"]) == (30, 30)
    assert r1.raw["batch_sizes"] == [1] * 30
    assert (r4.metrics.model_dump()["samples"], r4.metrics.model_dump()["batches"]) == (79, 20)
    assert r4.raw["batch_sizes"] == [4] * 19 + [3]
    assert len(r1.raw["warmup_batch_s"]) == len(r4.raw["warmup_batch_s"]) == 32
    # what the model saw, in order: per batch size, full warm-up batches outside the measured
    # block, then exactly the planned batches inside it
    assert model.calls == (
        [(False, 1)] * 32 + [(True, 1)] * 30 + [(False, 4)] * 32 + [(True, 4)] * 19 + [(True, 3)]
    )


def test_offline_throughput(offline_sweep) -> None:
    _, (r1, r4) = offline_sweep
    assert r1.metrics.model_dump()["duration_s"] == pytest.approx(0.96)
    assert r1.metrics.model_dump()["throughput_samples_per_s"] == pytest.approx(31.25)
    assert r1.metrics.model_dump()["throughput_tokens_per_s"] == pytest.approx(250.0)  # 31.25 * 8 tokens
    assert r4.metrics.model_dump()["duration_s"] == pytest.approx(0.64)
    assert r4.metrics.model_dump()["throughput_samples_per_s"] == pytest.approx(123.4375)
    assert r4.metrics.model_dump()["throughput_tokens_per_s"] == pytest.approx(987.5)
    assert r4.raw["batch_completed_s"] == pytest.approx([0.032 * i for i in range(1, 21)])
    assert r4.metrics.model_dump()["batch_latency_ms"]["mean_ms"] == pytest.approx(32.0)
    assert r4.metrics.model_dump()["batch_latency_ms"]["percentiles_ms"]["p90"] == pytest.approx(32.0)
    # 1e6 FLOP/sample * 123.4375 samples/s = 0.1234375 GFLOP/s
    assert r4.metrics.model_dump()["achieved_gflops_per_s"] == pytest.approx(0.1234375)
    assert r4.metrics.model_dump()["mfu"] is None


def test_offline_sweep_is_valid(offline_sweep) -> None:
    _, results = offline_sweep
    for r in results:
        assert flags(r) == {
            "result": "VALID",
            "min_duration_satisfied": True,
            "min_queries_satisfied": True,
            "early_stopping_satisfied": None,  # does not apply offline
            "convergence_satisfied": None,
            "reduced_settings": True,
        }


def test_offline_faster_after_calibration_is_invalid() -> None:
    # Warm-up batches take 64 ms, measured ones 16 ms. Calibration: 16 batches (1024 ms),
    # rate 1 / 0.064 = 15.625/s; ceil(15.625 * 0.5 * 1.25) = 10 < 30 -> 30 samples, which at
    # 16 ms each take 0.48 s < min_duration_s 0.5: INVALID on duration alone.
    sc = offline(batch_sizes=[1], min_duration_s=0.5, min_sample_count=30, warmup_batches=2)
    _, (r,) = run_with_fake_clock(OfflineRunner(), sc, measured_ms=16, warm_ms=64)
    assert len(r.raw["warmup_batch_s"]) == 16
    assert r.metrics.model_dump()["samples"] == 30
    assert r.metrics.model_dump()["duration_s"] == pytest.approx(0.48)
    assert flags(r) == {
        "result": "INVALID",
        "min_duration_satisfied": False,
        "min_queries_satisfied": True,
        "early_stopping_satisfied": None,
        "convergence_satisfied": None,
        "reduced_settings": True,
    }
    assert any(rec.startswith("ran 0.48 s < min_duration_s 0.5") for rec in r.validity.recommendations)


def test_offline_slower_after_calibration_is_valid() -> None:
    # Warm-up batches take 10 ms, measured ones 50 ms, bs=2. Calibration stops at its cap of
    # 50 batches (500 ms < 1 s); rate 2 / 0.010 = 200/s; ceil(200 * 0.05 * 1.25) = 13 >= 10
    # -> 13 samples in 6 batches of 2 and one of 1 -> 7 * 50 ms = 0.35 s >= 0.05 s: VALID.
    sc = offline(batch_sizes=[2], min_duration_s=0.05, min_sample_count=10, warmup_batches=2)
    _, (r,) = run_with_fake_clock(OfflineRunner(), sc, measured_ms=50, warm_ms=10)
    assert len(r.raw["warmup_batch_s"]) == 50
    assert r.metrics.model_dump()["samples"] == 13
    assert r.raw["batch_sizes"] == [2] * 6 + [1]
    assert r.metrics.model_dump()["duration_s"] == pytest.approx(0.35)
    assert flags(r)["result"] == "VALID"
    assert flags(r)["min_duration_satisfied"] is True


# --- context, peak -------------------------------------------------------------------


def test_compute_metrics_without_flops() -> None:
    model = FakeModel(FakeClock(), measured_ms=1)
    ctx = context(model, flops=None, peak=1.0)
    assert ctx.compute_metrics(100.0) == {"achieved_gflops_per_s": None, "mfu": None}
    ctx = context(model, flops=2_000_000_000, peak=None)
    assert ctx.compute_metrics(10.0) == {"achieved_gflops_per_s": 20.0, "mfu": None}
    ctx = context(model, flops=2_000_000_000, peak=0.1)
    assert ctx.compute_metrics(10.0)["mfu"] == pytest.approx(0.2)  # 2e10 / 1e11


def test_peak_for_unknown_on_cpu_and_from_file() -> None:
    from hf_cost.measure.cpu_peak import CpuFacts

    no_clock = CpuFacts(machine="x86_64", cpuinfo_text="processor\t: 0\nflags\t\t: fpu avx512f fma\n",
                        max_freq_text=None, torch_threads=2, affinity=frozenset({0}))
    peak, source = peak_for(None, "cpu", "float32", cpu_facts=no_clock)
    assert peak is None and source.startswith("peak unknown")
    peak, source = peak_for(12.5, "cpu", "float32")
    assert peak == 12.5 and "hardware.peak_tflops" in source
    # The scenario file's peak wins on any device and dtype.
    assert peak_for(3.0, "cuda:0", "int8")[0] == 3.0


# --- the registry of step kinds ------------------------------------------------------------------
#
# Each test here would fail for a real defect: the schema and the registry read from two places
# (the pydantic schema's discriminator vs the registry's dict), kinds in files and docs that
# the schema does not know, and registrations that would break the schema or the run later.


def schema_kinds() -> set[str]:
    """The `kind` tags the scenario schema accepts, read from its JSON Schema, not the registry."""
    schema = suite_model().model_json_schema()
    items = schema["properties"]["scenarios"]["items"]
    assert items["discriminator"]["propertyName"] == "kind"
    mapping = items["discriminator"]["mapping"]
    assert sorted(branch["$ref"] for branch in items["oneOf"]) == sorted(mapping.values())
    for tag, ref in mapping.items():  # each branch accepts exactly its own tag
        assert schema["$defs"][ref.rsplit("/", 1)[-1]]["properties"]["kind"]["const"] == tag
    return set(mapping)


def scenario_file_kinds() -> dict[str, set[str]]:
    """Every scenario file under scenarios/ -> the step kinds it uses."""
    files = sorted((REPO / "scenarios").glob("*.y*ml"))
    assert files, "no scenario files found"
    return {f.name: {step["kind"] for step in yaml.safe_load(f.read_text())["scenarios"]} for f in files}


def documented_kinds() -> set[str]:
    """The kinds the docs name: scenario steps in their YAML examples, rows of their `| kind |` tables."""
    found: set[str] = set()
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for block in re.findall(r"```ya?ml\n(.*?)```", text, re.DOTALL):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and isinstance(data.get("scenarios"), list):
                found |= {step["kind"] for step in data["scenarios"] if isinstance(step, dict) and "kind" in step}
        for table in re.findall(r"^\| kind \|.*\n\|[-| ]+\|\n((?:\|.*\n?)+)", text, re.MULTILINE):
            found |= set(re.findall(r"^\| `([a-z0-9_]+)` \|", table, re.MULTILINE))
    return found


def test_schema_kinds_are_the_registered_kinds() -> None:
    registered = set(registry.kinds())
    assert schema_kinds() == registered
    assert set(registry.building_kinds()).isdisjoint(registry.measuring_kinds())
    assert set(registry.building_kinds()) | set(registry.measuring_kinds()) == registered
    for kind in registered:  # the run looks up the step the schema's config was picked for
        assert registry.step_class(kind).kind == kind
        assert registry.metrics_model(kind) is registry.step_class(kind).metrics


def test_every_kind_in_scenario_files_is_in_the_schema() -> None:
    known = schema_kinds()
    unknown = {name: used - known for name, used in scenario_file_kinds().items() if used - known}
    assert unknown == {}


def test_the_docs_name_exactly_the_schema_kinds() -> None:
    documented, known = documented_kinds(), schema_kinds()
    assert documented - known == set(), "the docs name kinds the schema does not accept"
    assert known - documented == set(), "kinds the docs do not mention"


class ToyMetrics(BaseModel):
    value: float = 0.0


class ToyConfig(MeasuredStep):
    kind: Literal["toy_probe"]


class ToyStep:
    kind = "toy_probe"
    config = ToyConfig
    metrics = ToyMetrics
    builds = False


def toy(name: str = "Toy", **attrs: Any) -> type:
    """A step class with ToyStep's declarations, some replaced (or removed with ``None``)."""
    body = {k: v for k, v in {**vars(ToyStep), **attrs}.items() if v is not None and not k.startswith("__")}
    return type(name, (), body)


@pytest.fixture()
def clean_registry():
    """The registry as the built-in kinds left it, restored after the test whatever it did."""
    before = registry.kinds()
    yield before
    for kind in set(registry.kinds()) - set(before):
        registry.unregister(kind)
    assert registry.kinds() == before


TOY_FILE = "model: {path: /x}\nscenarios:\n  - {kind: toy_probe, name: probe}\n"


def test_a_registered_kind_joins_the_schema_and_unregister_takes_it_out(clean_registry, tmp_path) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_FILE)
    before = schema_kinds()
    assert "toy_probe" not in before
    registry.register(ToyStep)
    assert schema_kinds() == before | {"toy_probe"}
    (step,) = load_suite(path).scenarios
    assert type(step) is ToyConfig and step.name == "probe"
    registry.unregister("toy_probe")
    assert schema_kinds() == before
    with pytest.raises(ConfigError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: scenarios[0].kind: unknown kind 'toy_probe'; expected one of ")
    assert "single_stream" in message and "toy_probe" not in message.split("expected one of ", 1)[1]


@pytest.mark.parametrize("kind", ["offline", "toy_probe"])
def test_a_second_class_under_a_taken_kind_is_refused(clean_registry, kind: str) -> None:
    if kind == "toy_probe":
        registry.register(ToyStep)
    holder = registry.step_class(kind)
    config = holder.config  # the same config model: only the name clash can refuse it
    with pytest.raises(ValueError, match=f"kind '{kind}' is already registered by {holder.__name__}"):
        registry.register(toy("Impostor", kind=kind, config=config))
    assert registry.step_class(kind) is holder
    registry.register(holder)  # the same class again is not a clash
    assert registry.step_class(kind) is holder


@pytest.mark.parametrize("missing", ["kind", "config", "metrics", "builds"])
def test_a_class_missing_a_declaration_is_refused(clean_registry, missing: str) -> None:
    with pytest.raises(TypeError, match=f"does not declare `{missing}`"):
        registry.register(toy(**{missing: None}))
    assert registry.kinds() == clean_registry


class TwoKindsConfig(MeasuredStep):
    kind: Literal["toy_probe", "toy_other"]


class NoKindConfig(MeasuredStep):
    pass


class NotAModel:
    kind = "toy_probe"


@pytest.mark.parametrize(("config", "found"), [
    (OfflineScenario, "found kind: Literal['offline']"),  # another kind's config
    (TwoKindsConfig, "found kind: Literal['toy_probe', 'toy_other']"),  # a tag the registry would not know
    (NoKindConfig, "found no `kind` field"),
    (NotAModel, "found no `kind` field"),
], ids=["other kind", "two tags", "no kind field", "not a model"])
def test_a_config_for_another_kind_is_refused(clean_registry, config: type, found: str) -> None:
    """The schema picks a config by its `kind` Literal; the run then looks the step up by the
    class's `kind`. If they differed, a file's step would validate and then run the wrong step
    (or none); refused at registration, with the schema left as it was."""
    before = schema_kinds()
    with pytest.raises(TypeError, match=re.escape(f"must be a pydantic model with kind: Literal['toy_probe'], {found}")):
        registry.register(toy(config=config))
    assert registry.kinds() == clean_registry
    assert schema_kinds() == before


def test_a_plugin_cannot_take_a_built_in_name_before_the_registry_was_read() -> None:
    """In a fresh interpreter, a plugin registering 'offline' first is refused at once, and the
    built-in kinds still load (rather than the built-ins' import failing later)."""
    code = (
        "from typing import Literal\n"
        "from pydantic import BaseModel\n"
        "from hf_cost.core import registry\n"
        "class C(BaseModel):\n"
        "    kind: Literal['offline']\n"
        "class Plugin:\n"
        "    kind, config, metrics, builds = 'offline', C, BaseModel, False\n"
        "try:\n"
        "    registry.register(Plugin)\n"
        "except ValueError as exc:\n"
        "    print('refused:', exc)\n"
        "print(registry.step_class('offline').__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "refused: kind 'offline' is already registered by OfflineRunner", "OfflineRunner"]
