"""Typed metrics of the measuring kinds: one pydantic model per kind, units in field names.

Reports and comparisons read these fields; nothing parses a key name. A figure that can be
optimised says which way is better in its schema (`json_schema_extra={"higher_is_better": ...}`),
so checkpoint selection can read the direction from the schema instead of guessing it.
Each model implements the hooks of core/results.KindMetrics that its figures answer (its row
cells, latency, rate, quality, speed-up), so no reader asks which kind a result is.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

from pydantic import Field

from hf_cost.core.bounds import Count, NonNegative, Out, Share
from hf_cost.core.bounds import better as _better
from hf_cost.core.format import dropped, fmt, percentile_key
from hf_cost.core.results import (
    Compute,
    KindMetrics,
    Latency,
    QualityFigure,
    ScenarioResult,
    ServingRate,
    SummaryCells,
    TokenFigures,
)

_Metrics = Out  # sub-models of a kind's figures


class LatencySummary(_Metrics):
    """Summary of raw latencies; percentiles are LoadGen's sorted[int(n*p)]."""

    n: Count
    mean_ms: NonNegative
    stdev_ms: NonNegative | None = Field(description="sample standard deviation; None for one sample")
    min_ms: NonNegative
    max_ms: NonNegative
    percentiles_ms: dict[str, NonNegative] = Field(description="'p50', 'p90', 'p95', 'p97', 'p99', 'p99.9'")


class EarlyStopping(_Metrics):
    confidence: float
    tolerance: float
    min_queries: int
    discarded_highest: int | None
    estimate_index: int | None
    detail: str


class OutputTokens(_Metrics):
    total: Count
    mean: NonNegative
    min: Count
    max: Count


class TokenLatencies(_Metrics):
    """A causal LM's request, token by token (raw: ttft_ms, tpot_ms, output_tokens per query)."""

    ttft_ms: LatencySummary = Field(description="time to first token: the request's issue to its first new token")
    tpot_ms: LatencySummary | None = Field(
        description="time per output token after the first: (last token - first token) / (tokens - 1), over "
        "requests with >= 2 new tokens; None when every answer had one token"
    )
    ttft_early_stopping_ms: NonNegative | None = _better(
        False, "MLPerf early-stopping estimate of TTFT at target_percentile; None when too few queries")
    tpot_early_stopping_ms: NonNegative | None = _better(
        False, "MLPerf early-stopping estimate of TPOT at target_percentile; None when too few requests")
    output_tokens: OutputTokens = Field(description="new tokens per request, EOS included when emitted")
    output_tokens_per_s: NonNegative = _better(True, "new tokens / the sum of request latencies")
    prompt_tokens_mean: NonNegative


class ComputeRate(KindMetrics):
    achieved_gflops_per_s: float | None = _better(True, "measured FLOPs per sample x the rate")
    mfu: float | None = _better(True, "achieved / peak FLOP/s; None when the peak is unknown")


class SingleStreamMetrics(ComputeRate):
    queries: int
    duration_s: float
    final_query_issued_s: float
    latency_ms: LatencySummary
    target_percentile: float
    target_latency_ms: NonNegative = _better(False, "latency at target_percentile over the measured queries")
    early_stopping_latency_ms: NonNegative | None = _better(
        False, "MLPerf early-stopping estimate of the target percentile; None when too few queries"
    )
    early_stopping: EarlyStopping
    qps_with_overhead: float | None = _better(True, "(n - 1) / final issue time (LoadGen)")
    qps_without_overhead: float = _better(True, "1 / mean latency (LoadGen)")
    tokens: TokenLatencies | None = Field(
        None, description="a causal LM's token latencies (latency_ms is then each request end to end); None for "
        "encoders and older files")

    energy_rank: ClassVar[int | None] = 1

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        lat = self.latency_ms
        pct = lat.percentiles_ms
        headline = (
            f"p50 {fmt(pct['p50'])} ms · p90 {fmt(pct['p90'])} ms · p99 {fmt(pct['p99'])} ms · "
            f"ES {percentile_key(self.target_percentile)} {fmt(self.early_stopping_latency_ms)} ms"
        )
        spread = f"mean {fmt(lat.mean_ms)} ± {fmt(lat.stdev_ms)} ms (sd), min {fmt(lat.min_ms)}, max {fmt(lat.max_ms)}"
        t = self.tokens
        if t is not None:
            tpot = "n/a" if t.tpot_ms is None else fmt(t.tpot_ms.percentiles_ms["p50"])
            headline = (f"request p50 {fmt(pct['p50'])} ms · TTFT p50 {fmt(t.ttft_ms.percentiles_ms['p50'])} ms · "
                        f"TPOT p50 {tpot} ms · {fmt(t.output_tokens_per_s, digits=1)} tokens/s")
            spread += f"; {fmt(t.output_tokens.mean, digits=1)} new tokens per request (max {t.output_tokens.max})"
        return SummaryCells(n=f"{self.queries} queries", headline=headline, spread=spread)

    def compute(self) -> Compute | None:
        if self.achieved_gflops_per_s is None:
            return None
        return Compute(self.achieved_gflops_per_s, self.mfu, f"1 / mean latency over {self.queries} queries")

    def latency(self) -> Latency:
        pct = self.latency_ms.percentiles_ms
        t, tokens = self.tokens, None
        if t is not None:
            tpot = t.tpot_ms.percentiles_ms if t.tpot_ms is not None else None
            tokens = TokenFigures(ttft_p50_ms=t.ttft_ms.percentiles_ms["p50"], ttft_p90_ms=t.ttft_ms.percentiles_ms["p90"],
                                  tpot_p50_ms=None if tpot is None else tpot["p50"],
                                  tpot_p90_ms=None if tpot is None else tpot["p90"],
                                  output_tokens_per_s=t.output_tokens_per_s, output_tokens_mean=t.output_tokens.mean)
        return Latency(p50_ms=pct["p50"], p90_ms=pct["p90"], queries=self.queries, tokens=tokens)

    def token_samples(self, result: ScenarioResult) -> dict[str, list[float]] | None:
        if self.tokens is None:
            return None
        return {"ttft_ms": list(result.raw["ttft_ms"]),
                "tpot_ms": [x for x in result.raw["tpot_ms"] if x is not None]}

    def inferences(self) -> int:
        return self.queries

    def latency_samples(self, result: ScenarioResult) -> list[float]:
        return result.raw["latencies_ms"]

    def check_raw(self, raw: dict[str, list[Any]]) -> str | None:
        """Selection bootstraps the percentiles' CIs from the raw latencies: a non-empty list of
        finite numbers >= 0."""
        lat = raw.get("latencies_ms")
        if not isinstance(lat, list) or not lat:
            return "latencies_ms: a measured single_stream needs its raw latencies (a non-empty list)"
        keys = ["latencies_ms"] + (["ttft_ms", "tpot_ms"] if self.tokens is not None else [])
        for key in keys:  # a causal LM's token latencies are bootstrapped too (None: a one-token answer)
            values = raw.get(key)
            if not isinstance(values, list) or len(values) != len(lat):
                return f"{key}: a causal LM's single_stream needs one value per query ({len(lat)})"
            bad = next((j for j, x in enumerate(values) if not (key == "tpot_ms" and x is None) and (
                isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0)), None)
            if bad is not None:
                shown = json.dumps(values[bad])
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                return f"{key}[{bad}]: {shown} is not a latency (a number >= 0)"
        return None


class OfflineMetrics(ComputeRate):
    samples: int
    batches: int
    duration_s: float
    throughput_samples_per_s: NonNegative = _better(True, "samples / (last completion - issue)")
    throughput_tokens_per_s: NonNegative = _better(
        True, "natural lengths: real tokens (each sample's own length, no padding) / duration; fixed "
        "lengths (and files before natural lengths): throughput_samples_per_s x sequence length (padded)"
    )
    throughput_padded_tokens_per_s: NonNegative | None = Field(
        None, description="tokens the model ran per second, padding included (each batch x its padded "
        "width: its longest member when natural, sequence_length when fixed); None in older files"
    )
    padded_token_share: Share | None = Field(
        None, description="padded tokens / tokens in the batches this run ran (raw.batch_tokens, "
        "raw.batch_real_tokens); None in older files"
    )
    batch_latency_ms: LatencySummary
    output_tokens: Count | None = Field(None, description="a causal LM: new tokens generated; None for encoders")
    output_tokens_per_s: NonNegative | None = _better(True, "a causal LM: new tokens / duration", default=None)
    total_tokens_per_s: NonNegative | None = _better(
        True, "a causal LM: (prompt real tokens + new tokens) / duration", default=None)
    decode_padded_share: Share | None = Field(
        None, description="a causal LM: decode slots spent on rows whose answer had ended (raw.batch_output_tokens, "
        "raw.batch_decode_steps)")

    energy_rank: ClassVar[int | None] = 0

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        lat = self.batch_latency_ms
        spread = (
            f"batch p50 {fmt(lat.percentiles_ms['p50'])} ms, p90 {fmt(lat.percentiles_ms['p90'])} ms, "
            f"sd {fmt(lat.stdev_ms)} ms over {self.batches} batches; {fmt(self.duration_s, ' s', 1)}"
        )
        headline = f"{fmt(self.throughput_samples_per_s, digits=1)} samples/s"
        if self.output_tokens_per_s is not None:
            headline += f" · {fmt(self.output_tokens_per_s, digits=1)} output tokens/s"
        return SummaryCells(n=f"{self.samples} samples", headline=headline, spread=spread)

    def compute(self) -> Compute | None:
        if self.achieved_gflops_per_s is None:
            return None
        return Compute(self.achieved_gflops_per_s, self.mfu,
                       f"throughput over {self.samples} samples, {self.duration_s:.1f} s")

    def serving_rate(self, result: ScenarioResult) -> ServingRate:
        return ServingRate(samples_per_s=self.throughput_samples_per_s,
                           batch_size=int(result.settings["batch_size"]), samples=self.samples,
                           output_tokens_per_s=self.output_tokens_per_s)

    def inferences(self) -> int:
        return self.samples


class ScoredMetric(_Metrics):
    """A share (accuracy, F1, precision, recall) with its bootstrap CI: every figure in [0, 1]."""

    value: Share
    ci_low: Share
    ci_high: Share
    ci_level: Share
    n: Count
    method: str


class AnswerFigures(_Metrics):
    """A causal LM scored by generation: its answers parsed to labels (raw.answers, raw.parsed)."""

    exact_match: ScoredMetric = _better(True, "parsed label == reference (bundled evaluate exact_match), bootstrap CI")
    unparseable: Count = Field(description="answers that named no label (scored wrong)")
    unparseable_share: Share = _better(False, "unparseable / n")
    parser: str = Field(description="how an answer becomes a label")
    prompt: str
    chat_template: bool
    new_tokens_mean: NonNegative


class AccuracyMetrics(KindMetrics):
    n: Count
    accuracy: ScoredMetric = _better(True, "share of samples predicted right, with a bootstrap CI")
    f1_macro: ScoredMetric = _better(True, "macro-averaged F1, with a bootstrap CI")
    precision_macro: ScoredMetric = _better(True, "macro-averaged precision")
    recall_macro: ScoredMetric = _better(True, "macro-averaged recall")
    per_class: dict[str, dict[str, float]] = Field(description="label -> precision, recall, f1, support")
    extra_metrics: dict[str, Any] = Field(default_factory=dict, description="extra evaluate metrics, as returned")
    duration_s: NonNegative
    throughput_samples_per_s: NonNegative
    dropped_rows: dict[str, int] = Field(default_factory=dict, description="column -> rows with an empty cell")
    answers: AnswerFigures | None = Field(None, description="a causal LM zero-shot by generation; None otherwise")

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        acc, f1 = self.accuracy, self.f1_macro
        unparsed = "" if self.answers is None else f" · {self.answers.unparseable_share:.1%} unparseable"
        return SummaryCells(
            n=f"{self.n} samples" + dropped(self.dropped_rows),
            headline=f"accuracy {acc.value:.4f} · macro-F1 {f1.value:.4f}{unparsed}",
            spread=f"95% CI accuracy [{acc.ci_low:.4f}, {acc.ci_high:.4f}], "
            f"F1 [{f1.ci_low:.4f}, {f1.ci_high:.4f}] (bootstrap)",
        )

    def answer_figures(self) -> AnswerFigures | None:
        return self.answers

    def quality(self, result: ScenarioResult) -> list[QualityFigure]:
        seed = int(result.settings.get("dataset", {}).get("seed", 0))
        return [QualityFigure(cell=result.name, accuracy=self.accuracy, predictions=result.raw["predictions"],
                              references=result.raw["references"], rows=None, seed=seed)]


class Speedup(_Metrics):
    """measure/interleave.RatioSummary: > 1 means faster than the reference."""

    ratio_geomean: float = _better(True, "geometric mean of the per-round speed-ups")
    ci_low: float | None
    ci_high: float | None
    ci_level: float
    rounds: int
    per_round: list[float]
    ratio_median: float
    ratio_min: float
    ratio_max: float
    raw_ratio_geomean: float = Field(description="subject / reference as measured (not oriented)")
    higher_is_better: bool
    orientation: str
    method: str


class CompareMetrics(KindMetrics):
    mode: str
    reference: str
    rounds: int
    round_figure: str = Field(description="what per_round holds: p50_latency_ms or throughput_samples_per_s")
    per_round: list[float]
    latency_ms: LatencySummary = Field(description="over every query (or batch) of every round")
    speedup_vs_reference: Speedup | None = Field(description="None for the reference itself")

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        single = self.mode == "single_stream"
        s = self.speedup_vs_reference
        headline = f"reference ({self.reference})" if s is None else (
            f"speed-up {s.ratio_geomean:.2f}x vs {self.reference}"
            + ("" if s.ci_low is None else f" (95% CI {s.ci_low:.2f}–{s.ci_high:.2f})")
        )
        spread = (f"per-round {'p50' if single else 'throughput'} {min(self.per_round):.2f}–{max(self.per_round):.2f}"
                  f"{' ms' if single else ' samples/s'} over {self.rounds} rounds")
        return SummaryCells(n=f"{self.latency_ms.n} {'queries' if single else 'batches'}, {self.rounds} rounds",
                            headline=headline, spread=spread)

    def speedup(self, result: ScenarioResult) -> dict[str, Any] | None:
        s = self.speedup_vs_reference
        if s is None:
            return None
        return {"scenario": result.name, "mode": self.mode, "reference": self.reference, "ratio": s.ratio_geomean,
                "ci_low": s.ci_low, "ci_high": s.ci_high, "rounds": s.rounds}
