"""Paired comparison of two candidates on the same samples: hand-computed 2x2 tables, McNemar
p-values from the binomial formula (and scipy's binomtest as an independent check), the
paired-vs-unpaired bootstrap, Wilson intervals from the formula worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_cost.quality.paired import agreement, mcnemar_exact_p, paired_accuracy_difference, wilson_interval


def table(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[int], list[int], list[int]]:
    """Predictions for a 2-class problem with the given 2x2 counts; references all 1."""
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return a, b, [1] * len(a)


def test_ten_samples_seven_right_against_eight_right():
    # a right on 7 (6 shared + 1 alone), b on 8 (6 + 2 alone), 1 both wrong.
    a, b, refs = table(6, 1, 2, 1)
    out = paired_accuracy_difference(a, b, refs, n_resamples=200, seed=0)
    assert out["value"] == 0.1  # (2 - 1) / 10, exactly
    assert (out["both_right"], out["only_a_right"], out["only_b_right"], out["both_wrong"]) == (6, 1, 2, 1)
    assert out["accuracy_a"] == 0.7 and out["accuracy_b"] == 0.8
    # McNemar: 3 discordant pairs, min 1: 2 * (C(3,0) + C(3,1)) / 2^3 = 2 * 4/8 = 1, capped at 1.
    assert out["mcnemar_p"] == 1.0
    assert out["n"] == 10 and out["n_resamples"] == 200 and out["confidence"] == 0.95
    assert out["ci_low"] <= 0.1 <= out["ci_high"]
    # The definition, computed apart: one index draw per resample (numpy's default_rng(seed), as
    # scoring.bootstrap_ci draws), both candidates' accuracies on it, percentiles of b - a.
    idx = np.random.default_rng(0).integers(0, 10, size=(200, 10))
    right_a, right_b = np.array(a)[idx] == 1, np.array(b)[idx] == 1
    low, high = np.quantile(right_b.mean(axis=1) - right_a.mean(axis=1), [0.025, 0.975])
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((low, high), abs=1e-12)
    assert "paired" in out["method"] and "McNemar" in out["method"]


@pytest.mark.parametrize(
    "only_a, only_b, p",
    [
        (0, 6, 2 * 1 / 64),  # 0.03125
        (1, 7, 2 * (1 + 8) / 256),  # 0.0703125
        (7, 1, 2 * (1 + 8) / 256),  # symmetric in a and b
        (2, 10, 2 * (1 + 12 + 66) / 4096),  # 0.03857421875
        (3, 3, 1.0),  # 2 * (1+6+15+20)/64 = 1.3125 -> capped
        (0, 0, 1.0),  # no discordant pair: no evidence either way
    ],
)
def test_mcnemar_exact_p_from_the_binomial_formula(only_a, only_b, p):
    assert mcnemar_exact_p(only_a, only_b) == pytest.approx(p, rel=1e-12)
    a, b, refs = table(5, only_a, only_b, 4)
    assert paired_accuracy_difference(a, b, refs, n_resamples=10)["mcnemar_p"] == pytest.approx(p, rel=1e-12)


def test_mcnemar_matches_scipy_binomtest():
    stats = pytest.importorskip("scipy.stats")
    for only_a, only_b in [(0, 6), (1, 7), (4, 11), (13, 20), (50, 71)]:
        ref = stats.binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue
        assert mcnemar_exact_p(only_a, only_b) == pytest.approx(ref, rel=1e-9)


def test_identical_candidates_differ_by_exactly_zero():
    rng = np.random.default_rng(1)
    refs = rng.integers(0, 3, 50)
    preds = rng.integers(0, 3, 50)
    out = paired_accuracy_difference(preds, preds, refs)
    assert out["value"] == 0.0 and out["ci_low"] == 0.0 and out["ci_high"] == 0.0
    assert out["only_a_right"] == out["only_b_right"] == 0 and out["mcnemar_p"] == 1.0
    assert out["both_right"] + out["both_wrong"] == 50
    assert agreement(preds, preds)["value"] == 1.0


def _unpaired_ci(right_a: np.ndarray, right_b: np.ndarray, n_resamples: int, seed: int) -> tuple[float, float]:
    """Independent resamples for a and b: what ignoring the pairing would give."""
    rng = np.random.default_rng(seed)
    n = len(right_a)
    ia, ib = rng.integers(0, n, (n_resamples, n)), rng.integers(0, n, (n_resamples, n))
    diffs = right_b[ib].mean(axis=1) - right_a[ia].mean(axis=1)
    low, high = np.quantile(diffs, [0.025, 0.975])
    return float(low), float(high)


def test_paired_ci_is_narrower_than_unpaired_when_the_candidates_agree():
    # 400 samples, both right on 280, both wrong on 100, b alone right on 15, a alone on 5:
    # highly correlated outcomes, so the pairing removes most of the variance.
    a, b, refs = table(280, 5, 15, 100)
    out = paired_accuracy_difference(a, b, refs, n_resamples=2000, seed=3)
    assert out["value"] == pytest.approx(10 / 400)
    right_a, right_b = np.array(a) == 1, np.array(b) == 1
    low, high = _unpaired_ci(right_a, right_b, 2000, seed=3)
    paired_width, unpaired_width = out["ci_high"] - out["ci_low"], high - low
    # Binomial variances per sample: paired var(d) = 20/400 - (10/400)^2 ~ 0.049; unpaired
    # var(a) + var(b) = 0.7125*0.2875 + 0.7375*0.2625 ~ 0.398: widths in ratio ~ sqrt(0.12) ~ 0.35.
    assert paired_width < 0.5 * unpaired_width
    assert out["ci_low"] > low and out["ci_high"] < high


def test_the_seed_makes_it_reproducible():
    rng = np.random.default_rng(7)
    refs = rng.integers(0, 2, 60)
    a = np.where(rng.random(60) < 0.8, refs, 1 - refs)
    b = np.where(rng.random(60) < 0.85, refs, 1 - refs)
    first = paired_accuracy_difference(a, b, refs, n_resamples=300, seed=5)
    assert paired_accuracy_difference(a, b, refs, n_resamples=300, seed=5) == first
    other = [paired_accuracy_difference(a, b, refs, n_resamples=300, seed=s) for s in (6, 7, 8)]
    assert any((o["ci_low"], o["ci_high"]) != (first["ci_low"], first["ci_high"]) for o in other)
    assert all(o["value"] == first["value"] for o in other)  # the estimate does not resample


def test_the_difference_is_b_minus_a():
    a, b, refs = table(3, 0, 4, 3)
    assert paired_accuracy_difference(a, b, refs, n_resamples=10)["value"] == 0.4
    assert paired_accuracy_difference(b, a, refs, n_resamples=10)["value"] == -0.4


def test_wilson_interval_by_hand():
    # 8 agreements of 10 at 95%: z = 1.959964, p = 0.8, z^2 = 3.841459.
    z = 1.959963984540054
    denominator = 1 + z * z / 10  # 1.3841459
    centre = (0.8 + z * z / 20) / denominator  # 0.9920729 / 1.3841459 = 0.716738
    half = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / denominator  # 0.2266...
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(centre - half) and high == pytest.approx(centre + half)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)  # published tables


def test_agreement_counts_same_predictions_whatever_the_references():
    out = agreement([0, 1, 2, 2, 1, 0, 0, 1, 2, 1], [0, 1, 2, 2, 1, 0, 0, 1, 0, 0])
    assert out["value"] == 0.8 and out["agree"] == 8 and out["n"] == 10
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(wilson_interval(8, 10))
    assert "Wilson" in out["method"]
    every = agreement([1] * 20, [1] * 20)
    assert every["ci_high"] == 1.0 and every["ci_low"] == pytest.approx(20 / (20 + 1.959964**2), rel=1e-6)
    none = agreement([1] * 5, [0] * 5)
    assert none["value"] == 0.0 and none["ci_low"] == 0.0 and 0 < none["ci_high"] < 1


@pytest.mark.parametrize(
    "args, words",
    [
        (([0, 1], [0, 1, 1], [0, 1]), "lengths differ"),
        (([0, 1], [0, 1], [0]), "lengths differ"),
        (([], [], []), "no examples"),
        (([0.5, 1.0], [0, 1], [0, 1]), "preds_a must be a flat sequence of integer"),
        (([[0, 1]], [[0, 1]], [[0, 1]]), "must be a flat sequence"),
    ],
)
def test_paired_difference_refuses_bad_input(args, words):
    with pytest.raises(ValueError, match=words):
        paired_accuracy_difference(*args)


def test_bad_resampling_settings_and_agreement_input_are_refused():
    with pytest.raises(ValueError, match="n_resamples"):
        paired_accuracy_difference([0], [0], [0], n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        paired_accuracy_difference([0], [0], [0], confidence=1.0)
    with pytest.raises(ValueError, match="lengths differ"):
        agreement([0, 1], [0])
    with pytest.raises(ValueError, match="no examples"):
        agreement([], [])
    with pytest.raises(ValueError, match="confidence"):
        agreement([0], [0], confidence=0.0)
