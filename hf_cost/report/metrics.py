"""Typed metrics of the measuring kinds: one pydantic model per kind, units in field names.

Reports and comparisons read these fields; nothing parses a key name. A figure that can be
optimised says which way is better in its schema (`json_schema_extra={"higher_is_better": ...}`),
so checkpoint selection can read the direction from the schema instead of guessing it.
Building steps (fine_tune, distill, variants) keep their own figures in a plain mapping.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class _Metrics(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _better(higher: bool, description: str, **bounds: Any) -> Any:
    return Field(description=description, json_schema_extra={"higher_is_better": higher}, **bounds)


# Ranges every producer satisfies (a share, a time, a count), stated so that a results file from
# elsewhere with an accuracy of 1e308 or a negative latency is refused when read, not plotted.
Share = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]
Parameters = Annotated[int, Field(ge=0, lt=10**13, description="a model's parameter count (ten trillion at most)")]


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


class ComputeRate(_Metrics):
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


class OfflineMetrics(ComputeRate):
    samples: int
    batches: int
    duration_s: float
    throughput_samples_per_s: NonNegative = _better(True, "samples / (last completion - issue)")
    throughput_tokens_per_s: NonNegative = _better(True, "throughput_samples_per_s x sequence length (padded)")
    batch_latency_ms: LatencySummary


class ScoredMetric(_Metrics):
    """A share (accuracy, F1, precision, recall) with its bootstrap CI: every figure in [0, 1]."""

    value: Share
    ci_low: Share
    ci_high: Share
    ci_level: Share
    n: Count
    method: str


class AccuracyMetrics(_Metrics):
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


class CompareMetrics(_Metrics):
    mode: str
    reference: str
    rounds: int
    round_figure: str = Field(description="what per_round holds: p50_latency_ms or throughput_samples_per_s")
    per_round: list[float]
    latency_ms: LatencySummary = Field(description="over every query (or batch) of every round")
    speedup_vs_reference: Speedup | None = Field(description="None for the reference itself")
