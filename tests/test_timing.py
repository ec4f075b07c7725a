"""The one timing loop (hf_cost/measure/timing.py) on a fake clock.

The clock stands still except when something scripted advances it: a forward (its latency),
a query source preparing inputs, an output sink, or a sleep. Every schedule below is worked
out by hand in a comment, in milliseconds; the loop reports seconds, compared with
``pytest.approx`` because they are differences of ``ms / 1000`` floats. Stop thresholds sit
between clock ticks, so no decision rests on a rounding edge.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

import pytest

import hf_cost.measure.timing as timing
from hf_cost.measure.timing import Query, StopRule, one_sample_queries, run_queries


class FakeClock:
    def __init__(self) -> None:
        self.ms = 0
        self.slept_ms: list[int] = []

    def __call__(self) -> float:
        return self.ms / 1000

    def sleep(self, seconds: float) -> None:
        ms = round(seconds * 1000)
        self.slept_ms.append(ms)
        self.ms += ms


class Scripted:
    """forward/synchronize: the k-th forward (k from 1) takes ``latencies_ms[k - 1]`` ms."""

    def __init__(self, clock: FakeClock, latencies_ms: list[int]):
        self.clock, self.latencies_ms = clock, latencies_ms
        self.inputs: list[Any] = []
        self.syncs = 0

    def forward(self, inputs: Any) -> Any:
        self.clock.ms += self.latencies_ms[len(self.inputs)]
        self.inputs.append(inputs)
        return f"out{len(self.inputs)}"

    def synchronize(self) -> None:
        self.syncs += 1


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(timing, "clock", fake)
    monkeypatch.setattr(timing, "sleep", fake.sleep)
    return fake


def numbered() -> Iterator[Query]:
    """Query k (from 1) carries sample k and inputs "in k"."""
    k = 0
    while True:
        k += 1
        yield Query([k], f"in{k}")


def run(clock: FakeClock, latencies_ms: list[int], stop: StopRule | None, queries: Any = None, **kw: Any):
    model = Scripted(clock, latencies_ms)
    t = run_queries(model.forward, model.synchronize, numbered() if queries is None else queries, stop, **kw)
    return model, t


# --- stop rules --------------------------------------------------------------------------------
#
# Latencies 3, 5, 2, 7, 4 ms, closed loop, nothing else takes time:
#   query    1    2    3    4    5
#   issued   0    3    8   10   17
#   done     3    8   10   17   21

LATENCIES = [3, 5, 2, 7, 4]


def test_last_issue_rule_runs_until_a_query_is_issued_after_the_minimum_duration(clock: FakeClock) -> None:
    # min 9 ms, 2 queries: query 3 is issued at 8 ms < 9, query 4 at 10 ms >= 9: stop after 4.
    model, t = run(clock, LATENCIES, StopRule(min_duration_s=0.009, min_count=2))
    assert t.count == 4 and not t.cut_short
    assert t.issued_s == pytest.approx([0.0, 0.003, 0.008, 0.010])
    assert t.started_s == pytest.approx(t.issued_s)  # closed loop: issued when forward is called
    assert t.completed_s == pytest.approx([0.003, 0.008, 0.010, 0.017])
    assert t.latency_ms == pytest.approx([3.0, 5.0, 2.0, 7.0])
    assert t.indices == [[1], [2], [3], [4]] and t.batch_sizes == [1, 1, 1, 1]
    assert model.inputs == ["in1", "in2", "in3", "in4"] and model.syncs == 4


def test_last_completion_rule_issues_nothing_once_the_duration_has_passed(clock: FakeClock) -> None:
    # The same schedule: query 3 completes at 10 ms >= 9 ms, so query 4 is never issued.
    _, t = run(clock, LATENCIES, StopRule(min_duration_s=0.009, min_count=2, min_duration_by="last_completion"))
    assert t.count == 3 and not t.cut_short
    assert t.completed_s == pytest.approx([0.003, 0.008, 0.010])


def test_min_count_outlasts_min_duration(clock: FakeClock) -> None:
    # min 1 ms is met by query 2 (issued at 3 ms), but 5 queries are required.
    _, t = run(clock, LATENCIES, StopRule(min_duration_s=0.001, min_count=5))
    assert t.count == 5 and t.latency_ms == pytest.approx([3.0, 5.0, 2.0, 7.0, 4.0])


def test_max_duration_cuts_a_run_short(clock: FakeClock) -> None:
    # 10 ms each, min 1 s can never hold; query 4 completes at 40 ms >= 35 ms: stop, cut short.
    _, t = run(clock, [10] * 10, StopRule(min_duration_s=1.0, min_count=1, max_duration_s=0.035))
    assert t.count == 4 and t.cut_short
    assert t.completed_s[-1] == pytest.approx(0.040)


def test_max_duration_overrides_min_count(clock: FakeClock) -> None:
    # 10 ms each; the duration holds from query 2 (issued 10 ms >= 5 ms) but 100 queries are
    # required; query 3 completes at 30 ms >= 25 ms: cut short at 3.
    _, t = run(clock, [10] * 10, StopRule(min_duration_s=0.005, min_count=100, max_duration_s=0.025))
    assert t.count == 3 and t.cut_short


def test_minimums_met_on_the_same_query_as_the_limit_is_not_cut_short(clock: FakeClock) -> None:
    # 10 ms each: query 4 is issued at 30 ms >= 25 ms and completes at 40 ms >= 35 ms.
    _, t = run(clock, [10] * 10, StopRule(min_duration_s=0.025, min_count=1, max_duration_s=0.035))
    assert t.count == 4 and not t.cut_short


def test_max_count_caps_a_duration_that_is_not_reached(clock: FakeClock) -> None:
    # Offline calibration's shape: >= 2 batches and 1 s, at most 5 batches. 10 ms each: 5 batches
    # end at 50 ms, far short of 1 s: stop at 5, cut short. With 300 ms batches the 1 s holds
    # at batch 4 (1200 ms) first.
    rule = StopRule(min_duration_s=1.0, min_count=2, max_count=5, min_duration_by="last_completion")
    _, t = run(clock, [10] * 10, rule)
    assert t.count == 5 and t.cut_short
    clock.ms = 0
    _, t = run(clock, [300] * 10, rule)
    assert t.count == 4 and not t.cut_short


def test_a_rule_met_before_the_first_query_issues_none(clock: FakeClock) -> None:
    # compare's warm-up with warmup_queries=0: nothing runs and the source is never drawn from.
    rng = random.Random(3)
    model, t = run(clock, [10], StopRule(min_duration_by="last_completion"),
                   queries=one_sample_queries(8, str, rng))
    assert t.count == 0 and model.inputs == [] and model.syncs == 0
    assert rng.randrange(8) == random.Random(3).randrange(8)  # no draw was spent
    # Under the last-issue rule a minimum of 0 still needs one issued query.
    _, t = run(clock, [10], StopRule())
    assert t.count == 1


def test_without_a_rule_the_source_runs_dry(clock: FakeClock) -> None:
    # offline's measured query: a planned list of batches of 4, 4 and 2 samples, 20 ms each.
    plan = [Query([0, 1, 2, 3], "b1"), Query([4, 5, 6, 7], "b2"), Query([8, 9], "b3")]
    _, t = run(clock, [20, 20, 20], None, queries=plan)
    assert t.batch_sizes == [4, 4, 2]
    assert t.completed_s == pytest.approx([0.020, 0.040, 0.060])


# --- what stays outside the timed interval ------------------------------------------------------


def test_preparation_and_sink_are_not_timed_but_delay_the_next_issue(clock: FakeClock) -> None:
    # Each query's inputs take 1 ms to prepare, forward 4 ms, the sink 100 ms:
    #   query 1: prepared 0-1, forward 1-5, sink 5-105
    #   query 2: prepared 105-106, forward 106-110, sink 110-210
    #   query 3: prepared 210-211, forward 211-215
    def prepared() -> Iterator[Query]:
        for k in (1, 2, 3):
            clock.ms += 1
            yield Query([k], k)

    seen: list[tuple[Any, Any, int]] = []

    def sink(indices: Any, outputs: Any) -> None:
        seen.append((indices, outputs, clock.ms))
        clock.ms += 100

    _, t = run(clock, [4, 4, 4], None, queries=prepared(), sink=sink)
    assert t.latency_ms == pytest.approx([4.0, 4.0, 4.0])
    assert t.issued_s == pytest.approx([0.001, 0.106, 0.211])
    assert t.completed_s == pytest.approx([0.005, 0.110, 0.215])
    assert seen == [([1], "out1", 5), ([2], "out2", 110), ([3], "out3", 215)]  # after each interval


def test_progress_hook_runs_after_each_query_except_the_one_that_stops(clock: FakeClock) -> None:
    # 10 ms each, stop at 3 queries (min 15 ms: query 3 issued at 20 ms): ticks after 1 and 2.
    ticks: list[tuple[int, int]] = []
    _, t = run(clock, [10] * 5, StopRule(min_duration_s=0.015, min_count=3),
               on_query=lambda so_far: ticks.append((so_far.count, clock.ms)))
    assert t.count == 3 and ticks == [(1, 10), (2, 20)]
    # Run dry, the last query ticks too (the loop learns it was the last only afterwards).
    ticks.clear()
    run(clock, [10, 10], None, queries=[Query([0], 0), Query([1], 1)],
        on_query=lambda so_far: ticks.append((so_far.count, 0)))
    assert [n for n, _ in ticks] == [1, 2]


# --- open loop: issue time != start time ----------------------------------------------------------


def test_scheduled_queries_wait_for_their_arrival_and_queue_behind_a_busy_candidate(clock: FakeClock) -> None:
    # Arrivals at 0, 10, 12 and 50 ms; forward takes 5 ms:
    #   query 1: arrives 0, starts 0, done 5                     latency 5
    #   query 2: arrives 10, sleep 5 ms, starts 10, done 15      latency 5
    #   query 3: arrives 12 while busy, starts 15, done 20       latency 20 - 12 = 8
    #   query 4: arrives 50, sleep 30 ms, starts 50, done 55     latency 5
    arrivals = [0.0, 0.010, 0.012, 0.050]
    plan = [Query([k], k, issue_at_s=a) for k, a in enumerate(arrivals)]
    _, t = run(clock, [5] * 4, None, queries=plan)
    assert clock.slept_ms == [5, 30]
    assert t.issued_s == pytest.approx(arrivals)
    assert t.started_s == pytest.approx([0.0, 0.010, 0.015, 0.050])
    assert t.completed_s == pytest.approx([0.005, 0.015, 0.020, 0.055])
    assert t.latency_ms == pytest.approx([5.0, 5.0, 8.0, 5.0])


# --- the single-sample source ---------------------------------------------------------------------


def test_one_sample_queries_draw_only_what_is_issued(clock: FakeClock) -> None:
    # random.Random(7).randrange(16) gives 10, 4, 12, 1, 2, ... (Python's Mersenne Twister, stable
    # across versions). The loop draws once per issued query, in order, and not one draw more.
    rng = random.Random(7)
    views = [f"view{i}" for i in range(16)]
    model, t = run(clock, [10] * 10, StopRule(min_duration_s=0.025, min_count=1),
                   queries=one_sample_queries(16, views.__getitem__, rng))
    assert t.count == 4  # query 4 issued at 30 ms >= 25 ms
    assert t.indices == [[10], [4], [12], [1]]
    assert model.inputs == ["view10", "view4", "view12", "view1"]
    assert rng.randrange(16) == 2  # the fifth draw is still there
