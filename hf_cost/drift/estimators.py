"""Label-free accuracy estimators for a period, fitted on held-out ID rows, and their backtest.

Every estimator predicts the accuracy of the model's own predictions (argmax of its logits):

- average_confidence: mean raw max-softmax (Hendrycks & Gimpel, ICLR 2017).
- average_confidence_calibrated: mean calibrated probability of the predicted class.
- atc / atc_calibrated: share of period rows whose (raw / calibrated) confidence is strictly above
  the ATC threshold fitted on the ID rows (Garg et al., "Leveraging Unlabeled Data to Predict
  Out-of-Distribution Performance", ICLR 2022; threshold rule in ``confidence.atc_threshold``).
  The calibrated threshold is fitted on the out-of-fold calibrated ID confidences.
- doc: ID accuracy - (ID mean raw confidence - period mean raw confidence) (difference of
  confidences; Guillory et al., "Predicting with Confidence on Unseen Distributions", ICCV 2021).
- cbpe: NannyML's confidence-based performance estimation: expected accuracy = mean calibrated
  probability of the predicted class (equal in value to average_confidence_calibrated).
  cbpe_f1_macro: expected macro-F1 from the calibrated probabilities p: with c_i the predicted
  class, E[TP_k] = sum_{c_i = k} p_ik, E[FP_k] = sum_{c_i = k} (1 - p_ik), E[FN_k] = sum_{c_i != k}
  p_ik, F1_k = 2TP/(2TP + FP + FN), averaged over the classes whose denominator is not 0 (the
  expected counterpart of sklearn's "classes present"; with softmax every class has mass, so this
  is all K classes).

"Calibrated" means choose_calibrator's chosen method (which may be "none": then calibrated = raw).
For temperature scaling and none the predicted class's probability is the max probability; an
isotonic map may move the maximum to another class, and the predicted class's probability is still
what estimates the model's accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hf_cost.drift.calibration import predicted_confidence, softmax
from hf_cost.drift.confidence import atc_threshold
from hf_cost.quality.scoring import bootstrap_ci

ESTIMATORS = ("average_confidence", "average_confidence_calibrated", "atc", "atc_calibrated", "doc", "cbpe")
ALL_OUTPUTS = (*ESTIMATORS, "cbpe_f1_macro")
DEFAULT_HEADLINE = "cbpe"


@dataclass(frozen=True)
class Fitted:
    """The ID-side quantities every estimate uses, held fixed across periods and resamples."""

    id_confidence: np.ndarray  # raw max-softmax per ID row
    id_correct: np.ndarray  # bool per ID row
    id_accuracy: float
    id_mean_confidence: float  # raw, for DoC
    atc_threshold: float  # on raw max-softmax
    atc_threshold_calibrated: float  # on out-of-fold calibrated confidence of the predicted class
    calibrator: str
    apply: Callable[[np.ndarray], np.ndarray]
    n_classes: int


def fit_estimators(id_logits: np.ndarray, id_labels: np.ndarray, calibration: dict[str, Any]) -> Fitted:
    """Store the ID-side quantities; ``calibration`` is ``choose_calibrator(id_logits, id_labels)``."""
    x = _logits(id_logits)
    y = np.asarray(id_labels)
    if y.shape != (x.shape[0],):
        raise ValueError(f"id_labels must have {x.shape[0]} values, got shape {y.shape}")
    oof = np.asarray(calibration["oof_probabilities"], dtype=np.float64)
    if oof.shape != x.shape:
        raise ValueError(f"calibration was fitted on shape {oof.shape}, id_logits have {x.shape}")
    predicted = x.argmax(axis=1)
    correct = predicted == y
    raw_conf = predicted_confidence(softmax(x), predicted)
    n_correct = int(correct.sum())
    return Fitted(
        id_confidence=raw_conf,
        id_correct=correct,
        id_accuracy=n_correct / x.shape[0],
        id_mean_confidence=float(raw_conf.mean()),
        atc_threshold=atc_threshold(raw_conf, n_correct),
        atc_threshold_calibrated=atc_threshold(predicted_confidence(oof, predicted), n_correct),
        calibrator=str(calibration["chosen"]),
        apply=calibration["apply"],
        n_classes=x.shape[1],
    )


def estimate(fitted: Fitted, period_logits: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every estimator (and cbpe_f1_macro) on one period, each {value, ci_low, ci_high, ci_level, n}.

    Bands: percentile bootstrap over the period's rows with the ID-side fit held fixed, i.e. the
    sampling error of the period sample only (stated under "method").
    """
    rows = _period_rows(fitted, period_logits)
    n = rows.shape[0]

    def statistic(idx: np.ndarray) -> np.ndarray:
        return _outputs(fitted, _resample_sums(rows, idx), n)

    values = statistic(np.arange(n)[None, :])[0]
    low, high = bootstrap_ci(statistic, n, n_resamples=n_resamples, seed=seed)
    out: dict[str, Any] = {
        name: _entry(values[j], low[j], high[j], n) for j, name in enumerate(ALL_OUTPUTS)
    }
    out["method"] = (
        f"calibrator {fitted.calibrator}; 95% percentile bootstrap over the period's {n} rows "
        f"({n_resamples} resamples, seed {seed}) with the ID-side fit (calibrator, ATC thresholds, "
        "ID accuracy and confidence) held fixed: the band is the period sample's sampling error only"
    )
    return out


def backtest(fitted: Fitted, periods: list[dict[str, Any]], n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Each estimator's error (estimate - true accuracy) on every labelled period, and the headline.

    Errors carry a joint percentile bootstrap CI: one resample of the period's rows gives both the
    estimate and the truth. cbpe_f1_macro is compared with the true macro-F1 (sklearn convention).
    The summary and the headline use labelled out-of-window periods only (in-window rows are where
    the calibration was fitted), and of those the trusted ones (a period dict's "trusted", default
    True: an untrusted period breaks the estimators' assumption, so it must not pick the estimator
    used where that assumption holds; with no trusted one, all of them, and the reason says so);
    the headline is the estimator in ESTIMATORS with the smallest mean absolute error (ties: the
    earlier in ESTIMATORS).
    """
    rows_out = []
    for period in periods:
        labels = period.get("labels")
        labelled = labels is not None and len(labels) > 0
        entry: dict[str, Any] = {
            "period": str(period["period"]),
            "in_window": bool(period["in_window"]),
            "labelled": labelled,
            "n": len(period["logits"]),
            "true_accuracy": None,
            "true_f1_macro": None,
            "errors": {},
        }
        if labelled:
            entry.update(_period_errors(fitted, period["logits"], np.asarray(labels), n_resamples, seed))
        rows_out.append(entry)
    for row, period in zip(rows_out, periods):
        row["trusted"] = bool(period.get("trusted", True))
    outside = [row for row in rows_out if row["labelled"] and not row["in_window"]]
    scored = [row for row in outside if row["trusted"]] or outside
    which = ("trusted " if all(row["trusted"] for row in scored) and len(scored) < len(outside) else
             "" if all(row["trusted"] for row in scored) else "(all untrusted) ")
    names = [row["period"] for row in scored]
    summary = {}
    for name in ALL_OUTPUTS:
        errors = np.abs([row["errors"][name]["value"] for row in scored])
        summary[name] = {
            "mean_abs_error": float(errors.mean()) if errors.size else None,
            "max_abs_error": float(errors.max()) if errors.size else None,
            "periods": names,
        }
    if scored:
        headline = min(ESTIMATORS, key=lambda name: (summary[name]["mean_abs_error"], ESTIMATORS.index(name)))
        reason = (
            f"{headline} had the smallest mean absolute backtest error, "
            f"{summary[headline]['mean_abs_error']:.3f}, over {len(names)} {which}labelled out-of-window period(s)"
        )
    else:
        headline = None
        reason = f"no labelled out-of-window period to backtest on: defaulting to {DEFAULT_HEADLINE}"
    return {
        "periods": rows_out,
        "summary": summary,
        "headline": headline,
        "headline_or_default": headline or DEFAULT_HEADLINE,
        "headline_reason": reason,
        "method": (
            "error = estimate - true accuracy (cbpe_f1_macro: - true macro-F1) per labelled period; 95% joint "
            f"percentile bootstrap over the period's rows ({n_resamples} resamples, seed {seed}), estimate and "
            "truth recomputed on the same resample, ID-side fit fixed; summary and headline over the trusted "
            "labelled out-of-window periods (all labelled out-of-window periods when none is trusted)"
        ),
    }


def _period_errors(
    fitted: Fitted, logits: np.ndarray, labels: np.ndarray, n_resamples: int, seed: int
) -> dict[str, Any]:
    rows = _period_rows(fitted, logits)
    n, k = rows.shape[0], fitted.n_classes
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"period labels must be {n} integers, got shape {labels.shape} dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"period labels must lie in [0, {k - 1}]")
    truth_rows = np.eye(k)[labels]  # one-hot labels; with the predictions' one-hot: true TP per class
    hits = rows[:, 4 : 4 + k] * truth_rows
    table = np.column_stack([rows, hits, truth_rows])
    width = rows.shape[1]

    def errors(idx: np.ndarray) -> np.ndarray:
        sums = _resample_sums(table, idx)
        accuracy, f1_macro = _true_metrics(sums[:, 4 : 4 + k], sums[:, width : width + k], sums[:, width + k :], n)
        targets = np.repeat(accuracy[:, None], len(ALL_OUTPUTS), axis=1)
        targets[:, -1] = f1_macro
        return _outputs(fitted, sums[:, :width], n) - targets

    full = _resample_sums(table, np.arange(n)[None, :])
    accuracy, f1_macro = _true_metrics(full[:, 4 : 4 + k], full[:, width : width + k], full[:, width + k :], n)
    values = errors(np.arange(n)[None, :])[0]
    low, high = bootstrap_ci(errors, n, n_resamples=n_resamples, seed=seed)
    return {
        "true_accuracy": float(accuracy[0]),
        "true_f1_macro": float(f1_macro[0]),
        "n": n,
        "errors": {name: _entry(values[j], low[j], high[j], n) for j, name in enumerate(ALL_OUTPUTS)},
    }


def _period_rows(fitted: Fitted, logits: np.ndarray) -> np.ndarray:
    """Per-row table (n, 4 + 3K): raw and calibrated confidence of the predicted class, whether each
    is above its ATC threshold, one-hot prediction, calibrated confidence on the predicted class's
    column, calibrated probabilities. Every output is a function of the column sums of this table."""
    x = _logits(logits)
    if x.shape[1] != fitted.n_classes:
        raise ValueError(f"period logits have {x.shape[1]} classes, the ID fit {fitted.n_classes}")
    predicted = x.argmax(axis=1)
    probs = np.asarray(fitted.apply(x), dtype=np.float64)
    raw = predicted_confidence(softmax(x), predicted)
    cal = predicted_confidence(probs, predicted)
    one_hot = np.eye(fitted.n_classes)[predicted]
    above = [raw > fitted.atc_threshold, cal > fitted.atc_threshold_calibrated]
    return np.column_stack([raw, cal, *above, one_hot, one_hot * cal[:, None], probs])


def _resample_sums(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Column sums of the table over each resample of row indices idx (b, n): row counts @ table."""
    b, n = idx.shape
    counts = np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
    return counts.astype(np.float64) @ table


def _outputs(fitted: Fitted, sums: np.ndarray, n: int) -> np.ndarray:
    """All outputs, shape (b, len(ALL_OUTPUTS)), from the column sums of b resamples of n rows."""
    k = fitted.n_classes
    mean_raw, mean_cal, atc, atc_cal = (sums[:, j] / n for j in range(4))
    doc = fitted.id_accuracy - (fitted.id_mean_confidence - mean_raw)
    f1 = _expected_f1_macro(sums[:, 4 : 4 + k], sums[:, 4 + k : 4 + 2 * k], sums[:, 4 + 2 * k :])
    return np.column_stack([mean_raw, mean_cal, atc, atc_cal, doc, mean_cal, f1])


def _expected_f1_macro(count: np.ndarray, tp: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """CBPE macro-F1. With N_k predictions of class k and S_k = sum_i p_ik (all rows),
    E[TP_k] + E[FP_k] = N_k and E[TP_k] + E[FN_k] = S_k, so F1_k = 2 E[TP_k] / (N_k + S_k)."""
    return _macro(2 * tp, count + mass)


def _true_metrics(count: np.ndarray, tp: np.ndarray, support: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """True accuracy and macro-F1 (sklearn: F1_k = 2TP / (predicted + support), over present classes)."""
    return tp.sum(axis=1) / n, _macro(2 * tp, count + support)


def _macro(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    present = denominator > 0
    per_class = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=per_class, where=present)
    n_present = present.sum(axis=1)
    return np.where(n_present > 0, per_class.sum(axis=1) / np.maximum(n_present, 1), 0.0)


def _entry(value: float, low: float, high: float, n: int) -> dict[str, Any]:
    return {"value": float(value), "ci_low": float(low), "ci_high": float(high), "ci_level": 0.95, "n": n}


def _logits(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"logits must be a finite non-empty (n, K) array, got shape {x.shape}")
    return x
