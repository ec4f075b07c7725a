"""Harness overhead: hf_cost's runners against bare torch loops, side by side in one run.

    python benchmarks/harness_overhead.py [--rounds 3] [--seconds 5] [--batch-size 8]

Single-stream: p50 latency of the harness's SingleStreamRunner vs a bare loop
(`perf_counter(); model(**sample); perf_counter()`) over the same model and the
same pre-tokenised samples. Offline: throughput of OfflineRunner vs a bare batched
loop over the same batches. Rounds alternate in ABBA order (bare, harness / harness, bare)
so drift of a noisy machine hits both; the per-round ratios are summarised by
hf_cost/measure/interleave.py (geometric mean, Student-t 95 % CI on log ratios). Targets:
harness p50 / bare p50 <= 1.03 and harness throughput / bare throughput >= 0.97, judged by
the CI ("meets", "misses" or "inconclusive"). Prints a JSON line with every round's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(Path(__file__).resolve().parents[1] / "scenarios" / "bert.yaml"))
    ap.add_argument("--rounds", type=int, default=8, help="at least 2 for a CI; even counts balance the order")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured time per round and side")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    from hf_cost.hub_access import configure_hub_access

    configure_hub_access()
    import torch

    from hf_cost.config.schema import OfflineScenario, SingleStreamScenario
    from hf_cost.data.performance_set import build_performance_set
    from hf_cost.measure.memory import current_rss_bytes
    from hf_cost.models.context import RunContext
    from hf_cost.models.load import load_model
    from hf_cost.models.torch_candidate import TorchCandidate
    from hf_cost.pipeline import prepare
    from hf_cost.progress import Progress
    from hf_cost.steps.offline import OfflineRunner
    from hf_cost.steps.single_stream import SingleStreamRunner

    prepared = prepare(args.scenario)
    loaded = load_model(prepared.suite.model, prepared.checkpoint)
    model = loaded.model
    pset = build_performance_set(prepared.suite.inputs, loaded.tokenizer, loaded.device)
    ctx = RunContext(
        candidate=TorchCandidate("base", loaded.model, loaded.tokenizer), perf_set=pset, flops_per_sample=None,
        peak_tflops=None, baseline_rss_bytes=current_rss_bytes(), progress=Progress(enabled=False),
    )
    samples = [pset.one(i) for i in range(pset.num_samples)]  # the views single_stream times (natural lengths: each its own)
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
    from hf_cost.measure.interleave import RatioSummary, claim, describe, round_orders

    rounds = []
    for r, order in enumerate(round_orders(["bare", "harness"], args.rounds)):
        figures: dict[str, float] = {}
        for side in order:
            if side == "bare":
                figures["bare_p50_ms"] = bare_single_stream(args.seconds)
            else:
                harness = SingleStreamRunner().run(ss, ctx)[0]
                h_off = OfflineRunner().run(off, ctx)[0]
                figures.update(harness_p50_ms=harness.metrics.latency_ms.percentiles_ms["p50"],
                               harness_queries=harness.metrics.queries,
                               harness_throughput=h_off.metrics.throughput_samples_per_s,
                               offline_samples=h_off.metrics.samples)
        # the bare offline loop runs the harness's sample count, so it follows the harness in every round
        figures["bare_throughput"] = bare_offline(int(figures["offline_samples"]), args.batch_size)
        rounds.append({"round": r, "order": order, **figures})
        print(f"round {r} ({', '.join(order)}): p50 bare {figures['bare_p50_ms']:.2f} ms / harness "
              f"{figures['harness_p50_ms']:.2f} ms; throughput bare {figures['bare_throughput']:.1f} / "
              f"harness {figures['harness_throughput']:.1f} samples/s", file=sys.stderr)
    # lower is better, subject bare, reference harness: the 'speed-up' is harness p50 / bare p50
    p50 = RatioSummary.from_rounds([x["bare_p50_ms"] for x in rounds], [x["harness_p50_ms"] for x in rounds],
                                   higher_is_better=False)
    tp = RatioSummary.from_rounds([x["harness_throughput"] for x in rounds], [x["bare_throughput"] for x in rounds],
                                  higher_is_better=True)
    print(f"harness p50 / bare p50 = {describe(p50)}; target <= 1.03: {_at_most(p50, 1.03)}", file=sys.stderr)
    print(f"harness throughput / bare throughput = {describe(tp, 0.97)}", file=sys.stderr)
    summary = {
        "model": prepared.suite.model.display_name,
        "device": str(loaded.device),
        "torch_threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "sequence_length": pset.sequence_length, "lengths": pset.lengths,
        "offline_batch_size": args.batch_size,
        "rounds": rounds,
        "ratio_harness_p50_over_bare": p50.to_dict(),
        "ratio_harness_throughput_over_bare": tp.to_dict(),
        "p50_target": _at_most(p50, 1.03),
        "throughput_target": claim(tp, 0.97),
    }
    print(json.dumps(summary))
    return 0


def _at_most(summary, limit: float) -> str:  # type: ignore[no-untyped-def]
    """Verdict on "ratio <= limit" from its CI: meets, misses or inconclusive."""
    if summary.ci_low is None:
        return "inconclusive"
    return "meets" if summary.ci_high <= limit else "misses" if summary.ci_low > limit else "inconclusive"


if __name__ == "__main__":
    raise SystemExit(main())
