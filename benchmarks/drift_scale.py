"""Input-drift statistics at 1k, 10k and 100k rows per side: seconds each, and the n each used.

    python benchmarks/drift_scale.py [--sizes 1000 10000 100000] [--repeats 3] [--seed 0]

Synthetic data, no model: each side is `rows` texts of 20 words drawn uniformly (seeded) from a
5,000-word vocabulary, and `rows` labels drawn uniformly from 4 classes. Timed with
time.perf_counter, `repeats` times each (median and range printed), per statistic of
hf_cost/drift/input_shift.py as the drift step calls it:
word_tokens on both sides; unseen_rate on those word lists (1,000 bootstrap resamples);
length_shift on the word counts; distribution_shift on the class counts (bincount included);
domain_classifier_auc with its default cap of 1,000 texts a side (at m = 1,000 no permutation
baseline runs) and with a cap of 999 (the costliest case: 20 label-permuted cross-validations).
The drift step also tokenises with the model's tokenizer for the word-piece unseen rate and the
length test; that cost belongs to the tokenizer and is not measured here. Prints a Markdown
table (statistic, rows per side, seconds, n used) and one JSON line with every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VOCABULARY, WORDS_PER_TEXT, CLASSES = 5000, 20, 4


def _side(rng: Any, rows: int) -> tuple[list[str], Any]:
    import numpy as np

    words = np.array([f"w{i}" for i in range(VOCABULARY)])
    texts = [" ".join(row) for row in words[rng.integers(0, VOCABULARY, (rows, WORDS_PER_TEXT))]]
    return texts, rng.integers(0, CLASSES, rows)


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    seconds, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - start)
    return seconds, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000], help="rows per side")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np

    from hf_cost.drift.input_shift import (
        distribution_shift,
        domain_classifier_auc,
        length_shift,
        unseen_rate,
        word_tokens,
    )

    rows_out: list[dict[str, Any]] = []
    for rows in args.sizes:
        rng = np.random.default_rng(args.seed)
        (ref_texts, ref_labels), (per_texts, per_labels) = _side(rng, rows), _side(rng, rows)
        ref_words = [word_tokens(t) for t in ref_texts]
        per_words = [word_tokens(t) for t in per_texts]
        cases: list[tuple[str, Callable[[], Any], Callable[[Any], str]]] = [
            ("word_tokens (both sides)",
             lambda: ([word_tokens(t) for t in ref_texts], [word_tokens(t) for t in per_texts]),
             lambda out: f"{len(out[0])} + {len(out[1])} texts"),
            ("unseen_rate", lambda: unseen_rate(ref_words, per_words),
             lambda r: f"{r['documents']} period docs, {r['tokens']} tokens, {r['reference_types']} ref types"),
            ("length_shift", lambda: length_shift([len(w) for w in ref_words], [len(w) for w in per_words]),
             lambda r: f"{r['reference_n']} / {r['period_n']}"),
            ("distribution_shift",
             lambda: distribution_shift(np.bincount(ref_labels, minlength=CLASSES),
                                        np.bincount(per_labels, minlength=CLASSES)),
             lambda r: f"{r['reference_n']} / {r['period_n']}"),
            ("domain_classifier_auc (cap 1000)", lambda: domain_classifier_auc(ref_texts, per_texts),
             lambda r: _domain_n(r)),
            ("domain_classifier_auc (cap 999)",
             lambda: domain_classifier_auc(ref_texts, per_texts, max_per_side=999), lambda r: _domain_n(r)),
        ]
        for name, fn, used in cases:
            seconds, out = _timed(fn, args.repeats)
            rows_out.append({"statistic": name, "rows_per_side": rows, "seconds": seconds, "n_used": used(out)})
            print(f"{name:34s} {rows:>7d} rows  median {statistics.median(seconds):7.2f} s", file=sys.stderr)

    print(f"\ncpus {os.cpu_count()}, repeats {args.repeats}, seed {args.seed}\n")
    print("| statistic | rows per side | seconds (median [min, max]) | n used |")
    print("|---|---:|---:|---|")
    for row in rows_out:
        s = row["seconds"]
        print(f"| {row['statistic']} | {row['rows_per_side']:,} | {statistics.median(s):.2f} "
              f"[{min(s):.2f}, {max(s):.2f}] | {row['n_used']} |")
    print(json.dumps({"benchmark": "drift_scale", "repeats": args.repeats, "seed": args.seed, "rows": rows_out}))
    return 0


def _domain_n(result: dict[str, Any]) -> str:
    perm = result["permutation"]
    return f"m = {result['n_per_side']} a side, " + (f"{perm['n']} permutations" if perm else "no permutations")


if __name__ == "__main__":
    raise SystemExit(main())
