"""Harness overhead: hf_cost's runners against bare torch loops, side by side in one run.

    python benchmarks/harness_overhead.py [--rounds 3] [--seconds 5] [--batch-size 8]

Single-stream: p50 latency of the harness's SingleStreamRunner vs a bare loop
(`perf_counter(); model(**sample); perf_counter()`) over the same model and the
same pre-tokenised samples. Offline: throughput of OfflineRunner vs a bare batched
loop over the same batches. Rounds alternate bare/harness so slow drift of a noisy
machine hits both. Targets: harness p50 / bare p50 <= 1.03 and harness throughput /
bare throughput >= 0.97. Prints a JSON line with every round's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(Path(__file__).resolve().parents[1] / "scenarios" / "bert.yaml"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="measured time per round and side")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    from hf_cost.hub_access import configure_hub_access

    configure_hub_access()
    import torch

    from hf_cost.config.schema import OfflineScenario, SingleStreamScenario
    from hf_cost.data.performance_set import build_performance_set
    from hf_cost.measure.memory import current_rss_bytes
    from hf_cost.models.torch_candidate import TorchCandidate
    from hf_cost.models.load import load_model
    from hf_cost.pipeline import prepare
    from hf_cost.progress import Progress
    from hf_cost.runners import RunContext
    from hf_cost.runners.offline import OfflineRunner
    from hf_cost.runners.single_stream import SingleStreamRunner

    prepared = prepare(args.scenario)
    loaded = load_model(prepared.suite.model, prepared.checkpoint)
    model = loaded.model
    pset = build_performance_set(prepared.suite.inputs, loaded.tokenizer, loaded.device)
    ctx = RunContext(
        candidate=TorchCandidate("base", loaded.model, loaded.tokenizer), perf_set=pset, flops_per_sample=None,
        peak_tflops=None, baseline_rss_bytes=current_rss_bytes(), progress=Progress(enabled=False),
    )
    samples = [{k: t[i : i + 1] for k, t in pset.tensors.items()} for i in range(pset.num_samples)]
    sync = (lambda: torch.cuda.synchronize()) if loaded.device.type == "cuda" else (lambda: None)

    def bare_single_stream(seconds: float) -> float:
        rng = random.Random(pset.seed)
        lat = []
        with torch.inference_mode():
            for _ in range(10):  # same warm-up as the harness
                model(**samples[rng.randrange(len(samples))])
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                s = samples[rng.randrange(len(samples))]
                t0 = time.perf_counter()
                model(**s)
                sync()
                lat.append((time.perf_counter() - t0) * 1e3)
        return sorted(lat)[int(len(lat) * 0.5)]

    def bare_offline(count: int, bs: int) -> float:
        gen = torch.Generator().manual_seed(pset.seed + bs)
        idx = torch.randint(pset.num_samples, (count,), generator=gen).to(loaded.device)
        batches = [pset.batch(idx[i : i + bs]) for i in range(0, count, bs)]
        with torch.inference_mode():
            model(**batches[0])
            start = time.perf_counter()
            for b in batches:
                model(**b)
                sync()
            return count / (time.perf_counter() - start)

    ss = SingleStreamScenario(kind="single_stream", name="ss", min_duration_s=args.seconds, min_query_count=1)
    off = OfflineScenario(
        kind="offline", name="off", batch_sizes=[args.batch_size], min_duration_s=args.seconds, min_sample_count=1
    )
    rounds = []
    for r in range(args.rounds):
        bare_p50 = bare_single_stream(args.seconds)
        harness = SingleStreamRunner().run(ss, ctx)[0]
        h_p50 = harness.metrics["latency_ms"]["percentiles_ms"]["p50"]
        h_off = OfflineRunner().run(off, ctx)[0]
        bare_tp = bare_offline(h_off.metrics["samples"], args.batch_size)
        rounds.append(
            {
                "round": r,
                "bare_p50_ms": bare_p50,
                "harness_p50_ms": h_p50,
                "harness_queries": harness.metrics["queries"],
                "bare_throughput": bare_tp,
                "harness_throughput": h_off.metrics["throughput_samples_per_s"],
                "offline_samples": h_off.metrics["samples"],
            }
        )
        print(f"round {r}: p50 bare {bare_p50:.2f} ms / harness {h_p50:.2f} ms; "
              f"throughput bare {bare_tp:.1f} / harness {rounds[-1]['harness_throughput']:.1f} samples/s",
              file=sys.stderr)
    p50_ratio = statistics.median(x["harness_p50_ms"] / x["bare_p50_ms"] for x in rounds)
    tp_ratio = statistics.median(x["harness_throughput"] / x["bare_throughput"] for x in rounds)
    summary = {
        "model": prepared.suite.model.display_name,
        "device": str(loaded.device),
        "torch_threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "sequence_length": pset.sequence_length,
        "offline_batch_size": args.batch_size,
        "rounds": rounds,
        "median_ratio_harness_p50_over_bare": p50_ratio,
        "median_ratio_harness_throughput_over_bare": tp_ratio,
        "p50_target_met": p50_ratio <= 1.03,
        "throughput_target_met": tp_ratio >= 0.97,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
