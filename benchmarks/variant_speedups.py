"""Are the cheaper candidates worth it? The issue's claims, checked against one run's results.

    python benchmarks/variant_speedups.py                      # runs scenarios/bert.yaml first
    python benchmarks/variant_speedups.py --results results/bert-minilm-cpu/results.json

Claims (MiniLM fine-tuned on 2023-H1, CPU, batch 1, sequence 128):
- ONNX Runtime dynamic int8 is at least 1.3x faster than torch fp32, and loses at most 1 point of
  accuracy on 2025-H1;
- the distilled 3-layer student is at least 1.8x faster; its accuracy change is reported.

Speed-ups come from the scenario's `compare` step: candidates in alternating (ABBA) rounds in one
process, per-round p50 ratios, geometric mean with a Student-t 95 % CI on the log ratios. A
claim "meets" when the CI's lower bound clears the threshold, "misses" when the upper bound is
below it, else "inconclusive". Accuracy changes are paired bootstrap 95 % CIs on the same
samples; "within 1 point" needs the CI's lower bound >= -0.01.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLAIMS = [("ft-int8", 1.3, 0.01), ("student-3l", 1.8, None)]  # candidate, speed-up, max accuracy drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, help="a results.json of scenarios/bert.yaml (default: run it now)")
    parser.add_argument("--scenario", type=Path, default=REPO / "scenarios" / "bert.yaml")
    args = parser.parse_args()
    path = args.results
    if path is None:
        out = Path(tempfile.mkdtemp(prefix="variant-speedups-"))
        print(f"running {args.scenario} into {out} (about 6 minutes on 2 cores)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "hf_cost", "run", str(args.scenario), "--output", str(out)], check=True)
        path = out / "results.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    rows = {r["candidate"]: r for r in results["comparison"]["rows"]}
    reference = results["comparison"]["reference"]
    print(f"reference: {reference} ({rows[reference]['runtime']}, {rows[reference]['dtype']}); {path}")
    for name, threshold, max_drop in CLAIMS:
        row = rows.get(name)
        if row is None or row["status"] != "ok":
            print(f"{name}: not measured ({row and row.get('error')})")
            continue
        s = row["interleaved_speedup"]
        verdict = _verdict(s["ci_low"], s["ci_high"], threshold)
        print(f"{name}: speed-up {s['ratio']:.2f}x (95% CI {s['ci_low']:.2f}–{s['ci_high']:.2f}, "
              f"{s['rounds']} interleaved rounds, {s['mode']} p50): {verdict} >= {threshold}x")
        for q in row["quality"]:
            d = q["delta_vs_reference"]
            if d is None:
                continue
            line = (f"  {q['scenario']}: accuracy {q['accuracy']:.4f} (n={q['n']}), change "
                    f"{d['value'] * 100:+.2f} points (paired 95% CI {d['ci_low'] * 100:+.2f} to {d['ci_high'] * 100:+.2f})")
            if max_drop is not None and q["scenario"].endswith(("2025h1", "2025-H1")):
                ok = d["ci_low"] >= -max_drop
                line += f": {'within' if ok else 'not shown within'} {max_drop * 100:.0f} point"
            print(line)
    return 0


def _verdict(low: float | None, high: float | None, threshold: float) -> str:
    if low is None or high is None:
        return "inconclusive (no CI)"
    return "meets" if low >= threshold else "misses" if high < threshold else "inconclusive for"


if __name__ == "__main__":
    raise SystemExit(main())
