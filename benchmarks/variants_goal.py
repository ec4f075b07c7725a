"""Issue 19's goal, checked against one run of scenarios/variants.yaml: which variant of the
fine-tuned MiniLM is the fastest at batch 1 and natural lengths while keeping its accuracy.

    python benchmarks/variants_goal.py                        # runs scenarios/variants.yaml first
    python benchmarks/variants_goal.py --results out/results.json

The goal: a variant at least 2.5x faster than torch float32 (the CI's low end of the interleaved
speed-up, the scenario's `compare` step: alternating rounds in one process, per-round p50 ratios,
geometric mean with a Student-t 95 % CI on the log ratios) whose paired accuracy change (the same
rows scored by both; percentile bootstrap, 1,000 resamples) has its CI low end >= -1 point on the
training window's held-out rows and >= -2 points on the latest period. The worst period's change
is printed beside them.

Every candidate gets a verdict per part: "meets" (the CI low end clears the bar), "misses" (the CI's
high end is below it) or "inconclusive". The best variant is the one meeting both accuracy bars
with the highest speed-up CI low end. The CPU's int8 / bfloat16 instruction sets are printed,
since which variant wins depends on them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SPEEDUP, WINDOW_DROP, LATEST_DROP = 2.5, 0.01, 0.02
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "amx_tile")


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    found = set(line.split(":", 1)[-1].split())
    return [f for f in FLAGS if f in found]


def _verdict(low: float | None, high: float | None, bar: float) -> str:
    if low is None or high is None:
        return "inconclusive (no CI)"
    return "meets" if low >= bar else "misses" if high < bar else "inconclusive"


def drift_cells(results: dict[str, Any]) -> tuple[list[str], str | None]:
    """The comparison cells of the first drift step: its training-window periods and its latest
    scored period (a cell is '<step>:<period>')."""
    for sc in results.get("scenarios", []):
        if sc.get("kind") != "drift" or sc.get("status") != "ok":
            continue
        periods = [p for p in sc["metrics"]["periods"] if p.get("accuracy") is not None]
        if not periods:
            continue
        window = [f"{sc['name']}:{p['period']}" for p in periods if p.get("in_window")]
        return window, f"{sc['name']}:{periods[-1]['period']}"
    return [], None


def _delta(row: dict[str, Any], cell: str) -> dict[str, Any] | None:
    return next((q["delta_vs_reference"] for q in row.get("quality", []) if q["scenario"] == cell), None)


def _pts(d: dict[str, Any] | None) -> str:
    if d is None:
        return "n/a"
    return f"{d['value'] * 100:+.2f} [{d['ci_low'] * 100:+.2f}, {d['ci_high'] * 100:+.2f}] (n={d['n']})"


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One verdict per non-reference candidate of the comparison."""
    window, latest = drift_cells(results)
    comparison = results["comparison"]
    out = []
    for row in comparison["rows"]:
        if row["candidate"] == comparison["reference"] or (row["status"] == "ok" and not row.get("quality")
                                                           and not row.get("interleaved_speedup")):
            continue  # the reference, or a step on the way (a pruned model before its recovery fine-tune)
        s = row.get("interleaved_speedup") or {}
        w = [_delta(row, c) for c in window]
        lt = _delta(row, latest) if latest else None
        worst = row.get("worst_period_delta") or []
        out.append({
            "candidate": row["candidate"], "status": row["status"], "error": row.get("error"),
            "runtime": row.get("runtime"), "dtype": row.get("dtype"),
            "speedup": s, "speed": _verdict(s.get("ci_low"), s.get("ci_high"), SPEEDUP),
            "window": w, "window_ok": _verdict(*_lows(w), -WINDOW_DROP),
            "latest": lt, "latest_ok": _verdict(*_lows([lt]), -LATEST_DROP),
            "worst": worst[0] if worst else None,
        })
    return out


def _lows(deltas: list[dict[str, Any] | None]) -> tuple[float | None, float | None]:
    """The lowest CI low end and the lowest CI high end over cells (all must clear the bar)."""
    if not deltas or any(d is None for d in deltas):
        return None, None
    return min(d["ci_low"] for d in deltas), min(d["ci_high"] for d in deltas)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, help="a results.json of scenarios/variants.yaml (default: run it)")
    parser.add_argument("--scenario", type=Path, default=REPO / "scenarios" / "variants.yaml")
    args = parser.parse_args()
    path = args.results
    if path is None:
        out = Path(tempfile.mkdtemp(prefix="variants-goal-"))
        print(f"running {args.scenario} into {out} (about 20 minutes on 2 cores)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "hf_cost", "run", str(args.scenario), "--output", str(out)], check=True)
        path = out / "results.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    cpu = results.get("environment", {}).get("cpu", {})
    print(f"{path}\nCPU: {cpu.get('model')}, {cpu.get('logical_cores')} cores; flags on this machine: "
          f"{', '.join(_cpu_flags()) or 'none of ' + ', '.join(FLAGS)}")
    print(f"reference: {results['comparison']['reference']}; goal: speed-up CI low >= {SPEEDUP}x, accuracy "
          f"change CI low >= -{WINDOW_DROP * 100:g} point in-window and >= -{LATEST_DROP * 100:g} points latest")
    verdicts = judge(results)
    for v in verdicts:
        if v["status"] != "ok":
            print(f"\n{v['candidate']}: not measured ({v['error']})")
            continue
        s = v["speedup"]
        speed = (f"{s['ratio']:.2f}x [{s['ci_low']:.2f}, {s['ci_high']:.2f}], {s['rounds']} rounds"
                 if s.get("ratio") is not None else "no interleaved speed-up")
        print(f"\n{v['candidate']} ({v['runtime']}, {v['dtype']})\n  speed-up {speed}: {v['speed']}")
        print(f"  in-window: {'; '.join(_pts(d) for d in v['window']) or 'n/a'}: {v['window_ok']}")
        print(f"  latest:    {_pts(v['latest'])}: {v['latest_ok']}")
        if v["worst"]:
            w = v["worst"]
            print(f"  worst period: {w.get('period')} {w['delta'] * 100:+.2f} "
                  f"[{w['ci_low'] * 100:+.2f}, {w['ci_high'] * 100:+.2f}]")
    kept = [v for v in verdicts if v["status"] == "ok" and v["window_ok"] == "meets" and v["latest_ok"] == "meets"
            and v["speedup"].get("ci_low") is not None]
    if not kept:
        print("\nno variant keeps both accuracy bars")
        return 0
    best = max(kept, key=lambda v: v["speedup"]["ci_low"])
    print(f"\nbest variant keeping accuracy: {best['candidate']}, speed-up CI low "
          f"{best['speedup']['ci_low']:.2f}x: goal {'met' if best['speed'] == 'meets' else 'not met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
