"""Input-shift statistics against cases worked by hand (or by closed-form distributions)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from hf_cost.drift.input_shift import (
    distribution_shift,
    domain_classifier_auc,
    length_shift,
    unseen_rate,
    word_tokens,
)

# ---------------------------------------------------------------------------------------- tokens


def test_word_tokens_punctuation_and_case():
    assert word_tokens("Hello, World!  It's 2024...") == ["hello", "world", "it's", "2024"]


def test_word_tokens_apostrophes_keep_one_word():
    assert word_tokens("Don't stop") == ["don't", "stop"]
    assert word_tokens("L’été") == ["l’été"]  # typographic apostrophe
    # A leading, trailing or doubled apostrophe is not inside a word.
    assert word_tokens("'quoted' rock'n'roll dogs'") == ["quoted", "rock'n'roll", "dogs"]
    assert word_tokens("a''b") == ["a", "b"]


def test_word_tokens_underscores_hyphens_and_unicode():
    assert word_tokens("snake_case") == ["snake", "case"]
    assert word_tokens("Café déjà-vu") == ["café", "déjà", "vu"]
    assert word_tokens("ΑΘΗΝΑ und Straße") == ["αθηνα", "und", "straße"]
    assert word_tokens("") == []
    assert word_tokens("--- !!! ___") == []


# ---------------------------------------------------------------------------------- unseen rate

REFERENCE = [["a", "b"], ["b", "c"]]
PERIOD = [["a", "d"], ["d", "e", "b"]]


def test_unseen_rate_hand_case():
    # Vocabulary {a, b, c}. Period occurrences a d | d e b: unseen d, d, e = 3 of 5.
    result = unseen_rate(REFERENCE, PERIOD)
    assert result["value"] == pytest.approx(0.6)
    assert result["unseen_tokens"] == 3
    assert result["tokens"] == 5
    assert result["unseen_types"] == 2  # d, e
    assert result["types"] == 4  # a, d, e, b
    assert result["reference_types"] == 3
    assert result["documents"] == 2
    # Two documents (1 of 2 unseen, 2 of 3 unseen): a resample is {1,1} -> 1/2 (prob 1/4),
    # {2,2} -> 4/6 (1/4) or one of each -> 3/5 (1/2). The 2.5 % and 97.5 % quantiles of 1,000
    # such draws are therefore 1/2 and 2/3.
    assert result["ci_low"] == pytest.approx(0.5)
    assert result["ci_high"] == pytest.approx(2 / 3)
    assert result["ci_level"] == 0.95
    assert "bootstrap" in result["method"]


def test_unseen_rate_ignores_empty_documents_and_accepts_int_ids():
    ids = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    ref = [[ids[t] for t in doc] for doc in REFERENCE]
    per = [np.array([ids[t] for t in doc]) for doc in PERIOD] + [[]]
    result = unseen_rate(ref, per)
    assert result["value"] == pytest.approx(0.6)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((0.5, 2 / 3))
    assert result["documents"] == 3


def test_unseen_rate_identical_period_is_zero():
    result = unseen_rate(REFERENCE, REFERENCE)
    assert result["value"] == 0.0
    assert result["ci_low"] == result["ci_high"] == 0.0
    assert result["unseen_types"] == 0


def test_unseen_rate_contains_value_on_a_larger_corpus():
    rng = random.Random(1)
    ref = [[rng.randrange(50) for _ in range(10)] for _ in range(100)]
    per = [[rng.randrange(60) for _ in range(rng.randrange(1, 15))] for _ in range(80)]
    result = unseen_rate(ref, per, n_resamples=500, seed=3)
    assert result["ci_low"] < result["value"] < result["ci_high"]
    assert result == unseen_rate(ref, per, n_resamples=500, seed=3)


@pytest.mark.parametrize("period", [[], [[], []]])
def test_unseen_rate_without_tokens_is_none(period):
    result = unseen_rate(REFERENCE, period)
    assert result["value"] is None and result["ci_low"] is None and result["ci_high"] is None
    assert result["tokens"] == 0


def test_unseen_rate_rejects_string_documents():
    with pytest.raises(TypeError, match="list of tokens"):
        unseen_rate(REFERENCE, ["a d"])


# --------------------------------------------------------------------------------- length shift


def test_length_shift_identical_samples():
    result = length_shift([3, 5, 8, 13], [3, 5, 8, 13])
    assert result["ks_statistic"] == 0.0
    assert result["p_value"] == pytest.approx(1.0)
    assert result["reference_median"] == result["period_median"] == 6.5


def test_length_shift_disjoint_ranges():
    result = length_shift([1, 2, 3], [10, 11, 12])
    assert result["ks_statistic"] == 1.0
    # Exact two-sided p: of the C(6, 3) = 20 equally likely orderings, only 2 (all of one sample
    # below all of the other) reach D = 1, so p = 2 / 20.
    assert result["p_value"] == pytest.approx(0.1)
    assert (result["reference_median"], result["period_median"]) == (2.0, 11.0)
    assert (result["reference_n"], result["period_n"]) == (3, 3)


def test_length_shift_rejects_empty():
    with pytest.raises(ValueError):
        length_shift([], [1, 2])


# --------------------------------------------------------------------------- distribution shift


def _chi2_df1_sf(x: float) -> float:
    """P(X > x) for chi-square with 1 df: X = Z^2, so P = P(|Z| > sqrt x) = erfc(sqrt(x / 2))."""
    return math.erfc(math.sqrt(x / 2))


def test_distribution_shift_identical_proportions():
    result = distribution_shift([10, 20], [1, 2])
    assert result["js_divergence"] == pytest.approx(0.0, abs=1e-12)
    assert result["p_value"] == pytest.approx(1.0)
    assert result["reference"] == pytest.approx([1 / 3, 2 / 3])
    assert (result["reference_n"], result["period_n"]) == (30, 3)


def test_distribution_shift_disjoint_supports_is_one_bit():
    result = distribution_shift([5, 0], [0, 7])
    assert result["js_divergence"] == pytest.approx(1.0, abs=1e-12)
    # A perfectly associated 2x2 table has chi-square = N = 12.
    assert result["chi_square"] == pytest.approx(12.0)
    assert result["p_value"] == pytest.approx(_chi2_df1_sf(12.0))


def test_distribution_shift_hand_js():
    # p = [1/2, 1/2], q = [1, 0], m = [3/4, 1/4].
    # KL(p||m) = 1/2 log2(2/3) + 1/2 log2(2) = 1 - (1/2) log2 3
    # KL(q||m) = log2(4/3) = 2 - log2 3
    # JS = (3 - (3/2) log2 3) / 2 = 1.5 - 0.75 * 1.5849625 = 0.3112781 bits
    result = distribution_shift([1, 1], [2, 0])
    assert result["js_divergence"] == pytest.approx(0.311278124, abs=1e-8)


def test_distribution_shift_textbook_two_by_two():
    # [[10, 20], [30, 40]]: N = 100, rows 30/70, columns 40/60, expected 12, 18, 28, 42.
    # chi2 = 4 * (1/12 + 1/18 + 1/28 + 1/42) = 4 * 50/252 = 200/252 = 0.7936508
    # (= N (ad - bc)^2 / (r1 r2 c1 c2) = 100 * 200^2 / 5,040,000).
    result = distribution_shift([10, 20], [30, 40])
    assert result["chi_square"] == pytest.approx(200 / 252)
    assert result["p_value"] == pytest.approx(_chi2_df1_sf(200 / 252))
    assert result["test"] == "chi-square homogeneity, df=1"
    assert result["period"] == pytest.approx([3 / 7, 4 / 7])
    # A class that is zero on both sides is dropped from the test, not from the proportions.
    padded = distribution_shift([10, 0, 20], [30, 0, 40])
    assert padded["chi_square"] == pytest.approx(200 / 252)
    assert padded["test"].endswith("df=1")
    assert padded["reference"] == pytest.approx([1 / 3, 0.0, 2 / 3])


def test_distribution_shift_three_classes_df():
    # Equal proportions on both sides: chi-square 0, df 2, p = 1.
    result = distribution_shift([1, 2, 3], [2, 4, 6])
    assert result["test"].endswith("df=2")
    assert result["p_value"] == pytest.approx(1.0)


@pytest.mark.parametrize("ref, per", [([5], [3]), ([5, 0], [3, 0])])
def test_distribution_shift_single_class_has_no_test(ref, per):
    result = distribution_shift(ref, per)
    assert result["p_value"] is None
    assert result["js_divergence"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "ref, per", [([1, 2], [1, 2, 3]), ([], []), ([0, 0], [1, 2]), ([-1, 2], [1, 1])]
)
def test_distribution_shift_rejects_bad_counts(ref, per):
    with pytest.raises(ValueError):
        distribution_shift(ref, per)


# -------------------------------------------------------------------------- domain classifier

VOCAB = [f"word{i}" for i in range(150)]
SLANG = [f"slang{i}" for i in range(40)]  # disjoint from VOCAB


def _texts(rng: random.Random, n: int, slang_share: float = 0.0) -> list[str]:
    texts = []
    for _ in range(n):
        words = [rng.choice(VOCAB) for _ in range(rng.randrange(8, 16))]
        if rng.random() < slang_share:
            words[:4] = [rng.choice(SLANG) for _ in range(4)]
        texts.append(" ".join(words))
    return texts


def test_domain_classifier_no_drift_between_halves_of_one_period():
    texts = _texts(random.Random(0), 600)
    result = domain_classifier_auc(texts[:300], texts[300:])
    assert abs(result["auc"] - 0.5) < 0.1
    assert result["ci_low"] <= 0.5 <= result["ci_high"]
    assert result["n_per_side"] == 300 and result["folds"] == 5
    assert "approximate" in result["method"]
    assert "skipped" not in result


def test_domain_classifier_detects_slang():
    rng = random.Random(0)
    reference, period = _texts(rng, 300), _texts(rng, 300, slang_share=0.5)
    result = domain_classifier_auc(reference, period)
    # Half the period texts carry slang and are separable; the other half are draws from the
    # reference distribution, which no classifier can rank above chance. So the AUC tends to
    # 1/2 * 1 + 1/2 * 1/2 = 0.75, not to 1.
    assert 0.68 < result["auc"] < 0.82
    assert result["ci_low"] > 0.6
    assert result["p_value"] < 0.01
    every = domain_classifier_auc(reference, _texts(rng, 300, slang_share=1.0))
    assert every["auc"] > 0.95 and every["ci_low"] > 0.9 and every["ci_high"] <= 1.0
    assert every["p_value"] < 1e-10


def test_domain_classifier_is_deterministic_and_subsamples():
    rng = random.Random(2)
    reference, period = _texts(rng, 120), _texts(rng, 90, slang_share=0.5)
    first = domain_classifier_auc(reference, period, seed=4, max_per_side=60, n_resamples=200)
    assert first == domain_classifier_auc(
        reference, period, seed=4, max_per_side=60, n_resamples=200
    )
    assert first["n_per_side"] == 60
    assert domain_classifier_auc(reference, period, max_per_side=None)["n_per_side"] == 90


@pytest.mark.parametrize("n, cap", [(3, 1000), (50, 4)])
def test_domain_classifier_too_few_texts_is_skipped(n, cap):
    texts = _texts(random.Random(0), 2 * n)
    result = domain_classifier_auc(texts[:n], texts[n:], max_per_side=cap)
    m = min(n, cap)
    assert result["skipped"] == f"needs at least 5 texts per side, has {m}"
    assert result["auc"] is None and result["p_value"] is None and result["ci_low"] is None


def test_domain_classifier_without_word_features_is_skipped():
    result = domain_classifier_auc(["", "!"] * 5, ["?", " "] * 5)
    assert result["auc"] is None
    assert "vocabulary" in result["skipped"]


def test_auc_bootstrap_counts_ties_as_half():
    from hf_cost.drift.input_shift import _stratified_auc_ci

    # Every score equal: each pair is a tie worth 1/2, so every resample's AUC is exactly 0.5.
    assert _stratified_auc_ci(np.full(4, 0.3), np.full(5, 0.3), 200, 0, 0.95) == (0.5, 0.5)
    # Fully separated classes: every resample has AUC 1.
    assert _stratified_auc_ci(np.array([0.1, 0.2]), np.array([0.8, 0.9]), 200, 0, 0.9) == (1, 1)
