"""MLPerf LoadGen's Server scenario through the dynamic batcher (engines/batcher.py): LoadGen's
issue thread calls ``issue_queries`` at each query's scheduled time (Poisson arrivals at
``server_target_qps``); it only queues the samples in the `Batcher` (arrival = the batcher's
clock at that call) and returns. ``workers`` batcher threads (model instances sharing the one
candidate) each take a batch, run ``candidate.forward(pset.batch(indices))`` and
``candidate.synchronize()``, then call ``QuerySamplesComplete`` for its samples. A causal LM
(``candidate.generates``) runs ``generate`` instead and reports first tokens and token counts
(engines/token_serving.py). Torch's
intra-op threads are split between them (`thread_split`), and the split is recorded. The
batcher's records (keyed by LoadGen's query ids) are paired with LoadGen's trace by issue
order, checked sample index by sample index.

Worker 0 runs on the main thread, and LoadGen's test on a thread of its own: on this stack a
torch model called from any other thread ran at about one intra-op thread's speed (MiniLM,
2 cores: 24-29 ms per ticket against 17-20 ms on the main thread, whatever set_num_threads
said), which made the served model 2-6x slower than the same model in single_stream. More
workers run on threads of their own, each with its share of the intra-op threads. What every scenario shares (the test plan, the
log folder, reading the logs, a failing candidate) is in engines/loadgen.py.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_cost.engines.batcher import Batcher, Completed
from hf_cost.engines.loadgen import (
    LoadGenRun,
    TestPlan,
    in_log_dir,
    read_logs,
    signals_noted,
    start_test,
    sut_failed,
)
from hf_cost.engines.loadgen_log import TraceSample
from hf_cost.engines.token_serving import TokenServing


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = 1
    max_queue_delay_ms: float = 0.0
    workers: int = 1


@dataclass(frozen=True)
class ThreadSplit:
    torch_threads_available: int  # torch.get_num_threads() before the run
    torch_threads_per_worker: int


@dataclass
class ServerRun(LoadGenRun):
    records: list[Completed] = field(default_factory=list)  # same order and length as samples
    threads: ThreadSplit = ThreadSplit(1, 1)
    output_tokens: list[int] | None = None  # a causal LM: each sample's n_tokens as LoadGen was told, same order


def thread_split(workers: int) -> ThreadSplit:
    """Torch's intra-op threads shared out: each worker gets available // workers (at least 1)."""
    import torch

    available = torch.get_num_threads()
    return ThreadSplit(available, max(1, available // workers))


def run_server(candidate: Any, pset: Any, settings: TestPlan, batching: Batching,
               log_dir: Path | None) -> ServerRun:
    """One LoadGen Server test of ``candidate`` on ``pset``; logs into ``log_dir``, which this
    call creates."""
    return in_log_dir(log_dir, lambda folder: _run_server(candidate, pset, settings, batching, folder))


def _run_server(candidate: Any, pset: Any, plan: TestPlan, batching: Batching, log_dir: Path) -> ServerRun:
    import mlperf_loadgen as lg
    import torch

    device = next(iter(pset.tensors.values())).device
    split = thread_split(batching.workers)

    tokens = TokenServing(lg, candidate, pset) if getattr(candidate, "generates", False) else None

    def run_batch(requests: list[Any]) -> None:
        indices = torch.tensor([r.index for r in requests], dtype=torch.long, device=device)
        with torch.inference_mode():
            candidate.forward(pset.batch(indices))
        candidate.synchronize()

    def complete(done: list[Completed]) -> None:
        lg.QuerySamplesComplete([lg.QuerySampleResponse(c.key, 0, 0) for c in done])

    batcher = Batcher(
        run_batch if tokens is None else tokens.run_batch,  # a causal LM: one generate per batch, first
        max_batch_size=batching.max_batch_size, max_queue_delay_ms=batching.max_queue_delay_ms,
        workers=batching.workers, on_done=complete if tokens is None else tokens.complete,  # tokens reported
        on_worker_start=lambda _w: torch.set_num_threads(split.torch_threads_per_worker),
    )

    issued: list[int] = []  # LoadGen's query ids in issue order

    def issue_queries(samples: list[Any]) -> None:
        for s in samples:
            issued.append(s.id)
            batcher.submit(s.id, s.index)

    errors: list[BaseException] = []

    def test() -> None:
        try:
            start_test(lg, issue_queries, pset.num_samples, plan, log_dir)
        except BaseException as exc:  # noqa: BLE001 - raised on the main thread below
            errors.append(exc)
        finally:
            batcher.finish()  # worker 0 returns once the queue is empty

    try:
        with signals_noted():  # Ctrl-C waits for the test's end: LoadGen keeps its schedule regardless
            batcher.start(leave=1)
            runner = threading.Thread(target=test, name="loadgen-test", daemon=True)
            runner.start()
            try:
                batcher.serve(0)  # worker 0 on the main thread
            finally:
                runner.join()
                batcher.close()
    finally:
        torch.set_num_threads(split.torch_threads_available)
    if errors:
        raise errors[0]
    if batcher.failure is not None:
        failed = sum(r.error is not None for r in batcher.records)
        raise sut_failed(batcher.failure, failed, len(batcher.records))
    found, samples = read_logs(log_dir)
    records = _paired(samples, batcher.records, issued)
    output_tokens = None if tokens is None else [tokens.output_tokens[r.key] for r in records]
    return ServerRun(found, samples, log_dir, records=records, threads=split, output_tokens=output_tokens)


def _paired(samples: list[TraceSample], records: list[Completed], issued: list[int]) -> list[Completed]:
    """The batcher's records (keyed by LoadGen's query ids) in LoadGen's issue order, checked
    against the trace's samples sample index by sample index."""
    by_id = {r.key: r for r in records}
    ordered = [by_id[i] for i in issued if i in by_id]
    if len(ordered) != len(samples) or any(r.index != s.sample_index for r, s in zip(ordered, samples)):
        raise RuntimeError(
            f"LoadGen's trace ({len(samples)} samples) and the batcher's records ({len(ordered)}) do not "
            "pair up in issue order, so queueing figures cannot be given per query"
        )
    return ordered
