"""MLPerf-Training olympic scoring of time-to-target over repeated runs."""

from __future__ import annotations

import math
import statistics
from typing import Any, Sequence


def olympic_score(times_s: Sequence[float | None]) -> dict[str, Any]:
    """Drop the fastest and the slowest run, average the rest.

    A run that did not converge (``None``) counts as the slowest. With three or more
    runs one non-converged run is dropped that way; more than one makes the result
    INVALID. With fewer than three runs nothing is dropped and every run must converge.
    """
    if not times_s:
        raise ValueError("no runs to score")
    n = len(times_s)
    failed = sum(t is None for t in times_s)
    ordered = sorted(math.inf if t is None else t for t in times_s)
    if n >= 3:
        kept = ordered[1:-1]
        valid = failed <= 1
        method = f"olympic: {n} runs, fastest and slowest dropped, mean of {n - 2}"
    else:
        kept = ordered
        valid = failed == 0
        method = f"mean of {n} run(s): olympic scoring needs at least 3 runs"
    score = statistics.fmean(kept) if valid and all(math.isfinite(t) for t in kept) else None
    return {
        "score_s": score,
        "valid": valid,
        "run_count": n,
        "converged_runs": n - failed,
        "kept_times_s": [t for t in kept if math.isfinite(t)],
        "method": method,
    }
