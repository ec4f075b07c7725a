"""The dynamic batcher (hf_cost/engines/batcher.py) on a fake clock with fake service times.

The rule is tested through `simulate` (the same `BatchQueue` the worker threads use, on a
virtual clock): hand-computed schedules, and queueing delay against the M/D/1 formula. The
threaded `Batcher` is tested for what does not depend on time: batches from a burst, every
request completed (also when the batch function raises), the worker hook. No assertion reads
the wall clock.
"""

from __future__ import annotations

import itertools
import random
import statistics
import threading
from typing import Any

import pytest

from hf_cost.engines.batcher import Batcher, BatchQueue, Completed, simulate

S = 0.010  # service time of one batch (s)


def poisson(rate: float, n: int, seed: int) -> list[float]:
    rng, t, out = random.Random(seed), 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        out.append(t)
    return out


# --- the rule, on a virtual clock ---------------------------------------------------------------


def test_well_below_capacity_the_latency_is_the_service_time_in_batches_of_one() -> None:
    arrivals = [0.1 * i for i in range(50)]  # 10 QPS against a capacity of 100
    done = simulate(arrivals, lambda b: S, max_batch_size=8)
    assert [c.batch_size for c in done] == [1] * 50
    assert all(c.queue_s == 0 and c.latency_s == pytest.approx(S) for c in done)


def test_light_poisson_load_stays_near_the_service_time() -> None:
    done = simulate(poisson(5.0, 2000, seed=1), lambda b: S, max_batch_size=8)  # 5 % load
    latency = statistics.fmean(c.latency_s for c in done)
    assert S <= latency < 1.05 * S  # M/D/1: S + 0.05 S / (2 x 0.95) = 1.026 S
    assert sum(c.batch_size == 1 for c in done) / len(done) > 0.9


def test_a_burst_fills_batches_to_the_maximum() -> None:
    service = lambda b: 0.005 + 0.001 * b
    done = simulate([0.0] * 20, service, max_batch_size=8)
    batches = {c.batch: (c.batch_size, c.dispatch_s) for c in done}
    assert [size for size, _ in batches.values()] == [8, 8, 4]
    assert [at for _, at in batches.values()] == pytest.approx([0.0, 0.013, 0.026])
    two = simulate([0.0] * 20, service, max_batch_size=8, workers=2)
    by_batch = {c.batch: (c.batch_size, c.dispatch_s, c.worker) for c in two}
    assert list(by_batch.values()) == [(8, 0.0, 0), (8, 0.0, 1), (4, pytest.approx(0.013), 0)]


def test_max_queue_delay_holds_a_lone_request_exactly_that_long() -> None:
    (c,) = simulate([1.0], lambda b: S, max_batch_size=4, max_queue_delay_ms=5.0)
    assert c.dispatch_s == 1.0 + 0.005 and c.queue_s == pytest.approx(0.005)
    assert c.latency_s == pytest.approx(0.005 + S)


def test_requests_arriving_within_the_delay_join_the_batch_and_a_full_batch_goes_at_once() -> None:
    joined = simulate([1.0, 1.003], lambda b: S, max_batch_size=4, max_queue_delay_ms=5.0)
    assert [(c.batch, c.batch_size, c.dispatch_s) for c in joined] == [(0, 2, 1.005), (0, 2, 1.005)]
    full = simulate([1.0, 1.001, 1.002, 1.003], lambda b: S, max_batch_size=4, max_queue_delay_ms=5.0)
    assert {(c.batch_size, c.dispatch_s) for c in full} == {(4, 1.003)}  # full before the delay ran out


def test_without_a_delay_a_free_worker_takes_what_waits() -> None:
    done = simulate([1.0, 1.003], lambda b: S, max_batch_size=4)
    assert [(c.batch_size, c.dispatch_s) for c in done] == [(1, 1.0), (1, 1.01)]  # the 2nd waited for the worker


@pytest.mark.parametrize(("load", "tolerance"), [(0.5, 0.05), (0.8, 0.05), (0.9, 0.2)])
def test_queueing_delay_grows_near_capacity_as_md1_says(load: float, tolerance: float) -> None:
    """One worker, batches of one, Poisson arrivals: M/D/1, mean wait rho S / (2 (1 - rho))."""
    done = simulate(poisson(load / S, 40_000, seed=0), lambda b: S)
    wait = statistics.fmean(c.queue_s for c in done)
    assert wait == pytest.approx(load * S / (2 * (1 - load)), rel=tolerance)


def test_batching_absorbs_load_a_single_sample_server_cannot_carry() -> None:
    service = lambda b: 0.008 + 0.002 * b
    arrivals = poisson(150.0, 5_000, seed=2)
    done = simulate(arrivals, service, max_batch_size=8)
    sizes = [c.batch_size for c in done]
    assert statistics.fmean(sizes) > 1.5
    late = [c.queue_s for c in done[-500:]]  # stable: the queue does not grow without bound
    assert max(late) < 0.1


# --- the queue ------------------------------------------------------------------------------------


def test_the_queue_says_when_its_oldest_request_is_due() -> None:
    from hf_cost.engines.batcher import Request

    q = BatchQueue(max_batch_size=3, max_queue_delay_ms=2.0)
    assert q.due_at() is None and q.take(100.0) == []
    q.put(Request("a", 0, 1.0))
    q.put(Request("b", 1, 1.0015))
    assert q.due_at() == 1.002
    assert q.take(1.0019) == [] and len(q) == 2
    assert [r.key for r in q.take(1.0019, force=True)] == ["a", "b"]
    with pytest.raises(ValueError):
        BatchQueue(max_batch_size=0)


# --- the threads ------------------------------------------------------------------------------------


def fake_clock() -> Any:
    """A clock that moves 1 ms every time it is read, whatever the wall clock does."""
    ticks = itertools.count()
    lock = threading.Lock()

    def clock() -> float:
        with lock:
            return next(ticks) / 1e3

    return clock


def test_the_threaded_batcher_serves_a_queued_burst_in_full_batches() -> None:
    ran: list[list[int]] = []
    done: list[Completed] = []
    b = Batcher(lambda reqs: ran.append([r.index for r in reqs]), max_batch_size=4, clock=fake_clock(),
                on_done=done.extend)
    for i in range(10):
        b.submit(f"q{i}", i)  # queued before any worker starts
    with b:
        pass
    assert ran == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert sorted(c.key for c in done) == sorted(f"q{i}" for i in range(10))
    assert [c.batch_size for c in b.records] == [4] * 8 + [2] * 2
    assert all(c.arrival_s < c.dispatch_s < c.completion_s and c.error is None for c in b.records)


def test_the_threaded_batcher_holds_a_lone_request_for_the_delay_on_its_clock() -> None:
    b = Batcher(lambda reqs: None, max_batch_size=8, max_queue_delay_ms=5.0, clock=fake_clock())
    with b:
        b.submit("lone", 0)
        while not b.records:
            threading.Event().wait(0.001)
    (c,) = b.records
    assert c.queue_s >= 0.005 and c.batch_size == 1


def test_close_serves_what_waits_without_waiting_for_the_delay() -> None:
    b = Batcher(lambda reqs: None, max_batch_size=8, max_queue_delay_ms=60_000.0)
    b.submit("a", 0)
    with b:
        pass  # close right away: an hour's delay is not waited for
    assert [c.key for c in b.records] == ["a"]


def test_a_failing_batch_completes_every_request_and_keeps_the_error() -> None:
    calls = itertools.count()

    def run_batch(reqs: list[Any]) -> None:
        if next(calls) == 1:
            raise ValueError("boom")

    done: list[Completed] = []
    b = Batcher(run_batch, max_batch_size=2, on_done=done.extend)
    for i in range(6):
        b.submit(i, i)
    with b:
        pass
    b2_keys = {c.key: c.error for c in done}
    assert sorted(b2_keys) == list(range(6))  # nobody left waiting
    assert b2_keys[0] is None and b2_keys[1] is None
    assert b2_keys[2] == "ValueError: boom" and b2_keys[3] == "ValueError: boom"
    assert b2_keys[4] == b2_keys[5] == "not served: an earlier batch failed"
    assert isinstance(b.failure, ValueError)


def test_each_worker_is_started_with_the_hook_and_more_workers_share_the_queue() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def hook(w: int) -> None:
        with lock:
            started.append(w)

    b = Batcher(lambda reqs: None, workers=3, on_worker_start=hook)
    for i in range(30):
        b.submit(i, i)
    with b:
        pass
    assert sorted(started) == [0, 1, 2]
    assert sorted(c.key for c in b.records) == list(range(30))
    with pytest.raises(RuntimeError, match="closed"):
        b.submit(99, 0)


def test_worker_0_can_serve_on_the_callers_thread_until_finish_is_called_elsewhere() -> None:
    """What the LoadGen server does: worker 0 on the main thread, another in a thread of the
    batcher's own, requests submitted and `finish` called from a third thread. Every request is
    served once, worker 0's batches ran on the calling thread, and serve returns after finish."""
    import threading

    ran_on: dict[int, set[str]] = {}
    lock = threading.Lock()

    def run_batch(requests: list) -> None:  # type: ignore[type-arg]
        with lock:
            for r in requests:
                ran_on.setdefault(r.key, set()).add(threading.current_thread().name)

    batcher = Batcher(run_batch, max_batch_size=3, max_queue_delay_ms=1.0, workers=2)

    def client() -> None:
        for i in range(200):
            batcher.submit(i, i)
        batcher.finish()

    batcher.start(leave=1)
    feeder = threading.Thread(target=client, name="client")
    feeder.start()
    batcher.serve(0)  # returns once finish was called and the queue is empty
    feeder.join()
    batcher.close()
    assert sorted(ran_on) == list(range(200)) and all(len(v) == 1 for v in ran_on.values())
    assert sorted(r.key for r in batcher.records) == list(range(200))
    by_worker = {r.worker for r in batcher.records}
    assert by_worker <= {0, 1}
    main = threading.current_thread().name
    for r in batcher.records:
        assert (next(iter(ran_on[r.key])) == main) == (r.worker == 0)
