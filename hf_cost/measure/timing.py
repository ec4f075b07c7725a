"""The one clock every timed interval is read from, and the one loop that times queries.

`run_queries` issues queries to a ``forward(inputs) -> outputs`` / ``synchronize()`` pair and
times each one: the clock is read just before ``forward`` and just after ``synchronize``, and
nothing else happens in between. Everything a query needs is prepared by its source before it
is timed; the output sink and the progress hook run after the interval closes. single_stream,
offline (its calibration and its measured query) and compare's rounds all run through it.

What varies between scenarios is what to issue next (a `Query` source) and when to stop (a
`StopRule`). A closed loop issues each query when the previous one completes; an open loop
(LoadGen's server scenario: Poisson arrivals) gives each query an ``issue_at_s``, and a query
that arrives while the candidate is busy waits: its latency then runs from its issue, not
from when ``forward`` began, and `Timings` keeps both times.

The module-level `clock` and `sleep` are read at call time, so tests replace them
(``monkeypatch.setattr(hf_cost.measure.timing, "clock", fake)``) to get exact schedules.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, NamedTuple

clock = time.perf_counter
sleep = time.sleep


class Query(NamedTuple):
    """One query: its sample indices (handed to the sink with the outputs; their count is the
    batch size), the inputs ``forward`` gets, and, in an open loop, when it arrives (seconds
    after the loop starts; None: as soon as the previous query completes)."""

    indices: Any
    inputs: Any
    issue_at_s: float | None = None


@dataclass
class Timings:
    """Raw samples of one loop, one entry per query; times in seconds after the loop started.

    ``issued_s``: when the query was issued (closed loop: when ``forward`` was called; open loop:
    its ``issue_at_s``); ``started_s``: when ``forward`` was called; ``completed_s``: when
    ``synchronize`` returned; ``latency_ms``: completion - issue. ``cut_short``: a hard limit
    (max_duration_s, max_count) stopped the loop before the minimums held.
    """

    issued_s: list[float] = field(default_factory=list)
    started_s: list[float] = field(default_factory=list)
    completed_s: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    indices: list[Any] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    cut_short: bool = False

    @property
    def count(self) -> int:
        return len(self.latency_ms)


@dataclass(frozen=True)
class StopRule:
    """When a loop stops, checked before the first query and after each one.

    It stops as soon as both minimums hold: at least ``min_count`` queries, and
    ``min_duration_s`` reached by the last query's issue (``min_duration_by="last_issue"``,
    LoadGen's rule: keep issuing until one is issued at or after the minimum duration) or by
    the last completion (``"last_completion"``: issue no query once the duration has passed).
    Failing that, it stops, cut short, at a hard limit: a completion at or after
    ``max_duration_s``, or ``max_count`` queries. Without a rule a loop runs its source dry.
    """

    min_duration_s: float = 0.0
    min_count: int = 0
    max_duration_s: float | None = None
    max_count: int | None = None
    min_duration_by: Literal["last_issue", "last_completion"] = "last_issue"

    def minimums_hold(self, t: Timings) -> bool:
        if t.count < self.min_count:
            return False
        if self.min_duration_by == "last_issue":
            return t.count > 0 and t.issued_s[-1] >= self.min_duration_s
        return (t.completed_s[-1] if t.count else 0.0) >= self.min_duration_s

    def limit_reached(self, t: Timings) -> bool:
        if self.max_count is not None and t.count >= self.max_count:
            return True
        return self.max_duration_s is not None and t.count > 0 and t.completed_s[-1] >= self.max_duration_s


def run_queries(
    forward: Callable[[Any], Any],
    synchronize: Callable[[], None],
    queries: Iterable[Query],
    stop: StopRule | None = None,
    *,
    sink: Callable[[Any, Any], None] | None = None,
    on_query: Callable[[Timings], None] | None = None,
) -> Timings:
    """Issue ``queries`` one at a time until ``stop`` (or the source runs dry); time each one.

    The next query is taken from ``queries`` only when it is about to be issued, so a
    generator's random draws happen in issue order and end with the loop. ``sink(indices,
    outputs)`` is called after each query's interval closes; ``on_query(timings)`` (progress)
    after the stop check, unless the rule stopped the loop there.
    """
    t = Timings()
    source = iter(queries)
    start = clock()
    if stop is not None and stop.minimums_hold(t):
        return t
    for query in source:
        if query.issue_at_s is not None:
            wait = start + query.issue_at_s - clock()
            if wait > 0:
                sleep(wait)
        t0 = clock()
        out = forward(query.inputs)
        synchronize()
        t1 = clock()
        if sink is not None:
            sink(query.indices, out)
        if query.issue_at_s is None:
            t.issued_s.append(t0 - start)
            t.latency_ms.append((t1 - t0) * 1e3)
        else:
            t.issued_s.append(query.issue_at_s)
            t.latency_ms.append((t1 - start - query.issue_at_s) * 1e3)
        t.started_s.append(t0 - start)
        t.completed_s.append(t1 - start)
        t.indices.append(query.indices)
        t.batch_sizes.append(len(query.indices))
        if stop is not None:
            if stop.minimums_hold(t):
                break
            if stop.limit_reached(t):
                t.cut_short = True
                break
        if on_query is not None:
            on_query(t)
    return t


def one_sample_queries(num_samples: int, inputs: Callable[[int], Any], rng: random.Random) -> Iterator[Query]:
    """An endless closed-loop source: one sample per query, ``rng.randrange(num_samples)`` each."""
    while True:
        i = rng.randrange(num_samples)
        yield Query([i], inputs(i))
