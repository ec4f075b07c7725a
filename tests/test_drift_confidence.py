"""Label-free accuracy estimates (AC, ATC) and max softmax against cases worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_cost.drift.confidence import atc_threshold, estimate_accuracy, max_softmax


def test_max_softmax_hand_values():
    # [0, ln 3]: probabilities 1/4, 3/4. [2, 1, 0]: e^2 / (e^2 + e + 1). Four equal logits: 1/4.
    e = math.e
    logits = np.array([[0.0, math.log(3), 0.0], [2.0, 1.0, 0.0], [5.0, 5.0, 5.0]])
    expected = [3 / 5, e**2 / (e**2 + e + 1), 1 / 3]  # first row: 3 / (1 + 3 + 1)
    assert max_softmax(logits) == pytest.approx(expected)
    assert max_softmax(np.ones((1, 4))) == pytest.approx([0.25])


def test_max_softmax_is_stable_on_large_logits():
    # 1 / (1 + e^-1000) is 1 in double precision; a naive exp(1000) would overflow to inf.
    out = max_softmax(np.array([[1000.0, 0.0], [-1000.0, -1000.0], [1e308, 1e308]]))
    assert np.all(np.isfinite(out))
    assert out == pytest.approx([1.0, 0.5, 0.5])


def test_max_softmax_rejects_wrong_shape():
    with pytest.raises(ValueError):
        max_softmax(np.array([1.0, 2.0]))


ID_CONF = [0.9, 0.8, 0.7, 0.6]
ID_CORRECT = [1, 1, 1, 0]


def test_atc_hand_case():
    # ID accuracy 3/4, n = 4, k = 3 must lie above t: t = the (4 - 3) = 1st smallest = 0.6
    # (0.9, 0.8, 0.7 are strictly above it).
    result = estimate_accuracy(ID_CONF, ID_CORRECT, [0.95, 0.65, 0.5, 0.4])
    assert result["atc_threshold"] == 0.6
    assert result["id_accuracy"] == 0.75
    assert result["atc"] == 0.5  # 0.95 and 0.65 are above 0.6
    assert result["average_confidence"] == pytest.approx((0.95 + 0.65 + 0.5 + 0.4) / 4)  # 0.625
    assert (result["id_n"], result["period_n"]) == (4, 4)
    assert result["score"] == "max softmax probability"
    assert "Garg" in result["method"] and "Hendrycks" in result["method"]


def test_atc_a_period_value_equal_to_t_is_not_above():
    result = estimate_accuracy(ID_CONF, [True, True, True, False], [0.95, 0.6, 0.5, 0.4])
    assert result["atc"] == 0.25


def test_atc_all_correct_and_none_correct():
    # k = n: t just below the ID minimum, so 0.6 itself counts; 0.59 does not.
    all_right = estimate_accuracy(ID_CONF, [1, 1, 1, 1], [0.6, 0.59])
    assert all_right["atc_threshold"] < 0.6
    assert all_right["atc_threshold"] > 0.5999999
    assert all_right["atc"] == 0.5
    # k = 0: t = the ID maximum, 0.9; only values above it count.
    none_right = estimate_accuracy(ID_CONF, [0, 0, 0, 0], [0.95, 0.9, 0.2])
    assert none_right["atc_threshold"] == 0.9
    assert none_right["atc"] == pytest.approx(1 / 3)


def test_atc_threshold_with_ties():
    # Sorted 0.5, 0.5, 0.5, 0.9 with k = 2: t = 2nd smallest = 0.5; only 0.9 lies above it.
    assert atc_threshold(np.array([0.5, 0.9, 0.5, 0.5]), 2) == 0.5
    with pytest.raises(ValueError):
        atc_threshold(np.array([0.5, 0.9]), 3)


@pytest.mark.parametrize("seed", range(5))
def test_atc_on_the_id_data_itself_reproduces_id_accuracy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    conf = rng.uniform(0.3, 1.0, size=n)  # continuous: no ties
    correct = rng.random(n) < rng.uniform(0.05, 0.95)
    result = estimate_accuracy(conf, correct, conf)
    assert result["atc"] == pytest.approx(correct.mean())
    assert result["average_confidence"] == pytest.approx(conf.mean())


@pytest.mark.parametrize(
    "id_conf, id_correct, period",
    [
        ([], [], [0.5]),
        ([0.5], [1], []),
        ([0.5, 0.6], [1], [0.5]),
        ([0.5, 0.6], [1, 2], [0.5]),
        ([0.5, float("nan")], [1, 0], [0.5]),
    ],
)
def test_estimate_accuracy_rejects_bad_input(id_conf, id_correct, period):
    with pytest.raises(ValueError):
        estimate_accuracy(id_conf, id_correct, period)
