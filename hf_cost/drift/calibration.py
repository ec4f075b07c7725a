"""Calibrate a classifier's probabilities on held-out in-distribution (ID) rows, and measure it.

- Expected calibration error (ECE, top-label, Guo, Pleiss, Sun & Weinberger, "On Calibration of
  Modern Neural Networks", ICML 2017): B equal-width bins on [0, 1], bin i = (i/B, (i+1)/B] (the
  first bin also holds 0); ECE = sum_b (n_b / n) * |acc_b - conf_b| = |sum_{i in b}(correct_i -
  conf_i)| / n summed over bins. "Confidence" is the probability given to the model's predicted
  class (argmax of the logits) and "correct" whether that prediction is right.
- Temperature scaling (Guo et al. 2017): one T > 0 minimising the mean negative log-likelihood of
  softmax(logits / T); found by bounded scalar minimisation over log T in [-5, 5].
- Per-class isotonic regression (Zadrozny & Elkan, KDD 2002; the calibrator NannyML's CBPE uses):
  one-vs-rest, class k's probability mapped by a monotone fit to 1[label = k], rows renormalised.

``choose_calibrator`` compares both by out-of-fold ECE on the ID rows (stratified K-fold: each row
is calibrated by a calibrator fitted without it) and keeps one only when it lowers the raw ECE,
as CBPE keeps its calibrator only when it helps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hf_cost.quality.scoring import bootstrap_ci

CALIBRATORS = ("temperature", "isotonic")
LOG_T_BOUNDS = (-5.0, 5.0)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, K) logits, computed as exp(x - max x) / sum, so it never overflows."""
    x = _logits(logits)
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def predicted_confidence(probs: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The probability each row gives to its predicted class, shape (n,)."""
    return np.asarray(probs, dtype=np.float64)[np.arange(len(predicted)), predicted]


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with ``n_bins`` equal-width bins (see module docstring)."""
    conf, hit = _conf_correct(confidence, correct)
    bins = _bin_index(conf, n_bins)
    gap = np.bincount(bins, weights=hit - conf, minlength=n_bins)
    return float(np.abs(gap).sum() / conf.size)


def ece_interval(
    confidence: np.ndarray,
    correct: np.ndarray,
    n_bins: int = 15,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> dict[str, Any]:
    """ECE with a percentile bootstrap CI over rows (rows resampled with replacement, ECE recomputed)."""
    conf, hit = _conf_correct(confidence, correct)
    bins = _bin_index(conf, n_bins)
    gap = hit - conf

    def statistic(idx: np.ndarray) -> np.ndarray:
        b = idx.shape[0]
        codes = (bins[idx] + n_bins * np.arange(b)[:, None]).ravel()
        sums = np.bincount(codes, weights=gap[idx].ravel(), minlength=b * n_bins).reshape(b, n_bins)
        return np.abs(sums).sum(axis=1) / conf.size

    low, high = bootstrap_ci(statistic, conf.size, n_resamples=n_resamples, seed=seed, confidence=confidence_level)
    return {
        "value": expected_calibration_error(conf, hit, n_bins),
        "ci_low": float(low),
        "ci_high": float(high),
        "ci_level": confidence_level,
        "n": int(conf.size),
        "n_bins": n_bins,
        "method": f"top-label ECE, {n_bins} equal-width bins (Guo et al. 2017); percentile bootstrap over rows, "
        f"{n_resamples} resamples, seed {seed}",
    }


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """T > 0 minimising mean NLL of softmax(logits / T) over the rows (bounded search on log T in [-5, 5])."""
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    x = _logits(logits)
    y = _labels(labels, x)
    true_logit = x[np.arange(x.shape[0]), y]

    def mean_nll(log_t: float) -> float:
        t = np.exp(log_t)
        return float(np.mean(logsumexp(x / t, axis=1) - true_logit / t))

    result = minimize_scalar(mean_nll, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def fit_isotonic(probs: np.ndarray, labels: np.ndarray) -> list[Any]:
    """One sklearn IsotonicRegression per class k, fitted from probs[:, k] to 1[label = k] (clipped to [0, 1])."""
    from sklearn.isotonic import IsotonicRegression

    p = _logits(probs)
    y = _labels(labels, p)
    models = []
    for k in range(p.shape[1]):
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        models.append(model.fit(p[:, k], (y == k).astype(np.float64)))
    return models


def apply_isotonic_counted(models: list[Any], probs: np.ndarray) -> tuple[np.ndarray, int]:
    """Isotonic-calibrated rows renormalised to sum to 1, and how many rows kept their input.

    A row whose calibrated values are all 0 cannot be renormalised: it keeps its uncalibrated row.
    """
    p = _logits(probs)
    if len(models) != p.shape[1]:
        raise ValueError(f"{len(models)} isotonic models for {p.shape[1]} classes")
    raw = np.column_stack([model.predict(p[:, k]) for k, model in enumerate(models)])
    totals = raw.sum(axis=1)
    empty = totals <= 0
    out = p.copy()
    out[~empty] = raw[~empty] / totals[~empty, None]
    return out, int(empty.sum())


def apply_isotonic(models: list[Any], probs: np.ndarray) -> np.ndarray:
    """Isotonic-calibrated probabilities, rows summing to 1 (see ``apply_isotonic_counted``)."""
    return apply_isotonic_counted(models, probs)[0]


def choose_calibrator(
    id_logits: np.ndarray,
    id_labels: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    n_bins: int = 15,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """Pick none, temperature or isotonic by out-of-fold ECE on the ID rows (see module docstring).

    Returns {"chosen", "oof_probabilities", "apply", "report"}: the chosen method's out-of-fold
    probabilities on the ID rows, a callable mapping logits to probabilities with the chosen
    calibrator fitted on all ID rows, and the report (ECE before/after with CIs, each candidate's
    out-of-fold ECE, the reason). Folds: min(folds, n // 2, rows of the rarest present class); fewer
    than 2 keeps the model uncalibrated.
    """
    x = _logits(id_logits)
    y = _labels(id_labels, x)
    n = x.shape[0]
    raw = softmax(x)
    predicted = x.argmax(axis=1)
    correct = predicted == y

    def ece(probs: np.ndarray) -> dict[str, Any]:
        return ece_interval(predicted_confidence(probs, predicted), correct, n_bins, n_resamples, seed)

    ece_before = ece(raw)
    rarest = int(np.bincount(y)[np.unique(y)].min())
    used_folds = min(folds, n // 2, rarest)
    report: dict[str, Any] = {
        "ece_before": ece_before,
        "candidates": {},
        "folds": used_folds,
        "n": n,
        "method": f"out-of-fold top-label ECE, stratified {used_folds}-fold split (seed {seed}); a calibrator "
        "is kept only when its out-of-fold ECE is below the uncalibrated ECE",
    }
    if used_folds < 2:
        why = f"{n} ID rows" if n // 2 < 2 else f"the rarest class has {rarest} ID row(s)"
        reason = f"too few ID rows to calibrate out of fold ({why}; 2 folds need 2 per class): kept uncalibrated"
        return _result("none", raw, softmax, report, ece_before, reason)

    oof = _out_of_fold(x, y, raw, used_folds, seed)
    temperature = fit_temperature(x, y)
    iso_models = fit_isotonic(raw, y)
    report["candidates"] = {
        "temperature": {"ece_oof": ece(oof["temperature"]), "temperature": temperature},
        "isotonic": {"ece_oof": ece(oof["isotonic"]), "rows_kept_uncalibrated": oof["isotonic_kept"]},
    }
    scores = {name: report["candidates"][name]["ece_oof"]["value"] for name in CALIBRATORS}
    best = min(CALIBRATORS, key=lambda name: scores[name])  # ties: temperature (fewer parameters)
    raw_ece = ece_before["value"]
    if scores[best] >= raw_ece:
        listed = ", ".join(f"{name} {scores[name]:.3f}" for name in CALIBRATORS)
        reason = f"no calibrator lowered the held-out ECE ({listed} vs {raw_ece:.3f}): kept uncalibrated"
        return _result("none", raw, softmax, report, ece_before, reason)
    reason = f"{best} lowered the held-out ECE from {raw_ece:.3f} to {scores[best]:.3f}"
    if best == "temperature":
        apply = lambda logits: softmax(_logits(logits) / temperature)  # noqa: E731
    else:
        apply = lambda logits: apply_isotonic(iso_models, softmax(logits))  # noqa: E731
    return _result(best, oof[best], apply, report, report["candidates"][best]["ece_oof"], reason)


def _out_of_fold(x: np.ndarray, y: np.ndarray, raw: np.ndarray, folds: int, seed: int) -> dict[str, Any]:
    from sklearn.model_selection import StratifiedKFold

    temp_oof = np.empty_like(raw)
    iso_oof = np.empty_like(raw)
    kept = 0
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y):
        temp_oof[test] = softmax(x[test] / fit_temperature(x[train], y[train]))
        iso_oof[test], kept_here = apply_isotonic_counted(fit_isotonic(raw[train], y[train]), raw[test])
        kept += kept_here
    return {"temperature": temp_oof, "isotonic": iso_oof, "isotonic_kept": kept}


def _result(
    chosen: str,
    oof: np.ndarray,
    apply: Callable[[np.ndarray], np.ndarray],
    report: dict[str, Any],
    ece_after: dict[str, Any],
    reason: str,
) -> dict[str, Any]:
    report.update({"ece_after": ece_after, "chosen": chosen, "reason": reason})
    return {"chosen": chosen, "oof_probabilities": oof, "apply": apply, "report": report}


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin i holds (i/B, (i+1)/B]; 0 goes to bin 0. Edges are i/B exactly, so 0.6 with B = 5 is in bin 2."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    edges = np.arange(n_bins + 1) / n_bins
    return np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)


def _conf_correct(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct)
    if conf.ndim != 1 or conf.size == 0 or hit.shape != conf.shape:
        raise ValueError(f"confidence and correct must be equal-length non-empty 1-D, got {conf.shape}, {hit.shape}")
    if not np.all((conf >= 0) & (conf <= 1)):
        raise ValueError("confidence must lie in [0, 1]")
    if not np.all((hit == 0) | (hit == 1)):
        raise ValueError("correct must be booleans or 0/1")
    return conf, hit.astype(np.float64)


def _logits(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"expected a non-empty (n, K) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("logits/probabilities must be finite")
    return x


def _labels(labels: np.ndarray, x: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be {x.shape[0]} integers, got shape {y.shape} dtype {y.dtype}")
    if y.min() < 0 or y.max() >= x.shape[1]:
        raise ValueError(f"labels must lie in [0, {x.shape[1] - 1}]")
    return y.astype(np.int64)
