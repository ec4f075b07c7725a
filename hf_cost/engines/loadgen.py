"""MLPerf LoadGen (PyPI mlcommons-loadgen, ``import mlperf_loadgen``) driving any Candidate, in
each of its four scenarios. LoadGen issues the queries and decides validity; hf_cost provides
the system under test (SUT) and a query-sample library (QSL) over the performance sample set.

The SUTs:
- **Server** (engines/loadgen_server.py): LoadGen's issue thread only queues each query in the
  dynamic batcher, whose worker threads run the candidate and complete the queries. A causal LM
  runs with LoadGen's token latencies (engines/token_serving.py: first tokens, token counts).
- **SingleStream / MultiStream** (`run_stream`): the next query is issued only when the last
  one completed, so the query runs inside ``issue_queries`` itself: one forward of its samples
  (MultiStream: its N samples as one batch, padded to their longest member), then
  ``QuerySamplesComplete``. No thread of ours waits between queries: a worker thread fed by a
  queue was slower (benchmarks/loadgen_engines.py, part 6).
- **Offline** (`run_offline`): the one query holds every sample; ``issue_queries`` cuts it into
  batches of ``batch_size`` (optionally sorted by length first: length bucketing) and completes
  each batch as it finishes.
The calling thread sits in ``StartTestWithLogSettings`` until LoadGen has every completion.
A causal LM runs SingleStream and Offline through the same inline SUT with ``generate`` and
LoadGen's token latencies (engines/token_stream.py: first tokens, each sample's n_tokens).

Latencies: LoadGen's own, per sample, from its trace (loadgen_log.py): from the time LoadGen
*scheduled* the query to its completion.

A SUT that raises mid-run: LoadGen's response has no error field, so every outstanding sample
(and every later one) is completed at once with an empty response, the error is kept,
LoadGen's test ends on its schedule, and the run raises `SutFailed` after the test has returned
and the SUT and QSL are destroyed. LoadGen never waits on a lost query.

Ctrl-C and SIGTERM during a test are held (interrupts.signals_held) and delivered when it has
returned: in SingleStream, MultiStream and Offline LoadGen calls ``issue_queries`` on the main
thread, where Python runs signal handlers, and an exception raised there would go through
LoadGen's C++. Once a signal is noted the SUT completes every later sample unserved, so
LoadGen's remaining queries go at once and the run stops within about a query's time. In
Server LoadGen keeps its Poisson schedule to the end whatever the SUT does, so Ctrl-C is acted
on when the test returns (at most its duration later). LoadGen's issue thread needs the GIL to call
``issue_queries``; the wait for it is in each query's latency, as it would be for any Python
SUT, and the trace's issue delay (raw ``issue_delay_ms``) shows it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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

Scenario = Literal["SingleStream", "MultiStream", "Offline", "Server"]


class SutFailed(RuntimeError):
    """The candidate raised while LoadGen was running: raised after the test returned."""


def loadgen_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("mlperf_loadgen") is not None


@dataclass(frozen=True)
class TestPlan:
    """What the TestSettings of one run say (mode PerformanceOnly, no mlperf.conf). Fields a
    scenario does not read are None."""

    __test__ = False  # not a pytest class

    scenario: Scenario
    min_duration_s: float
    min_query_count: int
    max_duration_s: float | None = None
    latency_percentile: float | None = None  # Server: of the bound; Single/MultiStream: reported target
    latency_bound_ms: float | None = None  # Server
    target_qps: float | None = None  # Server
    expected_latency_ms: float | None = None  # Single/MultiStream: LoadGen sizes its run from it
    samples_per_query: int | None = None  # MultiStream
    expected_qps: float | None = None  # Offline: LoadGen sizes its one query from it
    ttft_bound_ms: float | None = None  # Server, a causal LM: use_token_latencies with ttft_latency ...
    tpot_bound_ms: float | None = None  # ... and tpot_latency, at latency_percentile
    token_latencies: bool = False  # SingleStream / Offline, a causal LM: use_token_latencies (no bounds)

    def test_settings(self, lg: Any) -> Any:
        ts = lg.TestSettings()
        ts.scenario = getattr(lg.TestScenario, self.scenario)
        ts.mode = lg.TestMode.PerformanceOnly
        ts.min_duration_ms = round(self.min_duration_s * 1e3)
        ts.min_query_count = int(self.min_query_count)
        if self.max_duration_s is not None:
            ts.max_duration_ms = round(self.max_duration_s * 1e3)
        if self.token_latencies:  # each sample completed with its n_tokens (engines/token_stream.py)
            ts.use_token_latencies = True
        if self.scenario == "Server":
            ts.server_target_qps = float(self.target_qps)
            ts.server_target_latency_percentile = float(self.latency_percentile)
            if self.ttft_bound_ms is not None:  # LoadGen then judges TTFT and TPOT, not the request latency
                ts.use_token_latencies = True
                ts.ttft_latency = round(self.ttft_bound_ms * 1e6)  # TestSettings::server_ttft_latency (ns)
                ts.tpot_latency = round(self.tpot_bound_ms * 1e6)  # TestSettings::server_tpot_latency (ns)
            else:
                ts.server_target_latency_ns = round(self.latency_bound_ms * 1e6)
        elif self.scenario == "SingleStream":
            ts.single_stream_expected_latency_ns = round((self.expected_latency_ms or 1.0) * 1e6)
            ts.single_stream_target_latency_percentile = float(self.latency_percentile)
        elif self.scenario == "MultiStream":
            ts.multi_stream_expected_latency_ns = round((self.expected_latency_ms or 1.0) * 1e6)
            ts.multi_stream_target_latency_percentile = float(self.latency_percentile)
            ts.multi_stream_samples_per_query = int(self.samples_per_query)
        else:
            ts.offline_expected_qps = float(self.expected_qps)
        return ts

    @classmethod
    def server(cls, target_qps: float, latency_bound_ms: float | None, latency_percentile: float,
               min_duration_s: float, min_query_count: int, *, ttft_bound_ms: float | None = None,
               tpot_bound_ms: float | None = None) -> TestPlan:
        if (latency_bound_ms is None) == (ttft_bound_ms is None) or (ttft_bound_ms is None) != (tpot_bound_ms is None):
            raise ValueError("a Server test has either latency_bound_ms or both ttft_bound_ms and tpot_bound_ms")
        return cls("Server", min_duration_s, min_query_count, latency_percentile=latency_percentile,
                   latency_bound_ms=latency_bound_ms, target_qps=target_qps, ttft_bound_ms=ttft_bound_ms,
                   tpot_bound_ms=tpot_bound_ms)


@dataclass
class LoadGenRun:
    """One LoadGen test: its figures and, per sample in LoadGen's issue order, its latency from
    the trace. ``batches``: each forward the SUT ran, in order: its sample indices, its seconds
    (forward + synchronize) and when it finished, from LoadGen's first issue call (the SUT's own
    perf_counter clock)."""

    figures: LoadGenFigures
    samples: list[TraceSample]
    log_dir: Path | None  # None: no output folder, the logs were not kept
    batches: list[tuple[list[int], float, float]] = field(default_factory=list)


def in_log_dir(log_dir: Path | None, body: Callable[[Path], LoadGenRun]) -> LoadGenRun:
    """``body`` in ``log_dir``, which this call creates (an existing folder is refused, so the
    trace it compresses and removes is always the one LoadGen just wrote there); without one, in
    a temporary folder, and the run says no logs were kept."""
    if log_dir is None:
        with tempfile.TemporaryDirectory(prefix="hf_cost-loadgen-") as tmp:
            run = body(Path(tmp))
        run.log_dir = None
        return run
    log_dir.parent.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir()  # FileExistsError for a folder this run did not make
    return body(log_dir)


def start_test(lg: Any, issue_queries: Callable[[list[Any]], None], num_samples: int, plan: TestPlan,
               log_dir: Path, *, trace: bool = True) -> None:
    """One LoadGen test with a SUT over ``issue_queries`` and a QSL of ``num_samples`` (held in
    memory: nothing to load); logs in ``log_dir``, with the trace (the per-sample latencies)
    unless ``trace`` is False."""
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(log_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = trace
    sut = lg.ConstructSUT(issue_queries, lambda: None)
    qsl = lg.ConstructQSL(num_samples, num_samples, lambda _ix: None, lambda _ix: None)
    try:
        lg.StartTestWithLogSettings(sut, qsl, plan.test_settings(lg), log_settings)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)


def read_logs(log_dir: Path) -> tuple[LoadGenFigures, list[TraceSample]]:
    samples = read_trace_samples(log_dir / TRACE_LOG)
    _compress(log_dir / TRACE_LOG)
    return figures(read_detail_log(log_dir / DETAIL_LOG)), samples


def sut_failed(exc: BaseException, unserved: int, total: int) -> SutFailed:
    err = SutFailed(
        f"the candidate raised during the LoadGen run ({type(exc).__name__}: {exc}); "
        f"{unserved} of {total} samples were completed unserved so that LoadGen could finish"
    )
    err.__cause__ = exc
    return err


@contextmanager
def signals_noted() -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM during the test: noted (the SUT then completes every sample unserved,
    so LoadGen's remaining queries go at once) and delivered when the test has returned. Only the
    main thread can set signal handlers; elsewhere nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    from hf_cost.interrupts import signals_held

    with signals_held() as pending:
        yield pending


class _InlineSut:
    """The SUT of SingleStream, MultiStream and Offline: LoadGen calls ``issue_queries`` on the
    main thread and each batch runs there, then is completed. After the candidate raised, or once
    Ctrl-C / SIGTERM is noted, every later sample is completed unserved at once, so LoadGen
    never waits on a lost query and ends within about a query."""

    def __init__(self, candidate: Any):
        self.candidate = candidate
        self.failure: Exception | None = None
        self.signals: list[int] = []
        self.unserved = self.total = 0
        self.start: float | None = None  # LoadGen's first issue call, on perf_counter
        self.batches: list[tuple[list[int], float, float]] = []

    def issued(self, samples: list[Any]) -> None:
        self.total += len(samples)
        self.start = self.start or time.perf_counter()

    def serve(self, lg: Any, samples: list[Any], inputs: Any) -> None:
        """One forward of ``inputs`` for ``samples`` (unless stopped), then their completion."""
        if self.failure is None and not self.signals:
            try:
                t0 = time.perf_counter()
                self.candidate.forward(inputs)
                self.candidate.synchronize()
                done = time.perf_counter()
                self.batches.append(([s.index for s in samples], done - t0, done - self.start))
            except Exception as exc:  # noqa: BLE001 - completed below, raised after the test
                self.failure = exc
        if self.failure is not None or self.signals:
            self.unserved += len(samples)
        lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in samples])

    def result(self, found: LoadGenFigures, samples: list[TraceSample], folder: Path) -> LoadGenRun:
        return LoadGenRun(found, samples, folder, self.batches)

    def run(self, lg: Any, issue_queries: Callable[[list[Any]], None], num_samples: int, plan: TestPlan,
            log_dir: Path | None) -> LoadGenRun:
        import torch

        def body(folder: Path) -> LoadGenRun:
            with torch.inference_mode(), signals_noted() as self.signals:
                start_test(lg, issue_queries, num_samples, plan, folder)
            if self.failure is not None:
                raise sut_failed(self.failure, self.unserved, self.total)
            return self.result(*read_logs(folder), folder)

        return in_log_dir(log_dir, body)


def _rows(pset: Any, samples: list[Any]) -> Any:
    import torch

    device = next(iter(pset.tensors.values())).device
    return pset.batch(torch.tensor([s.index for s in samples], dtype=torch.long, device=device))


def run_stream(candidate: Any, pset: Any, plan: TestPlan, log_dir: Path | None,
               sut: _InlineSut | None = None) -> LoadGenRun:
    """One SingleStream or MultiStream test: each query (1 or N samples) is one forward, run
    inside LoadGen's issue call; the next query comes when it completes. ``sut``: another inline
    SUT (a causal LM's, engines/token_stream.py) instead of the forward one."""
    import mlperf_loadgen as lg

    if plan.scenario not in ("SingleStream", "MultiStream"):
        raise ValueError(f"run_stream runs SingleStream or MultiStream, not {plan.scenario}")
    views = [pset.one(i) for i in range(pset.num_samples)]  # single stream: prepared before any clock
    sut = sut or _InlineSut(candidate)

    def issue_queries(samples: list[Any]) -> None:
        sut.issued(samples)
        sut.serve(lg, samples, views[samples[0].index] if len(samples) == 1 else _rows(pset, samples))

    return sut.run(lg, issue_queries, pset.num_samples, plan, log_dir)


def run_offline(candidate: Any, pset: Any, plan: TestPlan, batch_size: int, log_dir: Path | None,
                bucket_by_length: bool = False, sut: _InlineSut | None = None) -> LoadGenRun:
    """One Offline test: LoadGen's one query is cut into batches of ``batch_size`` in its own
    order (``bucket_by_length``: sorted by token count first, so a batch pads little), each
    completed as it finishes (``sut``: as in `run_stream`)."""
    import mlperf_loadgen as lg

    sut = sut or _InlineSut(candidate)

    def issue_queries(samples: list[Any]) -> None:
        sut.issued(samples)
        ordered = bucketed(samples, pset.token_counts()) if bucket_by_length else list(samples)
        chunks = [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]
        # every batch's tensors are gathered before the first forward: no host work between batches
        for chunk, batch in zip(chunks, [_rows(pset, c) for c in chunks]):
            sut.serve(lg, chunk, batch)

    return sut.run(lg, issue_queries, pset.num_samples, plan, log_dir)


def bucketed(items: list[Any], token_counts: list[int]) -> list[Any]:
    """``items`` (each with ``.index``) sorted by their sample's token count, shortest first;
    equal counts keep their order (a stable sort), so the cut into batches is reproducible."""
    return sorted(items, key=lambda s: token_counts[s.index])


def _compress(path: Path) -> None:
    """The trace is ~1.7 kB per sample: kept gzipped (a tenth of that) beside the other logs."""
    with open(path, "rb") as src, gzip.open(f"{path}.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.remove(path)
