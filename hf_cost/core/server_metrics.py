"""Typed metrics of the `server` kind (hf_cost/steps/server.py): LoadGen's Server scenario, one
probe per LoadGen run, and the highest target QPS that stayed VALID under the latency bound
(a causal LM: under its TTFT and TPOT bounds; each probe then has its `tokens`).

Kept in core beside core/metrics.py, as the built-in kinds' metrics models are, because the
scenario layer reads `peak_qps`'s direction for selection (config/selection.FROM_MODELS).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from hf_cost.core.bounds import Count, NonNegative, Out, Share, better
from hf_cost.core.format import fmt, percentile_key
from hf_cost.core.metrics import LatencySummary
from hf_cost.core.results import KindMetrics, ScenarioResult, SloRate, SummaryCells


class ServerTokens(Out):
    """A causal LM's probe, request by request from LoadGen's trace (raw ttft_ms, tpot_ms,
    output_tokens with raw probe); percentiles are LoadGen's sorted[int(n p)]."""

    ttft_ms: LatencySummary = Field(description="LoadGen's TTFT: the query's scheduled time to its FirstTokenComplete")
    tpot_ms: LatencySummary = Field(description="LoadGen's TPOT: (request latency - TTFT) / (output tokens - 1), "
                                    "integer ns as LoadGen divides")
    output_tokens: Count = Field(description="new tokens over the probe's requests (EOS included when emitted)")
    output_tokens_mean: NonNegative
    output_tokens_per_s: NonNegative | None = better(
        True, "LoadGen's result_completed_tokens_per_second: output tokens / (test start to the last completion)")
    goodput_requests: Count = Field(description="requests whose own TTFT <= ttft_bound_ms and TPOT <= tpot_bound_ms")
    goodput_share: Share = Field(description="goodput_requests / requests")
    goodput_qps: NonNegative = better(True, "requests/s that met both bounds: completed_qps x goodput_share")


class ServerProbe(Out):
    """One LoadGen Server run at one target QPS."""

    target_qps: NonNegative
    result: Literal["VALID", "INVALID"] = Field(description="LoadGen's result_validity")
    why: list[str] = Field(description="each reason LoadGen's result is INVALID")
    queries: Count
    scheduled_qps: NonNegative = Field(description="LoadGen's result_scheduled_samples_per_sec")
    completed_qps: NonNegative = Field(description="LoadGen's result_completed_samples_per_sec")
    latency_ms: LatencySummary = Field(description="LoadGen's per-query latencies (raw.latencies_ms): "
                                       "scheduled to completed")
    target_latency_ms: NonNegative = Field(description="the latency_percentile latency, sorted[int(n p)]")
    overlatency_queries: Count | None
    perf_constraints_met: bool | None = Field(description="the latency bound held at the percentile")
    min_duration_met: bool | None
    min_queries_met: bool | None
    early_stopping_met: bool | None
    early_stopping_detail: str
    batches: Count
    mean_batch_size: NonNegative
    batch_size_histogram: dict[str, Count] = Field(description="batch size -> batches")
    queue_ms: LatencySummary = Field(description="per query: dispatch - arrival at the batcher")
    issue_delay_ms: LatencySummary = Field(description="per query: LoadGen's delay from scheduling it to calling "
                                           "issue_queries (the Python SUT's GIL and callback overhead)")
    batch_service_ms: LatencySummary = Field(description="per batch: forward + synchronize")
    log_dir: str | None = Field(description="LoadGen's logs, relative to the output folder (null: not kept)")
    loadgen_errors: list[str] = Field(default_factory=list)
    loadgen_warnings: list[str] = Field(default_factory=list)
    tokens: ServerTokens | None = Field(None, description="a causal LM's token latencies and goodput; null for "
                                        "an encoder")


class ServerMetrics(KindMetrics):
    target_qps: NonNegative
    latency_bound_ms: NonNegative | None = Field(description="an encoder's bound on request latency; null for a "
                                                 "causal LM (bounded by TTFT and TPOT)")
    ttft_bound_ms: NonNegative | None = Field(None, description="a causal LM: LoadGen's ttft_latency, in ms")
    tpot_bound_ms: NonNegative | None = Field(None, description="a causal LM: LoadGen's tpot_latency, in ms")
    latency_percentile: float
    search: Literal["single", "find_peak"]
    search_stopped: str | None = Field(description="why find_peak ended (the probe budget, a bracket, ...)")
    max_probes: int | None
    probes: list[ServerProbe] = Field(min_length=1)
    reported_probe: Count = Field(description="index of the probe the headline figures come from")
    peak_qps: NonNegative | None = better(True, "find_peak: the highest target QPS probed whose LoadGen run "
                                          "was VALID; null without find_peak or when none was")
    lowest_invalid_qps: NonNegative | None = Field(description="find_peak: the lowest INVALID target above the peak")
    queries: Count = Field(description="queries over every probe")
    max_batch_size: int
    max_queue_delay_ms: float
    workers: int
    torch_threads_available: int = Field(description="torch.get_num_threads() before the run")
    torch_threads_per_worker: int = Field(description="set in each worker: available // workers (at least 1)")
    latency_source: str
    completed_qps: NonNegative | None = better(True, "the reported probe's LoadGen completed samples/s", default=None)
    output_tokens_per_s: NonNegative | None = better(True, "a causal LM: the reported probe's output tokens/s "
                                                     "(LoadGen's result_completed_tokens_per_second)", default=None)
    goodput_qps: NonNegative | None = better(True, "a causal LM: the reported probe's requests/s that met both "
                                             "bounds", default=None)

    def _bound(self) -> str:
        if self.ttft_bound_ms is not None:
            return (f"{self._pk()} TTFT ≤ {self.ttft_bound_ms:g} ms, {self._pk()} TPOT ≤ {self.tpot_bound_ms:g} ms")
        return f"{self._pk()} ≤ {self.latency_bound_ms:g} ms"

    def _pk(self) -> str:
        return percentile_key(self.latency_percentile)

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        rep = self.probes[self.reported_probe]
        pct = rep.latency_ms.percentiles_ms
        spread = (f"p50 {fmt(pct.get('p50'))} ms · p99 {fmt(pct.get('p99'))} ms; {rep.completed_qps:.1f} of "
                  f"{rep.scheduled_qps:.1f} QPS completed; batch mean {rep.mean_batch_size:.2f} (max "
                  f"{self.max_batch_size}); queue p99 {fmt(rep.queue_ms.percentiles_ms.get('p99'))} ms")
        bound = self._bound()
        t = rep.tokens
        if t is not None:
            spread = (f"TTFT p50 {fmt(t.ttft_ms.percentiles_ms.get('p50'))} ms · TPOT p50 "
                      f"{fmt(t.tpot_ms.percentiles_ms.get('p50'))} ms; goodput {t.goodput_qps:.2f} req/s "
                      f"({t.goodput_requests} of {rep.queries}); {fmt(t.output_tokens_per_s)} output tokens/s; "
                      f"batch mean {rep.mean_batch_size:.2f} (max {self.max_batch_size})")
        if self.search == "find_peak":
            loads = [p.target_qps for p in self.probes]
            headline = (f"peak {self.peak_qps:g} QPS at {bound}" if self.peak_qps is not None
                        else f"no VALID QPS in {min(loads):g}–{max(loads):g} ({bound})")
            return SummaryCells(n=f"{len(self.probes)} probes, {self.queries} queries", headline=headline,
                                spread=spread)
        if t is not None:
            pk = self._pk()
            headline = (f"{rep.target_qps:g} QPS: {pk} TTFT {fmt(t.ttft_ms.percentiles_ms.get(pk))} ms (bound "
                        f"{self.ttft_bound_ms:g}), {pk} TPOT {fmt(t.tpot_ms.percentiles_ms.get(pk))} ms (bound "
                        f"{self.tpot_bound_ms:g}), {rep.result}")
        else:
            headline = (f"{rep.target_qps:g} QPS: {self._pk()} {fmt(rep.target_latency_ms)} ms "
                        f"(bound {self.latency_bound_ms:g} ms), {rep.result}")
        return SummaryCells(n=f"{rep.queries} queries", headline=headline, spread=spread)

    def slo_rate(self, result: ScenarioResult) -> SloRate | None:
        """The peak (find_peak) or, for a single run, its target when VALID; None when no probe was VALID."""
        valid = [p.target_qps for p in self.probes if p.result == "VALID"]
        searched = self.search == "find_peak"
        qps = self.peak_qps if searched else max(valid, default=None)
        if not qps or not valid:  # none VALID (a rate of 0 QPS is none either)
            return None
        at = next(p for p in self.probes if p.target_qps == qps and p.result == "VALID")
        lm = self.ttft_bound_ms is not None
        return SloRate(qps=qps, latency_bound_ms=self.ttft_bound_ms if lm else self.latency_bound_ms,
                       percentile=self.latency_percentile, probes=len(self.probes), step=result.name,
                       searched=searched, output_tokens_per_s=at.tokens.output_tokens_per_s if at.tokens else None,
                       bounds=self._bound() if lm else None)

    def check_raw(self, raw: dict[str, list[Any]]) -> str | None:
        lat, probe = raw.get("latencies_ms"), raw.get("probe")
        if not isinstance(lat, list) or not lat or not isinstance(probe, list) or len(probe) != len(lat):
            return "latencies_ms: a measured server result needs its raw latencies, one per query with its probe"
        bad = next((j for j, x in enumerate(lat) if isinstance(x, bool) or not isinstance(x, (int, float))
                    or not math.isfinite(x) or x < 0), None)
        if bad is not None:
            return f"latencies_ms[{bad}]: {str(lat[bad])[:40]} is not a latency (a number >= 0)"
        if self.ttft_bound_ms is not None:  # a causal LM: its per-request token figures, one per query
            for key in ("ttft_ms", "tpot_ms", "output_tokens"):
                if not isinstance(raw.get(key), list) or len(raw[key]) != len(lat):
                    return f"{key}: a causal LM's server result needs one value per query"
        return None
