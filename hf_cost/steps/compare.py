"""compare: candidates timed side by side in alternating rounds, speed-ups with a 95 % CI.

Each round runs every candidate once for `round_duration_s`, in counterbalanced order
(A, B, C / C, B, A / ...; measure/interleave.py explains why). A round's figure is its p50
latency (single_stream mode, one sample per query, closed loop) or its throughput (offline
mode, batches of `batch_size` back to back). The speed-up of a candidate over the reference
is the geometric mean of the per-round ratios, with a Student-t CI on their logs; raw
latencies are kept with the round they belong to, so every figure can be recomputed.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

from hf_cost.config.schema import CompareScenario
from hf_cost.core.metrics import CompareMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.errors import UserError
from hf_cost.measure.interleave import RatioSummary, round_orders
from hf_cost.measure.latency import LatencyStats, percentile
from hf_cost.measure.timing import Query, StopRule, Timings, one_sample_queries, run_queries
from hf_cost.models.context import RunContext
from hf_cost.steps.base import MeasureStep


class CompareRunner(MeasureStep):
    kind = "compare"
    config = CompareScenario
    metrics = CompareMetrics
    together = True  # gets every candidate at once (run_many), not one at a time
    serves_lms = True  # a causal LM's query is a `generate` call (a request), its new tokens kept raw

    def run(self, scenario: Any, ctx: RunContext) -> list[ScenarioResult]:
        raise UserError("compare measures several candidates at once", where=f"{ctx.where}.candidates")

    def run_many(self, scenario: CompareScenario, contexts: list[RunContext]) -> list[ScenarioResult]:
        names = [c.candidate.name for c in contexts]
        where = contexts[0].where if contexts else "scenarios"
        if len(contexts) < 2:
            raise UserError(f"compare needs at least 2 candidates, got {names}", where=f"{where}.candidates")
        reference = scenario.reference or names[0]
        if reference not in names:
            raise UserError(f"reference '{reference}' is not among {names}", where=f"{where}.reference")
        by_name = {c.candidate.name: c for c in contexts}
        progress = contexts[0].progress
        progress.say(
            f"[{scenario.name}] {scenario.mode} rounds: {scenario.rounds} x {len(names)} candidates x "
            f"{scenario.round_duration_s:g} s, reference {reference}"
        )
        for ctx in contexts:  # warm-up, outside every round
            _single_stream_round(ctx, 0.0, scenario.warmup_queries, random.Random(0))
        rngs = {n: random.Random(by_name[n].perf_set.seed) for n in names}
        raw: dict[str, dict[str, list[Any]]] = {n: {"values": [], "round": [], "sizes": [], "tokens": []}
                                                for n in names}
        per_round: dict[str, list[float]] = {n: [] for n in names}
        for k, order in enumerate(round_orders(names, scenario.rounds)):
            for name in order:
                ctx = by_name[name]
                if scenario.mode == "single_stream":
                    t, tokens = _single_stream_round(ctx, scenario.round_duration_s, 1, rngs[name])
                    figure = percentile(sorted(t.latency_ms), 0.5)
                else:
                    t, tokens = _offline_round(ctx, scenario.round_duration_s, scenario.batch_size, rngs[name])
                    figure = sum(t.batch_sizes) / (sum(t.latency_ms) / 1e3)
                values, sizes = t.latency_ms, t.batch_sizes
                raw[name]["tokens"] += tokens
                per_round[name].append(figure)
                raw[name]["values"] += values
                raw[name]["round"] += [k] * len(values)
                raw[name]["sizes"] += sizes
            progress.say(f"[{scenario.name}] round {k + 1}/{scenario.rounds}: " + ", ".join(
                f"{n} {per_round[n][-1]:.2f}" for n in names))
        lengths = contexts[0].perf_set.lengths  # one inputs block: every candidate's set has the same mode
        return [self._result(scenario, n, reference, per_round, raw[n], lengths) for n in names]

    def _result(self, scenario: CompareScenario, name: str, reference: str,
                per_round: dict[str, list[float]], raw: dict[str, list[Any]], lengths: str) -> ScenarioResult:
        higher = scenario.mode == "offline"
        speedup = None
        if name != reference:
            speedup = RatioSummary.from_rounds(
                per_round[name], per_round[reference], higher_is_better=higher
            ).to_dict()
        stats = LatencyStats.from_values(raw["values"]).to_dict()
        unit = "throughput_samples_per_s" if higher else "p50_latency_ms"
        notes = [f"per-round figure: {unit.replace('_', ' ')}; rounds in ABBA order; speed-up > 1 means "
                 f"faster than {reference}; CI: Student t on per-round log ratios (measure/interleave.py)"]
        extra: dict[str, list[Any]] = {}
        if raw["tokens"]:  # a causal LM: each query a generate call, its new tokens (all rows) kept
            extra["output_tokens"] = raw["tokens"]
            notes.append(f"a causal LM: each query is a whole request (generate to EOS or max_new_tokens); "
                         f"{sum(raw['tokens']) / len(raw['tokens']):.2f} new tokens per query on average "
                         "(raw.output_tokens), so a candidate that answers longer is slower per request")
        return ScenarioResult(
            name=scenario.name or self.kind,
            kind=self.kind,
            candidate=name,
            settings={**scenario.model_dump(), "reference": reference, "lengths": lengths},
            metrics={
                "mode": scenario.mode, "reference": reference, "rounds": scenario.rounds,
                "round_figure": unit, "per_round": per_round[name],
                "latency_ms": stats, "speedup_vs_reference": speedup,
            },
            raw={"latencies_ms": raw["values"], "round_index": raw["round"], "batch_sizes": raw["sizes"], **extra},
            notes=notes,
        )


def _single_stream_round(ctx: RunContext, duration_s: float, min_queries: int,
                         rng: random.Random) -> tuple[Timings, list[int]]:
    """Closed loop, one sample per query, until ``duration_s`` has passed and ``min_queries`` ran."""
    cand, pset = ctx.candidate, ctx.perf_set
    samples = [pset.one(i) for i in range(pset.num_samples)]  # views, prepared before the round's clock
    queries = one_sample_queries(len(samples), samples.__getitem__, rng)
    rule = StopRule(min_duration_s=duration_s, min_count=min_queries, min_duration_by="last_completion")
    return _timed(cand, queries, rule)


def _offline_round(ctx: RunContext, duration_s: float, batch_size: int,
                   rng: random.Random) -> tuple[Timings, list[int]]:
    """Batches of ``batch_size`` back to back until ``duration_s`` has passed (at least one)."""
    import torch

    cand, pset = ctx.candidate, ctx.perf_set

    def batches() -> Iterator[Query]:
        while True:
            idx = torch.tensor([rng.randrange(pset.num_samples) for _ in range(batch_size)], device=cand.device)
            yield Query(idx, pset.batch(idx))

    rule = StopRule(min_duration_s=duration_s, min_count=1, min_duration_by="last_completion")
    return _timed(cand, batches(), rule)


def _timed(cand: Any, queries: Iterator[Query], rule: StopRule) -> tuple[Timings, list[int]]:
    """The queries run through ``cand.forward``, or, for a causal LM, ``cand.generate`` (a whole
    request); with a causal LM's new tokens per query (all rows), else []."""
    if not getattr(cand, "generates", False):
        return run_queries(cand.forward, cand.synchronize, queries, rule), []
    tokens: list[int] = []

    def request(batch: Any) -> Any:
        out = cand.generate(batch)
        tokens.append(sum(out.output_tokens))
        return out

    timings = run_queries(request, cand.synchronize, queries, rule)
    if len(tokens) != len(timings.latency_ms):
        raise RuntimeError(f"compare: {len(tokens)} generate calls for {len(timings.latency_ms)} timed queries")
    return timings, tokens
