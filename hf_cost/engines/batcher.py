"""A request queue and dynamic batcher, as a serving runtime runs them (Triton's dynamic batcher,
text-embeddings-inference's queue).

The rule (`BatchQueue`): requests wait in arrival order; a free worker takes the oldest ones,
at most ``max_batch_size``, as soon as either the queue holds a full batch or the oldest
request has waited ``max_queue_delay_ms``. With a delay of 0 a free worker takes whatever is
waiting at once, so batches form only from requests that queued while every worker was busy.

`Batcher` runs the rule with ``workers`` threads (model instances sharing one candidate): each
takes a batch, calls ``run_batch(requests)`` and hands the completed requests to ``on_done``.
`simulate` runs the same rule on a virtual clock with given arrival and service times, so the
rule is tested exactly (and a what-if costs no model).

Every completed request records its arrival time (the caller's; for LoadGen the moment its
query was issued), dispatch time, completion time and its batch's size. The time source
(``clock``) and ``run_batch`` are injected. A ``run_batch`` that raises does not stop the
service: the failing batch and every later request are completed at once with ``error`` set,
and ``failure`` keeps the first exception for the caller to raise (a caller such as LoadGen
must see every request completed, or it waits forever).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    key: Any  # the caller's id for it (LoadGen's query id)
    index: int  # the sample it asks for
    arrival_s: float  # when it arrived, on the batcher's clock


@dataclass(frozen=True)
class Completed:
    key: Any
    index: int
    arrival_s: float
    dispatch_s: float  # when a worker took its batch
    completion_s: float  # when its batch's run_batch returned (or failed)
    batch_size: int
    batch: int  # the batch's number, in dispatch order
    worker: int
    error: str | None = None  # set when it was not served: its batch failed, or an earlier one did

    @property
    def queue_s(self) -> float:
        return self.dispatch_s - self.arrival_s

    @property
    def latency_s(self) -> float:
        return self.completion_s - self.arrival_s


class BatchQueue:
    """The batching rule, with no threads and no clock of its own."""

    def __init__(self, max_batch_size: int = 1, max_queue_delay_ms: float = 0.0):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_queue_delay_ms < 0:
            raise ValueError(f"max_queue_delay_ms must be >= 0, got {max_queue_delay_ms}")
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_ms / 1e3
        self._waiting: deque[Request] = deque()

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, request: Request) -> None:
        self._waiting.append(request)

    def due_at(self) -> float | None:
        """When the oldest request will have waited the delay (None: nothing waits)."""
        return self._waiting[0].arrival_s + self.max_queue_delay_s if self._waiting else None

    def take(self, now: float, force: bool = False) -> list[Request]:
        """The next batch if one is due at ``now`` (full, or its oldest request waited the
        delay; ``force``: whatever waits), else []."""
        due = self.due_at()
        if due is None or not (force or len(self._waiting) >= self.max_batch_size or now >= due):
            return []
        return [self._waiting.popleft() for _ in range(min(self.max_batch_size, len(self._waiting)))]


class Batcher:
    """``workers`` threads serving one queue. Use as a context manager, or `start` then `close`."""

    def __init__(
        self,
        run_batch: Callable[[list[Request]], Any],
        *,
        max_batch_size: int = 1,
        max_queue_delay_ms: float = 0.0,
        workers: int = 1,
        clock: Callable[[], float] = time.perf_counter,
        on_done: Callable[[list[Completed]], None] | None = None,
        on_worker_start: Callable[[int], None] | None = None,
    ):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.queue = BatchQueue(max_batch_size, max_queue_delay_ms)
        self.run_batch, self.on_done, self.on_worker_start = run_batch, on_done, on_worker_start
        self.clock = clock
        self.workers = workers
        self.records: list[Completed] = []
        self.failure: BaseException | None = None  # the first exception run_batch raised
        self._cond = threading.Condition()
        self._closing = False
        self._batches = 0
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Batcher:  # noqa: PYI034 - a context manager over this one class
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, *, leave: int = 0) -> None:
        """Start a thread for each worker but the first ``leave``, which the caller runs on threads
        of its own with `serve` (the main thread: see engines/loadgen_server.py)."""
        self._threads = [threading.Thread(target=self._serve, args=(w,), name=f"batcher-worker-{w}", daemon=True)
                         for w in range(leave, self.workers)]
        for t in self._threads:
            t.start()

    def serve(self, worker: int) -> None:
        """Worker ``worker``'s loop on the calling thread, until `finish` (or `close`) and nothing is queued."""
        self._serve(worker)

    def finish(self) -> None:
        """Stop taking requests: the workers serve what is queued (at once, whatever the delay) and
        return. Callable from any thread; `close` also waits for the worker threads."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def submit(self, key: Any, index: int, arrival_s: float | None = None) -> None:
        """Queue one request; it arrived now unless ``arrival_s`` says when."""
        request = Request(key, index, self.clock() if arrival_s is None else arrival_s)
        with self._cond:
            if self._closing:
                raise RuntimeError("the batcher is closed")
            self.queue.put(request)
            self._cond.notify_all()

    def close(self) -> None:
        """Serve what is still queued (at once, whatever the delay), then stop the workers."""
        self.finish()
        for t in self._threads:
            t.join()
        self._threads = []

    def _serve(self, worker: int) -> None:
        if self.on_worker_start is not None:
            try:
                self.on_worker_start(worker)
            except Exception as exc:  # noqa: BLE001 - the worker still completes what it takes
                with self._cond:
                    self.failure = self.failure or exc
        while True:
            with self._cond:
                while True:
                    now = self.clock()
                    batch = self.queue.take(now, force=self._closing or self.failure is not None)
                    if batch:
                        break
                    if self._closing:
                        return
                    due = self.queue.due_at()
                    self._cond.wait(None if due is None else max(0.0, due - now))
                number, self._batches = self._batches, self._batches + 1
                if self.queue:
                    self._cond.notify_all()  # the rest may be due for another free worker
            self._finish(batch, now, number, worker)

    def _finish(self, batch: list[Request], dispatched: float, number: int, worker: int) -> None:
        error = "not served: an earlier batch failed" if self.failure is not None else None
        if error is None:
            try:
                self.run_batch(batch)
            except Exception as exc:  # noqa: BLE001 - kept, completed, and raised by the caller
                error = f"{type(exc).__name__}: {exc}"
                with self._cond:
                    if self.failure is None:
                        self.failure = exc
        done = self.clock()
        completed = [Completed(r.key, r.index, r.arrival_s, dispatched, done, len(batch), number, worker, error)
                     for r in batch]
        with self._cond:
            self.records.extend(completed)
        if self.on_done is not None:
            try:
                self.on_done(completed)
            except Exception as exc:  # noqa: BLE001 - the worker lives on to complete the others
                with self._cond:
                    self.failure = self.failure or exc


def simulate(
    arrivals_s: Sequence[float],
    service_s: Callable[[int], float],
    *,
    max_batch_size: int = 1,
    max_queue_delay_ms: float = 0.0,
    workers: int = 1,
) -> list[Completed]:
    """The batcher's rule on a virtual clock: requests arrive at ``arrivals_s`` (sorted), a batch
    of b requests keeps its worker busy ``service_s(b)`` seconds. Returns the completed requests
    in dispatch order; request i has key and index i."""
    queue = BatchQueue(max_batch_size, max_queue_delay_ms)
    free_at = [0.0] * workers  # when each worker is next free
    done: list[Completed] = []
    i, n, now, number = 0, len(arrivals_s), 0.0, 0
    while True:
        while i < n and arrivals_s[i] <= now:
            queue.put(Request(i, i, arrivals_s[i]))
            i += 1
        for w in sorted(range(workers), key=lambda w: (free_at[w], w)):
            if free_at[w] > now:
                break
            batch = queue.take(now)
            if not batch:
                break
            end = now + service_s(len(batch))
            free_at[w] = end
            done += [Completed(r.key, r.index, r.arrival_s, now, end, len(batch), number, w) for r in batch]
            number += 1
        upcoming = [arrivals_s[i]] if i < n else []
        if len(queue):
            busy = [t for t in free_at if t > now]
            if len(busy) == workers:
                upcoming.append(min(busy))  # every worker busy: the next one to free up
            else:
                upcoming.append(queue.due_at())  # a worker waits for the delay (or an arrival)
        if not upcoming:
            return done
        now = max(now, min(upcoming))
