"""MLPerf server: LoadGen sends queries of one sample at Poisson-distributed times at
``target_qps``; a dynamic batcher serves them with ``workers`` model instances; the run is
VALID when the ``latency_percentile`` latency stays within ``latency_bound_ms`` (with LoadGen's
minimum duration, query count and early stopping). A causal LM is bounded as MLPerf's LLM
servers are: its ``latency_percentile`` TTFT within ``ttft_bound_ms`` and TPOT within
``tpot_bound_ms`` (LoadGen's use_token_latencies); each batch is one generate call
(engines/token_serving.py) and each probe adds TTFT, TPOT, output tokens/s and goodput.

The engine is LoadGen itself (hf_cost/engines/loadgen_server.py): the figures are LoadGen's, read from
its detail log, and each query's latency is LoadGen's own, from the time it scheduled the query
(its trace). ``find_peak`` searches for the highest target QPS that stays VALID (engines/peak.py):
every probe is a full LoadGen run, at most ``max_probes`` of them. LoadGen's logs of every probe
are kept in the run's output: ``loadgen/<step>/<candidate>/probe-<k>-qps-<qps>/``.
The metrics model (ServerMetrics, with its probes and the `slo_rate` hook the cost and selection
read) is in core/server_metrics.py.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hf_cost.config.base import MeasuredStep
from hf_cost.config.fields import BatchSize, Float, PosFloat, PosInt
from hf_cost.config.schema import LOADGEN_MIN_DURATION_S, LOADGEN_MIN_QUERY_COUNT
from hf_cost.core.format import percentile_key
from hf_cost.core.results import ScenarioResult, Validity
from hf_cost.core.server_metrics import ServerMetrics, ServerProbe
from hf_cost.engines.token_figures import per_request_tpot_ms, probe_tokens
from hf_cost.errors import ConfigError
from hf_cost.measure.latency import LatencyStats, percentile
from hf_cost.models.context import RunContext
from hf_cost.steps.base import MeasureStep, Plan
from hf_cost.steps.loadgen_logs import log_outputs, log_root, require_loadgen

MAX_QPS = 100_000.0  # LoadGen schedules target_qps x duration queries up front
MAX_PROBES = 20


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ServerScenario(MeasuredStep):
    """MLPerf server through LoadGen: Poisson arrivals, a dynamic batcher, a latency bound."""

    kind: Literal["server"]
    target_qps: PosFloat = Field(le=MAX_QPS, description="LoadGen's server_target_qps (the first probe with find_peak)")
    latency_bound_ms: PosFloat | None = Field(None, description=(
        "an encoder (required): LoadGen's server_target_latency_ns, in ms; refused for a causal LM"))
    ttft_bound_ms: PosFloat | None = Field(None, description=(
        "a causal LM (required): LoadGen's ttft_latency (server_ttft_latency), in ms: the latency_percentile "
        "time to first token must stay within it"))
    tpot_bound_ms: PosFloat | None = Field(None, description=(
        "a causal LM (required): LoadGen's tpot_latency (server_tpot_latency), in ms: the latency_percentile "
        "time per output token must stay within it"))
    latency_percentile: Float = Field(0.99, gt=0.0, lt=1.0, description="server_target_latency_percentile")
    min_duration_s: PosFloat = Field(LOADGEN_MIN_DURATION_S, description="LoadGen's min_duration_ms, in s; "
                                     "below 10 s the result is marked reduced")
    min_query_count: PosInt = LOADGEN_MIN_QUERY_COUNT
    max_batch_size: BatchSize = Field(1, description="the batcher's largest batch")
    max_queue_delay_ms: Float = Field(0.0, ge=0.0, le=60_000.0, description=(
        "a batch is dispatched when full or when its oldest request has waited this long"))
    workers: PosInt = Field(1, description="model instances (threads) sharing the candidate; at most the cores")
    find_peak: bool = Field(False, description="search for the highest VALID QPS: double from target_qps "
                            "until INVALID, then bisect; every probe is a full LoadGen run")
    max_probes: PosInt = Field(8, le=MAX_PROBES, description="find_peak's bound on LoadGen runs")
    min_target_qps: PosFloat | None = Field(None, description=(
        "find_peak never probes below this QPS (halving stops there and says so): a probe lasts at least "
        "min_query_count / QPS seconds, so a low floor bounds the search's time"))

    @model_validator(mode="after")
    def _floor(self) -> ServerScenario:
        if self.min_target_qps is not None and self.min_target_qps > self.target_qps:
            raise ValueError(f"min_target_qps: {self.min_target_qps:g} is above target_qps ({self.target_qps:g}), "
                             "where find_peak starts")
        return self


    def activation_batches(self) -> list[tuple[str, int, bool]]:
        return [("max_batch_size", self.max_batch_size, False)]
    @field_validator("workers")
    @classmethod
    def _cores(cls, v: int) -> int:
        cores = usable_cores()
        if v > cores:
            raise ValueError(f"{v} workers on {cores} usable cores: each worker is a model instance running "
                             f"on its own threads, so use at most {cores}")
        return v

    @property
    def reduced(self) -> bool:
        return self.min_duration_s < LOADGEN_MIN_DURATION_S or self.min_query_count < LOADGEN_MIN_QUERY_COUNT


class ServerRunner(MeasureStep):
    kind = "server"
    config = ServerScenario
    metrics = ServerMetrics

    serves_lms = True

    def outputs(self, cfg: ServerScenario) -> list[str]:
        return log_outputs(cfg)

    def check(self, cfg: ServerScenario, plan: Plan, where: str) -> None:
        if plan.suite.model.generative:
            _check_lm(cfg, plan.suite.generation, where)
        else:
            for key in ("ttft_bound_ms", "tpot_bound_ms"):
                if getattr(cfg, key) is not None:
                    raise ConfigError(f"only a causal LM (model.task: text-generation) is bounded by TTFT and TPOT: "
                                      f"remove {key} and bound the request latency with latency_bound_ms",
                                      where=f"{where}.{key}")
            if cfg.latency_bound_ms is None:
                raise ConfigError("required for an encoder: LoadGen's bound on the latency_percentile request "
                                  "latency, in ms", where=f"{where}.latency_bound_ms")
        require_loadgen(f"{where}.kind")

    def run(self, cfg: ServerScenario, ctx: RunContext) -> list[ScenarioResult]:
        from hf_cost.engines.loadgen import LATENCY_SOURCE, TestPlan
        from hf_cost.engines.loadgen_server import Batching, run_server
        from hf_cost.engines.peak import find_peak

        cand, pset = ctx.candidate, ctx.perf_set
        batching = Batching(cfg.max_batch_size, cfg.max_queue_delay_ms, cfg.workers)
        root = log_root(cfg, ctx)
        warmed = self._warm_up(cfg, ctx)
        runs: list[tuple[float, Any]] = []

        def probe(qps: float) -> bool:
            k = len(runs) + 1
            ctx.progress.say(f"[{cfg.name}] {cand.name}: LoadGen server at {qps:g} QPS, {_bounds(cfg)}, "
                             f"≥ {cfg.min_duration_s:g} s" + (f" (probe {k} of at most {cfg.max_probes})"
                                                               if cfg.find_peak else ""))
            settings = TestPlan.server(qps, cfg.latency_bound_ms, cfg.latency_percentile, cfg.min_duration_s,
                                       cfg.min_query_count, ttft_bound_ms=cfg.ttft_bound_ms,
                                       tpot_bound_ms=cfg.tpot_bound_ms)
            run = run_server(cand, pset, settings, batching, None if root is None else root / f"probe-{k}-qps-{qps:g}")
            runs.append((qps, run))
            ctx.progress.say(f"[{cfg.name}] {qps:g} QPS: {run.figures.validity}"
                             + (f" ({'; '.join(run.figures.why)})" if run.figures.why else ""))
            return run.figures.validity == "VALID"

        with ctx.memory() as memory:
            search = (find_peak(probe, cfg.target_qps, cfg.max_probes, ceiling=MAX_QPS, floor=cfg.min_target_qps)
                      if cfg.find_peak else None)
            if search is None:
                probe(cfg.target_qps)
        return [self._result(cfg, ctx, runs, search, memory.to_dict(), warmed, LATENCY_SOURCE)]

    @staticmethod
    def _warm_up(cfg: ServerScenario, ctx: RunContext) -> list[int]:
        """Two forwards (a causal LM: two generations) at each power-of-two batch size up to
        max_batch_size, and at it."""
        import torch

        cand, pset = ctx.candidate, ctx.perf_set
        call = cand.generate if getattr(cand, "generates", False) else cand.forward
        device = next(iter(pset.tensors.values())).device
        sizes = sorted({1 << j for j in range(cfg.max_batch_size.bit_length()) if 1 << j <= cfg.max_batch_size}
                       | {cfg.max_batch_size})
        for bs in sizes:
            for _ in range(2):
                call(pset.batch(torch.arange(bs, device=device) % pset.num_samples))
        cand.synchronize()
        return sizes

    def _result(self, cfg: ServerScenario, ctx: RunContext, runs: list[tuple[float, Any]], search: Any,
                memory: dict[str, Any], warmed: list[int], source: str) -> ScenarioResult:
        probes = [_probe(qps, run, cfg, ctx.artifacts_dir) for qps, run in runs]
        lm = runs[0][1].output_tokens is not None
        settings_extra = {"generation": ctx.suite.generation.model_dump()} if lm and ctx.suite is not None else {}
        if search is not None and search.peak is not None:
            reported = next(j for j, (qps, _) in enumerate(runs) if qps == search.peak)
        else:
            reported = 0
        rep, threads = probes[reported], runs[0][1].threads
        raw: dict[str, list[Any]] = {k: [] for k in ("probe", "latencies_ms", "scheduled_s", "sample_indices",
                                                     "issue_delay_ms", "queue_ms", "batch_size", "batch_service_ms",
                                                     "worker")}
        if lm:  # per request, LoadGen's: TTFT from its trace, TPOT = (latency - TTFT) / (n_tokens - 1)
            raw.update(ttft_ms=[], tpot_ms=[], output_tokens=[])
            for _, run in runs:
                for key, values in zip(("ttft_ms", "tpot_ms", "output_tokens"), _per_request(run)):
                    raw[key].extend(values)
        for j, (_, run) in enumerate(runs):
            for s, r in zip(run.samples, run.records):
                raw["probe"].append(j)
                raw["latencies_ms"].append(s.latency_ms)
                raw["scheduled_s"].append(s.scheduled_s)
                raw["sample_indices"].append(s.sample_index)
                raw["issue_delay_ms"].append(s.issue_delay_ms)
                raw["queue_ms"].append(r.queue_s * 1e3)
                raw["batch_size"].append(r.batch_size)
                raw["batch_service_ms"].append((r.completion_s - r.dispatch_s) * 1e3)
                raw["worker"].append(r.worker)
        recs = list(rep.why)
        if cfg.reduced:
            recs.append(f"reduced settings: below LoadGen's defaults (min_duration_s {LOADGEN_MIN_DURATION_S:g}, "
                        f"min_query_count {LOADGEN_MIN_QUERY_COUNT})")
        notes = [
            f"latencies: {source}",
            *([f"bounds: {_bounds(cfg)} (LoadGen use_token_latencies: ttft_latency, tpot_latency); TTFT: LoadGen's, "
               "from the query's scheduled time to FirstTokenComplete, called for every sample of a batch when "
               "generate's first decoding step is on the host (trace Token_Latency events); TPOT: LoadGen's "
               "(latency - TTFT) / (n_tokens - 1) per request, n_tokens = that request's new tokens (EOS "
               "included); percentiles p50/p90/p99 are LoadGen's sorted[int(n p)]; goodput = completed QPS x "
               "the share of requests whose own TTFT and TPOT met both bounds"] if lm else []),
            (f"LoadGen {runs[0][1].figures.version}, Server scenario, PerformanceOnly, library defaults "
             "(no mlperf.conf) except the settings above"),
            (f"{cfg.workers} worker(s) x {threads.torch_threads_per_worker} torch thread(s) "
             f"({threads.torch_threads_available} available); warm-up: 2 {'generations' if lm else 'forwards'} at "
             f"batch sizes {warmed}"),
        ]
        if search is not None:
            notes.append(f"find_peak: {len(runs)} LoadGen runs (at most {cfg.max_probes}); stopped: {search.stopped}")
        metrics = ServerMetrics(
            target_qps=cfg.target_qps, latency_bound_ms=cfg.latency_bound_ms, latency_percentile=cfg.latency_percentile,
            ttft_bound_ms=cfg.ttft_bound_ms, tpot_bound_ms=cfg.tpot_bound_ms, completed_qps=rep.completed_qps,
            output_tokens_per_s=rep.tokens.output_tokens_per_s if rep.tokens else None,
            goodput_qps=rep.tokens.goodput_qps if rep.tokens else None,
            search="find_peak" if search is not None else "single",
            search_stopped=search.stopped if search is not None else None,
            max_probes=cfg.max_probes if search is not None else None,
            probes=probes, reported_probe=reported,
            peak_qps=search.peak if search is not None else None,
            lowest_invalid_qps=search.bracket[1] if search is not None else None,
            queries=sum(p.queries for p in probes),
            max_batch_size=cfg.max_batch_size, max_queue_delay_ms=cfg.max_queue_delay_ms, workers=cfg.workers,
            torch_threads_available=threads.torch_threads_available,
            torch_threads_per_worker=threads.torch_threads_per_worker, latency_source=source,
        )
        validity = Validity(
            result=rep.result, min_duration_satisfied=rep.min_duration_met, min_queries_satisfied=rep.min_queries_met,
            early_stopping_satisfied=rep.early_stopping_met, reduced_settings=cfg.reduced, recommendations=recs,
        )
        return ScenarioResult(
            name=cfg.name or self.kind, kind=self.kind, candidate=ctx.candidate.name,
            settings={**cfg.model_dump(), **settings_extra}, metrics=metrics, validity=validity,
            memory=memory, raw=raw, notes=notes,
        )


def _probe(qps: float, run: Any, cfg: ServerScenario, artifacts: Path | None) -> ServerProbe:
    f = run.figures
    latencies = [s.latency_ms for s in run.samples]
    batches: dict[int, Any] = {}
    for r in run.records:
        batches.setdefault(r.batch, r)
    sizes = [b.batch_size for b in batches.values()]
    histogram = Counter(sizes)
    return ServerProbe(
        target_qps=qps, result=f.validity, why=f.why, queries=f.queries, scheduled_qps=f.scheduled_qps,
        completed_qps=f.completed_qps, latency_ms=LatencyStats.from_values(latencies).to_dict(),
        target_latency_ms=percentile(sorted(latencies), cfg.latency_percentile),
        overlatency_queries=f.overlatency_queries if f.tokens is None else None,  # (vs a request bound)
        perf_constraints_met=f.perf_constraints_met,
        min_duration_met=f.min_duration_met, min_queries_met=f.min_queries_met,
        early_stopping_met=f.early_stopping_met, early_stopping_detail=f.early_stopping_detail,
        batches=len(sizes), mean_batch_size=sum(sizes) / len(sizes),
        batch_size_histogram={str(b): histogram[b] for b in sorted(histogram)},
        queue_ms=LatencyStats.from_values([r.queue_s * 1e3 for r in run.records]).to_dict(),
        issue_delay_ms=LatencyStats.from_values([s.issue_delay_ms for s in run.samples]).to_dict(),
        batch_service_ms=LatencyStats.from_values([(b.completion_s - b.dispatch_s) * 1e3
                                                   for b in batches.values()]).to_dict(),
        log_dir=None if run.log_dir is None or artifacts is None else str(Path(run.log_dir).relative_to(artifacts)),
        loadgen_errors=f.errors, loadgen_warnings=f.warnings,
        tokens=None if run.output_tokens is None else probe_tokens(
            *_per_request(run), f.completed_qps, f.tokens.completed_tokens_per_s, cfg.ttft_bound_ms, cfg.tpot_bound_ms),
    )


def _per_request(run: Any) -> tuple[list[float], list[float], list[int]]:
    """A causal LM's run, per request in issue order: TTFT, TPOT (LoadGen's), output tokens."""
    ttft = [s.first_token_ms for s in run.samples]
    tpot = [per_request_tpot_ms(s.latency_ms, a, n) for s, a, n in zip(run.samples, ttft, run.output_tokens)]
    return ttft, tpot, list(run.output_tokens)


def _bounds(cfg: ServerScenario) -> str:
    pk = percentile_key(cfg.latency_percentile)
    if cfg.ttft_bound_ms is not None:
        return f"{pk} TTFT ≤ {cfg.ttft_bound_ms:g} ms, {pk} TPOT ≤ {cfg.tpot_bound_ms:g} ms"
    return f"{pk} ≤ {cfg.latency_bound_ms:g} ms"


def _check_lm(cfg: ServerScenario, generation: Any, where: str) -> None:
    """A causal LM is bounded by TTFT and TPOT, and every answer needs 2 tokens for a TPOT."""
    if cfg.latency_bound_ms is not None:
        raise ConfigError("a causal LM's server run is judged by TTFT and TPOT (LoadGen's use_token_latencies "
                          "ignores the request latency bound): remove latency_bound_ms and set ttft_bound_ms and "
                          "tpot_bound_ms", where=f"{where}.latency_bound_ms")
    for key, what in (("ttft_bound_ms", "time to first token"), ("tpot_bound_ms", "time per output token")):
        if getattr(cfg, key) is None:
            raise ConfigError(f"required for a causal LM: the bound on the latency_percentile {what}, in ms "
                              "(MLPerf's LLM servers: p99 TTFT and p99 TPOT)", where=f"{where}.{key}")
    from hf_cost.engines.token_stream import check_two_new_tokens

    check_two_new_tokens(generation, "server")
