"""MLPerf single-stream: closed loop, one sample per query, latency percentiles."""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from hf_cost.config.schema import SingleStreamScenario
from hf_cost.core.metrics import SingleStreamMetrics, TokenLatencies
from hf_cost.core.results import ScenarioResult, Validity
from hf_cost.measure.early_stopping import early_stopping_estimate
from hf_cost.measure.latency import LatencyStats, percentile
from hf_cost.measure.timing import StopRule, one_sample_queries, run_queries
from hf_cost.models.context import RunContext
from hf_cost.steps.base import MeasureStep, Plan
from hf_cost.steps.loadgen_logs import log_outputs, log_root, relative_log_dir, require_loadgen


class SingleStreamRunner(MeasureStep):
    kind = "single_stream"
    config = SingleStreamScenario
    metrics = SingleStreamMetrics

    def outputs(self, cfg: SingleStreamScenario) -> list[str]:
        return log_outputs(cfg) if cfg.engine == "loadgen" else []

    serves_lms = True

    def check(self, cfg: SingleStreamScenario, plan: Plan, where: str) -> None:
        if cfg.engine == "loadgen":
            if plan.suite.model.generative:
                from hf_cost.engines.token_stream import check_two_new_tokens

                check_two_new_tokens(plan.suite.generation, "SingleStream")
            require_loadgen(f"{where}.engine")

    def run(self, scenario: SingleStreamScenario, ctx: RunContext) -> list[ScenarioResult]:
        cand, pset = ctx.candidate, ctx.perf_set
        # views (natural lengths: each cut to its sample's own length), prepared before any clock starts
        samples = [pset.one(i) for i in range(pset.num_samples)]
        rng = random.Random(pset.seed)
        ctx.progress.say(f"[{scenario.name}] warm-up: {scenario.warmup_queries} queries")
        warm_s = []  # LoadGen's expected latency (it sizes its run from it): each warm-up query timed
        timed = scenario.engine == "loadgen"
        call = cand.generate if getattr(cand, "generates", False) else cand.forward  # an LM's request is a whole generation
        for _ in range(scenario.warmup_queries):
            t0 = time.perf_counter()
            call(samples[rng.randrange(len(samples))])
            if timed:
                cand.synchronize()
                warm_s.append(time.perf_counter() - t0)
        cand.synchronize()
        if timed:
            return [self._on_loadgen(scenario, ctx, statistics.median(warm_s) if warm_s else None)]

        stop = StopRule(
            min_duration_s=scenario.min_duration_s,
            min_count=scenario.min_query_count,
            max_duration_s=scenario.max_duration_s,
        )
        ctx.progress.say(
            f"[{scenario.name}] measuring until {scenario.min_duration_s:g} s and "
            f"{scenario.min_query_count} queries"
        )
        ctx.progress.reset()
        generated: list[Any] = []  # an LM's per-request token times, in query order
        sink = ctx.output_sink
        if getattr(cand, "generates", False):
            def sink(indices: Any, out: Any, outer: Any = ctx.output_sink) -> None:
                generated.append(out)
                if outer is not None:
                    outer(indices, out)
        with ctx.memory() as memory:
            # the rng continues from warm-up: one randrange per issued query, as always
            queries = one_sample_queries(len(samples), samples.__getitem__, rng)
            t = run_queries(
                call, cand.synchronize, queries, stop, sink=sink,
                on_query=lambda so_far: ctx.progress.tick(
                    lambda: f"{so_far.count} queries, {so_far.completed_s[-1]:.1f} s"
                ),
            )
        indices = [ix[0] for ix in t.indices]
        result = self._result(scenario, ctx, t.latency_ms, t.issued_s, indices, t.cut_short, memory.to_dict())
        if getattr(cand, "generates", False):
            self._add_tokens(result, scenario, ctx, {
                "ttft_ms": [g.ttft_s() * 1e3 for g in generated],
                "tpot_ms": [None if g.tpot_s() is None else g.tpot_s() * 1e3 for g in generated],
                "output_tokens": [g.output_tokens[0] for g in generated],
            }, "an LM request is one generate call: latencies_ms end to end; TTFT from the call to its first new "
               "token, TPOT (last - first token) / (tokens - 1), per request")
        return [result]

    def _add_tokens(self, result: ScenarioResult, scenario: SingleStreamScenario, ctx: RunContext,
                    raw: dict[str, list[Any]], note: str) -> None:
        """A causal LM's request latencies token by token: raw lists (ttft_ms, tpot_ms, output_tokens,
        one per request; prompt_tokens added here) kept, figures from them."""
        from hf_cost.measure.token_latency import token_metrics

        lengths = ctx.perf_set.token_counts()
        raw["prompt_tokens"] = [lengths[i] for i in result.raw["sample_indices"]]
        result.raw.update(raw)
        result.metrics.tokens = TokenLatencies.model_validate(token_metrics(
            result.raw["latencies_ms"], raw["ttft_ms"], raw["tpot_ms"], raw["output_tokens"], raw["prompt_tokens"],
            scenario.target_percentile))
        self._request_compute(result, ctx)
        result.settings["generation"] = ctx.suite.generation.model_dump() if ctx.suite is not None else None
        result.notes = [*(result.notes or []), note]

    @staticmethod
    def _request_compute(result: ScenarioResult, ctx: RunContext) -> None:
        """Achieved GFLOP/s and MFU of a causal LM's requests: each request's FLOPs by the analytic
        Llama count at its own prompt and answer lengths (raw.request_flops), used only when
        FlopCounterMode matched that count exactly on this candidate (candidates.*.lm_flops)."""
        from hf_cost.measure.lm_flops import SUPPORTED_MODEL_TYPES, analytic_request_flops
        from hf_cost.measure.peak_flops import mfu

        info = getattr(ctx.candidate, "info", None)
        counted = getattr(info, "lm_flops", None) or {}
        config = getattr(getattr(ctx.candidate, "module", None), "config", None)
        if not counted.get("all_agree") or getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
            return
        raw = result.raw
        flops = [analytic_request_flops(config, p, k) for p, k in zip(raw["prompt_tokens"], raw["output_tokens"])]
        achieved = sum(flops) / (sum(raw["latencies_ms"]) / 1e3)
        raw["request_flops"] = flops
        result.metrics.achieved_gflops_per_s = achieved / 1e9
        result.metrics.mfu = mfu(achieved, ctx.peak_tflops)
        result.notes = [*(result.notes or []),
                        "achieved GFLOP/s: the requests' FLOPs (raw.request_flops: prefill at the prompt's length with "
                        "the LM head on its last position, one decode step per later token; the analytic Llama count, "
                        "equal to FlopCounterMode's on this candidate) / the sum of request latencies"]

    def _on_loadgen(self, scenario: SingleStreamScenario, ctx: RunContext, warm_s: float | None) -> ScenarioResult:
        """LoadGen's SingleStream: it issues the queries, its trace gives each latency (from the
        query's scheduled time) and its detail log the validity and early-stopping estimate."""
        from hf_cost.engines.loadgen import LATENCY_SOURCE, TestPlan, run_stream
        from hf_cost.engines.token_stream import run_token_stream

        lm = getattr(ctx.candidate, "generates", False)
        plan = TestPlan("SingleStream", scenario.min_duration_s, scenario.min_query_count,
                        max_duration_s=scenario.max_duration_s, latency_percentile=scenario.target_percentile,
                        expected_latency_ms=None if warm_s is None else warm_s * 1e3, token_latencies=lm)
        root = log_root(scenario, ctx)
        ctx.progress.say(f"[{scenario.name}] LoadGen SingleStream until {scenario.min_duration_s:g} s and "
                         f"{scenario.min_query_count} queries")
        with ctx.memory() as memory:
            run = (run_token_stream if lm else run_stream)(ctx.candidate, ctx.perf_set, plan, root)
        f = run.figures
        latencies = [s.latency_ms for s in run.samples]
        issued = [s.scheduled_s for s in run.samples]
        indices = [s.sample_index for s in run.samples]
        result = self._result(scenario, ctx, latencies, issued, indices, False, memory.to_dict())
        m = result.metrics
        # LoadGen's own figures where it states them; the early-stopping estimate recomputed from
        # the trace (m.early_stopping_latency_ms) must agree with LoadGen's, and the tests check it
        m.early_stopping.detail = f.early_stopping_detail
        m.qps_with_overhead, m.qps_without_overhead = f.qps_with_overhead, f.qps_without_overhead
        ok = f.validity == "VALID"
        result.validity = Validity(
            result=f.validity, min_duration_satisfied=f.min_duration_met, min_queries_satisfied=f.min_queries_met,
            early_stopping_satisfied=f.early_stopping_met, reduced_settings=scenario.reduced,
            recommendations=([] if ok else list(f.why)) + [r for r in result.validity.recommendations
                                                             if r.startswith("reduced settings")],
        )
        result.settings.update(engine="loadgen", expected_latency_ms=plan.expected_latency_ms,
                               loadgen_log_dir=relative_log_dir(run.log_dir, ctx))
        result.raw["issue_delay_ms"] = [s.issue_delay_ms for s in run.samples]
        result.notes = [f"latencies: {LATENCY_SOURCE}",
                        f"LoadGen {f.version}, SingleStream, PerformanceOnly, library defaults (no mlperf.conf) "
                        "except the settings above; validity and qps figures are LoadGen's"]
        if lm:
            self._add_loadgen_tokens(result, scenario, ctx, run)
        return result

    def _add_loadgen_tokens(self, result: ScenarioResult, scenario: SingleStreamScenario, ctx: RunContext,
                            run: Any) -> None:
        """A causal LM on LoadGen (use_token_latencies): TTFT per request from the trace (scheduled ->
        FirstTokenComplete), TPOT as LoadGen divides it, output tokens as LoadGen was told them."""
        from hf_cost.engines.token_figures import per_request_tpot_ms

        ttft = [s.first_token_ms for s in run.samples]
        self._add_tokens(result, scenario, ctx, {
            "ttft_ms": ttft,
            "tpot_ms": [per_request_tpot_ms(s.latency_ms, a, k) for s, a, k in
                        zip(run.samples, ttft, run.output_tokens)],
            "output_tokens": list(run.output_tokens),
        }, "an LM request is one generate call on LoadGen with use_token_latencies: latencies_ms from the query's "
           "scheduled time to QuerySamplesComplete, ttft_ms to FirstTokenComplete (the trace's Token events, sent "
           "when the first new token is on the host), tpot_ms = (latency - TTFT) / (output_tokens - 1) in integer "
           "ns as LoadGen divides it; LoadGen's percentiles and early stopping (validity) are on TTFT and TPOT; "
           "early_stopping_latency_ms (request latency) is recomputed from the trace, LoadGen states none")

    def _result(
        self,
        scenario: SingleStreamScenario,
        ctx: RunContext,
        latencies_ms: list[float],
        issued_s: list[float],
        indices: list[int],
        cut_short: bool,
        memory: dict[str, Any],
    ) -> ScenarioResult:
        stats = LatencyStats.from_values(latencies_ms)
        ordered = sorted(latencies_ms)
        es = early_stopping_estimate(ordered, scenario.target_percentile)
        n = stats.n
        final_issue = issued_s[-1]
        duration_ok = final_issue >= scenario.min_duration_s
        queries_ok = n >= scenario.min_query_count
        recs: list[str] = []
        if not duration_ok:
            recs.append(
                f"final query issued at {final_issue:.2f} s < min_duration_s {scenario.min_duration_s:g}"
                + (" (stopped by max_duration_s; raise it)" if cut_short else "")
            )
        if not queries_ok:
            recs.append(f"{n} queries < min_query_count {scenario.min_query_count}; run {scenario.min_query_count - n} more")
        if not es.satisfied:
            recs.append(es.recommendation + "; raise min_query_count or min_duration_s")
        if scenario.reduced:
            recs.append("reduced settings: below LoadGen's defaults (min_duration_s 10, min_query_count 100)")
        validity = Validity.decide(
            min_duration_satisfied=duration_ok,
            min_queries_satisfied=queries_ok,
            early_stopping_satisfied=es.satisfied,
            reduced_settings=scenario.reduced,
            recommendations=recs,
        )
        qps_without_overhead = 1e3 / stats.mean_ms
        metrics: dict[str, Any] = {
            "queries": n,
            "duration_s": final_issue + latencies_ms[-1] / 1e3,
            "final_query_issued_s": final_issue,
            "latency_ms": stats.to_dict(),
            "target_percentile": scenario.target_percentile,
            "target_latency_ms": percentile(ordered, scenario.target_percentile),
            "early_stopping_latency_ms": es.estimate_ms,
            "early_stopping": {
                "confidence": 0.99,
                "tolerance": 0.0,
                "min_queries": es.min_queries,
                "discarded_highest": es.discarded_highest,
                "estimate_index": es.estimate_index,
                "detail": es.recommendation,
            },
            # LoadGen's two QPS figures: (n - 1) / final issue time, and 1 / mean latency.
            "qps_with_overhead": (n - 1) / final_issue if n > 1 and final_issue > 0 else None,
            "qps_without_overhead": qps_without_overhead,
            **ctx.compute_metrics(qps_without_overhead, indices),
        }
        return ScenarioResult(
            name=scenario.name or self.kind,
            kind=self.kind,
            candidate=ctx.candidate.name,
            settings={**scenario.model_dump(), "batch_size": 1, "seed": ctx.perf_set.seed,
                      "lengths": ctx.perf_set.lengths},
            metrics=metrics,
            validity=validity,
            memory=memory,
            raw={"latencies_ms": latencies_ms, "issued_s": issued_s, "sample_indices": indices},
        )

