"""Latency statistics computed from raw per-query samples (LoadGen conventions)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from hf_cost.core.format import percentile_key

# The percentiles LoadGen reports for single-stream.
PERCENTILES = (0.50, 0.90, 0.95, 0.97, 0.99, 0.999)


def percentile(sorted_values: list[float], p: float) -> float:
    """LoadGen's percentile: ``sorted[int(n * p)]`` (0-based, no interpolation)."""
    if not sorted_values:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"percentile must be in [0, 1), got {p}")
    return sorted_values[int(len(sorted_values) * p)]


@dataclass(frozen=True)
class LatencyStats:
    n: int
    mean_ms: float
    stdev_ms: float | None  # None for a single sample
    min_ms: float
    max_ms: float
    percentiles_ms: dict[str, float]

    @classmethod
    def from_values(cls, values_ms: list[float]) -> LatencyStats:
        if not values_ms:
            raise ValueError("no latency samples")
        ordered = sorted(values_ms)
        n = len(ordered)
        return cls(
            n=n,
            mean_ms=statistics.fmean(ordered),
            stdev_ms=statistics.stdev(ordered) if n > 1 else None,
            min_ms=ordered[0],
            max_ms=ordered[-1],
            percentiles_ms={percentile_key(p): percentile(ordered, p) for p in PERCENTILES},
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
