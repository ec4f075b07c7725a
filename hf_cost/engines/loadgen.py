"""MLPerf LoadGen (PyPI mlcommons-loadgen, ``import mlperf_loadgen``) driving any Candidate
through the dynamic batcher, in its Server scenario.

Threads:
- LoadGen's own issue thread calls ``issue_queries`` at each query's scheduled time (Poisson
  arrivals at ``server_target_qps``); it only queues the samples in the `Batcher` (arrival = the
  batcher's clock at that call) and returns.
- ``workers`` batcher threads (model instances sharing the one candidate) each take a batch,
  run ``candidate.forward(pset.batch(indices))`` and ``candidate.synchronize()``, then call
  ``QuerySamplesComplete`` for its samples. Torch's intra-op threads are split between them
  (`thread_split`), and the split is recorded.
- The calling thread sits in ``StartTestWithLogSettings`` until LoadGen has every completion.

Latencies: LoadGen's own, per sample, from its trace (loadgen_log.py): from the time LoadGen
*scheduled* the query to its completion. The batcher's records (keyed by LoadGen's query ids)
add when each sample was dispatched, its batch's size and its queueing delay; they are paired
with the trace by issue order, and the pairing is checked sample index by sample index.

A SUT that raises mid-run: LoadGen's response has no error field, so every outstanding sample
(and every later one) is completed at once with an empty response, the batcher records the
error, LoadGen's test ends on its schedule, and `run_server` raises the SUT's exception after
the test has returned and the SUT and QSL are destroyed. LoadGen never waits on a lost query.

The calling thread is inside LoadGen's C++ for the whole test, so Ctrl-C is acted on when the
test returns (at most its duration later). LoadGen's issue thread needs the GIL to call
``issue_queries``; the wait for it is in each query's latency, as it would be for any Python
SUT, and the trace's issue delay (raw ``issue_delay_ms``) shows it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_cost.engines.batcher import Batcher, Completed
from hf_cost.engines.loadgen_log import (
    DETAIL_LOG,
    TRACE_LOG,
    LoadGenFigures,
    TraceSample,
    figures,
    read_detail_log,
    read_trace_samples,
)

LATENCY_SOURCE = ("LoadGen's trace (mlperf_log_trace.json, Sample events): complete_ns, from when LoadGen "
                  "scheduled the query to its QuerySamplesComplete")


class SutFailed(RuntimeError):
    """The candidate raised while LoadGen was running: raised after the test returned."""


def loadgen_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("mlperf_loadgen") is not None


@dataclass(frozen=True)
class ServerSettings:
    """What the TestSettings of one Server run say (mode PerformanceOnly, no mlperf.conf)."""

    target_qps: float
    latency_bound_ms: float
    latency_percentile: float
    min_duration_s: float
    min_query_count: int

    def test_settings(self, lg: Any) -> Any:
        ts = lg.TestSettings()
        ts.scenario = lg.TestScenario.Server
        ts.mode = lg.TestMode.PerformanceOnly
        ts.server_target_qps = float(self.target_qps)
        ts.server_target_latency_ns = round(self.latency_bound_ms * 1e6)
        ts.server_target_latency_percentile = float(self.latency_percentile)
        ts.min_duration_ms = round(self.min_duration_s * 1e3)
        ts.min_query_count = int(self.min_query_count)
        return ts


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
class ServerRun:
    """One LoadGen Server test: its figures, and per sample (in LoadGen's issue order) its
    latency from the trace and the batcher's record of it."""

    figures: LoadGenFigures
    samples: list[TraceSample]
    records: list[Completed]  # same order and length as samples
    threads: ThreadSplit
    log_dir: Path | None  # None: no output folder, the logs were not kept


def thread_split(workers: int) -> ThreadSplit:
    """Torch's intra-op threads shared out: each worker gets available // workers (at least 1)."""
    import torch

    available = torch.get_num_threads()
    return ThreadSplit(available, max(1, available // workers))


def run_server(candidate: Any, pset: Any, settings: ServerSettings, batching: Batching,
               log_dir: Path | None) -> ServerRun:
    """One LoadGen Server test of ``candidate`` on ``pset``; logs into ``log_dir``, which this
    call creates (an existing folder is refused, so the trace it compresses and removes is
    always the one LoadGen just wrote there)."""
    if log_dir is None:
        with tempfile.TemporaryDirectory(prefix="hf_cost-loadgen-") as tmp:
            run = _run(candidate, pset, settings, batching, Path(tmp))
        run.log_dir = None
        return run
    log_dir.parent.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir()  # FileExistsError for a folder this run did not make
    return _run(candidate, pset, settings, batching, log_dir)


def _run(candidate: Any, pset: Any, settings: ServerSettings, batching: Batching, log_dir: Path) -> ServerRun:
    import mlperf_loadgen as lg
    import torch

    device = next(iter(pset.tensors.values())).device
    split = thread_split(batching.workers)

    def run_batch(requests: list[Any]) -> None:
        indices = torch.tensor([r.index for r in requests], dtype=torch.long, device=device)
        candidate.forward(pset.batch(indices))
        candidate.synchronize()

    def complete(done: list[Completed]) -> None:
        lg.QuerySamplesComplete([lg.QuerySampleResponse(c.key, 0, 0) for c in done])

    batcher = Batcher(
        run_batch, max_batch_size=batching.max_batch_size, max_queue_delay_ms=batching.max_queue_delay_ms,
        workers=batching.workers, on_done=complete,
        on_worker_start=lambda _w: torch.set_num_threads(split.torch_threads_per_worker),
    )

    issued: list[int] = []  # LoadGen's query ids in issue order

    def issue_queries(samples: list[Any]) -> None:
        for s in samples:
            issued.append(s.id)
            batcher.submit(s.id, s.index)

    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(log_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = True  # the per-sample latencies
    sut = lg.ConstructSUT(issue_queries, lambda: None)
    qsl = lg.ConstructQSL(pset.num_samples, pset.num_samples, lambda _ix: None, lambda _ix: None)
    try:
        with batcher:
            lg.StartTestWithLogSettings(sut, qsl, settings.test_settings(lg), log_settings)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
        torch.set_num_threads(split.torch_threads_available)
    if batcher.failure is not None:
        failed = sum(r.error is not None for r in batcher.records)
        raise SutFailed(
            f"the candidate raised during the LoadGen run ({type(batcher.failure).__name__}: {batcher.failure}); "
            f"{failed} of {len(batcher.records)} queries were completed unserved so that LoadGen could finish"
        ) from batcher.failure
    samples = read_trace_samples(log_dir / TRACE_LOG)
    records = _paired(samples, batcher.records, issued)
    _compress(log_dir / TRACE_LOG)
    return ServerRun(figures(read_detail_log(log_dir / DETAIL_LOG)), samples, records, split, log_dir)


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


def _compress(path: Path) -> None:
    """The trace is ~1.7 kB per sample: kept gzipped (a tenth of that) beside the other logs."""
    with open(path, "rb") as src, gzip.open(f"{path}.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.remove(path)
