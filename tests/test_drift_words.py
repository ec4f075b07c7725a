"""What drifted (the domain classifier's top terms) and its permutation baseline, on hand-built
texts and against sklearn's own TfidfVectorizer pipeline as an independent reference."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hf_cost.drift.input_shift import domain_classifier_auc

FILLER = [f"word{i}" for i in range(150)]
SLANG = [f"slang{i}" for i in range(40)]  # disjoint from FILLER


def _texts(rng: random.Random, n: int, slang_share: float = 0.0) -> list[str]:
    texts = []
    for _ in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randrange(8, 16))]
        if rng.random() < slang_share:
            words[:4] = [rng.choice(SLANG) for _ in range(4)]
        texts.append(" ".join(words))
    return texts


def _with_word(rng: random.Random, n: int, word: str, every: int) -> list[str]:
    """n filler texts; text i carries ``word`` at a random position unless i % every == every - 1."""
    texts = []
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(10)]
        if i % every != every - 1:
            words.insert(rng.randrange(len(words) + 1), word)
        texts.append(" ".join(words))
    return texts


def _chargeback_case() -> tuple[list[str], list[str]]:
    rng = random.Random(0)
    # Reference: "refund" in texts 0, 2, 4, ... (i % 2 != 1): 15 of 30. Period: "chargeback" in
    # every text with i % 3 != 2: 20 of 30. Neither side ever has the other's word.
    return _with_word(rng, 30, "refund", 2), _with_word(rng, 30, "chargeback", 3)


def test_top_terms_name_the_word_each_side_has_alone():
    reference, period = _chargeback_case()
    result = domain_classifier_auc(reference, period)
    assert result["n_per_side"] == 30  # every text used, so the shares below are exact
    top_period, top_reference = result["top_terms"]["period"], result["top_terms"]["reference"]
    assert top_period[0]["term"] == "chargeback"
    assert top_period[0]["period_doc_share"] == pytest.approx(20 / 30)
    assert top_period[0]["reference_doc_share"] == 0.0
    assert top_reference[0]["term"] == "refund"
    assert top_reference[0]["reference_doc_share"] == pytest.approx(15 / 30)
    assert top_reference[0]["period_doc_share"] == 0.0
    assert len(top_period) == len(top_reference) == 10
    period_coefs = [row["coefficient"] for row in top_period]
    reference_coefs = [row["coefficient"] for row in top_reference]
    assert period_coefs == sorted(period_coefs, reverse=True) and min(period_coefs) > 0
    assert reference_coefs == sorted(reference_coefs) and max(reference_coefs) < 0
    assert "coefficient" in result["top_terms_method"]


def test_top_term_coefficient_matches_sklearn_pipeline_on_all_texts():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    reference, period = _chargeback_case()
    result = domain_classifier_auc(reference, period)
    # The same texts in their original order (the function shuffles rows; the fit does not care).
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(C=1.0, max_iter=1000)
    ).fit(reference + period, [0] * 30 + [1] * 30)
    vocabulary = model[0].vocabulary_
    coef = model[1].coef_[0]
    for side, word in (("period", "chargeback"), ("reference", "refund")):
        assert result["top_terms"][side][0]["coefficient"] == pytest.approx(coef[vocabulary[word]], rel=1e-3)


def test_auc_equals_cross_val_predict_of_a_tfidf_vectorizer_pipeline():
    """Per-fold TF-IDF on shared counts must equal a TfidfVectorizer fitted inside each fold."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    rng = random.Random(5)
    reference, period = _texts(rng, 70), _texts(rng, 50, slang_share=0.4)
    result = domain_classifier_auc(reference, period, seed=3, max_per_side=40, n_permutations=2)
    draw = np.random.default_rng(3)  # the documented subsample: seeded, without replacement, m = 40
    texts = [side[i] for side in (reference, period) for i in draw.choice(len(side), size=40, replace=False)]
    labels = np.repeat([0, 1], 40)
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(C=1.0, max_iter=1000)
    )
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    proba = cross_val_predict(model, texts, labels, cv=cv, method="predict_proba")[:, 1]
    assert result["auc"] == pytest.approx(roc_auc_score(labels, proba), abs=1e-9)


def test_permutation_baseline_does_not_flag_one_distribution():
    # Both sides from one pool. With 20 permutations "exceeds" (auc above the interpolated 95th
    # percentile, i.e. above the 19th of 20) still fires by chance about 2 times in 21: it did for
    # 3 of the 20 pools Random(0..19) here, so this pool (Random(2), p = 10/21) is a fixed case.
    texts = _texts(random.Random(2), 200)
    result = domain_classifier_auc(texts[:100], texts[100:], seed=0)
    perm = result["permutation"]
    assert perm["n"] == 20 and len(perm["aucs"]) == 20
    assert perm["exceeds"] is False
    assert perm["p_value"] > 0.05
    # Recomputable from the raw permuted AUCs it keeps.
    at_least = sum(a >= result["auc"] for a in perm["aucs"])
    assert perm["p_value"] == pytest.approx((1 + at_least) / 21)
    assert perm["auc_max"] == max(perm["aucs"]) >= perm["auc_p95"]
    assert "95th percentile" in result["baseline_note"]


def test_permutation_baseline_flags_strongly_different_sides():
    rng = random.Random(2)
    result = domain_classifier_auc(_texts(rng, 100), _texts(rng, 100, slang_share=1.0), seed=0)
    perm = result["permutation"]
    assert result["auc"] > 0.95
    assert perm["exceeds"] is True
    assert perm["auc_max"] < result["auc"]
    assert perm["p_value"] == pytest.approx(1 / 21)


def test_permutation_baseline_is_seeded():
    rng = random.Random(3)
    reference, period = _texts(rng, 60), _texts(rng, 60, slang_share=0.3)
    first = domain_classifier_auc(reference, period, seed=7, n_permutations=5)
    assert first == domain_classifier_auc(reference, period, seed=7, n_permutations=5)
    other = domain_classifier_auc(reference, period, seed=8, n_permutations=5)
    assert other["permutation"]["aucs"] != first["permutation"]["aucs"]


def test_no_permutation_from_1000_texts_a_side():
    rng = random.Random(4)
    words = FILLER[:60]
    texts = [" ".join(rng.choice(words) for _ in range(6)) for _ in range(2000)]
    result = domain_classifier_auc(texts[:1000], texts[1000:], n_resamples=50)
    assert result["n_per_side"] == 1000
    assert result["permutation"] is None
    assert "0.5 is the baseline" in result["baseline_note"]
    assert result["top_terms"]["period"] or result["top_terms"]["reference"]


def test_permutation_threshold_is_a_parameter():
    texts = _texts(random.Random(6), 40)
    assert domain_classifier_auc(texts[:20], texts[20:], permutation_below=20)["permutation"] is None
    assert domain_classifier_auc(texts[:20], texts[20:], permutation_below=21)["permutation"]["n"] == 20


def test_skipped_case_has_empty_terms_and_no_baseline():
    result = domain_classifier_auc(["", "!"] * 5, ["?", " "] * 5)
    assert "vocabulary" in result["skipped"]
    assert result["top_terms"] == {"period": [], "reference": []}
    assert result["permutation"] is None
    few = domain_classifier_auc(["a b"] * 3, ["c d"] * 3)
    assert few["top_terms"] == {"period": [], "reference": []} and few["permutation"] is None


@pytest.mark.parametrize("kwargs", [{"n_permutations": 0}, {"top_k": 0}])
def test_rejects_bad_counts(kwargs):
    with pytest.raises(ValueError):
        domain_classifier_auc(["a b"] * 10, ["c d"] * 10, **kwargs)
