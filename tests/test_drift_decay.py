"""Decay statistics across periods: hand-computed values, bootstrap widths, OLS vs scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hf_cost.core.format import describe_slope
from hf_cost.drift.decay import decay_statistics


def rows(correct: int, n: int) -> list[float]:
    """n rows of 0/1 correctness with exactly `correct` ones (mean correct / n)."""
    return [1.0] * correct + [0.0] * (n - correct)


def three_periods(n: int = 100, **kwargs):
    scores = [rows(9 * n // 10, n), rows(8 * n // 10, n), rows(7 * n // 10, n)]
    return decay_statistics(scores, ["A", "B", "C"], [0, 1, 2], [True, False, False], **kwargs)


def contains(stat: dict) -> bool:
    return stat["ci_low"] <= stat["value"] <= stat["ci_high"]


def test_hand_built_three_periods():
    out = three_periods()
    assert [p["value"] for p in out["periods"]] == pytest.approx([0.9, 0.8, 0.7])
    assert [p["n"] for p in out["periods"]] == [100, 100, 100]
    assert [p["in_window"] for p in out["periods"]] == [True, False, False]
    assert out["in_distribution"]["value"] == pytest.approx(0.9)
    assert out["in_distribution"]["n"] == 100 and out["in_distribution"]["periods"] == ["A"]
    avg, worst = out["out_of_distribution"]["average"], out["out_of_distribution"]["worst"]
    assert avg["value"] == pytest.approx(0.75) and avg["periods"] == ["B", "C"]
    assert worst["value"] == pytest.approx(0.7) and worst["period"] == "C"
    assert out["drop"]["value"] == pytest.approx(0.15)  # 0.9 - (0.8 + 0.7) / 2
    assert out["worst_drop"]["value"] == pytest.approx(0.2)  # 0.9 - 0.7
    assert [(c["period"], c["previous"]) for c in out["changes"]] == [("B", "A"), ("C", "B")]
    assert [c["value"] for c in out["changes"]] == pytest.approx([-0.1, -0.1])
    assert out["slope"]["value"] == pytest.approx(-0.1)
    assert out["slope"]["periods"] == 3 and out["slope"]["unit"] == "per period position"
    for stat in [*out["periods"], out["in_distribution"], avg, worst, out["drop"],
                 out["worst_drop"], *out["changes"], out["slope"]]:
        assert contains(stat)
    assert out["ci_level"] == 0.95 and out["metric"] == "accuracy"
    assert "1000 resamples, seed 0" in out["method"]


def test_all_values_are_plain_python():
    out = three_periods()
    for key in ("value", "ci_low", "ci_high", "ols_ci_low", "ols_ci_high", "ols_p_value"):
        assert type(out["slope"][key]) is float
    assert type(out["periods"][0]["position"]) is float and type(out["periods"][0]["n"]) is int


def test_slope_bootstrap_width_matches_normal_approximation():
    # Positions 0, 1, 2: xbar = 1, sum (x - xbar)^2 = 2, weights w = (-0.5, 0, 0.5).
    # Var(slope) = sum w^2 p (1 - p) / n = 0.25 * (0.9*0.1 + 0.7*0.3) / 400 = 1.875e-4.
    n = 400
    se = math.sqrt(0.25 * (0.9 * 0.1 + 0.7 * 0.3) / n)
    out = three_periods(n=n, n_resamples=2000, seed=3)
    half_width = (out["slope"]["ci_high"] - out["slope"]["ci_low"]) / 2
    assert half_width == pytest.approx(1.96 * se, rel=0.25)
    # A single period's CI: the Wald half-width 1.96 * sqrt(0.8 * 0.2 / 400) = 0.0392.
    mid = out["periods"][1]
    assert (mid["ci_high"] - mid["ci_low"]) / 2 == pytest.approx(0.0392, rel=0.25)


def test_ols_interval_matches_scipy_linregress():
    correct = [90, 85, 82, 70, 72]
    x = [0.0, 1.0, 2.0, 4.0, 5.0]
    out = decay_statistics([rows(c, 100) for c in correct], list("ABCDE"), x,
                           [True, True, False, False, False])
    ref = stats.linregress(x, [c / 100 for c in correct])
    half = stats.t.ppf(0.975, len(x) - 2) * ref.stderr
    slope = out["slope"]
    assert slope["value"] == pytest.approx(ref.slope)
    assert slope["ols_ci_low"] == pytest.approx(ref.slope - half)
    assert slope["ols_ci_high"] == pytest.approx(ref.slope + half)
    assert slope["ols_p_value"] == pytest.approx(ref.pvalue)


def test_in_distribution_is_row_weighted_ood_average_is_not():
    scores = [rows(90, 100), rows(150, 300), rows(80, 100), rows(120, 300)]
    out = decay_statistics(scores, list("ABCD"), [0, 1, 2, 3], [True, True, False, False])
    assert out["in_distribution"]["value"] == pytest.approx(240 / 400)  # (90 + 150) / 400
    assert out["in_distribution"]["n"] == 400
    assert out["out_of_distribution"]["average"]["value"] == pytest.approx(0.6)  # (0.8+0.4)/2
    assert out["drop"]["value"] == pytest.approx(0.0)


def test_worst_interval_is_of_the_per_resample_minimum():
    # Two OOD periods with equal means: the minimum of two noisy means sits below either, so its
    # interval lies strictly below each period's own (E min of two N(m, s^2) = m - s / sqrt(pi)).
    scores = [rows(90, 100), rows(70, 100), rows(70, 100)]
    out = decay_statistics(scores, list("ABC"), [0, 1, 2], [True, False, False],
                           n_resamples=2000)
    worst = out["out_of_distribution"]["worst"]
    for period in out["periods"][1:]:
        assert worst["ci_high"] < period["ci_high"]
        assert worst["ci_low"] < period["ci_low"]


def test_same_seed_same_output_other_seed_differs():
    assert three_periods(seed=7) == three_periods(seed=7)
    assert three_periods(seed=7)["slope"]["ci_low"] != three_periods(seed=8)["slope"]["ci_low"]


def test_draws_are_per_period_integers_in_order_even_when_chunked():
    # 5,000 rows: the draws are made in chunks; they must equal one (B, n) draw per period.
    gen = np.random.default_rng(11)
    scores = [gen.integers(0, 2, size=5000).astype(float), gen.integers(0, 2, size=300)]
    out = decay_statistics(scores, ["A", "B"], [0, 1], [True, False], n_resamples=500, seed=5)
    rng = np.random.default_rng(5)
    for period, s in zip(out["periods"], scores):
        means = np.asarray(s, dtype=float)[rng.integers(0, len(s), size=(500, len(s)))].mean(1)
        low, high = np.quantile(means, [0.025, 0.975])
        assert (period["ci_low"], period["ci_high"]) == pytest.approx((low, high), abs=1e-12)


def test_all_in_window_has_no_ood_and_no_drop():
    out = decay_statistics([rows(9, 10), rows(8, 10)], ["A", "B"], [0, 1], [True, True])
    assert out["out_of_distribution"] is None
    assert out["drop"] is None and out["worst_drop"] is None
    assert out["in_distribution"]["value"] == pytest.approx(0.85)


def test_none_in_window_has_no_id_and_no_drop():
    out = decay_statistics([rows(9, 10), rows(8, 10)], ["A", "B"], [0, 1], [False, False])
    assert out["in_distribution"] is None and out["drop"] is None
    assert out["out_of_distribution"]["average"]["value"] == pytest.approx(0.85)


def test_one_period_has_no_slope_two_have_no_ols():
    out = decay_statistics([rows(9, 10)], ["A"], [0], [True])
    assert out["slope"] is None and out["changes"] == []
    two = decay_statistics([rows(9, 10), rows(7, 10)], ["A", "B"], [0, 1], [True, False])
    assert two["slope"]["value"] == pytest.approx(-0.2)
    assert two["slope"]["ols_ci_low"] is None and two["slope"]["ols_p_value"] is None


def test_gap_in_positions_halves_the_slope():
    scores = [rows(90, 100), rows(70, 100)]
    near = decay_statistics(scores, ["A", "B"], [0, 1], [True, False])["slope"]
    far = decay_statistics(scores, ["A", "B"], [0, 2], [True, False])["slope"]
    assert near["value"] == pytest.approx(-0.2) and far["value"] == pytest.approx(-0.1)
    assert far["ci_low"] == pytest.approx(near["ci_low"] / 2)
    assert far["ci_high"] == pytest.approx(near["ci_high"] / 2)


@pytest.mark.parametrize(
    "bad",
    [
        {"scores": [[1.0], []]},
        {"positions": [0, 0]},
        {"in_window": [True]},
        {"scores": [[1.0], [float("nan")]]},
    ],
)
def test_bad_programmer_input_raises_value_error(bad):
    args = {"scores": [[1.0], [0.0]], "periods": ["A", "B"], "positions": [0, 1],
            "in_window": [True, False], **bad}
    with pytest.raises(ValueError):
        decay_statistics(**args)


def test_describe_slope():
    falling = {"value": -0.021, "ci_low": -0.028, "ci_high": -0.014}
    assert describe_slope(falling, "half") == "loses 2.1 points per half-year (95 % CI 1.4–2.8)"
    flat = {"value": 0.003, "ci_low": -0.005, "ci_high": 0.011}
    assert describe_slope(flat, "month") == (
        "gains 0.3 points per month (95 % CI -0.5–1.1); no clear trend (CI includes 0)"
    )
    assert "per period" in describe_slope(flat, "label")
    assert "per quarter" in describe_slope({**flat, "ci_level": 0.9}, "quarter")
    assert "(90 % CI" in describe_slope({**flat, "ci_level": 0.9}, "quarter")
