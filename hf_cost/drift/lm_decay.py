"""Decay statistics of a causal LM's perplexity across ordered periods, no labels needed.

The per-period score is the log-perplexity L(t) = sum of NLL sums / sum of predicted tokens over
the period's documents (nats per token; perplexity = exp L(t)), token-weighted exactly as
`quality.perplexity.corpus_perplexity` computes it. The reference R is the pooled log-perplexity
over every document of the reference periods (the training window, default the first period).

- per period: L(t), and the perplexity ratio exp(L(t) - L(R)) to the reference (> 1: worse);
- changes: L(t) - L(t-1) between consecutive periods;
- slope: the plain least-squares slope of L(t) on period position (nats per token per period
  position; positive = perplexity rising over time);
- first_significant_rise: the first period outside the reference whose ratio's CI lies wholly
  above 1.

Intervals: one joint percentile bootstrap over documents within periods (stratified: each
resample redraws every period's documents with replacement, so each period keeps its n, and
recomputes the token-weighted ratio; the reference is pooled from the same resampled periods),
every statistic computed on the same resamples. The slope also gets the OLS t-interval from the
scatter of the T period values around the line (df = T - 2), as `drift.decay` gives accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hf_cost.drift.decay import slope_with_ci

# Elements of a (resamples x documents) index array drawn at once; bounds memory at ~8 MB.
_CHUNK_ELEMENTS = 1 << 20
SLOPE_UNIT = "nats per token per period position"


def perplexity_decay(
    nll_sums: Sequence[Sequence[float]],
    token_counts: Sequence[Sequence[int]],
    periods: Sequence[str],
    positions: Sequence[float],
    reference: Sequence[bool],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Log-perplexity per period, ratio to the reference, changes and slope, with bootstrap CIs.

    One entry per period in each argument: the scored documents' NLL sums (nats) and predicted
    token counts (documents with 0 tokens already left out), the period's x position, and whether
    it is a reference period. Raises ValueError on mismatched lengths, a period without tokens,
    no reference period, repeated positions or bad bootstrap arguments.
    """
    t = len(periods)
    if t < 1 or not len(nll_sums) == len(token_counts) == len(positions) == len(reference) == t:
        raise ValueError(f"need one entry per period: {len(nll_sums)} NLL lists, {len(token_counts)} token lists, "
                         f"{t} periods, {len(positions)} positions, {len(reference)} reference flags")
    if n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"bad bootstrap arguments: n_resamples={n_resamples}, confidence={confidence}")
    nll = [np.asarray(v, dtype=np.float64).ravel() for v in nll_sums]
    tok = [np.asarray(v, dtype=np.float64).ravel() for v in token_counts]
    for name, a, b in zip(periods, nll, tok):
        if a.size != b.size or b.sum() <= 0 or (b <= 0).any() or not np.isfinite(a).all():
            raise ValueError(f"period {name!r}: needs documents with finite NLL and at least one token each")
    x = np.asarray(positions, dtype=np.float64)
    if not np.isfinite(x).all() or len(set(x.tolist())) != t:
        raise ValueError(f"positions must be finite and distinct, got {x.tolist()}")
    ref = np.asarray(reference, dtype=bool)
    if not ref.any():
        raise ValueError("no reference period")
    names = [str(p) for p in periods]
    sums = np.array([a.sum() for a in nll])
    counts = np.array([b.sum() for b in tok])
    point = sums / counts
    boot_sums, boot_counts = _resample_sums(nll, tok, n_resamples, seed)  # (B, T) each
    boot = boot_sums / boot_counts
    ref_point = sums[ref].sum() / counts[ref].sum()
    ref_boot = boot_sums[:, ref].sum(axis=1) / boot_counts[:, ref].sum(axis=1)
    alpha = (1.0 - confidence) / 2

    def stat(value: float, samples: np.ndarray) -> dict[str, float]:
        low, high = np.quantile(samples, [alpha, 1.0 - alpha])
        return {"value": float(value), "ci_low": float(low), "ci_high": float(high)}

    rows = []
    for i in range(t):
        ratio = stat(math.exp(point[i] - ref_point), np.exp(boot[:, i] - ref_boot))
        rows.append({"period": names[i], "position": float(x[i]), "documents": int(nll[i].size),
                     "tokens": int(counts[i]), "in_reference": bool(ref[i]),
                     "mean_nll_per_token": stat(point[i], boot[:, i]), "ratio_to_reference": ratio})
    rise = next((r["period"] for r in rows if not r["in_reference"] and r["ratio_to_reference"]["ci_low"] > 1.0), None)
    slope = slope_with_ci(point, boot, x, confidence, stat)
    if slope is not None:
        slope["unit"] = SLOPE_UNIT
    return {
        "metric": "log-perplexity: mean NLL per predicted token (nats), token-weighted per period",
        "method": f"percentile bootstrap, documents resampled within each period, {n_resamples} resamples, "
                  f"seed {seed}; slope also with the OLS t-interval over the period values",
        "ci_level": confidence,
        "reference": {"periods": [names[i] for i in np.flatnonzero(ref)], "documents": int(sum(nll[i].size for i in
                      np.flatnonzero(ref))), "tokens": int(counts[ref].sum()),
                      "mean_nll_per_token": stat(ref_point, ref_boot),
                      "perplexity": stat(math.exp(ref_point), np.exp(ref_boot))},
        "periods": rows,
        "changes": [{"period": names[i], "previous": names[i - 1], **stat(point[i] - point[i - 1],
                                                                            boot[:, i] - boot[:, i - 1])}
                    for i in range(1, t)],
        "slope": slope,
        "first_significant_rise": rise,
    }


def _resample_sums(nll: list[np.ndarray], tok: list[np.ndarray], n_resamples: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) resampled NLL sums and token sums: each period's documents drawn with replacement."""
    rng = np.random.default_rng(seed)
    out_nll = np.empty((n_resamples, len(nll)))
    out_tok = np.empty((n_resamples, len(nll)))
    for t, (a, b) in enumerate(zip(nll, tok)):
        n = a.size
        per_chunk = max(1, _CHUNK_ELEMENTS // n)
        for start in range(0, n_resamples, per_chunk):
            size = min(per_chunk, n_resamples - start)
            idx = rng.integers(0, n, size=(size, n))
            out_nll[start:start + size, t] = a[idx].sum(axis=1)
            out_tok[start:start + size, t] = b[idx].sum(axis=1)
    return out_nll, out_tok
