"""LoadGen engines: MLPerf LoadGen, hf_cost's own loop and a bare torch loop, side by side in one run.

    python benchmarks/loadgen_engines.py [--rounds 6] [--seconds 3] [--batch-size 8] [--parts 1,2,3,4,5,6]
                                         [--samples same|own] [--json PATH]

The candidate is the default scenario's model (scenarios/bert.yaml: the embedded MiniLM, loaded as
benchmarks/harness_overhead.py loads it) on the scenario's performance sample set (natural lengths).
Every part runs inside the same rounds; each round runs every engine once, in ABBA order over the
whole list (forward in even rounds, reversed in odd ones), and ratios are formed within a round and
summarised by hf_cost/measure/interleave.py (geometric mean, Student-t 95 % CI on log ratios).

1. Engine agreement, single stream (batch 1, p50 latency): bare torch loop
   (``perf_counter(); model(**sample); perf_counter()``), hf_cost's loop (measure/timing.py
   ``run_queries`` + ``one_sample_queries``, as steps/single_stream.py runs it) and LoadGen
   SingleStream (engines/loadgen.py ``run_stream``; LoadGen's own p50). Target: engine p50 /
   bare p50 <= 1.02.
2. Engine agreement, offline (batch --batch-size, samples/s): bare batched loop, hf_cost's loop
   (as steps/offline.py's loop engine) and LoadGen Offline (``run_offline``). Target: engine
   throughput / bare throughput >= 0.98.
3. Null-SUT floors: the same engines with a candidate whose forward does nothing (MLPerf ships a
   null SUT for this): the engine's own cost, in µs per query (p50) and µs per sample (offline).
   Each engine runs exactly --null-queries queries (samples), so every floor has the same n.
4. LoadGen Server (``run_server``, null candidate, one worker, batch 1): LoadGen's scheduled QPS
   / target at each --server-qps. Target: within 1 %. LoadGen's schedule is seeded
   (schedule_rng_seed, 0 by default, which is what hf_cost runs): with --server-seeds per-round
   (default) round k uses seed k, so the rounds are independent Poisson draws and the CI means
   something; with ``default`` every round replays the same schedule (identical ratios).
5. Natural vs fixed lengths on the default data (hf_cost's loop): single-stream p50 fixed /
   natural and offline throughput natural / fixed (the speed-up of natural lengths).
6. SUT designs for LoadGen SingleStream, written here on raw ``mlperf_loadgen`` (p50 from
   LoadGen's detail log): (a) inline in the issue callback, trace on (what run_stream does),
   (b) inline, trace off, (c) a Python worker thread fed by a queue, (d) inline with
   ``torch.set_num_threads(1)`` for the run (restored after). Ratios vs part 1's bare loop.

Samples (--samples): ``same`` (default): every engine runs the samples LoadGen draws; the loops
replay LoadGen's sample order, read beforehand from a null-SUT LoadGen run with LoadGen's default
seeds (each LoadGen run is checked against it: ``order_matches``). With natural lengths a different
draw is a different workload: ``own`` lets each engine draw as hf_cost does (loops:
``random.Random(seed)`` / ``torch.Generator``; LoadGen: its own seeded draw), and the header
prints how far the two draws differ in tokens.

Every LoadGen run: min_duration_s = --seconds (null floors: --null-queries), min_query_count 10,
PerformanceOnly, no mlperf.conf, logs in a temporary folder. Before the rounds, a short
calibration (bare loops) gives LoadGen its expected latency (x 0.5, so that it never runs out of
queries) and offline rate (x 1.25 / 1.1, as steps/offline.py passes it). Prints the CPU, a table
per part, a progress line per round (stderr) and finally one JSON line with every round's figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import math
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIN_QUERIES = 10  # LoadGen's min_query_count in every timed run (the duration decides)
WARMUP_QUERIES = 10  # as single_stream's default warmup_queries
P50_TARGET = 1.02  # engine p50 / bare p50 at most
THROUGHPUT_TARGET = 0.98  # engine throughput / bare throughput at least
SERVER_TOLERANCE = 0.01  # scheduled QPS / target within 1 %
EXPECTED_LATENCY_FACTOR = 0.5  # LoadGen SingleStream generates ~2 x duration / expected queries
OFFLINE_MARGIN, LOADGEN_OFFLINE_MARGIN = 1.25, 1.1  # as steps/offline.py: DURATION_MARGIN, LoadGen's 1.1
NULL_MIN_S = 0.01  # null floors run a query count, not a duration
ORDER_PROBE_S = 0.5  # the null-SUT run that reads LoadGen's SingleStream sample order (~10^4-10^5 queries)
CALIBRATION_S = 1.0
KEY_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
             "amx_int8", "amx_bf16", "sve", "asimd")
SUT_VARIANTS = {  # part 6: slot -> (what it is, trace, worker thread, torch threads)
    "sut.a_inline_trace": ("(a) inline, trace on (as run_stream)", True, False, None),
    "sut.b_inline_notrace": ("(b) inline, trace off", False, False, None),
    "sut.c_worker_thread": ("(c) worker thread + queue, trace on", True, True, None),
    "sut.d_inline_1thread": ("(d) inline, trace on, torch 1 thread", True, False, 1),
}


class NullCandidate:
    """MLPerf's null SUT as a candidate: forward runs a module that does nothing, called as
    TorchCandidate calls its module (``module(**batch)``) and as the bare loop calls the model, so
    every engine pays the same call (a ``**`` call of a 3-tensor dict alone is ~0.7 µs here)."""

    def __init__(self, device: Any):
        self.name = "null"
        self.device = device

    def forward(self, batch: dict[str, Any]) -> None:
        return _null_module(**batch)

    def synchronize(self) -> None:
        return None


def _null_module(**inputs: Any) -> None:
    """The bare loop's `model(**sample)` for the null SUT."""
    return None


class Replay:
    """A random.Random stand-in whose randrange replays a fixed index sequence (wrapping round)."""

    def __init__(self, sequence: list[int]):
        self.sequence, self.i = sequence, 0

    def randrange(self, n: int) -> int:
        v = self.sequence[self.i % len(self.sequence)]
        self.i += 1
        return v

    @property
    def wrapped(self) -> bool:
        return self.i > len(self.sequence)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(Path(__file__).resolve().parents[1] / "scenarios" / "bert.yaml"))
    ap.add_argument("--rounds", type=int, default=6, help="at least 2 for a CI; even counts balance the order")
    ap.add_argument("--seconds", type=float, default=3.0, help="measured time per engine and round")
    ap.add_argument("--batch-size", type=int, default=8, help="offline batch size (parts 2, 3, 5)")
    ap.add_argument("--parts", default="1,2,3,4,5,6", help="comma list of the parts to run (1-6)")
    ap.add_argument("--samples", choices=("same", "own"), default="same",
                    help="same: every engine runs LoadGen's sample order; own: each draws as hf_cost does")
    ap.add_argument("--null-queries", type=int, default=20000, help="queries (samples) per null-SUT run")
    ap.add_argument("--server-qps", default="50,200", help="part 4's target QPS values")
    ap.add_argument("--server-seeds", choices=("per-round", "default"), default="per-round")
    ap.add_argument("--json", type=Path, help="also write everything (every round's figures) to this file")
    args = ap.parse_args()
    try:
        parts = sorted({int(p) for p in args.parts.split(",") if p.strip()})
        server_qps = [float(q) for q in args.server_qps.split(",") if q.strip()]
    except ValueError:
        ap.error(f"--parts takes numbers 1-6 and --server-qps numbers, got {args.parts!r} and {args.server_qps!r}")
    if not parts or any(p not in range(1, 7) for p in parts):
        ap.error(f"--parts takes numbers 1-6, got {args.parts!r}")
    if args.rounds < 1 or args.seconds <= 0 or args.batch_size < 1 or args.null_queries < MIN_QUERIES:
        ap.error("--rounds >= 1, --seconds > 0, --batch-size >= 1 and --null-queries >= 10 please")
    if not server_qps or min(server_qps) <= 0:
        ap.error("--server-qps takes positive numbers")

    from hf_cost.hub_access import configure_hub_access

    configure_hub_access()
    import mlperf_loadgen as lg
    import torch

    from hf_cost.data.performance_set import build_performance_set
    from hf_cost.engines.loadgen import TestPlan, run_offline, run_stream, start_test
    from hf_cost.engines.loadgen_log import DETAIL_LOG, read_detail_log
    from hf_cost.engines.loadgen_server import Batching, run_server
    from hf_cost.measure.cpu_flags import read_cpu_flags
    from hf_cost.measure.environment import collect_environment
    from hf_cost.measure.interleave import RatioSummary, claim, log_ratio_ci, round_orders
    from hf_cost.measure.machine_load import MachineLoadSentinel
    from hf_cost.measure.timing import Query, StopRule, one_sample_queries, run_queries
    from hf_cost.models.load import load_model
    from hf_cost.models.torch_candidate import TorchCandidate
    from hf_cost.pipeline import prepare

    @dataclasses.dataclass(frozen=True)
    class SeededPlan(TestPlan):
        """A TestPlan that can also set LoadGen's schedule_rng_seed (part 4 only)."""

        schedule_rng_seed: int | None = None

        def test_settings(self, lg: Any) -> Any:
            ts = super().test_settings(lg)
            if self.schedule_rng_seed is not None:
                ts.schedule_rng_seed = self.schedule_rng_seed
            return ts

    # ---- the candidate, its sample sets, the machine ------------------------------------------
    prepared = prepare(args.scenario)
    loaded = load_model(prepared.suite.model, prepared.checkpoint)
    model, device = loaded.model, loaded.device
    cand = TorchCandidate("base", model, loaded.tokenizer)
    null = NullCandidate(device)
    pset = build_performance_set(prepared.suite.inputs, loaded.tokenizer, device)
    fixed_pset = None
    if 5 in parts:
        fixed_inputs = prepared.suite.inputs.model_copy(update={"lengths": "fixed"})
        fixed_pset = build_performance_set(fixed_inputs, loaded.tokenizer, device)
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    bs, seconds = args.batch_size, args.seconds

    env = collect_environment()
    flags = read_cpu_flags()
    try:
        loadgen_version = importlib.metadata.version("mlcommons-loadgen")
    except importlib.metadata.PackageNotFoundError:
        loadgen_version = None
    cpu = env["cpu"]
    print(f"CPU: {cpu['model']} ({cpu['logical_cores']} logical / {cpu['physical_cores']} physical cores, "
          f"affinity {cpu['affinity_cores']}); torch threads {torch.get_num_threads()} "
          f"(interop {torch.get_num_interop_threads()}); device {device}")
    print(f"CPU flags: {' '.join(f for f in KEY_FLAGS if flags.has(f)) or '-'} "
          f"(of {', '.join(KEY_FLAGS)}; {len(flags.flags)} flags in all, {flags.source})")
    print(f"torch {torch.__version__}, mlcommons-loadgen {loadgen_version}, hf_cost {env['git_commit']}")
    print(f"model {prepared.suite.model.display_name}; samples: {pset.num_samples} at {pset.lengths} lengths "
          f"(cap {pset.sequence_length}, tokens mean {statistics.fmean(pset.token_counts()):.1f}); "
          f"rounds {args.rounds} x {seconds:g} s per engine; parts {','.join(map(str, parts))}; "
          f"samples {args.samples}")

    # ---- one run of each engine ------------------------------------------------------------------
    def p50(values: list[float]) -> float:
        return sorted(values)[int(len(values) * 0.5)]  # LoadGen's nearest rank

    def tokens_mean(ps: Any, indices: list[int]) -> float:
        counts = ps.token_counts()
        return statistics.fmean(counts[i] for i in indices) if indices else float("nan")

    def views_of(ps: Any) -> list[dict[str, Any]]:
        return [ps.one(i) for i in range(ps.num_samples)]  # what single_stream times: each at its own length

    def warm_stream(c: Any, views: list[dict[str, Any]]) -> random.Random:
        """single_stream's warm-up: WARMUP_QUERIES draws of random.Random(seed); returns that rng."""
        rng = random.Random(pset.seed)
        for _ in range(WARMUP_QUERIES):
            c.forward(views[rng.randrange(len(views))])
            c.synchronize()
        return rng

    def measure_rng(warmed: random.Random, sequence: list[int]) -> Any:
        return Replay(sequence) if args.samples == "same" else warmed

    def bare_stream(fn: Callable[..., Any], views: list[dict[str, Any]], rng: Any, count: int | None) -> dict:
        """harness_overhead.py's bare loop; ``count``: exactly that many queries, else --seconds."""
        lat, idx = [], []
        with torch.inference_mode():
            start = time.perf_counter()
            while (len(lat) < count) if count is not None else (time.perf_counter() - start < seconds):
                i = rng.randrange(len(views))
                s = views[i]
                t0 = time.perf_counter()
                fn(**s)
                sync()
                lat.append((time.perf_counter() - t0) * 1e3)
                idx.append(i)
        return {"p50_ms": p50(lat), "queries": len(lat), "indices": idx}

    def loop_stream(c: Any, views: list[dict[str, Any]], rng: Any, count: int | None) -> dict:
        stop = StopRule(min_count=count) if count is not None else StopRule(min_duration_s=seconds,
                                                                            min_count=MIN_QUERIES)
        t = run_queries(c.forward, c.synchronize, one_sample_queries(len(views), views.__getitem__, rng), stop)
        return {"p50_ms": p50(t.latency_ms), "queries": t.count, "indices": [ix[0] for ix in t.indices]}

    def loadgen_stream(c: Any, ps: Any, plan: Any, sequence: list[int]) -> dict:
        run = run_stream(c, ps, plan, log_dir=None)
        f = run.figures
        idx = [s.sample_index for s in run.samples]
        return {"p50_ms": f.percentiles_ms["p50"], "p50_trace_ms": p50([s.latency_ms for s in run.samples]),
                "queries": f.queries, "validity": f.validity, "why": f.why, "indices": idx,
                "order_matches": idx == sequence[:len(idx)]}

    def raw_stream(c: Any, views: list[dict[str, Any]], plan: Any, trace: bool, worker: bool,
                   threads: int | None) -> dict:
        """Part 6: a SingleStream SUT written on raw mlperf_loadgen; LoadGen's p50 from its detail log."""
        idx: list[int] = []
        seen: dict[str, Any] = {"threads": None, "failure": None}
        jobs: queue.SimpleQueue = queue.SimpleQueue()

        def serve(samples: list[Any]) -> None:
            if seen["threads"] is None:
                seen["threads"] = torch.get_num_threads()  # what torch runs with in this thread
            if seen["failure"] is None:
                try:
                    for s in samples:
                        idx.append(s.index)
                        c.forward(views[s.index])
                    c.synchronize()
                except Exception as exc:  # noqa: BLE001 - completed below so LoadGen ends; raised after
                    seen["failure"] = exc
            lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in samples])

        def work() -> None:
            with torch.inference_mode():
                while (samples := jobs.get()) is not None:
                    serve(samples)

        with tempfile.TemporaryDirectory(prefix="loadgen_engines-") as tmp:
            thread = threading.Thread(target=work, name="sut-worker", daemon=True) if worker else None
            before = torch.get_num_threads()
            try:
                if threads is not None:
                    torch.set_num_threads(threads)
                if thread is not None:
                    thread.start()
                with torch.inference_mode():
                    start_test(lg, jobs.put if worker else serve, len(views), plan, Path(tmp), trace=trace)
            finally:
                if thread is not None:
                    jobs.put(None)
                    thread.join()
                torch.set_num_threads(before)
            if seen["failure"] is not None:
                raise RuntimeError(f"part 6 SUT raised: {seen['failure']!r}") from seen["failure"]
            v = read_detail_log(Path(tmp) / DETAIL_LOG).values
        return {"p50_ms": v["result_50.00_percentile_latency_ns"] / 1e6, "queries": v["result_query_count"],
                "validity": v["result_validity"], "threads_in_sut": seen["threads"], "indices": idx,
                "order_matches": idx == lg_stream_order[:len(idx)]}

    def order_probe(plan: Any, n: int) -> list[int]:
        """The sample indices LoadGen issues under ``plan`` (a null SUT, no trace): its draw."""
        got: list[int] = []

        def issue(samples: list[Any]) -> None:
            got.extend(s.index for s in samples)
            lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in samples])

        with tempfile.TemporaryDirectory(prefix="loadgen_engines-") as tmp:
            start_test(lg, issue, n, plan, Path(tmp), trace=False)
        return got

    def offline_batches(ps: Any, order: list[int]) -> tuple[list[Any], list[dict[str, Any]]]:
        chunks = [torch.tensor(order[i:i + bs], dtype=torch.long, device=device) for i in range(0, len(order), bs)]
        return chunks, [ps.batch(ix) for ix in chunks]  # gathered before any clock, as offline's loop does

    def offline_order(ps: Any, plan: Any) -> list[int]:
        """LoadGen's order under ``plan`` (--samples same), or offline's own draw of as many samples."""
        lg_order = order_probe(plan, ps.num_samples)
        if args.samples == "same":
            return lg_order
        gen = torch.Generator().manual_seed(ps.seed + bs)
        return torch.randint(ps.num_samples, (len(lg_order),), generator=gen).tolist()

    def bare_offline(fn: Callable[..., Any], batches: list[dict[str, Any]], count: int) -> dict:
        with torch.inference_mode():
            fn(**batches[0])  # warm-up, as harness_overhead.py
            sync()
            start = time.perf_counter()
            for b in batches:
                fn(**b)
                sync()
            return {"samples_per_s": count / (time.perf_counter() - start), "samples": count}

    def loop_offline(c: Any, chunks: list[Any], batches: list[dict[str, Any]], count: int) -> dict:
        c.forward(batches[0])  # warm-up (offline's calibration runs first)
        c.synchronize()
        t = run_queries(c.forward, c.synchronize, [Query(ix, b) for ix, b in zip(chunks, batches)])
        return {"samples_per_s": count / t.completed_s[-1], "samples": count}

    def loadgen_offline(c: Any, ps: Any, plan: Any, order: list[int], warm_batch: dict[str, Any]) -> dict:
        c.forward(warm_batch)
        c.synchronize()
        run = run_offline(c, ps, plan, bs, log_dir=None)
        f = run.figures
        idx = [s.sample_index for s in run.samples]
        return {"samples_per_s": f.samples_per_s, "samples": len(run.samples), "validity": f.validity,
                "why": f.why, "order_matches": idx == order if args.samples == "same" else None}

    # ---- calibration and LoadGen's sample order, before the rounds ----------------------------------
    views = views_of(pset)
    need_ss = bool({1, 5, 6} & set(parts))
    need_off = bool({2, 5} & set(parts))
    calibration: dict[str, Any] = {}
    print("calibrating (bare loops) and reading LoadGen's sample order ...", file=sys.stderr)

    def calibrate_stream(ps_views: list[dict[str, Any]]) -> float:
        rng = warm_stream(cand, ps_views)
        with torch.inference_mode():
            lat, start = [], time.perf_counter()
            while time.perf_counter() - start < min(CALIBRATION_S, seconds) or len(lat) < MIN_QUERIES:
                s = ps_views[rng.randrange(len(ps_views))]
                t0 = time.perf_counter()
                model(**s)
                sync()
                lat.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(lat)

    def calibrate_offline(ps: Any) -> float:
        gen = torch.Generator().manual_seed(ps.seed + bs)
        times = []
        with torch.inference_mode():
            start = time.perf_counter()
            while time.perf_counter() - start < min(CALIBRATION_S, seconds) or len(times) < 3:
                b = ps.batch(torch.randint(ps.num_samples, (bs,), generator=gen).to(device))
                t0 = time.perf_counter()
                model(**b)
                sync()
                times.append(time.perf_counter() - t0)
        return bs / statistics.median(times[1:])

    # LoadGen's SingleStream draw with its default seeds. Its prefix is the same whatever the duration
    # or expected latency, but not when min_query_count sets the number of queries (seen with 6.0.17),
    # so the probe runs on duration with min_query_count 10, as every timed run does; checked in each run
    lg_stream_order = order_probe(TestPlan("SingleStream", ORDER_PROBE_S, MIN_QUERIES, latency_percentile=0.9,
                                           expected_latency_ms=0.01), pset.num_samples)
    ss_plan = off_plan = off_plan_fixed = None
    if need_ss:
        cal = calibrate_stream(views)
        calibration["single_stream_p50_ms"] = cal
        ss_plan = TestPlan("SingleStream", seconds, MIN_QUERIES, latency_percentile=0.9,
                           expected_latency_ms=cal * EXPECTED_LATENCY_FACTOR)
        # the draw itself: LoadGen's first ~k samples vs hf_cost's rng (after its warm-up) in tokens
        k = max(MIN_QUERIES, round(seconds * 1e3 / cal))
        own = random.Random(pset.seed)
        own_draw = [own.randrange(pset.num_samples) for _ in range(WARMUP_QUERIES + k)][WARMUP_QUERIES:]
        lg_draw = lg_stream_order[:k]
        calibration["draw_tokens"] = {
            "queries": k, "loadgen_mean": tokens_mean(pset, lg_draw), "hf_cost_rng_mean": tokens_mean(pset, own_draw),
            "loadgen_p50": p50([pset.token_counts()[i] for i in lg_draw]),
            "hf_cost_rng_p50": p50([pset.token_counts()[i] for i in own_draw]),
        }
        d = calibration["draw_tokens"]
        print(f"calibration: bare p50 {cal:.3f} ms; sample draw over the first {k} queries: LoadGen's tokens "
              f"mean {d['loadgen_mean']:.1f} (p50 {d['loadgen_p50']}), hf_cost's rng mean {d['hf_cost_rng_mean']:.1f} "
              f"(p50 {d['hf_cost_rng_p50']}); --samples {args.samples}")
    if need_off:
        q = calibrate_offline(pset)
        calibration["offline_samples_per_s"] = q
        off_plan = TestPlan("Offline", seconds, MIN_QUERIES, expected_qps=q * OFFLINE_MARGIN / LOADGEN_OFFLINE_MARGIN)
        off_order = offline_order(pset, off_plan)
        off_chunks, off_batches = offline_batches(pset, off_order)
        print(f"calibration: bare offline {q:.1f} samples/s at batch {bs}: {len(off_order)} samples per run")
    if 5 in parts:
        fixed_views = views_of(fixed_pset)
        cal_f = calibrate_stream(fixed_views)
        q_f = calibrate_offline(fixed_pset)
        calibration.update(fixed_single_stream_p50_ms=cal_f, fixed_offline_samples_per_s=q_f)
        off_plan_fixed = TestPlan("Offline", seconds, MIN_QUERIES,
                                  expected_qps=q_f * OFFLINE_MARGIN / LOADGEN_OFFLINE_MARGIN)
        fixed_order = offline_order(fixed_pset, off_plan_fixed)
        fixed_chunks, fixed_batches = offline_batches(fixed_pset, fixed_order)
        print(f"calibration: fixed lengths ({fixed_pset.sequence_length} tokens): bare p50 {cal_f:.3f} ms, "
              f"offline {q_f:.1f} samples/s ({len(fixed_order)} samples per run)")
    if 3 in parts:
        nq = args.null_queries
        null_ss_plan = TestPlan("SingleStream", NULL_MIN_S, nq, latency_percentile=0.9, expected_latency_ms=1.0)
        null_stream_order = order_probe(null_ss_plan, pset.num_samples)  # its own draw (see above)
        null_off_plan = TestPlan("Offline", NULL_MIN_S, nq, expected_qps=1.0)  # LoadGen issues min_query_count
        null_order = offline_order(pset, null_off_plan)
        null_chunks, null_batches = offline_batches(pset, null_order)

    # ---- the slots of a round ------------------------------------------------------------------------
    def stream_slot(kind: str, c: Any, fn: Callable[..., Any], ps: Any, vs: list[dict[str, Any]],
                    count: int | None, plan: Any, sequence: list[int]) -> Callable[[int], dict]:
        def run(_r: int) -> dict:
            warmed = warm_stream(c, vs)
            if kind == "loadgen":
                out = loadgen_stream(c, ps, plan, sequence)
            else:
                rng = measure_rng(warmed, sequence)
                out = bare_stream(fn, vs, rng, count) if kind == "bare" else loop_stream(c, vs, rng, count)
                out["replay_wrapped"] = rng.wrapped if isinstance(rng, Replay) else None
            out["tokens_mean"] = tokens_mean(ps, out.pop("indices"))
            return out
        return run

    def raw_slot(trace: bool, worker: bool, threads: int | None) -> Callable[[int], dict]:
        def run(_r: int) -> dict:
            warm_stream(cand, views)
            out = raw_stream(cand, views, ss_plan, trace, worker, threads)
            out["tokens_mean"] = tokens_mean(pset, out.pop("indices"))
            return out
        return run

    def server_slot(target: float) -> Callable[[int], dict]:
        def run(r: int) -> dict:
            plan = SeededPlan.server(target, 100.0, 0.99, seconds, MIN_QUERIES)
            plan = dataclasses.replace(plan, schedule_rng_seed=r if args.server_seeds == "per-round" else None)
            run_ = run_server(null, pset, plan, Batching(), None)
            f = run_.figures
            return {"target_qps": target, "scheduled_qps": f.scheduled_qps, "completed_qps": f.completed_qps,
                    "queries": f.queries, "validity": f.validity, "why": f.why,
                    "schedule_rng_seed": plan.schedule_rng_seed or 0}
        return run

    slots: dict[str, Callable[[int], dict]] = {}
    if {1, 6} & set(parts):
        slots["ss.bare"] = stream_slot("bare", cand, model, pset, views, None, None, lg_stream_order)
    if {1, 5} & set(parts):
        slots["ss.loop"] = stream_slot("loop", cand, model, pset, views, None, None, lg_stream_order)
    if 1 in parts:
        slots["ss.loadgen"] = stream_slot("loadgen", cand, model, pset, views, None, ss_plan,
                                           lg_stream_order)
    if 2 in parts:
        slots["off.bare"] = lambda _r: bare_offline(model, off_batches, len(off_order))
    if {2, 5} & set(parts):
        slots["off.loop"] = lambda _r: loop_offline(cand, off_chunks, off_batches, len(off_order))
    if 2 in parts:
        slots["off.loadgen"] = lambda _r: loadgen_offline(cand, pset, off_plan, off_order, off_batches[0])
    if 3 in parts:
        for kind in ("bare", "loop", "loadgen"):
            slots[f"null.ss.{kind}"] = stream_slot(kind, null, _null_module, pset, views, nq, null_ss_plan,
                                                   null_stream_order)
        slots["null.off.bare"] = lambda _r: bare_offline(_null_module, null_batches, len(null_order))
        slots["null.off.loop"] = lambda _r: loop_offline(null, null_chunks, null_batches, len(null_order))
        slots["null.off.loadgen"] = lambda _r: loadgen_offline(null, pset, null_off_plan, null_order,
                                                               null_batches[0])
    if 4 in parts:
        for target in server_qps:
            slots[f"server.{target:g}"] = server_slot(target)
    if 5 in parts:
        slots["fixed.ss.loop"] = stream_slot("loop", cand, model, fixed_pset, fixed_views, None, None,
                                                  lg_stream_order)
        slots["fixed.off.loop"] = lambda _r: loop_offline(cand, fixed_chunks, fixed_batches, len(fixed_order))
    if 6 in parts:
        for name, (_what, trace, worker, threads) in SUT_VARIANTS.items():
            slots[name] = raw_slot(trace, worker, threads)

    # ---- the rounds --------------------------------------------------------------------------------------
    rounds: list[dict[str, Any]] = []
    started = time.perf_counter()
    for r, order in enumerate(round_orders(list(slots), args.rounds)):
        t_round = time.perf_counter()
        figures: dict[str, dict] = {}
        with MachineLoadSentinel() as load:
            for name in order:
                figures[name] = slots[name](r)
        reading = load.reading
        rounds.append({"round": r, "order": order, "seconds": time.perf_counter() - t_round,
                       "other_processes_cores": reading.other_processes_cores, "steal_share": reading.steal_share,
                       "busy": reading.busy, "figures": figures})
        bits = []
        if "ss.bare" in figures:
            bits.append("p50 ms " + " / ".join(f"{k.split('.')[-1]} {figures[k]['p50_ms']:.3f}"
                                             for k in ("ss.bare", "ss.loop", "ss.loadgen") if k in figures))
        if "off.loop" in figures:
            bits.append("samples/s " + " / ".join(f"{k.split('.')[-1]} {figures[k]['samples_per_s']:.1f}"
                                                for k in ("off.bare", "off.loop", "off.loadgen") if k in figures))
        bits += [f"{k}: {figures[k]['p50_ms']:.3f} ms" for k in SUT_VARIANTS if k in figures]
        load_s = ("load ?" if reading.other_processes_cores is None else
                  f"other processes {reading.other_processes_cores:.2f} cores, steal {reading.steal_share:.0%}")
        print(f"round {r + 1}/{args.rounds} ({'forward' if r % 2 == 0 else 'reversed'}, "
              f"{rounds[-1]['seconds']:.0f} s, {load_s}{', BUSY' if reading.busy else ''}): "
              + "; ".join(bits), file=sys.stderr)

    # ---- summaries ---------------------------------------------------------------------------------------
    def per(slot: str, key: str) -> list[float]:
        return [x["figures"][slot][key] for x in rounds]

    def latency_ratio(slot: str, ref: str = "ss.bare") -> RatioSummary:
        # harness_overhead.py's orientation: per round = slot p50 / reference p50
        return RatioSummary.from_rounds(per(ref, "p50_ms"), per(slot, "p50_ms"), higher_is_better=False)

    def throughput_ratio(slot: str, ref: str) -> RatioSummary:
        return RatioSummary.from_rounds(per(slot, "samples_per_s"), per(ref, "samples_per_s"), higher_is_better=True)

    def fmt(s: RatioSummary) -> str:
        if s.ci_low is None:
            return f"{s.ratio_geomean:.3f} (no CI)"
        return f"{s.ratio_geomean:.3f} ({s.ci_low:.3f}-{s.ci_high:.3f})"

    def validity(slot: str) -> str:
        vals = [x["figures"][slot].get("validity") for x in rounds]
        return "-" if vals[0] is None else f"VALID {sum(v == 'VALID' for v in vals)}/{len(vals)}"

    def matches(slot: str) -> str:
        vals = [x["figures"][slot].get("order_matches") for x in rounds]
        return "-" if vals[0] is None else f"{sum(bool(v) for v in vals)}/{len(vals)}"

    def med(slot: str, key: str) -> float:
        return statistics.median(per(slot, key))

    summary: dict[str, Any] = {}
    note_rounds = "" if args.rounds >= 2 else " (1 round: no CI, every verdict inconclusive)"
    if 1 in parts:
        rows, part = [], {}
        for slot, label in (("ss.bare", "bare torch loop"), ("ss.loop", "hf_cost loop"), ("ss.loadgen", "LoadGen")):
            s = None if slot == "ss.bare" else latency_ratio(slot)
            verdict = "-" if s is None else _at_most(s, P50_TARGET)
            rows.append([label, f"{med(slot, 'p50_ms'):.3f}", f"{med(slot, 'queries'):.0f}",
                         f"{med(slot, 'tokens_mean'):.1f}", "1 (reference)" if s is None else fmt(s), verdict,
                         validity(slot), matches(slot)])
            if s is not None:
                part[slot] = {"ratio": f"{slot} p50 / bare p50", **s.to_dict(), "verdict": verdict}
        summary["part1_single_stream"] = part
        _table(f"Part 1: single stream, batch 1: p50 latency; ratio = engine p50 / bare p50 (95 % CI), "
               f"target <= {P50_TARGET}{note_rounds}",
               ["engine", "p50 ms (median)", "queries", "tokens mean", "ratio (95% CI)", "verdict", "LoadGen",
                "order = LoadGen's"], rows)
    if 2 in parts:
        rows, part = [], {}
        for slot, label in (("off.bare", "bare batched loop"), ("off.loop", "hf_cost loop"),
                            ("off.loadgen", "LoadGen Offline")):
            s = None if slot == "off.bare" else throughput_ratio(slot, "off.bare")
            verdict = "-" if s is None else claim(s, THROUGHPUT_TARGET)
            rows.append([label, f"{med(slot, 'samples_per_s'):.1f}", f"{med(slot, 'samples'):.0f}",
                         "1 (reference)" if s is None else fmt(s), verdict, validity(slot), matches(slot)])
            if s is not None:
                part[slot] = {"ratio": f"{slot} samples/s / bare samples/s", **s.to_dict(), "verdict": verdict}
        summary["part2_offline"] = part
        _table(f"Part 2: offline, batch {bs}: samples/s; ratio = engine / bare (95 % CI), target >= "
               f"{THROUGHPUT_TARGET}{note_rounds}",
               ["engine", "samples/s (median)", "samples", "ratio (95% CI)", "verdict", "LoadGen",
                "order = LoadGen's"], rows)
    if 3 in parts:
        rows, part = [], {}
        for slot, label, unit in (
            ("null.ss.bare", "bare loop, p50 per query", "p50_ms"),
            ("null.ss.loop", "hf_cost loop, p50 per query", "p50_ms"),
            ("null.ss.loadgen", "LoadGen SingleStream, p50 per query", "p50_ms"),
            ("null.off.bare", f"bare loop, per sample (batch {bs})", "samples_per_s"),
            ("null.off.loop", f"hf_cost loop, per sample (batch {bs})", "samples_per_s"),
            ("null.off.loadgen", f"LoadGen Offline, per sample (batch {bs})", "samples_per_s"),
        ):
            us = [v * 1e3 if unit == "p50_ms" else 1e6 / v for v in per(slot, unit)]
            g, lo, hi = log_ratio_ci(us)
            n = per(slot, "queries" if unit == "p50_ms" else "samples")
            ci = "no CI" if lo is None else f"{lo:.3f}-{hi:.3f}"
            rows.append([label, f"{g:.3f}", ci, f"{min(us):.3f}-{max(us):.3f}", f"{n[0]:.0f}", validity(slot)])
            part[slot] = {"us": us, "geomean_us": g, "ci_low_us": lo, "ci_high_us": hi, "n_per_round": n,
                          "what": label}
        summary["part3_null_floors"] = part
        _table("Part 3: null-SUT floors (the engine alone), µs: geometric mean over rounds (95 % CI), range, n per "
               "round", ["engine", "µs", "95% CI", "range", "n", "LoadGen"], rows)
    if 4 in parts:
        rows, part = [], {}
        for target in server_qps:
            slot = f"server.{target:g}"
            s = RatioSummary.from_rounds(per(slot, "scheduled_qps"), [target] * len(rounds), higher_is_better=True)
            verdict = _within(s, SERVER_TOLERANCE)
            spread = 1 / math.sqrt(max(1.0, med(slot, "queries")))
            rows.append([f"{target:g}", f"{med(slot, 'scheduled_qps'):.3f}", f"{med(slot, 'completed_qps'):.3f}",
                         f"{med(slot, 'queries'):.0f}", fmt(s), f"±{spread:.1%}", verdict, validity(slot)])
            part[slot] = {"ratio": "scheduled QPS / target QPS", **s.to_dict(), "verdict": verdict,
                          "poisson_relative_sd_per_round": spread}
        summary["part4_server"] = part
        _table(f"Part 4: LoadGen Server (null SUT, 1 worker, batch 1, bound 100 ms at p99, seeds {args.server_seeds}): "
               f"scheduled QPS / target (95 % CI), target within {SERVER_TOLERANCE:.0%}{note_rounds}",
               ["target QPS", "scheduled (median)", "completed", "queries", "ratio (95% CI)",
                "Poisson sd/round", "verdict", "LoadGen"], rows)
        if args.server_seeds == "default" and len(rounds) > 1:
            print("  (seeds default: every round replays LoadGen's one schedule, so the rounds are not independent "
                  "and the CI's width says nothing; use --server-seeds per-round for a CI)")
    if 5 in parts:
        ss = RatioSummary.from_rounds(per("ss.loop", "p50_ms"), per("fixed.ss.loop", "p50_ms"),
                                      higher_is_better=False)
        off = throughput_ratio("off.loop", "fixed.off.loop")
        summary["part5_lengths"] = {
            "single_stream": {"ratio": "fixed p50 / natural p50", **ss.to_dict()},
            "offline": {"ratio": "natural samples/s / fixed samples/s", **off.to_dict()},
            "natural_tokens_mean": statistics.fmean(pset.token_counts()),
            "fixed_tokens": fixed_pset.sequence_length,
        }
        _table(f"Part 5: natural vs fixed lengths ({fixed_pset.sequence_length} tokens), hf_cost loop: speed-up of "
               "natural lengths (95 % CI)",
               ["figure", "natural", "fixed", "speed-up (95% CI)"],
               [["single stream p50 ms (fixed / natural)", f"{med('ss.loop', 'p50_ms'):.3f}",
                 f"{med('fixed.ss.loop', 'p50_ms'):.3f}", fmt(ss)],
                [f"offline samples/s, batch {bs} (natural / fixed)", f"{med('off.loop', 'samples_per_s'):.1f}",
                 f"{med('fixed.off.loop', 'samples_per_s'):.1f}", fmt(off)]])
    if 6 in parts:
        rows, part = [["bare torch loop", f"{med('ss.bare', 'p50_ms'):.3f}", f"{med('ss.bare', 'queries'):.0f}",
                       "1 (reference)", "-", "-", str(torch.get_num_threads()), "-"]], {}
        for slot, (label, *_rest) in SUT_VARIANTS.items():
            s = latency_ratio(slot)
            verdict = _at_most(s, P50_TARGET)
            threads = sorted({x["figures"][slot]["threads_in_sut"] for x in rounds})
            rows.append([label, f"{med(slot, 'p50_ms'):.3f}", f"{med(slot, 'queries'):.0f}", fmt(s), verdict,
                         validity(slot), ",".join(map(str, threads)), matches(slot)])
            part[slot] = {"ratio": f"{slot} p50 (LoadGen's) / bare p50", "what": label, **s.to_dict(),
                          "verdict": verdict}
        summary["part6_sut_designs"] = part
        _table(f"Part 6: LoadGen SingleStream SUT designs (raw mlperf_loadgen): LoadGen's p50 / bare p50 (95 % CI), "
               f"target <= {P50_TARGET}{note_rounds}",
               ["SUT", "p50 ms (median)", "queries", "ratio (95% CI)", "verdict", "LoadGen", "torch threads",
                "order = LoadGen's"], rows)

    busy = sum(bool(x["busy"]) for x in rounds)
    print(f"\n{len(rounds)} round{'s' if len(rounds) != 1 else ''} in {time.perf_counter() - started:.0f} s; "
          f"{busy} flagged busy by the load sentinel (other processes or steal: see each round's figures)")
    out = {
        "benchmark": "loadgen_engines",
        "model": prepared.suite.model.display_name,
        "device": str(device),
        "cpu": {**cpu, "flags": sorted(flags.flags), "key_flags": [f for f in KEY_FLAGS if flags.has(f)]},
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(), "mlcommons_loadgen": loadgen_version,
        "hf_cost_commit": env["git_commit"],
        "settings": {"rounds": args.rounds, "seconds": seconds, "batch_size": bs, "parts": parts,
                     "samples": args.samples, "null_queries": args.null_queries, "server_qps": server_qps,
                     "server_seeds": args.server_seeds, "min_query_count": MIN_QUERIES,
                     "warmup_queries": WARMUP_QUERIES, "scenario": args.scenario},
        "sample_set": {"lengths": pset.lengths, "num_samples": pset.num_samples,
                       "sequence_length": pset.sequence_length,
                       "tokens_mean": statistics.fmean(pset.token_counts())},
        "calibration": calibration,
        "targets": {"p50_ratio_at_most": P50_TARGET, "throughput_ratio_at_least": THROUGHPUT_TARGET,
                    "server_within": SERVER_TOLERANCE},
        "summary": summary,
        "rounds": rounds,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps(out))
    return 0


def _at_most(summary: Any, limit: float) -> str:
    """Verdict on "ratio <= limit" from its CI: meets, misses or inconclusive (as harness_overhead.py)."""
    if summary.ci_low is None:
        return "inconclusive"
    return "meets" if summary.ci_high <= limit else "misses" if summary.ci_low > limit else "inconclusive"


def _within(summary: Any, tolerance: float) -> str:
    """Verdict on "|ratio - 1| <= tolerance" from its CI."""
    if summary.ci_low is None:
        return "inconclusive"
    low, high = 1.0 - tolerance, 1.0 + tolerance
    if low <= summary.ci_low and summary.ci_high <= high:
        return "meets"
    return "misses" if summary.ci_high < low or summary.ci_low > high else "inconclusive"


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for r in [header, *rows]:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


if __name__ == "__main__":
    raise SystemExit(main())
