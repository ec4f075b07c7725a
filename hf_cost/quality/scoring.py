"""Score classification predictions: headline metrics with bootstrap confidence intervals.

The headline values and per-class figures come from the bundled `evaluate` modules
(``load_metric``). The intervals come from a percentile bootstrap: resample the examples with
replacement, recompute every metric on each resample, take the (1 - confidence) / 2 and
(1 + confidence) / 2 quantiles. Each resample is reduced to a confusion matrix, so all metrics of
all resamples are numpy arithmetic (1,000 resamples of 5,000 examples: tens of milliseconds).

Conventions (sklearn's, which the evaluate modules use): a 0/0 precision, recall or F1 counts as 0
(``zero_division=0``); a macro average is over the classes that occur in the references or the
predictions, so a class absent from both does not count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hf_cost.quality.metric_loader import load_metric

HEADLINE = ("accuracy", "f1_macro", "precision_macro", "recall_macro")

# Elements of the (resamples x examples) index array drawn at once; bounds memory at ~8 MB.
_CHUNK_ELEMENTS = 1 << 20


def score_classification(
    predictions: Sequence[int],
    references: Sequence[int],
    label_names: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Accuracy and macro F1/precision/recall with bootstrap CIs, plus per-class figures.

    ``predictions`` and ``references`` are label ids in ``range(len(label_names))``. Returns::

        {"n": int,
         "accuracy" | "f1_macro" | "precision_macro" | "recall_macro":
             {"value", "ci_low", "ci_high": float, "ci_level": float, "n": int, "method": str},
         "per_class": {label_name: {"precision", "recall", "f1": float, "support": int}}}

    Raises ValueError on lengths that differ, no examples, or a label id out of range.
    """
    preds, refs = _validate(predictions, references, label_names)
    _check_bootstrap_args(n_resamples, confidence)
    num_labels = len(label_names)
    values, per_class = _module_values(preds, refs, label_names)

    codes = refs * num_labels + preds  # one code per (reference, prediction) cell

    def statistic(idx: np.ndarray) -> np.ndarray:
        confusions = confusion_matrices(codes[idx], num_labels)
        metrics = metrics_from_confusion(confusions)
        return np.stack([metrics[key] for key in HEADLINE], axis=-1)

    low, high = bootstrap_ci(
        statistic, len(preds), n_resamples=n_resamples, seed=seed, confidence=confidence
    )
    method = f"percentile bootstrap, {n_resamples} resamples, seed {seed}"
    report: dict[str, Any] = {"n": len(preds)}
    for i, key in enumerate(HEADLINE):
        report[key] = {
            "value": values[key],
            "ci_low": float(low[i]),
            "ci_high": float(high[i]),
            "ci_level": confidence,
            "n": len(preds),
            "method": method,
        }
    report["per_class"] = per_class
    return report


def bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of ``statistic`` over ``n`` examples.

    ``statistic`` takes an int array of shape (b, n), b resamples of example indices drawn with
    replacement, and returns shape (b,) or (b, k): one value (or k values) per resample. Returns
    (low, high), each of shape () or (k,). The same (n, n_resamples, seed) draws the same indices.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    _check_bootstrap_args(n_resamples, confidence)
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_ELEMENTS // n)
    parts = []
    for start in range(0, n_resamples, per_chunk):
        b = min(per_chunk, n_resamples - start)
        parts.append(np.asarray(statistic(rng.integers(0, n, size=(b, n))), dtype=float))
    samples = np.concatenate(parts, axis=0)
    alpha = 1.0 - confidence
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2], axis=0)
    return low, high


def confusion_matrices(codes: np.ndarray, num_labels: int) -> np.ndarray:
    """Confusion matrices, [..., reference, prediction], of rows of cell codes ref * K + pred.

    ``codes`` has shape (..., n); the result has shape (..., K, K) of counts.
    """
    k2 = num_labels * num_labels
    lead = codes.shape[:-1]
    rows = int(np.prod(lead))
    offsets = (np.arange(rows) * k2)[:, None]
    counts = np.bincount((codes.reshape(rows, -1) + offsets).ravel(), minlength=rows * k2)
    return counts.reshape(*lead, num_labels, num_labels)


def metrics_from_confusion(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy and macro/per-class precision, recall, F1 of confusion matrices [..., ref, pred].

    Vectorised over leading axes. Matches sklearn with ``zero_division=0`` and default ``labels``
    (macro over the classes occurring in references or predictions).
    """
    confusion = np.asarray(confusion, dtype=float)
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    support = confusion.sum(axis=-1)  # reference counts per class
    predicted = confusion.sum(axis=-2)  # prediction counts per class
    total = support.sum(axis=-1)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * tp, support + predicted)  # = 2PR/(P+R); 0 when tp = 0
    present = (support + predicted) > 0
    n_present = present.sum(axis=-1)

    def macro(per_class: np.ndarray) -> np.ndarray:
        return _safe_divide((per_class * present).sum(axis=-1), n_present)

    return {
        "accuracy": _safe_divide(tp.sum(axis=-1), total),
        "precision_macro": macro(precision),
        "recall_macro": macro(recall),
        "f1_macro": macro(f1),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
    }


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.broadcast_arrays(numerator, denominator)
    out = np.zeros(numerator.shape, dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _module_values(
    preds: np.ndarray, refs: np.ndarray, label_names: Sequence[str]
) -> tuple[dict[str, float], dict[str, dict[str, float | int]]]:
    """Headline values and per-class figures, computed by the evaluate modules."""
    data = {"predictions": preds.tolist(), "references": refs.tolist()}
    labels = list(range(len(label_names)))
    headline = {"accuracy": float(load_metric("accuracy").compute(**data)["accuracy"])}
    per_class_lists = {}
    for name in ("f1", "precision", "recall"):
        module = load_metric(name)
        macro = module.compute(**data, average="macro", zero_division=0)[name]
        headline[f"{name}_macro"] = float(macro)
        per_class_lists[name] = module.compute(**data, average=None, labels=labels, zero_division=0)[name]
    support = np.bincount(refs, minlength=len(label_names))
    per_class = {
        label: {
            "precision": float(per_class_lists["precision"][i]),
            "recall": float(per_class_lists["recall"][i]),
            "f1": float(per_class_lists["f1"][i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(label_names)
    }
    return headline, per_class


def _validate(
    predictions: Sequence[int], references: Sequence[int], label_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(label_names, str):
        raise ValueError("label_names must be a sequence of names, not one string")
    num_labels = len(label_names)
    if num_labels < 1:
        raise ValueError("label_names is empty: need at least one class")
    if len(set(label_names)) != num_labels:
        raise ValueError(f"label_names has duplicates: {list(label_names)}")
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references differ in length: {len(predictions)} != {len(references)}"
        )
    if len(predictions) == 0:
        raise ValueError("no examples: predictions and references are empty")
    arrays = []
    for what, seq in (("predictions", predictions), ("references", references)):
        array = np.asarray(seq)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{what} must be a flat sequence of integer label ids")
        bad = np.flatnonzero((array < 0) | (array >= num_labels))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{what}[{i}] = {int(array[i])} is not a label id in 0..{num_labels - 1} "
                f"({num_labels} label_names); {bad.size} such value(s)"
            )
        arrays.append(array.astype(np.int64))
    return arrays[0], arrays[1]


def _check_bootstrap_args(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
