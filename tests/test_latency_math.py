"""Latency statistics and MLPerf early stopping, checked against hand examples and brute force."""

from __future__ import annotations

import math
import random
import statistics

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


def test_percentile_matches_index_formula_on_random_sizes() -> None:
    rng = random.Random(1)
    for n in (1, 2, 3, 7, 64, 99, 100, 101, 662, 1000, 1001):
        values = sorted(rng.random() for _ in range(n))
        for p in (0.0, 0.5, 0.9, 0.95, 0.97, 0.99, 0.999):
            assert percentile(values, p) == values[int(n * p)]


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


def test_min_queries_for_estimate_matches_loadgen() -> None:
    # LoadGen's documented minimums at confidence 0.99, tolerance 0.
    assert min_queries_for_estimate(0.9) == 64
    assert min_queries_for_estimate(0.99) == 662


def test_min_passing_queries_is_minimal() -> None:
    for p in (0.9, 0.97, 0.99):
        for t in (0, 1, 2, 5, 20, 100):
            h = min_passing_queries(t, p)
            assert odds(h, t, p) < 0.01
            assert h == 1 or odds(h - 1, t, p) >= 0.01


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


def _loadgen_t(n: int, p: float) -> int:
    """LoadGen's results.cc loop: scan t upward until h(t) + t exceeds n."""
    t = 1
    for i in range(2, n + 1):
        if min_passing_queries(i, p) + i > n:
            t = i - 1
            break
    return t


@pytest.mark.parametrize(
    ("n", "p"),
    [(64, 0.9), (65, 0.9), (100, 0.9), (1000, 0.9), (5000, 0.9), (662, 0.99), (1000, 0.99), (5000, 0.99)],
)
def test_estimate_matches_brute_force_scan(n: int, p: float) -> None:
    values = [float(i) for i in range(n)]
    res = early_stopping_estimate(values, p)
    t = _loadgen_t(n, p)
    # also: the largest t with h(t) + t <= n, by a direct linear scan
    largest = max(tt for tt in range(1, n + 1) if min_passing_queries(tt, p) + tt <= n)
    assert t == largest
    assert res.satisfied
    assert res.estimate_index == n - t
    assert res.estimate_ms == values[n - t]
    assert res.discarded_highest == t - 1
    # the estimate is never below the plain percentile
    assert res.estimate_ms >= percentile(values, p)


def test_p99_needs_662() -> None:
    assert not early_stopping_estimate([1.0] * 661, 0.99).satisfied
    res = early_stopping_estimate([1.0] * 662, 0.99)
    assert res.satisfied and res.estimate_index == 661
