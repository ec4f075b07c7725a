"""Compare two candidates on the same samples: a paired accuracy difference and prediction agreement.

Both candidates were scored on the same examples, so their errors are correlated; treating the two
accuracies as independent would overstate the uncertainty of the difference. Here each example
contributes one paired outcome, d_i = [b right] - [a right] in {-1, 0, +1}:

- accuracy(b) - accuracy(a) = mean(d). Its interval is a percentile bootstrap (scoring.bootstrap_ci)
  over examples: each resample draws one set of example indices and scores both candidates on it.
- The 2x2 table behind it (both right, only a, only b, both wrong) is returned, so a reader can
  recompute the estimate, (only_b - only_a) / n, and McNemar's test. The exact McNemar p-value is
  the two-sided binomial test of the discordant pairs against p = 1/2:
  p = min(1, 2 * sum_{i <= min(only_a, only_b)} C(n_d, i) / 2^n_d), n_d = only_a + only_b
  (1 when there is no discordant pair).
- agreement(a, b): the share of examples where both predict the same class, with a Wilson score
  interval (Wilson 1927), which stays inside [0, 1] and behaves at 0 or n agreements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from hf_cost.quality.scoring import bootstrap_ci


def paired_accuracy_difference(
    preds_a: Sequence[int],
    preds_b: Sequence[int],
    refs: Sequence[int],
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """accuracy(b) - accuracy(a) on the same examples, with a paired bootstrap CI and McNemar p.

    Returns ``{"value", "ci_low", "ci_high", "accuracy_a", "accuracy_b", "n", "n_resamples",
    "confidence", "both_right", "only_a_right", "only_b_right", "both_wrong", "mcnemar_p",
    "method"}`` (plain floats and ints). Raises ValueError on sequences of different lengths,
    none, or anything but flat integer label ids.
    """
    a, b, r = _arrays(("preds_a", preds_a), ("preds_b", preds_b), ("refs", refs))
    right_a, right_b = a == r, b == r
    both = int(np.sum(right_a & right_b))
    only_a = int(np.sum(right_a & ~right_b))
    only_b = int(np.sum(~right_a & right_b))
    neither = int(np.sum(~right_a & ~right_b))
    n = len(r)
    d = right_b.astype(np.int8) - right_a.astype(np.int8)

    low, high = bootstrap_ci(
        lambda idx: d[idx].mean(axis=-1), n, n_resamples=n_resamples, seed=seed, confidence=confidence
    )
    return {
        "value": (only_b - only_a) / n,
        "ci_low": float(low),
        "ci_high": float(high),
        "accuracy_a": (both + only_a) / n,
        "accuracy_b": (both + only_b) / n,
        "n": n,
        "n_resamples": n_resamples,
        "confidence": confidence,
        "both_right": both,
        "only_a_right": only_a,
        "only_b_right": only_b,
        "both_wrong": neither,
        "mcnemar_p": mcnemar_exact_p(only_a, only_b),
        "method": (
            f"accuracy(b) - accuracy(a); paired percentile bootstrap ({n_resamples} resamples, seed {seed}): "
            "each resample draws the same example indices for both; McNemar exact two-sided binomial test "
            "on the discordant pairs"
        ),
    }


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: Binomial(only_a + only_b, 1/2) at min(only_a, only_b)."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be non-negative, got {only_a} and {only_b}")
    n_d = only_a + only_b
    if n_d == 0:
        return 1.0
    tail = sum(math.comb(n_d, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**n_d)  # exact integers until this one division


def agreement(preds_a: Sequence[int], preds_b: Sequence[int], confidence: float = 0.95) -> dict[str, Any]:
    """Share of examples where a and b predict the same class, with a Wilson score interval.

    Returns ``{"value", "ci_low", "ci_high", "agree", "n", "confidence", "method"}``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    a, b = _arrays(("preds_a", preds_a), ("preds_b", preds_b))
    n, agree = len(a), int(np.sum(a == b))
    low, high = wilson_interval(agree, n, confidence)
    return {
        "value": agree / n,
        "ci_low": low,
        "ci_high": high,
        "agree": agree,
        "n": n,
        "confidence": confidence,
        "method": f"share of examples with the same predicted class; Wilson score interval at {confidence:g}",
    }


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion successes / n.

    (p + z^2/2n -/+ z * sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z the normal (1+confidence)/2 quantile.
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exactly 0 and 1 at the ends,
    high = 1.0 if successes == n else min(1.0, centre + half)  # where the formula gives them
    return low, high


def _arrays(*named: tuple[str, Sequence[int]]) -> list[np.ndarray]:
    """Flat integer arrays of one common, non-zero length; ValueError naming the culprit otherwise."""
    arrays = []
    for what, seq in named:
        array = np.asarray(seq)
        if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
            raise ValueError(f"{what} must be a flat sequence of integer label ids")
        arrays.append(array.astype(np.int64))
    lengths = {what: len(x) for (what, _), x in zip(named, arrays)}
    if len(set(lengths.values())) != 1:
        raise ValueError("lengths differ: " + ", ".join(f"{w} has {k}" for w, k in lengths.items()))
    if not arrays[0].size:
        raise ValueError(f"no examples: {', '.join(lengths)} are empty")
    return arrays
