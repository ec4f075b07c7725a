"""Free text scored against references (ROUGE or chrF), with bootstrap intervals over documents and
paired differences between two candidates answering the same prompts.

Scores come from the bundled `evaluate` modules (quality/metrics/rouge, quality/metrics/chrf),
which return what a resample needs, per document:

- **rouge**: each document's F-measure per ROUGE type (rouge1, rouge2, rougeL). A type's corpus
  score is their mean, so a resample's score is the mean over the drawn documents.
- **chrf**: each document's character (and word) n-gram statistics. The corpus score is sacrebleu's
  F-score of the statistics summed over documents (not a mean of sentence scores), so a resample's
  score is that F-score of the drawn documents' summed statistics.

Intervals are percentile bootstraps over documents (scoring.bootstrap_ci). A paired difference
(b - a) draws one set of documents per resample and scores both candidates on it, so the
correlation between two candidates' answers to the same prompts is kept, as in quality/paired.py.
Everything here is recomputable from what a result keeps: raw.per_document or raw.statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hf_cost.quality.metric_loader import load_metric
from hf_cost.quality.scoring import bootstrap_ci

TEXT_METRICS = ("rouge", "chrf")
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
# the module each metric needs, and the extra that installs it
PACKAGES = {"rouge": "rouge_score", "chrf": "sacrebleu"}


def headline(metric: str, options: dict[str, Any]) -> str:
    """The score a free_text result leads with: rougeL, or chrF (chrF++ with word n-grams)."""
    if metric == "rouge":
        return "rougeL"
    return "chrf++" if options.get("word_order", 0) else "chrf"


def score_texts(metric: str, predictions: Sequence[str], references: Sequence[str], options: dict[str, Any],
                n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """Each score of ``metric`` with its interval, and the per-document values behind them.

    Returns ``{"scores": {name: {value, ci_low, ci_high, ci_level, n, scale, method}},
    "headline": name, "per_document" | "statistics": ..., "signature": str | None}``.
    ``options``: the module's settings (rouge: use_stemmer; chrf: word_order, lowercase).
    """
    if len(predictions) != len(references) or not predictions:
        raise ValueError("score_texts: one reference per prediction, and at least one")
    out = load_metric(metric).compute(predictions=list(predictions), references=list(references), **_module_kwargs(
        metric, options))
    raw = {"per_document": out["per_document"]} if metric == "rouge" else {"statistics": out["statistics"]}
    stat, names = resample_statistic(metric, raw, options)
    n = len(predictions)
    low, high = bootstrap_ci(stat, n, n_resamples=n_resamples, seed=seed, confidence=confidence)
    values = [out[name] if metric == "rouge" else out["chrf"] for name in names]
    method = (f"percentile bootstrap over documents ({n_resamples} resamples, seed {seed}); "
              + ("mean of per-document F-measures" if metric == "rouge"
                 else "sacrebleu's corpus chrF of the resampled documents' summed n-gram statistics"))
    scores = {
        name: {"value": float(v), "ci_low": float(lo), "ci_high": float(hi), "ci_level": confidence, "n": n,
               "scale": 1.0 if metric == "rouge" else 100.0, "method": method}
        for name, v, lo, hi in zip(names, values, low, high)
    }
    return {"scores": scores, "headline": headline(metric, options), **raw, "signature": out.get("signature")}


def resample_statistic(metric: str, raw: dict[str, Any], options: dict[str, Any]
                       ) -> tuple[Callable[[np.ndarray], np.ndarray], list[str]]:
    """(statistic over resampled document indices, the score names it returns, in column order):
    for indices of shape (b, n) it returns shape (b, k), one column per name.
    ``raw``: a result's per_document (rouge) or statistics (chrf)."""
    if metric == "rouge":
        names = [t for t in ROUGE_TYPES if t in raw["per_document"]]
        table = np.array([raw["per_document"][t] for t in names], dtype=float).T  # (n, types)
        return (lambda idx: table[idx].mean(axis=-2)), names
    if metric == "chrf":
        chrf = _chrf(options)
        table = np.asarray(raw["statistics"], dtype=np.int64)  # (n, statistics)

        def corpus(idx: np.ndarray) -> np.ndarray:
            sums = table[idx].sum(axis=-2)  # (b, statistics)
            return np.array([[chrf._compute_score_from_stats(row.tolist()).score] for row in sums])

        return corpus, [headline(metric, options)]
    raise ValueError(f"unknown text metric {metric!r}; known: {', '.join(TEXT_METRICS)}")


def paired_text_difference(metric: str, raw_a: dict[str, Any], raw_b: dict[str, Any], options: dict[str, Any],
                           n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """score(b) - score(a) of the headline score on the same documents, with a paired bootstrap CI:
    each resample draws one set of documents and scores both candidates on it."""
    stat_a, names = resample_statistic(metric, raw_a, options)
    stat_b, _ = resample_statistic(metric, raw_b, options)
    n = _documents(metric, raw_a)
    if n != _documents(metric, raw_b):
        raise ValueError("paired_text_difference: both candidates must be scored on the same documents")
    col = names.index(headline(metric, options))
    everything = np.arange(n)[None, :]
    a, b = float(stat_a(everything)[0, col]), float(stat_b(everything)[0, col])

    def diff(idx: np.ndarray) -> np.ndarray:
        return stat_b(idx)[:, col] - stat_a(idx)[:, col]

    low, high = bootstrap_ci(diff, n, n_resamples=n_resamples, seed=seed, confidence=confidence)
    return {"score": headline(metric, options), "value": b - a, "ci_low": float(low), "ci_high": float(high),
            "ci_level": confidence, "score_a": a, "score_b": b, "n": n, "n_resamples": n_resamples,
            "method": "paired percentile bootstrap over documents (one draw scores both candidates)"}


def _documents(metric: str, raw: dict[str, Any]) -> int:
    if metric == "rouge":
        return len(next(iter(raw["per_document"].values())))
    return len(raw["statistics"])


def _module_kwargs(metric: str, options: dict[str, Any]) -> dict[str, Any]:
    if metric == "rouge":
        return {"rouge_types": list(ROUGE_TYPES), "use_stemmer": bool(options.get("use_stemmer", False))}
    return {"word_order": int(options.get("word_order", 0)), "lowercase": bool(options.get("lowercase", False))}


def _chrf(options: dict[str, Any]) -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF(word_order=int(options.get("word_order", 0)), lowercase=bool(options.get("lowercase", False)))
