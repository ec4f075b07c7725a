"""MLPerf early-stopping estimate of a latency percentile.

Follows the MLPerf Inference rules (LoadGen ``early_stopping.cc`` / ``results.cc``):
with ``t`` queries over a latency bound and ``h`` under it, we can claim the true
``p``-percentile is within the bound at confidence ``c`` when

    P(at most t over-bound among h + t trials | over-bound rate 1 - p + d) <= 1 - c,

and that binomial tail equals the regularised incomplete beta ``I_{p-d}(h, t + 1)``.
Defaults are LoadGen's: confidence 0.99, tolerance 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from scipy.special import betainc

CONFIDENCE = 0.99
TOLERANCE = 0.0


def odds(h: int, t: int, p: float, d: float = TOLERANCE) -> float:
    """Probability of seeing at most ``t`` over-bound queries among ``h + t``."""
    return float(betainc(h, t + 1, p - d))


@lru_cache(maxsize=4096)
def min_passing_queries(t: int, p: float, d: float = TOLERANCE, c: float = CONFIDENCE) -> int:
    """Smallest ``h`` with ``odds(h, t, p, d) < 1 - c`` (LoadGen's MinPassingQueriesFinder)."""
    if not 0.0 < p < 1.0 or not 0.0 < c < 1.0 or not 0.0 <= d < p:
        raise ValueError(f"need 0 < p < 1, 0 < c < 1, 0 <= d < p; got p={p}, c={c}, d={d}")
    if t < 0:
        raise ValueError(f"t must be >= 0, got {t}")
    target = 1.0 - c
    lo = max(1, math.ceil(math.log(1 - c) / math.log(p - d)))  # h for t = 0: a lower bound
    hi = lo
    while odds(hi, t, p, d) >= target:
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if odds(mid, t, p, d) < target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def min_queries_for_estimate(p: float, d: float = TOLERANCE, c: float = CONFIDENCE) -> int:
    """Fewest queries that give any early-stopping estimate (64 for p90, 662 for p99)."""
    return min_passing_queries(1, p, d, c) + 1


@dataclass(frozen=True)
class EarlyStoppingResult:
    percentile: float
    satisfied: bool
    queries: int
    min_queries: int
    discarded_highest: int  # LoadGen's "would discard t - 1 highest latency queries"
    estimate_index: int | None  # index into the sorted latencies; None when not satisfied
    estimate_ms: float | None
    recommendation: str


def early_stopping_estimate(
    sorted_latencies_ms: list[float],
    percentile: float,
    d: float = TOLERANCE,
    c: float = CONFIDENCE,
) -> EarlyStoppingResult:
    """LoadGen's single-stream early-stopping estimate over latencies sorted ascending."""
    n = len(sorted_latencies_ms)
    need = min_queries_for_estimate(percentile, d, c)
    if n < need:
        return EarlyStoppingResult(
            percentile=percentile,
            satisfied=False,
            queries=n,
            min_queries=need,
            discarded_highest=0,
            estimate_index=None,
            estimate_ms=None,
            recommendation=(
                f"only {n} queries processed; need at least {need} for a "
                f"p{_pct(percentile)} early-stopping estimate ({need - n} more)"
            ),
        )
    # Largest t with h(t) + t <= n; h(t) + t grows with t, so bisect (LoadGen scans).
    lo, hi = 1, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if min_passing_queries(mid, percentile, d, c) + mid <= n:
            lo = mid
        else:
            hi = mid - 1
    t = lo
    index = n - t
    return EarlyStoppingResult(
        percentile=percentile,
        satisfied=True,
        queries=n,
        min_queries=need,
        discarded_highest=t - 1,
        estimate_index=index,
        estimate_ms=sorted_latencies_ms[index],
        recommendation=(
            f"processed {n} queries (>= {need}); would discard {t - 1} highest latency "
            f"queries; early-stopping p{_pct(percentile)} estimate = sorted[{index}]"
        ),
    )


def _pct(p: float) -> str:
    return f"{p * 100:g}"
