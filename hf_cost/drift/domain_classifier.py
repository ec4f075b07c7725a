"""Can a small classifier tell a period's text from the training window's? Measured three ways.

``domain_classifier_auc`` subsamples both sides (seeded) and reports the cross-validated ROC AUC
of TF-IDF word 1-2-grams + logistic regression, with a bootstrap interval; for fewer than 1,000
texts a side it also compares that AUC with a label-permutation baseline (the same
cross-validation on shuffled side labels) rather than with 0.5; and it names the terms that
separate the two sides most (the largest coefficients of the same model fitted on all subsampled
texts), with the share of each side's texts that contain them.

The counting runs once per call: one CountVectorizer over all 2m subsampled texts; each fold then
keeps the columns of terms present in its training rows and fits a TfidfTransformer on them,
which is exactly what a TfidfVectorizer fitted inside that fold computes (same vocabulary, same
smoothed idf, same sublinear tf and l2 norm), so permutations cost a logistic fit per fold, not a
re-tokenisation. BLAS is held to one thread while fitting: these sparse problems are small, and
on a shared 2-core machine BLAS threads made each logistic fit about 20x slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Elements of the (resamples x examples) arrays built at once in the AUC bootstrap (~8 MB).
_CHUNK_ELEMENTS = 1 << 20
_EMPTY = "no word features in the texts (empty TF-IDF vocabulary in a fold)"


def domain_classifier_auc(
    reference_texts: Sequence[str],
    period_texts: Sequence[str],
    *,
    seed: int = 0,
    folds: int = 5,
    max_per_side: int | None = 1000,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    top_k: int = 10,
    n_permutations: int = 20,
    permutation_below: int = 1000,
) -> dict[str, Any]:
    """Cross-validated AUC of a classifier telling training-window text (0) from period text (1).

    Both sides are subsampled (seeded, without replacement) to m = min(n_ref, n_period,
    max_per_side). TF-IDF on word 1-2-grams is fitted inside each fold, then logistic regression;
    the AUC is over the out-of-fold probabilities, its interval a percentile bootstrap of those
    (label, score) pairs resampled within each class. The p-value is a one-sided Mann-Whitney U
    test (period scores greater).

    ``permutation`` (m < ``permutation_below``, else None): the same cross-validation repeated
    ``n_permutations`` times on side labels shuffled by the generator that drew the subsample:
    ``{"n", "aucs", "auc_p95", "auc_max", "exceeds", "p_value", "method"}`` with
    exceeds = auc > auc_p95 and p_value = (1 + #{permuted AUC >= auc}) / (1 + n).
    ``top_terms``: ``{"period": [...], "reference": [...]}``, the ``top_k`` terms with the largest
    positive (towards the period) and most negative (towards the training window) coefficients of
    the pipeline fitted once on all 2m texts, each ``{"term", "coefficient", "period_doc_share",
    "reference_doc_share"}`` (share of that side's m texts containing the term as the vectorizer
    tokenises it); only terms with a coefficient of that sign are listed.

    Returns ``{"auc", "ci_low", "ci_high", "ci_level", "p_value", "n_per_side", "folds",
    "method", "permutation", "baseline_note", "top_terms", "top_terms_method"}``, plus
    ``"skipped"`` (a reason) with None values and empty term lists when m < folds or the texts
    have no word features.
    """
    from scipy.stats import mannwhitneyu
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    if folds < 2 or n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(
            f"need folds >= 2, n_resamples >= 1, 0 < confidence < 1: {folds}, "
            f"{n_resamples}, {confidence}"
        )
    if top_k < 1 or n_permutations < 1:
        raise ValueError(f"need top_k >= 1 and n_permutations >= 1: {top_k}, {n_permutations}")
    bad = next((t for t in [*reference_texts, *period_texts] if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"texts must be strings, got {type(bad).__name__}: {bad!r:.60}")
    cap = max_per_side if max_per_side is not None else max(len(reference_texts), len(period_texts))
    m = min(len(reference_texts), len(period_texts), cap)
    permuted = m < permutation_below
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
        "permutation": None,
        "baseline_note": (
            f"compare the AUC with the permutation baseline's 95th percentile, not 0.5: with "
            f"{m} texts a side (< {permutation_below}) chance alone moves a cross-validated AUC"
            if permuted
            else f"0.5 is the baseline: with {m} texts a side (>= {permutation_below}) no "
            "permutation baseline is run"
        ),
        "top_terms": {"period": [], "reference": []},
        "top_terms_method": (
            "the same TF-IDF + logistic regression fitted once on all subsampled texts; the "
            f"{top_k} largest positive (period) and most negative (training window) coefficients; "
            "doc shares: fraction of each side's subsampled texts containing the term"
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
    with threadpool_limits(limits=1, user_api="blas"):
        counted = _count_terms(texts)
        if counted is None:
            report["skipped"] = _EMPTY
            return report
        counts, terms = counted
        scores, empty_fold = _oof_scores(counts, labels, folds, seed)
        if empty_fold:
            report["skipped"] = _EMPTY
            return report
        ref_scores, per_scores = scores[:m], scores[m:]
        low, high = _stratified_auc_ci(ref_scores, per_scores, n_resamples, seed, confidence)
        p_value = float(mannwhitneyu(per_scores, ref_scores, alternative="greater").pvalue)
        auc = float(roc_auc_score(labels, scores))
        report.update(auc=auc, ci_low=low, ci_high=high, p_value=p_value)
        if permuted:
            report["permutation"] = _permutation_baseline(counts, labels, auc, folds, seed, n_permutations, rng)
        report["top_terms"] = _top_terms(counts, terms, labels, m, top_k, seed)
    return report


def _count_terms(texts: list[str]) -> tuple[Any, np.ndarray] | None:
    """Word 1-2-gram counts of every text (CSR, columns in sorted term order) and the terms; None
    when no text has a word feature."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(ngram_range=(1, 2), min_df=1)
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError as exc:
        if "empty vocabulary" not in str(exc):
            raise
        return None
    return counts.tocsr(), vectorizer.get_feature_names_out()


def _logistic(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)


def _oof_scores(counts: Any, labels: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, bool]:
    """Out-of-fold P(period) of TF-IDF + logistic regression fitted per fold (StratifiedKFold,
    shuffled with ``seed``), and whether some training fold had no term. Such a fold scores its
    test rows with the training share of label 1, what an intercept-only model predicts."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.model_selection import StratifiedKFold

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = np.empty(len(labels))
    empty = False
    for train, test in cv.split(np.zeros(len(labels)), labels):
        train_counts = counts[train]
        keep = np.flatnonzero(train_counts.getnnz(axis=0))
        if keep.size == 0:
            empty = True
            scores[test] = labels[train].mean()
            continue
        tfidf = TfidfTransformer(sublinear_tf=True)
        model = _logistic(seed).fit(tfidf.fit_transform(train_counts[:, keep]), labels[train])
        scores[test] = model.predict_proba(tfidf.transform(counts[test][:, keep]))[:, 1]
    return scores, empty


def _permutation_baseline(
    counts: Any, labels: np.ndarray, auc: float, folds: int, seed: int, n: int, rng: np.random.Generator
) -> dict[str, Any]:
    """The observed AUC against ``n`` cross-validations on shuffled side labels."""
    from sklearn.metrics import roc_auc_score

    aucs = []
    for _ in range(n):
        shuffled = rng.permutation(labels)
        aucs.append(float(roc_auc_score(shuffled, _oof_scores(counts, shuffled, folds, seed)[0])))
    p95 = float(np.quantile(aucs, 0.95))
    return {
        "n": n,
        "aucs": aucs,
        "auc_p95": p95,
        "auc_max": max(aucs),
        "exceeds": auc > p95,
        "p_value": (1 + sum(a >= auc for a in aucs)) / (1 + n),
        "method": (
            f"the same {folds}-fold cross-validation on {n} random permutations of the side labels "
            f"(numpy default_rng({seed}), after drawing the subsample); auc_p95: their 95th "
            "percentile (linear interpolation); exceeds: auc > auc_p95; p_value: "
            "(1 + #{permuted AUC >= auc}) / (1 + n)"
        ),
    }


def _top_terms(
    counts: Any, terms: np.ndarray, labels: np.ndarray, m: int, top_k: int, seed: int
) -> dict[str, list[dict[str, Any]]]:
    """Terms with the largest coefficients of each sign (ties in sorted term order)."""
    from sklearn.feature_extraction.text import TfidfTransformer

    model = _logistic(seed).fit(TfidfTransformer(sublinear_tf=True).fit_transform(counts), labels)
    coef = model.coef_[0]
    present = counts > 0
    shares = [np.asarray(present[side].sum(axis=0)).ravel() / m for side in (slice(0, m), slice(m, None))]

    def rows(order: np.ndarray, sign: float) -> list[dict[str, Any]]:
        return [
            {
                "term": str(terms[j]),
                "coefficient": float(coef[j]),
                "period_doc_share": float(shares[1][j]),
                "reference_doc_share": float(shares[0][j]),
            }
            for j in order[:top_k]
            if coef[j] * sign > 0
        ]

    return {
        "period": rows(np.argsort(-coef, kind="stable"), 1.0),
        "reference": rows(np.argsort(coef, kind="stable"), -1.0),
    }


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
