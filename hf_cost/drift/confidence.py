"""Label-free accuracy estimates for a period, from the model's confidence on its inputs.

When a period has no labels (or before its labels arrive), its accuracy can be guessed from how
confident the model is, calibrated on held-out in-distribution (ID) data where correctness is known:

- Average confidence (AC): the mean max-softmax probability over the period (the baseline of
  Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution Examples in
  Neural Networks", ICLR 2017). It is only as good as the model's calibration.
- Average Thresholded Confidence (ATC, max-confidence score, "ATC-MC"; Garg, Balakrishnan,
  Lipton, Neyshabur & Sedghi, "Leveraging Unlabeled Data to Predict Out-of-Distribution
  Performance", ICLR 2022): pick a threshold t on ID data so that the share of ID samples with
  confidence above t equals ID accuracy; the estimate is the share of period samples above t.

Threshold rule used here, exactly: sort the n ID confidences ascending, s_1 <= ... <= s_n; let k be
the number of correct ID predictions (k = a * n for ID accuracy a). Then t = s_(n-k), the
(n-k)-th smallest, so the k largest ID confidences lie strictly above t when s_(n-k) < s_(n-k+1).
With ties at that position fewer than k lie above t (a tie counts as not above, on both sides).
k = 0 gives t = s_n (the maximum: nothing is above); k = n gives t = the float just below s_1
(everything is above). This is the threshold of Garg et al.'s reference code (find_ATC_threshold).
A period sample counts when its confidence is strictly greater than t, as in the paper's
definition (their code's get_ATC_acc counts >= t, one more sample at t), so on the ID data itself,
without ties, ATC reproduces ID accuracy exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

METHOD = (
    "average confidence (AC; Hendrycks & Gimpel, ICLR 2017) and average thresholded confidence "
    "(ATC-MC; Garg et al., ICLR 2022): t = (n - k)-th smallest ID confidence, k = correct ID "
    "predictions; estimate = share of period confidences strictly above t"
)


def max_softmax(logits: np.ndarray) -> np.ndarray:
    """The largest softmax probability of each row of (n, K) logits, shape (n,).

    Computed stably: with z = x - max(x), the max entry of z is 0, so the max probability is
    1 / sum(exp(z)), which never overflows (logits (1000, 0) give 1 / (1 + e^-1000) = 1.0).
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"logits must have shape (n, K) with K >= 1, got {x.shape}")
    z = x - x.max(axis=1, keepdims=True)
    return 1.0 / np.exp(z).sum(axis=1)


def atc_threshold(id_confidence: np.ndarray, n_correct: int) -> float:
    """The ATC threshold t for ID confidences with ``n_correct`` correct predictions (see module)."""
    s = np.sort(np.asarray(id_confidence, dtype=np.float64))
    n = s.size
    if not 0 <= n_correct <= n:
        raise ValueError(f"n_correct must be in [0, {n}], got {n_correct}")
    if n_correct == n:
        return float(np.nextafter(s[0], -np.inf))
    return float(s[n - n_correct - 1])


def estimate_accuracy(
    id_confidence: Sequence[float],
    id_correct: Sequence[bool | int],
    period_confidence: Sequence[float],
) -> dict[str, Any]:
    """AC and ATC accuracy estimates for a period, calibrated on labelled in-distribution data.

    ``id_confidence`` and ``id_correct`` are the model's max-softmax confidence and whether it was
    right (bool or 0/1), per held-out ID example; ``period_confidence`` is the confidence per
    period example. Returns ``{"average_confidence", "atc", "atc_threshold", "id_accuracy",
    "id_n", "period_n", "score", "method"}``. Raises ValueError on empty inputs, ID lists of
    different lengths, correctness values other than 0/1, or non-finite confidences.
    """
    id_conf = _confidences(id_confidence, "id_confidence")
    period_conf = _confidences(period_confidence, "period_confidence")
    correct = np.asarray(id_correct)
    if correct.shape != id_conf.shape:
        raise ValueError(
            f"id_correct has {correct.size} values, id_confidence {id_conf.size}; they must match"
        )
    if not np.all((correct == 0) | (correct == 1)):
        raise ValueError(f"id_correct must be booleans or 0/1, got {np.unique(correct)[:5]}")
    n_correct = int(np.count_nonzero(correct))
    threshold = atc_threshold(id_conf, n_correct)
    return {
        "average_confidence": float(period_conf.mean()),
        "atc": float(np.mean(period_conf > threshold)),
        "atc_threshold": threshold,
        "id_accuracy": n_correct / id_conf.size,
        "id_n": int(id_conf.size),
        "period_n": int(period_conf.size),
        "score": "max softmax probability",
        "method": METHOD,
    }


def _confidences(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty list of numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array[~np.isfinite(array)][:3].tolist()}")
    return array
