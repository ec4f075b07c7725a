"""MLPerf multi-stream: each query holds ``samples_per_query`` samples (default 8, as MLPerf's
MultiStream), the next query is issued when the last one completed, and the figure is the
latency per query at ``target_percentile`` (default p99), with LoadGen's early stopping.

The engine is MLPerf LoadGen (engines/loadgen.run_stream): each query runs as one forward of
its samples (a batch padded to its longest member), inside LoadGen's issue call. Latencies are
LoadGen's, from its trace: a query's latency is its last sample's, from when LoadGen scheduled
the query (loadgen_log.query_latencies); validity and the early-stopping estimate are read from
its detail log. Its logs are kept in ``loadgen/<step>/<candidate>/``.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from hf_cost.config.base import MeasuredStep
from hf_cost.config.fields import BatchSize, Float, NonNegInt, PosFloat, PosInt
from hf_cost.config.schema import LOADGEN_MIN_DURATION_S, LOADGEN_MIN_QUERY_COUNT
from hf_cost.core.bounds import Count, NonNegative, Share, better
from hf_cost.core.format import fmt, percentile_key
from hf_cost.core.metrics import ComputeRate, LatencySummary
from hf_cost.core.results import Compute, ScenarioResult, SummaryCells, Validity
from hf_cost.measure.latency import LatencyStats, percentile
from hf_cost.models.context import RunContext
from hf_cost.steps.base import MeasureStep, Plan
from hf_cost.steps.loadgen_logs import log_outputs, log_root, relative_log_dir, require_loadgen

# LoadGen's early stopping for MultiStream at p99 needs this many queries (its own message)
P99_EARLY_STOPPING_QUERIES = 662


class MultiStreamScenario(MeasuredStep):
    """MLPerf multi-stream through LoadGen: N samples per query, closed loop, p99 per query."""

    kind: Literal["multi_stream"]
    samples_per_query: BatchSize = Field(8, description="LoadGen's multi_stream_samples_per_query (MLPerf: 8)")
    target_percentile: Float = Field(0.99, gt=0.0, lt=1.0, description="multi_stream_target_latency_percentile")
    warmup_queries: NonNegInt = 5
    min_duration_s: PosFloat = LOADGEN_MIN_DURATION_S
    min_query_count: PosInt = Field(LOADGEN_MIN_QUERY_COUNT, description=(
        f"LoadGen's min_query_count; its p99 early stopping needs {P99_EARLY_STOPPING_QUERIES} queries"))
    max_duration_s: PosFloat | None = Field(None, description="LoadGen's max_duration_ms, in s")

    @model_validator(mode="after")
    def _budget(self) -> MultiStreamScenario:
        if self.max_duration_s is not None and self.max_duration_s < self.min_duration_s:
            raise ValueError(f"max_duration_s: {self.max_duration_s:g} s is less than min_duration_s "
                             f"({self.min_duration_s:g} s), so every run would be cut short and INVALID")
        return self

    def activation_batches(self) -> list[tuple[str, int, bool]]:
        return [("samples_per_query", self.samples_per_query, False)]

    @property
    def reduced(self) -> bool:
        return self.min_duration_s < LOADGEN_MIN_DURATION_S or self.min_query_count < LOADGEN_MIN_QUERY_COUNT


class MultiStreamMetrics(ComputeRate):
    queries: Count
    samples_per_query: Count
    duration_s: NonNegative = Field(description="the last query's scheduled time + its latency")
    latency_ms: LatencySummary = Field(description="per query (its last sample), from LoadGen's trace")
    target_percentile: float
    target_latency_ms: NonNegative = better(False, "per-query latency at target_percentile, sorted[int(n p)]")
    early_stopping_latency_ms: NonNegative | None = better(
        False, "LoadGen's early-stopping estimate of the target percentile; None when it had too few queries")
    early_stopping_detail: str
    samples_per_s: NonNegative = better(True, "queries x samples_per_query / duration_s")
    padded_token_share: Share = Field(description="padded tokens / tokens run (each query one batch, padded "
                                      "to its longest member)")
    latency_source: str

    energy_rank: ClassVar[int | None] = 2

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        lat = self.latency_ms
        pct = lat.percentiles_ms
        headline = (f"per query of {self.samples_per_query}: p50 {fmt(pct['p50'])} ms · p99 {fmt(pct['p99'])} ms · "
                    f"ES {percentile_key(self.target_percentile)} {fmt(self.early_stopping_latency_ms)} ms")
        spread = (f"mean {fmt(lat.mean_ms)} ± {fmt(lat.stdev_ms)} ms (sd), max {fmt(lat.max_ms)}; "
                  f"{fmt(self.samples_per_s, digits=1)} samples/s")
        return SummaryCells(n=f"{self.queries} queries × {self.samples_per_query}", headline=headline, spread=spread)

    def compute(self) -> Compute | None:
        if self.achieved_gflops_per_s is None:
            return None
        return Compute(self.achieved_gflops_per_s, self.mfu, f"samples/s over {self.queries} queries")

    def inferences(self) -> int:
        return self.queries * self.samples_per_query

    def check_raw(self, raw: dict[str, list[Any]]) -> str | None:
        lat = raw.get("latencies_ms")
        if not isinstance(lat, list) or not lat:
            return "latencies_ms: a measured multi_stream needs its raw per-query latencies (a non-empty list)"
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0 for x in lat):
            return "latencies_ms: every per-query latency must be a number >= 0"
        return None


class MultiStreamRunner(MeasureStep):
    kind = "multi_stream"
    config = MultiStreamScenario
    metrics = MultiStreamMetrics

    def outputs(self, cfg: MultiStreamScenario) -> list[str]:
        return log_outputs(cfg)

    def check(self, cfg: MultiStreamScenario, plan: Plan, where: str) -> None:
        require_loadgen(f"{where}.kind")

    def run(self, cfg: MultiStreamScenario, ctx: RunContext) -> list[ScenarioResult]:
        import torch

        from hf_cost.engines.loadgen import LATENCY_SOURCE, TestPlan, run_stream
        from hf_cost.engines.loadgen_log import query_latencies

        cand, pset, n = ctx.candidate, ctx.perf_set, cfg.samples_per_query
        rng = random.Random(pset.seed)
        ctx.progress.say(f"[{cfg.name}] warm-up: {cfg.warmup_queries} queries of {n} samples")
        warm = []
        for _ in range(cfg.warmup_queries):
            ix = torch.tensor([rng.randrange(pset.num_samples) for _ in range(n)], device=cand.device)
            batch = pset.batch(ix)
            t0 = time.perf_counter()
            cand.forward(batch)
            cand.synchronize()
            warm.append(time.perf_counter() - t0)
        plan = TestPlan("MultiStream", cfg.min_duration_s, cfg.min_query_count, max_duration_s=cfg.max_duration_s,
                        latency_percentile=cfg.target_percentile, samples_per_query=n,
                        expected_latency_ms=statistics.median(warm) * 1e3 if warm else None)
        ctx.progress.say(f"[{cfg.name}] LoadGen MultiStream ({n} samples per query) until {cfg.min_duration_s:g} s "
                         f"and {cfg.min_query_count} queries")
        with ctx.memory() as memory:
            run = run_stream(cand, pset, plan, log_root(cfg, ctx))
        f = run.figures
        queries = query_latencies(run.samples)
        latencies = [lat for _, _, lat in queries]
        stats = LatencyStats.from_values(latencies)
        duration = max(at + lat / 1e3 for _, at, lat in queries)
        flat = [i for ix, _, _ in run.batches for i in ix]
        real, ran = (sum(c) for c in zip(*(pset.tokens(ix) for ix, _, _ in run.batches)))
        samples_per_s = len(queries) * n / duration
        ok = f.validity == "VALID"
        recs = [] if ok else list(f.why)
        if cfg.reduced:
            recs.append(f"reduced settings: below LoadGen's defaults (min_duration_s {LOADGEN_MIN_DURATION_S:g}, "
                        f"min_query_count {LOADGEN_MIN_QUERY_COUNT})")
        metrics = MultiStreamMetrics(
            queries=len(queries), samples_per_query=n, duration_s=duration, latency_ms=stats.to_dict(),
            target_percentile=cfg.target_percentile,
            target_latency_ms=percentile(sorted(latencies), cfg.target_percentile),
            early_stopping_latency_ms=f.early_stopping_latency_ms if f.early_stopping_met else None,
            early_stopping_detail=f.early_stopping_detail, samples_per_s=samples_per_s,
            padded_token_share=(ran - real) / ran if ran else 0.0, latency_source=LATENCY_SOURCE,
            **ctx.compute_metrics(samples_per_s, flat),
        )
        by_query = {s.query_seq: s for s in run.samples}
        return [ScenarioResult(
            name=cfg.name or self.kind, kind=self.kind, candidate=cand.name,
            settings={**cfg.model_dump(), "seed": pset.seed, "lengths": pset.lengths,
                      "expected_latency_ms": plan.expected_latency_ms,
                      "loadgen_log_dir": relative_log_dir(run.log_dir, ctx)},
            metrics=metrics,
            validity=Validity(result=f.validity, min_duration_satisfied=f.min_duration_met,
                              min_queries_satisfied=f.min_queries_met, early_stopping_satisfied=f.early_stopping_met,
                              reduced_settings=cfg.reduced, recommendations=recs),
            memory=memory.to_dict(),
            raw={"latencies_ms": latencies, "issued_s": [at for _, at, _ in queries],
                 "issue_delay_ms": [by_query[q].issue_delay_ms for q, _, _ in queries],
                 "sample_indices": [s.sample_index for s in run.samples]},
            notes=[f"latencies: per query, its last sample's; {LATENCY_SOURCE}",
                   f"LoadGen {f.version}, MultiStream, PerformanceOnly, library defaults (no mlperf.conf) except "
                   "the settings above; each query ran as one forward of its samples (padded to its longest)",
                   "raw.sample_indices: every sample in LoadGen's issue order, samples_per_query per query"],
        )]
