"""Input drift of one dated period against the training window, measured without labels.

A period can lose quality because its inputs moved away from what the model was trained on. Each
statistic here comes with the test or interval behind it: the share of unseen tokens
(``unseen_rate``), input lengths (``length_shift``, Kolmogorov-Smirnov), class distributions
(``distribution_shift``: the label prior, or predicted classes; Jensen-Shannon + chi-square), and
whether a small classifier can tell period text from training text (``domain_classifier_auc``).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from hf_cost.quality.scoring import bootstrap_ci

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")

# Elements of the (resamples x examples) arrays built at once in the AUC bootstrap (~8 MB).
_CHUNK_ELEMENTS = 1 << 20


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


def domain_classifier_auc(
    reference_texts: Sequence[str],
    period_texts: Sequence[str],
    *,
    seed: int = 0,
    folds: int = 5,
    max_per_side: int | None = 1000,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Cross-validated AUC of a classifier telling training-window text (0) from period text (1).

    Both sides are subsampled (seeded, without replacement) to m = min(n_ref, n_period,
    max_per_side). TF-IDF on word 1-2-grams is fitted inside each fold, then logistic regression;
    the AUC is over the out-of-fold probabilities, its interval a percentile bootstrap of those
    (label, score) pairs resampled within each class. The p-value is a one-sided Mann-Whitney U
    test (period scores greater). Returns ``{"auc", "ci_low", "ci_high", "ci_level", "p_value",
    "n_per_side", "folds", "method"}``, plus ``"skipped"`` (a reason) with None values when
    m < folds or the texts have no word features.
    """
    from scipy.stats import mannwhitneyu
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    if folds < 2 or n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(
            f"need folds >= 2, n_resamples >= 1, 0 < confidence < 1: {folds}, "
            f"{n_resamples}, {confidence}"
        )
    bad = next((t for t in [*reference_texts, *period_texts] if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"texts must be strings, got {type(bad).__name__}: {bad!r:.60}")
    cap = max_per_side if max_per_side is not None else max(len(reference_texts), len(period_texts))
    m = min(len(reference_texts), len(period_texts), cap)
    report: dict[str, Any] = {
        **dict.fromkeys(("auc", "ci_low", "ci_high", "p_value")),
        "ci_level": confidence,
        "n_per_side": m,
        "folds": folds,
        "method": (
            f"{folds}-fold stratified cross-validation (seed {seed}) of TF-IDF word 1-2-grams + "
            "logistic regression (C=1), out-of-fold probabilities; ROC AUC with a percentile "
            f"bootstrap within each class ({n_resamples} resamples); p-value: one-sided "
            "Mann-Whitney U, approximate because cross-validated scores are not independent"
        ),
    }
    if m < folds:
        report["skipped"] = f"needs at least {folds} texts per side, has {m}"
        return report
    rng = np.random.default_rng(seed)
    texts = [
        side[i]
        for side in (reference_texts, period_texts)
        for i in rng.choice(len(side), size=m, replace=False)
    ]
    labels = np.repeat([0, 1], m)
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
        LogisticRegression(C=1.0, max_iter=1000, random_state=seed),
    )
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    try:
        proba = cross_val_predict(model, texts, labels, cv=cv, method="predict_proba")
    except ValueError as exc:
        if "empty vocabulary" not in str(exc):
            raise
        report["skipped"] = "no word features in the texts (empty TF-IDF vocabulary in a fold)"
        return report
    scores = proba[:, 1]
    ref_scores, per_scores = scores[:m], scores[m:]
    low, high = _stratified_auc_ci(ref_scores, per_scores, n_resamples, seed, confidence)
    p_value = float(mannwhitneyu(per_scores, ref_scores, alternative="greater").pvalue)
    auc = float(roc_auc_score(labels, scores))
    report.update(auc=auc, ci_low=low, ci_high=high, p_value=p_value)
    return report


def _tokens_of(doc: Sequence[Hashable]) -> list[Hashable]:
    if isinstance(doc, str):
        raise TypeError(f"a document must be a list of tokens, not a string: {doc!r:.60}")
    return list(doc)


def _stratified_auc_ci(
    neg: np.ndarray, pos: np.ndarray, n_resamples: int, seed: int, confidence: float
) -> tuple[float, float]:
    """Percentile AUC interval, negatives and positives resampled separately. Each resample's AUC
    is (rank sum of positives - n1 (n1 + 1) / 2) / (n1 n0), mid-ranks for ties: roc_auc_score's."""
    from scipy.stats import rankdata

    n0, n1 = len(neg), len(pos)
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_ELEMENTS // (n0 + n1))
    aucs = []
    for start in range(0, n_resamples, per_chunk):
        b = min(per_chunk, n_resamples - start)
        neg_draw, pos_draw = neg[rng.integers(0, n0, (b, n0))], pos[rng.integers(0, n1, (b, n1))]
        pos_ranks = rankdata(np.hstack([neg_draw, pos_draw]), axis=1)[:, n0:].sum(axis=1)
        aucs.append((pos_ranks - n1 * (n1 + 1) / 2) / (n1 * n0))
    alpha = 1.0 - confidence
    low, high = np.quantile(np.concatenate(aucs), [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
