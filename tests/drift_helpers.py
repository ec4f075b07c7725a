"""A dated CSV whose class-marker words change over time, for drift tests on the tiny model."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from scenario_helpers import vocab_words

QUARTERS = ["2023-01-15", "2023-04-15", "2023-07-15", "2023-10-15"]


def drifting_csv(path: Path, model_dir: Path, per_period: int = 80, seed: int = 0,
                 dates: list[str] | None = None) -> Path:
    """Quarterly rows: 'pos'/'neg' texts carry their marker word; from the second quarter on, a
    growing share of them carries a new marker the early rows never use (vocabulary drift)."""
    words = vocab_words(model_dir)
    old = {"pos": words[0], "neg": words[1]}
    new = {"pos": words[2], "neg": words[3]}
    rest = words[4:]
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["date", "quarter", "text", "label"])
        for q, day in enumerate(dates or QUARTERS):
            for i in range(per_period):
                label = "pos" if i % 2 == 0 else "neg"
                shifted = rng.random() < q / 3
                marker = (new if shifted else old)[label]
                tokens = [marker] * 3 + [rng.choice(rest) for _ in range(rng.randint(2, 6))]
                rng.shuffle(tokens)
                writer.writerow([day, f"Q{q + 1}", " ".join(tokens), label])
    return path
