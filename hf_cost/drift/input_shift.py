"""Input drift of one dated period against the training window, measured without labels.

A period can lose quality because its inputs moved away from what the model was trained on. Each
statistic here comes with the test or interval behind it: the share of unseen tokens
(``unseen_rate``), input lengths (``length_shift``, Kolmogorov-Smirnov), class distributions
(``distribution_shift``: the label prior, or predicted classes; Jensen-Shannon + chi-square), and
whether a small classifier can tell period text from training text (``domain_classifier_auc``,
which lives in hf_cost/drift/domain_classifier.py with its permutation baseline and top terms,
and is re-exported here so callers keep one import).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from hf_cost.drift.domain_classifier import _stratified_auc_ci, domain_classifier_auc
from hf_cost.quality.scoring import bootstrap_ci

__all__ = [
    "distribution_shift",
    "domain_classifier_auc",
    "length_shift",
    "unseen_rate",
    "word_tokens",
    "_stratified_auc_ci",
]

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def word_tokens(text: str) -> list[str]:
    """Lowercased word tokens of ``text``: maximal runs of Unicode letters and digits.

    The pattern is ``[^\\W_]+(?:['’][^\\W_]+)*``: underscores, hyphens, whitespace and punctuation
    separate tokens, and an ASCII or typographic apostrophe inside a word keeps it one token.
    ``word_tokens("Don't stop, café déjà-vu!") == ["don't", "stop", "café", "déjà", "vu"]``.
    """
    return [match.lower() for match in _WORD.findall(text)]


def unseen_rate(
    reference_docs: Sequence[Sequence[Hashable]],
    period_docs: Sequence[Sequence[Hashable]],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Share of the period's token occurrences whose token is not in the reference vocabulary.

    Documents are token lists: word tokens or a tokenizer's ids (anything hashable). The
    vocabulary is every token of ``reference_docs``. The interval is a percentile bootstrap over
    period documents (each resample: the ratio of summed unseen counts to summed token counts);
    documents without tokens add nothing to either sum and are left out of the resampling. A
    period without tokens has ``value`` and interval None. Returns ``{"value", "ci_low",
    "ci_high", "ci_level", "unseen_tokens", "tokens", "unseen_types", "types",
    "reference_types", "documents", "method"}``.
    """
    vocabulary = {token for doc in reference_docs for token in _tokens_of(doc)}
    docs = [_tokens_of(doc) for doc in period_docs]
    totals = np.array([len(doc) for doc in docs], dtype=np.int64)
    unseen = np.array([sum(t not in vocabulary for t in doc) for doc in docs], dtype=np.int64)
    types = {token for doc in docs for token in doc}
    n_tokens = int(totals.sum())
    report: dict[str, Any] = {
        **dict.fromkeys(("value", "ci_low", "ci_high")),
        "ci_level": confidence,
        "unseen_tokens": int(unseen.sum()),
        "tokens": n_tokens,
        "unseen_types": sum(1 for token in types if token not in vocabulary),
        "types": len(types),
        "reference_types": len(vocabulary),
        "documents": len(period_docs),
        "method": (
            "unseen token occurrences / all token occurrences of the period, vocabulary = every "
            f"reference token; percentile bootstrap over period documents, {n_resamples} "
            f"resamples, seed {seed}"
        ),
    }
    if n_tokens == 0:
        return report
    keep = totals > 0
    doc_unseen, doc_totals = unseen[keep], totals[keep]

    def ratio(idx: np.ndarray) -> np.ndarray:
        return doc_unseen[idx].sum(axis=1) / doc_totals[idx].sum(axis=1)

    low, high = bootstrap_ci(
        ratio, len(doc_totals), n_resamples=n_resamples, seed=seed, confidence=confidence
    )
    report.update(value=report["unseen_tokens"] / n_tokens, ci_low=float(low), ci_high=float(high))
    return report


def length_shift(reference_lengths: Sequence[int], period_lengths: Sequence[int]) -> dict[str, Any]:
    """Two-sided two-sample Kolmogorov-Smirnov test of input lengths (scipy.stats.ks_2samp).

    Returns ``{"ks_statistic", "p_value", "reference_median", "period_median", "reference_n",
    "period_n", "method"}``. Raises ValueError when either sample is empty.
    """
    from scipy.stats import ks_2samp

    ref = np.asarray(reference_lengths, dtype=float)
    per = np.asarray(period_lengths, dtype=float)
    if ref.size == 0 or per.size == 0:
        raise ValueError(f"length_shift needs lengths on both sides, got {ref.size} and {per.size}")
    result = ks_2samp(ref, per, alternative="two-sided")
    return {
        "ks_statistic": float(result.statistic),
        "p_value": float(result.pvalue),
        "reference_median": float(np.median(ref)),
        "period_median": float(np.median(per)),
        "reference_n": int(ref.size),
        "period_n": int(per.size),
        "method": "two-sided two-sample Kolmogorov-Smirnov test (scipy.stats.ks_2samp)",
    }


def distribution_shift(reference_counts: Sequence[int], period_counts: Sequence[int]) -> dict:
    """Jensen-Shannon divergence (bits) and chi-square homogeneity test of two class-count vectors.

    JS(p, q) = (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2 and log base 2, so it lies in
    [0, 1]: 0 for equal distributions, 1 for disjoint supports. The test is
    scipy.stats.chi2_contingency (no continuity correction) on the 2 x K table, after dropping
    classes that are zero on both sides; with fewer than 2 classes left ``p_value`` is None.
    Returns ``{"js_divergence", "p_value", "chi_square", "test", "reference", "period",
    "reference_n", "period_n"}``; reference and period are proportions per class.
    """
    from scipy.special import rel_entr
    from scipy.stats import chi2_contingency

    if len(reference_counts) != len(period_counts) or len(reference_counts) == 0:
        raise ValueError(f"class counts: lengths {len(reference_counts)}, {len(period_counts)}")
    table = np.array([reference_counts, period_counts], dtype=float)
    sums = table.sum(axis=1)
    if np.any(table < 0) or not np.all(np.isfinite(table)) or np.any(sums == 0):
        raise ValueError(f"class counts must be >= 0, some on each side: {table.tolist()}")
    p, q = table[0] / sums[0], table[1] / sums[1]
    m = (p + q) / 2  # rel_entr(x, y) = x log(x / y), 0 where x = 0
    js = float(rel_entr(p, m).sum() + rel_entr(q, m).sum()) / (2 * np.log(2))
    observed = table[:, table.sum(axis=0) > 0]
    chi_square = p_value = None
    df = observed.shape[1] - 1
    if df >= 1:
        result = chi2_contingency(observed, correction=False)
        chi_square, p_value = float(result.statistic), float(result.pvalue)
        test = f"chi-square homogeneity, df={df}"
    else:
        test = "chi-square homogeneity not run: fewer than 2 classes observed"
    return {
        "js_divergence": float(min(max(js, 0.0), 1.0)),
        "p_value": p_value,
        "chi_square": chi_square,
        "test": test,
        "reference": p.tolist(),
        "period": q.tolist(),
        "reference_n": int(sums[0]),
        "period_n": int(sums[1]),
    }


def _tokens_of(doc: Sequence[Hashable]) -> list[Hashable]:
    if isinstance(doc, str):
        raise TypeError(f"a document must be a list of tokens, not a string: {doc!r:.60}")
    return list(doc)
