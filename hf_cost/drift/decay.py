"""Decay statistics across ordered periods, each with a joint percentile bootstrap interval.

Input per period: the per-row scores (0/1 correctness for accuracy), the period's x position, and
whether the period lies in the model's training window (in-distribution, ID). Statistics:

- per period: the mean score P(t);
- ID: the pooled mean over all rows of in-window periods (row-weighted);
- OOD average: the unweighted mean of P(t) over periods outside the window; OOD worst: their min;
- drop = ID - OOD average, worst_drop = ID - OOD worst (positive = worse out of the window);
- changes S(t) = P(t) - P(t-1) between consecutive periods;
- slope: the plain least-squares slope of P(t) on position (units: per period position).

Joint bootstrap: each resample redraws every period's rows with replacement, independently per
period (a stratified bootstrap, so each period keeps its n), and every statistic is recomputed on
the same resample; intervals are the (1 - c)/2 and (1 + c)/2 quantiles. The slope also gets the
classic OLS t-interval from the scatter of the T points around the line (df = T - 2), which
captures period-to-period wobble that row resampling alone does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# Elements of a (resamples x rows) index array drawn at once; bounds memory at ~8 MB.
_CHUNK_ELEMENTS = 1 << 20
def decay_statistics(
    scores: Sequence[Sequence[float]],
    periods: Sequence[str],
    positions: Sequence[float],
    in_window: Sequence[bool],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    metric: str = "accuracy",
) -> dict[str, Any]:
    """Per-period values, ID vs OOD drop, consecutive changes and slope, with bootstrap CIs.

    Returns ``{"metric", "method", "ci_level", "periods", "in_distribution",
    "out_of_distribution", "drop", "worst_drop", "changes", "slope"}`` (see the module docstring;
    missing sides are None). Raises ValueError on mismatched lengths, an empty period, non-finite
    scores, repeated positions or bad bootstrap arguments.
    """
    arrays, x, window = _validate(scores, periods, positions, in_window, n_resamples, confidence)
    names = [str(p) for p in periods]
    counts = np.array([len(a) for a in arrays], dtype=float)
    point = np.array([a.mean() for a in arrays])
    boot = _resample_means(arrays, n_resamples, seed)  # (B, T)
    alpha = (1.0 - confidence) / 2

    def stat(value: float, samples: np.ndarray) -> dict[str, float]:
        low, high = np.quantile(samples, [alpha, 1.0 - alpha])
        return {"value": float(value), "ci_low": float(low), "ci_high": float(high)}

    report: dict[str, Any] = {
        "metric": metric,
        "method": f"percentile bootstrap, rows resampled within each period, "
                  f"{n_resamples} resamples, seed {seed}",
        "ci_level": confidence,
        "periods": [
            {"period": names[t], "position": float(x[t]), "n": int(counts[t]),
             **stat(point[t], boot[:, t]), "in_window": bool(window[t])}
            for t in range(len(names))
        ],
    }
    ids, oods = np.flatnonzero(window), np.flatnonzero(~window)
    id_stat = ood_avg = ood_worst = None
    if ids.size:
        w = counts[ids] / counts[ids].sum()
        id_point, id_boot = float(point[ids] @ w), boot[:, ids] @ w
        id_stat = stat(id_point, id_boot)
        report["in_distribution"] = {**id_stat, "n": int(counts[ids].sum()),
                                     "periods": [names[t] for t in ids]}
    else:
        report["in_distribution"] = None
    if oods.size:
        avg_point, avg_boot = float(point[oods].mean()), boot[:, oods].mean(axis=1)
        worst_point, worst_boot = float(point[oods].min()), boot[:, oods].min(axis=1)
        ood_avg, ood_worst = stat(avg_point, avg_boot), stat(worst_point, worst_boot)
        report["out_of_distribution"] = {
            "average": {**ood_avg, "periods": [names[t] for t in oods]},
            "worst": {**ood_worst, "period": names[int(oods[np.argmin(point[oods])])]},
        }
    else:
        report["out_of_distribution"] = None
    if id_stat is not None and ood_avg is not None:
        report["drop"] = stat(id_point - avg_point, id_boot - avg_boot)
        report["worst_drop"] = stat(id_point - worst_point, id_boot - worst_boot)
    else:
        report["drop"] = report["worst_drop"] = None
    report["changes"] = [
        {"period": names[t], "previous": names[t - 1],
         **stat(point[t] - point[t - 1], boot[:, t] - boot[:, t - 1])}
        for t in range(1, len(names))
    ]
    report["slope"] = slope_with_ci(point, boot, x, confidence, stat)
    return report




def _validate(
    scores: Sequence[Sequence[float]],
    periods: Sequence[str],
    positions: Sequence[float],
    in_window: Sequence[bool],
    n_resamples: int,
    confidence: float,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    t = len(periods)
    if t < 1 or not len(scores) == len(positions) == len(in_window) == t:
        raise ValueError(
            f"need one entry per period: {len(scores)} score lists, {t} periods, "
            f"{len(positions)} positions, {len(in_window)} window flags"
        )
    if n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"bad bootstrap arguments: n_resamples={n_resamples}, "
                         f"confidence={confidence}")
    arrays = [np.asarray(s, dtype=float).ravel() for s in scores]
    for name, a in zip(periods, arrays):
        if a.size < 1:
            raise ValueError(f"period {name!r} has no rows")
        if not np.isfinite(a).all():
            raise ValueError(f"period {name!r} has a non-finite score")
    x = np.asarray(positions, dtype=float)
    if not np.isfinite(x).all() or len(set(x.tolist())) != t:
        raise ValueError(f"positions must be finite and distinct, got {x.tolist()}")
    return arrays, x, np.asarray(in_window, dtype=bool)


def _resample_means(arrays: list[np.ndarray], n_resamples: int, seed: int) -> np.ndarray:
    """(B, T) resampled means; the draws equal rng.integers(0, n_t, (B, n_t)) per period in order."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, len(arrays)))
    for t, a in enumerate(arrays):
        n = a.size
        per_chunk = max(1, _CHUNK_ELEMENTS // n)
        for start in range(0, n_resamples, per_chunk):
            b = min(per_chunk, n_resamples - start)
            out[start:start + b, t] = a[rng.integers(0, n, size=(b, n))].mean(axis=1)
    return out


def slope_with_ci(point: np.ndarray, boot: np.ndarray, x: np.ndarray, confidence: float,
                  stat: Any) -> dict[str, Any] | None:
    """Least-squares slope of ``point`` (T period values) on positions ``x``: ``stat(value,
    boot @ w)`` gives the bootstrap interval from the (B, T) resampled values, plus the OLS
    t-interval and p-value from the points' scatter around the line (T >= 3). None for T < 2."""
    t = len(point)
    if t < 2:
        return None
    centred = x - x.mean()
    sxx = float(centred @ centred)
    weights = centred / sxx  # slope = sum_t w_t P(t)
    value = float(point @ weights)
    result = {**stat(value, boot @ weights), "ols_ci_low": None, "ols_ci_high": None,
              "ols_p_value": None, "periods": t, "unit": "per period position",
              "ci_level": confidence}
    if t >= 3:
        from scipy.stats import t as student_t

        intercept = point.mean() - value * x.mean()
        residuals = point - (intercept + value * x)
        se = math.sqrt(float(residuals @ residuals) / (t - 2) / sxx)
        half = float(student_t.ppf((1.0 + confidence) / 2, t - 2)) * se
        if se > 0:
            p_value = float(2 * student_t.sf(abs(value) / se, t - 2))
        else:
            p_value = 0.0 if value != 0 else 1.0
        result.update(ols_ci_low=value - half, ols_ci_high=value + half, ols_p_value=p_value)
    return result
