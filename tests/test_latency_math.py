"""Latency statistics and MLPerf early stopping, checked against hand examples and brute force."""

from __future__ import annotations

import math
import statistics
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binom

from hf_cost.measure.early_stopping import (
    early_stopping_estimate,
    min_passing_queries,
    min_queries_for_estimate,
    odds,
)
from hf_cost.measure.latency import LatencyStats, percentile, percentile_key

# --- percentile: LoadGen's sorted[int(n * p)] ---------------------------------------------


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([7.0], 0.0, 7.0),
        ([7.0], 0.5, 7.0),
        ([7.0], 0.999, 7.0),  # n = 1: every percentile is the one sample
        ([1.0, 2.0], 0.5, 2.0),  # int(2 * 0.5) = 1, no interpolation
        ([1.0, 2.0], 0.49, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 3.0),  # int(2.0) = 2 -> upper middle, not the mean 2.5
        ([1.0, 2.0, 3.0, 4.0], 0.9, 4.0),  # int(3.6) = 3
        ([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0], 0.9, 100.0),  # int(9.0)
        ([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0], 0.89, 90.0),  # int(8.9)
    ],
)
def test_percentile_hand_examples(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def test_percentile_p999_of_1000_is_index_999() -> None:
    values = [float(i) for i in range(1000)]
    assert percentile(values, 0.999) == 999.0
    assert percentile(values, 0.99) == 990.0
    assert percentile(values, 0.5) == 500.0


ONE_TO_TEN = [float(i) for i in range(1, 11)]
ONE_TO_HUNDRED = [float(i) for i in range(1, 101)]


# Expected values worked out by hand from LoadGen's rule "sorted[int(n * p)]", 0-based:
#   1..10,  n = 10:  p50  -> int(5.0)  = 5  -> 6;   p90 -> int(9.0)  = 9  -> 10
#                    p99  -> int(9.9)  = 9  -> 10;  p0  -> index 0        -> 1
#   1..100, n = 100: p50  -> int(50.0) = 50 -> 51;  p90 -> int(90.0) = 90 -> 91
#                    p95  -> 95 -> 96;  p97 -> 97 -> 98;  p99 -> 99 -> 100
#                    p99.9 -> int(99.9) = 99 -> 100 (with 100 samples p99.9 is the max)
@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        (ONE_TO_TEN, 0.0, 1.0),
        (ONE_TO_TEN, 0.5, 6.0),
        (ONE_TO_TEN, 0.9, 10.0),
        (ONE_TO_TEN, 0.99, 10.0),
        (ONE_TO_HUNDRED, 0.5, 51.0),
        (ONE_TO_HUNDRED, 0.9, 91.0),
        (ONE_TO_HUNDRED, 0.95, 96.0),
        (ONE_TO_HUNDRED, 0.97, 98.0),
        (ONE_TO_HUNDRED, 0.99, 100.0),
        (ONE_TO_HUNDRED, 0.999, 100.0),
    ],
)
def test_percentile_hand_computed_tables(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def test_percentile_rejects_empty_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 1.0)
    with pytest.raises(ValueError):
        percentile([1.0], -0.1)


@pytest.mark.parametrize(
    ("p", "key"),
    [(0.5, "p50"), (0.9, "p90"), (0.95, "p95"), (0.97, "p97"), (0.99, "p99"), (0.999, "p99.9")],
)
def test_percentile_key(p: float, key: str) -> None:
    assert percentile_key(p) == key


# --- LatencyStats ---------------------------------------------------------------------------


def test_latency_stats_from_values() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]  # unsorted on purpose
    stats = LatencyStats.from_values(values)
    assert stats.n == 5
    assert stats.mean_ms == pytest.approx(3.0)
    assert stats.stdev_ms == pytest.approx(statistics.stdev(values))  # sample (n - 1) stdev
    assert stats.stdev_ms == pytest.approx(math.sqrt(2.5))
    assert stats.min_ms == 1.0 and stats.max_ms == 5.0
    assert set(stats.percentiles_ms) == {"p50", "p90", "p95", "p97", "p99", "p99.9"}
    assert stats.percentiles_ms["p50"] == 3.0  # sorted[int(2.5)] = sorted[2]
    assert stats.percentiles_ms["p90"] == 5.0  # sorted[int(4.5)] = sorted[4]
    assert values == [5.0, 1.0, 4.0, 2.0, 3.0]  # the caller's raw list is not reordered
    d = stats.to_dict()
    assert d["n"] == 5 and d["percentiles_ms"]["p99.9"] == 5.0


def test_latency_stats_single_sample_has_no_stdev() -> None:
    stats = LatencyStats.from_values([4.2])
    assert stats.n == 1
    assert stats.stdev_ms is None
    assert stats.mean_ms == stats.min_ms == stats.max_ms == 4.2
    assert set(stats.percentiles_ms.values()) == {4.2}


def test_latency_stats_rejects_empty() -> None:
    with pytest.raises(ValueError):
        LatencyStats.from_values([])


# --- early stopping -------------------------------------------------------------------------
#
# Expected values are literal. They were derived, and are re-derived in
# test_reference_tables_from_scipy_binom, from an independent reference: the binomial tail of
# scipy.stats.binom scanned linearly over h (and, for p90, exact rational arithmetic). The code
# under test bisects over scipy.special.betainc instead; no expected value below calls it.
#
# LoadGen (loadgen/results.cc, SingleStream): h(t) is the smallest h with
# P(at most t over-bound among h + t queries) < 1 - c, c = 0.99; a run needs h(1) + 1 queries
# ("Need to process at least ... queries for early stopping"), and the estimate is
# sorted[n - t] for the largest t with h(t) + t <= n.

# percentile -> fewest queries that give an estimate, h(1) + 1
MIN_QUERIES = {0.5: 11, 0.9: 64, 0.95: 130, 0.97: 219, 0.99: 662, 0.999: 6636}

# percentile -> [h(1), h(2), h(3), h(4), h(5)]
H_TABLE = {
    0.5: [10, 12, 14, 15, 17],
    0.9: [63, 79, 94, 109, 122],
    0.99: [661, 836, 998, 1153, 1302],
}

# (n, percentile) -> t, the number of highest latencies the estimate reaches into
T_TABLE = {
    (64, 0.9): 1,
    (65, 0.9): 1,
    (100, 0.9): 3,
    (1000, 0.9): 78,
    (5000, 0.9): 450,
    (662, 0.99): 1,
    (1000, 0.99): 2,
    (5000, 0.99): 33,
}


def _reference_h(t: int, p: float, c: float = 0.99) -> int:
    """Smallest h >= 1 with binom.cdf(t, h + t, 1 - p) < 1 - c, by a linear scan."""
    limit = 64
    while True:
        hs = np.arange(1, limit + 1)
        below = np.nonzero(binom.cdf(t, hs + t, 1 - p) < 1 - c)[0]
        if below.size:
            return int(hs[below[0]])
        limit *= 2


def _reference_t(n: int, p: float) -> int:
    """Largest t with h(t) + t <= n, scanning t upward as LoadGen does."""
    t = 1
    while _reference_h(t + 1, p) + t + 1 <= n:
        t += 1
    return t


def _exact_tail(h: int, t: int, p: Fraction) -> Fraction:
    n = h + t
    return sum(math.comb(n, k) * (1 - p) ** k * p ** (n - k) for k in range(t + 1))


def test_reference_tables_from_scipy_binom() -> None:
    """The literal tables above are what an independent binomial computation gives."""
    for p, need in MIN_QUERIES.items():
        assert _reference_h(1, p) + 1 == need, p
    for p, hs in H_TABLE.items():
        assert [_reference_h(t, p) for t in range(1, 6)] == hs, p
    for (n, p), t in T_TABLE.items():
        assert _reference_t(n, p) == t, (n, p)
    # and in exact rational arithmetic for p90: h(t) passes, h(t) - 1 does not
    for t, h in enumerate(H_TABLE[0.9], start=1):
        assert _exact_tail(h, t, Fraction(9, 10)) < Fraction(1, 100)
        assert _exact_tail(h - 1, t, Fraction(9, 10)) >= Fraction(1, 100)


@pytest.mark.parametrize(("p", "need"), sorted(MIN_QUERIES.items()))
def test_min_queries_for_estimate(p: float, need: int) -> None:
    assert min_queries_for_estimate(p) == need


@pytest.mark.parametrize("p", sorted(H_TABLE))
def test_min_passing_queries_table(p: float) -> None:
    assert [min_passing_queries(t, p) for t in range(1, 6)] == H_TABLE[p]


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_min_passing_queries_monotone_in_t(p: float) -> None:
    hs = [min_passing_queries(t, p) for t in range(0, 60)]
    assert all(a < b for a, b in zip(hs, hs[1:])), hs
    totals = [h + t for t, h in enumerate(hs)]
    assert all(a < b for a, b in zip(totals, totals[1:]))


def test_min_passing_queries_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        min_passing_queries(1, 1.0)
    with pytest.raises(ValueError):
        min_passing_queries(1, 0.9, c=1.0)
    with pytest.raises(ValueError):
        min_passing_queries(-1, 0.9)


@pytest.mark.parametrize(
    ("h", "t", "p"),
    [(63, 1, 0.9), (62, 1, 0.9), (100, 0, 0.9), (500, 40, 0.9), (661, 1, 0.99), (3000, 20, 0.99), (10, 10, 0.5)],
)
def test_odds_equals_binomial_tail(h: int, t: int, p: float) -> None:
    """P(at most t over-bound among h + t trials, each over the bound with probability 1 - p)."""
    direct = float(binom.cdf(t, h + t, 1 - p))
    by_hand = sum(math.comb(h + t, k) * (1 - p) ** k * p ** (h + t - k) for k in range(t + 1))
    assert odds(h, t, p) == pytest.approx(direct, rel=1e-9, abs=1e-300)
    assert odds(h, t, p) == pytest.approx(by_hand, rel=1e-9, abs=1e-300)


def test_estimate_not_satisfied_below_minimum() -> None:
    for n in (1, 10, 63):
        res = early_stopping_estimate([float(i) for i in range(n)], 0.9)
        assert not res.satisfied
        assert res.queries == n and res.min_queries == 64
        assert res.estimate_ms is None and res.estimate_index is None
        assert "64" in res.recommendation
        assert f"{64 - n} more" in res.recommendation


def test_estimate_at_exactly_64_is_the_max() -> None:
    values = [float(i) for i in range(64)]
    res = early_stopping_estimate(values, 0.9)
    assert res.satisfied
    assert res.estimate_index == 63
    assert res.estimate_ms == 63.0
    assert res.discarded_highest == 0


def test_estimate_one_to_hundred_p90() -> None:
    # n = 100, p90: h(3) + 3 = 97 <= 100 < h(4) + 4 = 113, so t = 3: the estimate is
    # sorted[100 - 3] = sorted[97] = 98, discarding the 2 highest (99, 100). The plain
    # p90 of the same values is 91.
    res = early_stopping_estimate(ONE_TO_HUNDRED, 0.9)
    assert res.satisfied
    assert res.estimate_index == 97
    assert res.estimate_ms == 98.0
    assert res.discarded_highest == 2
    assert "discard 2 highest" in res.recommendation


@pytest.mark.parametrize(("n", "p"), sorted(T_TABLE))
def test_estimate_matches_reference_table(n: int, p: float) -> None:
    t = T_TABLE[(n, p)]
    values = [float(i) for i in range(n)]
    res = early_stopping_estimate(values, p)
    assert res.satisfied
    assert res.queries == n and res.min_queries == MIN_QUERIES[p]
    assert res.estimate_index == n - t
    assert res.estimate_ms == float(n - t)
    assert res.discarded_highest == t - 1


def test_p99_needs_662() -> None:
    assert not early_stopping_estimate([1.0] * 661, 0.99).satisfied
    res = early_stopping_estimate([1.0] * 662, 0.99)
    assert res.satisfied and res.estimate_index == 661
