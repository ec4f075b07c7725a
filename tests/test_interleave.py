"""Interleaved comparisons: schedule, paired log-ratio CI, orientation and verdicts."""

from __future__ import annotations

import math

import pytest

from hf_cost.measure.interleave import (
    RatioSummary,
    claim,
    compare_to_reference,
    describe,
    log_ratio_ci,
    round_orders,
)

# Hand computation for per-round ratios [1.1, 1.2, 1.0, 1.3] (k = 4):
#   log r         = 0.0953102, 0.1823216, 0.0, 0.2623643      sum = 0.5399960
#   mean log r    = 0.5399960 / 4 = 0.1349990  -> geomean = exp(0.1349990) = 1.1445356
#   deviations    = -0.0396888, 0.0473226, -0.1349990, 0.1273653
#   squares       = 0.0015752, 0.0022394, 0.0182247, 0.0162219   sum = 0.0382613
#   sd (k-1 = 3)  = sqrt(0.0382613 / 3) = sqrt(0.0127538) = 0.1129325
#   se            = 0.1129325 / sqrt(4) = 0.0564663
#   t_{0.975, 3}  = 3.1824463 (tables: 3.182)
#   half-width    = 3.1824463 * 0.0564663 = 0.1797009
#   CI            = exp(0.1349990 -/+ 0.1797009) = exp(-0.0447019), exp(0.3146999)
#                 = 0.9562826, 1.3698481
RATIOS = [1.1, 1.2, 1.0, 1.3]
HAND_GEOMEAN, HAND_LOW, HAND_HIGH = 1.1445356, 0.9562826, 1.3698481


def test_schedule_three_names_four_rounds_is_abba():
    assert round_orders(["A", "B", "C"], 4) == [
        ["A", "B", "C"],
        ["C", "B", "A"],
        ["A", "B", "C"],
        ["C", "B", "A"],
    ]


def test_schedule_balances_positions_over_pairs_of_rounds():
    names = ["a", "b", "c", "d", "e"]
    orders = round_orders(names, 6)
    for name in names:
        positions = [order.index(name) for order in orders]
        assert sum(positions) / len(positions) == (len(names) - 1) / 2


@pytest.mark.parametrize(
    ("names", "rounds"), [([], 2), (["a", "a"], 2), (["a", "b"], 0)]
)
def test_schedule_rejects_bad_input(names, rounds):
    with pytest.raises(ValueError):
        round_orders(names, rounds)


def test_hand_computed_geomean_and_ci():
    s = RatioSummary.from_rounds(RATIOS, [1.0] * 4, higher_is_better=True)
    assert s.ratio_geomean == pytest.approx(HAND_GEOMEAN, abs=1e-6)
    assert s.ci_low == pytest.approx(HAND_LOW, abs=1e-6)
    assert s.ci_high == pytest.approx(HAND_HIGH, abs=1e-6)
    assert s.rounds == 4 and s.ci_level == 0.95
    assert s.ratio_median == pytest.approx(1.15)
    assert (s.ratio_min, s.ratio_max) == (1.0, 1.3)
    assert "t_{0.975, 3}" in s.method and "log" in s.method


def test_ci_matches_scipy_t_interval_on_logs():
    from scipy import stats

    ratios = [0.93, 1.41, 1.22, 1.37, 1.05, 1.6, 1.18]
    logs = [math.log(r) for r in ratios]
    mean = sum(logs) / len(logs)
    sem = stats.sem(logs)  # sample sd / sqrt(k)
    for level in (0.90, 0.95, 0.99):
        lo, hi = stats.t.interval(level, len(logs) - 1, loc=mean, scale=sem)
        geomean, ci_low, ci_high = log_ratio_ci(ratios, level)
        assert geomean == pytest.approx(stats.gmean(ratios), rel=1e-12)
        assert ci_low == pytest.approx(math.exp(lo), rel=1e-12)
        assert ci_high == pytest.approx(math.exp(hi), rel=1e-12)


def test_identical_measurements_give_exactly_one_with_zero_width_ci():
    figures = [12.5, 13.1, 11.9, 12.2]
    for hib in (True, False):
        s = RatioSummary.from_rounds(figures, list(figures), higher_is_better=hib)
        assert s.ratio_geomean == 1.0 and s.raw_ratio_geomean == 1.0
        assert s.ci_low == 1.0 and s.ci_high == 1.0
        assert s.per_round == (1.0, 1.0, 1.0, 1.0)


def test_orientation_latency_and_throughput():
    latency = RatioSummary.from_rounds([10.0, 10.0], [20.0, 20.0], higher_is_better=False)
    assert latency.ratio_geomean == pytest.approx(2.0)  # half the latency: 2x speed-up
    assert latency.raw_ratio_geomean == pytest.approx(0.5)
    assert "reference / subject" in latency.orientation
    throughput = RatioSummary.from_rounds([10.0, 10.0], [20.0, 20.0], higher_is_better=True)
    assert throughput.ratio_geomean == pytest.approx(0.5)  # half the throughput: slower
    assert throughput.raw_ratio_geomean == pytest.approx(0.5)


def test_latency_orientation_reproduces_hand_case():
    s = RatioSummary.from_rounds([10.0] * 4, [11.0, 12.0, 10.0, 13.0], higher_is_better=False)
    assert s.ci_low == pytest.approx(HAND_LOW, abs=1e-6)
    assert s.ci_high == pytest.approx(HAND_HIGH, abs=1e-6)
    assert s.raw_ratio_geomean == pytest.approx(1 / HAND_GEOMEAN, abs=1e-6)


def test_higher_is_better_is_required_and_boolean():
    with pytest.raises(TypeError):
        RatioSummary.from_rounds([1.0], [1.0])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RatioSummary.from_rounds([1.0], [1.0], higher_is_better="latency")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("subject", "reference"),
    [([1.0, 2.0], [1.0]), ([], []), ([1.0, 0.0], [1.0, 1.0]), ([1.0, math.nan], [1.0, 1.0])],
)
def test_rejects_unpaired_empty_or_nonpositive(subject, reference):
    with pytest.raises(ValueError):
        RatioSummary.from_rounds(subject, reference, higher_is_better=True)


def test_single_round_has_no_ci_and_is_inconclusive():
    s = RatioSummary.from_rounds([2.0], [1.0], higher_is_better=True)
    assert s.ratio_geomean == 2.0 and s.ci_low is None and s.ci_high is None
    assert "no CI" in s.method
    assert claim(s, 1.3) == "inconclusive"
    assert describe(s, 1.3) == "2.00x (no CI, 1 round): inconclusive for ≥ 1.30x"


def _summary(low: float, high: float) -> RatioSummary:
    s = RatioSummary.from_rounds([1.0, 1.0], [1.0, 1.0], higher_is_better=True)
    return RatioSummary(**{**s.to_dict(), "per_round": s.per_round, "ci_low": low, "ci_high": high})


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (1.35, 1.50, "meets"),
        (1.30, 1.50, "meets"),  # lower bound exactly on the target
        (1.10, 1.29, "misses"),
        (1.10, 1.30, "inconclusive"),  # upper bound exactly on the target
        (1.20, 1.45, "inconclusive"),
    ],
)
def test_claim_verdicts(low, high, verdict):
    assert claim(_summary(low, high), 1.3) == verdict


def test_claim_on_hand_case_and_words():
    s = RatioSummary.from_rounds(RATIOS, [1.0] * 4, higher_is_better=True)
    assert claim(s, 0.9) == "meets"
    assert claim(s, 1.4) == "misses"
    assert claim(s, 1.3) == "inconclusive"
    assert describe(s) == "1.14x (95% CI 0.96–1.37, 4 rounds)"
    assert describe(s, 0.9) == "1.14x (95% CI 0.96–1.37, 4 rounds): meets ≥ 0.90x"
    with pytest.raises(ValueError):
        claim(s, 0.0)


def test_to_dict_is_plain_and_compare_to_reference():
    figures = {"torch": [20.0, 22.0, 21.0, 19.0], "onnx": [10.0, 11.0, 10.5, 9.5]}
    out = compare_to_reference(figures, "torch", higher_is_better=False)
    assert list(out) == ["onnx"]
    d = out["onnx"].to_dict()
    assert d["per_round"] == [2.0, 2.0, 2.0, 2.0] and d["rounds"] == 4
    assert d["ratio_geomean"] == pytest.approx(2.0) and d["higher_is_better"] is False
    with pytest.raises(KeyError):
        compare_to_reference(figures, "tensorrt", higher_is_better=False)
