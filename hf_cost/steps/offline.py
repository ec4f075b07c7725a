"""MLPerf offline: every sample issued at once as one query; the runner batches them."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterator

from hf_cost.config.schema import OfflineScenario
from hf_cost.core.metrics import OfflineMetrics
from hf_cost.core.results import ScenarioResult, Validity
from hf_cost.errors import UserError
from hf_cost.measure.latency import LatencyStats
from hf_cost.measure.timing import Query, StopRule, run_queries
from hf_cost.models.context import RunContext
from hf_cost.steps.base import MeasureStep, Plan
from hf_cost.steps.loadgen_logs import log_outputs, log_root, relative_log_dir, require_loadgen

# LoadGen sizes the offline query from an expected QPS; we calibrate it during
# warm-up and add this margin so the run reaches min_duration_s despite noise.
DURATION_MARGIN = 1.25
CALIBRATION_S = 1.0
MAX_CALIBRATION_BATCHES = 50
LOADGEN_OFFLINE_MARGIN = 1.1  # LoadGen's own: samples = expected QPS x min duration x 1.1


class OfflineRunner(MeasureStep):
    kind = "offline"
    config = OfflineScenario
    metrics = OfflineMetrics

    def outputs(self, cfg: OfflineScenario) -> list[str]:
        return log_outputs(cfg) if cfg.engine == "loadgen" else []

    serves_lms = True

    def check(self, cfg: OfflineScenario, plan: Plan, where: str) -> None:
        if cfg.engine == "loadgen":
            if plan.suite.model.generative:
                from hf_cost.engines.token_stream import check_two_new_tokens

                check_two_new_tokens(plan.suite.generation, "Offline")
            require_loadgen(f"{where}.engine")
        if cfg.bucket_by_length and plan.suite.inputs.lengths != "natural":
            raise UserError("bucket_by_length sorts samples by their own lengths, but inputs.lengths is "
                            f"{plan.suite.inputs.lengths}: every sample has sequence_length tokens; use natural "
                            "lengths (dataset inputs) or drop it", where=f"{where}.bucket_by_length")

    def run(self, scenario: OfflineScenario, ctx: RunContext) -> list[ScenarioResult]:
        return [self._one_batch_size(scenario, bs, ctx) for bs in scenario.batch_sizes]

    def _one_batch_size(self, scenario: OfflineScenario, bs: int, ctx: RunContext) -> ScenarioResult:
        import torch

        cand, pset = ctx.candidate, ctx.perf_set
        name = f"{scenario.name}[bs={bs}]"
        generator = torch.Generator().manual_seed(pset.seed + bs)
        device = cand.device

        def draw(count: int) -> Any:
            return torch.randint(pset.num_samples, (count,), generator=generator).to(device)

        # Warm-up doubles as calibration of the expected rate: at least `warmup_batches`
        # batches and CALIBRATION_S seconds. The first batch of a new shape pays one-off
        # costs, so the rate comes from the median of the others.
        warm = max(1, scenario.warmup_batches)
        ctx.progress.say(f"[{name}] warm-up/calibration: >= {warm} batch(es) and {CALIBRATION_S:g} s")

        def calibration_batches() -> Iterator[Query]:
            while True:
                ix = draw(bs)
                yield Query(ix, pset.batch(ix))

        call = cand.generate if getattr(cand, "generates", False) else cand.forward  # an LM's sample: a generation
        calibration = run_queries(
            call, cand.synchronize, calibration_batches(),
            StopRule(
                min_duration_s=CALIBRATION_S, min_count=warm, min_duration_by="last_completion",
                max_count=max(warm, MAX_CALIBRATION_BATCHES),
            ),
        )
        warm_times = [ms / 1e3 for ms in calibration.latency_ms]
        steady = warm_times[1:] or warm_times
        expected_qps = bs / statistics.median(steady)
        count = max(
            scenario.min_sample_count,
            math.ceil(expected_qps * scenario.min_duration_s * DURATION_MARGIN),
        )
        indices = draw(count)
        if scenario.bucket_by_length:
            indices = indices[bucket_order(indices.tolist(), pset.token_counts())]
        ctx.progress.reset()
        if scenario.engine == "loadgen":
            m = self._on_loadgen(scenario, ctx, name, bs, count, expected_qps)
        else:
            m = self._on_loop(scenario, ctx, name, bs, indices, count, expected_qps)
        batch_ms, completed_s, ran, duration, throughput = (m.batch_ms, m.completed_s, m.ran, m.duration,
                                                            m.throughput)
        count = m.samples
        # tokens of each batch, read after the clock stopped: real (its samples' own lengths) and
        # run (rows x the width it was padded to: its longest member, or sequence_length when fixed)
        real_tokens, run_tokens = (list(c) for c in zip(*(pset.tokens(ix) for ix in ran)))
        tokens_per_s = (
            sum(real_tokens) / duration if pset.natural else throughput * pset.sequence_length
        )
        if m.validity is not None:
            validity = m.validity
        else:
            duration_ok = duration >= scenario.min_duration_s
            samples_ok = count >= scenario.min_sample_count
            recs = []
            if not duration_ok:
                recs.append(
                    f"ran {duration:.2f} s < min_duration_s {scenario.min_duration_s:g}: calibration "
                    f"over-estimated the rate; raise min_sample_count or warmup_batches"
                )
            if scenario.reduced:
                recs.append("reduced settings: below LoadGen's defaults (min_duration_s 10, min_sample_count 100)")
            validity = Validity.decide(
                min_duration_satisfied=duration_ok,
                min_queries_satisfied=samples_ok,
                early_stopping_satisfied=None,
                reduced_settings=scenario.reduced,
                recommendations=recs,
            )
        settings = scenario.model_dump()
        settings.update(batch_size=bs, seed=pset.seed + bs, expected_qps=expected_qps, lengths=pset.lengths,
                        **m.settings)
        lm: dict[str, Any] = {}
        if m.generated is not None:
            lm = generation_figures(m.generated, real_tokens, duration, ran)
            settings["generation"] = ctx.suite.generation.model_dump() if ctx.suite is not None else None
            if m.tokens_per_s is not None:  # LoadGen's own, the same quotient (its token count / its duration)
                lm["metrics"]["output_tokens_per_s"] = m.tokens_per_s
                lm["notes"].append("output_tokens_per_s: LoadGen's result_tokens_per_second (the n_tokens each "
                                   "sample was completed with / the longest sample latency)")
        return ScenarioResult(
            name=name,
            kind=self.kind,
            candidate=ctx.candidate.name,
            settings=settings,
            metrics={
                "samples": count,
                "batches": len(ran),
                "duration_s": duration,
                "throughput_samples_per_s": throughput,
                "throughput_tokens_per_s": tokens_per_s,
                "throughput_padded_tokens_per_s": sum(run_tokens) / duration,
                "padded_token_share": (sum(run_tokens) - sum(real_tokens)) / sum(run_tokens),
                "batch_latency_ms": LatencyStats.from_values(batch_ms).to_dict(),
                **ctx.compute_metrics(throughput, [i for ix in ran for i in ix]),
                **lm.get("metrics", {}),
            },
            validity=validity,
            memory=m.memory,
            raw={
                "batch_latencies_ms": batch_ms,
                "batch_completed_s": completed_s,
                "batch_sizes": [len(ix) for ix in ran],
                "warmup_batch_s": warm_times,
                "batch_tokens": run_tokens,
                "batch_real_tokens": real_tokens,
                **lm.get("raw", {}),
            },
            notes=m.notes + [
                ("tokens/s = real tokens (each sample's own length; raw.batch_real_tokens) / duration; "
                 "each batch ran padded to its longest member (raw.batch_tokens)") if pset.natural else
                "tokens/s = samples/s x sequence_length (every sample padded to it; raw.batch_tokens)",
                "padded_token_share = 1 - sum(batch_real_tokens) / sum(batch_tokens)",
            ] + (["bucket_by_length: the issued samples sorted by token count (stable) before being cut into "
                  "batches"] if scenario.bucket_by_length else []) + lm.get("notes", []),
        )

    def _on_loop(self, scenario: OfflineScenario, ctx: RunContext, name: str, bs: int, indices: Any, count: int,
                 expected_qps: float) -> _Measured:
        cand, pset = ctx.candidate, ctx.perf_set
        queries = [Query(ix, pset.batch(ix)) for ix in (indices[i : i + bs] for i in range(0, count, bs))]
        ctx.progress.say(
            f"[{name}] issuing {count} samples as one query "
            f"(expected {expected_qps:.1f} samples/s from calibration)"
        )
        lm = getattr(cand, "generates", False)
        generated: list[Any] | None = [] if lm else None
        sink = ctx.output_sink
        if generated is not None:
            def sink(ix: Any, out: Any, outer: Any = ctx.output_sink) -> None:
                generated.append(out)
                if outer is not None:
                    outer(ix, out)
        with ctx.memory() as memory:
            t = run_queries(
                cand.generate if lm else cand.forward, cand.synchronize, queries, sink=sink,
                on_query=lambda so_far: ctx.progress.tick(
                    lambda: f"{so_far.count * bs}/{count} samples, {so_far.completed_s[-1]:.1f} s"
                ),
            )
        duration = t.completed_s[-1]
        return _Measured(
            batch_ms=t.latency_ms, completed_s=t.completed_s, ran=[ix.tolist() for ix in t.indices],
            duration=duration, throughput=count / duration, samples=count, memory=memory.to_dict(),
            notes=["throughput = samples / (last completion - issue); see raw.batch_completed_s"],
            generated=generated,
        )

    def _on_loadgen(self, scenario: OfflineScenario, ctx: RunContext, name: str, bs: int, count: int,
                    expected_qps: float) -> _Measured:
        """LoadGen's Offline: it sizes and issues the one query (its own sample order), the SUT
        cuts it into batches; throughput and validity are LoadGen's."""
        from hf_cost.engines.loadgen import TestPlan, run_offline
        from hf_cost.engines.token_stream import run_token_offline

        # LoadGen issues max(min_query_count, offline_expected_qps x min_duration x 1.1) samples: the
        # expected rate passed on is scaled so that it issues the loop engine's count (DURATION_MARGIN)
        passed = expected_qps * DURATION_MARGIN / LOADGEN_OFFLINE_MARGIN
        lm = getattr(ctx.candidate, "generates", False)  # a causal LM: each sample completed with its n_tokens
        plan = TestPlan("Offline", scenario.min_duration_s, scenario.min_sample_count, expected_qps=passed,
                        token_latencies=lm)
        root = log_root(scenario, ctx)
        ctx.progress.say(f"[{name}] LoadGen Offline: about {count} samples as one query, batches of {bs}")
        with ctx.memory() as memory:
            run = (run_token_offline if lm else run_offline)(
                ctx.candidate, ctx.perf_set, plan, bs, None if root is None else root / f"bs-{bs}",
                bucket_by_length=scenario.bucket_by_length)
        f = run.figures
        samples = len(run.samples)
        duration = max(s.latency_ms for s in run.samples) / 1e3
        ok = f.validity == "VALID"
        validity = Validity(
            result=f.validity, min_duration_satisfied=f.min_duration_met, min_queries_satisfied=f.min_queries_met,
            early_stopping_satisfied=None, reduced_settings=scenario.reduced,
            recommendations=([] if ok else list(f.why)) + (
                ["reduced settings: below LoadGen's defaults (min_duration_s 10, min_sample_count 100)"]
                if scenario.reduced else []),
        )
        return _Measured(
            batch_ms=[b[1] * 1e3 for b in run.batches], completed_s=[b[2] for b in run.batches],
            ran=[b[0] for b in run.batches], duration=duration, throughput=f.samples_per_s or samples / duration,
            samples=samples, memory=memory.to_dict(), validity=validity,
            settings={"engine": "loadgen", "offline_expected_qps": passed,
                      "loadgen_log_dir": relative_log_dir(run.log_dir, ctx)},
            generated=getattr(run, "generated", None) if lm else None,
            tokens_per_s=f.tokens.tokens_per_s if lm and f.tokens is not None else None,
            notes=[f"throughput: LoadGen's result_samples_per_second ({samples} samples, one query; "
                   "duration = the last sample's latency in LoadGen's trace)",
                   f"LoadGen {f.version}, Offline, PerformanceOnly, library defaults (no mlperf.conf) except the "
                   "settings above; batch times are the SUT's own clock (raw.batch_completed_s from its first "
                   "issue call)"],
        )


@dataclass
class _Measured:
    """What one engine measured at one batch size; the result is built from it the same way."""

    batch_ms: list[float]
    completed_s: list[float]
    ran: list[list[int]]  # each batch's sample indices, in the order run
    duration: float
    throughput: float
    samples: int
    memory: dict[str, Any]
    notes: list[str]
    validity: Validity | None = None  # None: decided from the figures (loop engine)
    settings: dict[str, Any] = field(default_factory=dict)
    generated: list[Any] | None = None  # a causal LM: each batch's models.lm_candidate.Generated
    tokens_per_s: float | None = None  # a causal LM on LoadGen: its result_tokens_per_second


def generation_figures(generated: list[Any], prompt_tokens: list[int], duration: float,
                       ran: list[list[int]]) -> dict[str, Any]:
    """A causal LM's offline figures from each batch's generation: output and total tokens/s, and
    the decode steps spent on rows that had already stopped (each batch decodes until its longest
    answer ends: a shorter answer's row runs on, padded). Raw: per batch its sample indices and
    per sample (same order) its output tokens."""
    out = [sum(g.output_tokens) for g in generated]
    steps = [len(g.step_times_s) for g in generated]
    rows = [len(g.new_tokens) for g in generated]
    slots = sum(r * s for r, s in zip(rows, steps))
    return {
        "metrics": {
            "output_tokens": sum(out),
            "output_tokens_per_s": sum(out) / duration,
            "total_tokens_per_s": (sum(out) + sum(prompt_tokens)) / duration,
            "decode_padded_share": (slots - sum(out)) / slots if slots else 0.0,
        },
        "raw": {"batch_output_tokens": out, "batch_decode_steps": steps, "batch_sample_indices": ran,
                "sample_output_tokens": [n for g in generated for n in g.output_tokens]},
        "notes": ["an LM sample is one request (its prompt left-padded to the batch's longest, then decoded); "
                  "output_tokens_per_s = new tokens (EOS included) / duration; total_tokens_per_s adds the "
                  "prompts' real tokens; decode_padded_share = 1 - output tokens / (rows x decode steps) "
                  "(raw.batch_output_tokens, raw.batch_decode_steps)"],
    }


def bucket_order(indices: list[int], token_counts: list[int]) -> list[int]:
    """Positions of ``indices`` sorted by their samples' token counts, shortest first; equal counts
    keep their order (a stable sort), so the batches cut from it are reproducible."""
    return sorted(range(len(indices)), key=lambda j: token_counts[indices[j]])
