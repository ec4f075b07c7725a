"""MLPerf offline: every sample issued at once as one query; the runner batches them."""

from __future__ import annotations

import math
import statistics
from typing import Any, Iterator

from hf_cost.config.schema import OfflineScenario
from hf_cost.core.metrics import OfflineMetrics
from hf_cost.core.results import ScenarioResult, Validity
from hf_cost.measure.latency import LatencyStats
from hf_cost.measure.timing import Query, StopRule, run_queries
from hf_cost.models.context import RunContext
from hf_cost.steps.base import MeasureStep

# LoadGen sizes the offline query from an expected QPS; we calibrate it during
# warm-up and add this margin so the run reaches min_duration_s despite noise.
DURATION_MARGIN = 1.25
CALIBRATION_S = 1.0
MAX_CALIBRATION_BATCHES = 50


class OfflineRunner(MeasureStep):
    kind = "offline"
    config = OfflineScenario
    metrics = OfflineMetrics

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

        calibration = run_queries(
            cand.forward, cand.synchronize, calibration_batches(),
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
        queries = [Query(ix, pset.batch(ix)) for ix in (indices[i : i + bs] for i in range(0, count, bs))]
        ctx.progress.say(
            f"[{name}] issuing {count} samples as one query "
            f"(expected {expected_qps:.1f} samples/s from calibration)"
        )
        ctx.progress.reset()
        with ctx.memory() as memory:
            t = run_queries(
                cand.forward, cand.synchronize, queries, sink=ctx.output_sink,
                on_query=lambda so_far: ctx.progress.tick(
                    lambda: f"{so_far.count * bs}/{count} samples, {so_far.completed_s[-1]:.1f} s"
                ),
            )
        batch_ms, completed_s = t.latency_ms, t.completed_s
        duration = completed_s[-1]
        throughput = count / duration
        # tokens of each batch, read after the clock stopped: real (its samples' own lengths) and
        # run (rows x the width it was padded to: its longest member, or sequence_length when fixed)
        ran = [ix.tolist() for ix in t.indices]
        real_tokens, run_tokens = (list(c) for c in zip(*(pset.tokens(ix) for ix in ran)))
        tokens_per_s = (
            sum(real_tokens) / duration if pset.natural else throughput * pset.sequence_length
        )
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
        settings.update(batch_size=bs, seed=pset.seed + bs, expected_qps=expected_qps, lengths=pset.lengths)
        return ScenarioResult(
            name=name,
            kind=self.kind,
            candidate=ctx.candidate.name,
            settings=settings,
            metrics={
                "samples": count,
                "batches": t.count,
                "duration_s": duration,
                "throughput_samples_per_s": throughput,
                "throughput_tokens_per_s": tokens_per_s,
                "throughput_padded_tokens_per_s": sum(run_tokens) / duration,
                "padded_token_share": (sum(run_tokens) - sum(real_tokens)) / sum(run_tokens),
                "batch_latency_ms": LatencyStats.from_values(batch_ms).to_dict(),
                **ctx.compute_metrics(throughput, [i for ix in ran for i in ix]),
            },
            validity=validity,
            memory=memory.to_dict(),
            raw={
                "batch_latencies_ms": batch_ms,
                "batch_completed_s": completed_s,
                "batch_sizes": t.batch_sizes,
                "warmup_batch_s": warm_times,
                "batch_tokens": run_tokens,
                "batch_real_tokens": real_tokens,
            },
            notes=[
                "throughput = samples / (last completion - issue); see raw.batch_completed_s",
                ("tokens/s = real tokens (each sample's own length; raw.batch_real_tokens) / duration; "
                 "each batch ran padded to its longest member (raw.batch_tokens)") if pset.natural else
                "tokens/s = samples/s x sequence_length (every sample padded to it; raw.batch_tokens)",
                "padded_token_share = 1 - sum(batch_real_tokens) / sum(batch_tokens)",
            ],
        )
