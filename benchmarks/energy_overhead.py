"""Energy-tracking overhead: does a running EnergyTracker slow the measured forward passes?

    python benchmarks/energy_overhead.py [--rounds 10] [--round-s 1.0] [--layers 4] [--threads 1]

A tiny torch model (a stack of Linear(256, 256) + ReLU, batch 1) is timed for --round-s seconds
per side, in rounds that alternate "untracked" and "tracked" (inside an EnergyTracker, so
codecarbon's two sampling threads run) in ABBA order (hf_cost.measure.interleave.round_orders).
Each side's figure is that round's p50 latency; the per-round ratios tracked / untracked are
summarised by log_ratio_ci (geometric mean, Student-t 95 % CI on log ratios). Verdict: "no
measurable slowdown" when the CI includes 1 or lies within 0.98-1.02, else the slowdown.
codecarbon's one-time hardware probe is paid in a warm-up tracker and reported apart, as are
the tracker's enter/exit costs (outside the timed forwards). Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10, help="at least 2 for a CI; even counts balance the order")
    ap.add_argument("--round-s", type=float, default=1.0, help="timed seconds per side and round")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--measure-power-secs", type=float, default=1.0)
    args = ap.parse_args()

    import torch

    from hf_cost.measure.energy import EnergyTracker, energy_per
    from hf_cost.measure.interleave import log_ratio_ci, round_orders

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    layers: list[torch.nn.Module] = []
    for _ in range(args.layers):
        layers += [torch.nn.Linear(args.width, args.width), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers).eval()
    x = torch.randn(1, args.width)

    def timed(seconds: float) -> list[float]:
        lat = []
        with torch.inference_mode():
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                t0 = time.perf_counter()
                model(x)
                lat.append((time.perf_counter() - t0) * 1e6)
        return lat

    timed(0.5)  # warm-up: allocator, caches
    t0 = time.perf_counter()
    with EnergyTracker(measure_power_secs=args.measure_power_secs):  # codecarbon's one-time probe
        pass
    first_tracker_s = time.perf_counter() - t0

    rounds, enter_s, exit_s, readings = [], [], [], []
    for r, order in enumerate(round_orders(["untracked", "tracked"], args.rounds)):
        fig: dict[str, float] = {}
        for side in order:
            if side == "untracked":
                lat = timed(args.round_s)
            else:
                tracker = EnergyTracker(measure_power_secs=args.measure_power_secs)
                t0 = time.perf_counter()
                tracker.__enter__()
                enter_s.append(time.perf_counter() - t0)
                try:
                    lat = timed(args.round_s)
                finally:
                    t0 = time.perf_counter()
                    tracker.__exit__(None, None, None)
                    exit_s.append(time.perf_counter() - t0)
                readings.append((tracker.reading, len(lat)))
            fig[f"{side}_p50_us"], fig[f"{side}_n"] = statistics.median(lat), len(lat)
        rounds.append({"round": r, "order": order, **fig})
        print(f"round {r} ({', '.join(order)}): p50 untracked {fig['untracked_p50_us']:.1f} us, "
              f"tracked {fig['tracked_p50_us']:.1f} us", file=sys.stderr)

    ratios = [x["tracked_p50_us"] / x["untracked_p50_us"] for x in rounds]
    geo, lo, hi = log_ratio_ci(ratios, 0.95)
    if lo is None or hi is None:
        verdict = "inconclusive (needs at least 2 rounds for a CI)"
    elif lo <= 1.0 <= hi or (lo >= 0.98 and hi <= 1.02):
        verdict = "no measurable slowdown" + (
            f" (but the CI cannot exclude one of up to {100 * (hi - 1):.1f} %)" if hi > 1.02 else "")
    elif lo > 1.0:
        verdict = f"measurable slowdown of {100 * (geo - 1):.1f} % (95 % CI {100 * (lo - 1):.1f} to {100 * (hi - 1):.1f} %)"
    else:
        verdict = f"tracked rounds were {100 * (1 - geo):.1f} % faster (noise or order effect): no slowdown"
    ci = "no CI" if lo is None else f"95 % CI {lo:.4f}-{hi:.4f}"
    print(f"p50 latency tracked / untracked = {geo:.4f} ({ci}, {len(ratios)} ABBA rounds of "
          f"{args.round_s:g} s per side, {args.layers}x Linear({args.width},{args.width}) batch 1, "
          f"{torch.get_num_threads()} torch thread(s)): {verdict}")
    print(f"tracker cost outside the timed forwards: first tracker (hardware probe) {first_tracker_s:.2f} s; "
          f"enter median {statistics.median(enter_s) * 1e3:.1f} ms, exit median {statistics.median(exit_s) * 1e3:.1f} ms")
    good = [(rd, n) for rd, n in readings if rd is not None and rd.energy_kwh]
    if good:
        rd = good[-1][0]
        per_1k = statistics.median(energy_per(r_, n) for r_, n in good)
        print(f"energy: {per_1k:.3g} kWh per 1k forwards (median of {len(good)} tracked rounds; "
              f"{rd.energy_kwh / rd.duration_s:.3g} kWh/s), method {rd.method}; {rd.detail}")
    print(json.dumps({
        "ratio_tracked_over_untracked_p50": {"geomean": geo, "ci_low": lo, "ci_high": hi, "per_round": ratios},
        "verdict": verdict, "rounds": rounds, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "first_tracker_s": first_tracker_s, "enter_s": enter_s, "exit_s": exit_s,
        "readings": [rd.to_dict() for rd, _ in readings if rd is not None],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
