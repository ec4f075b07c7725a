"""Scenario-file builders shared by end-to-end tests: an easy labelled CSV made from the tiny
tokenizer's vocabulary, YAML snippets for steps, and a CLI run that returns results.json."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

from hf_cost.cli import main

SEQ = 16


def vocab_words(model_dir: Path) -> list[str]:
    words = (model_dir / "vocab.txt").read_text(encoding="utf-8").split()
    return [w for w in words if not w.startswith("[")]


def word_counts_csv(path: Path, model_dir: Path, word_counts: list[int]) -> Path:
    """One row per entry: a text of that many vocabulary words (k words -> k + 2 tokens)."""
    words = vocab_words(model_dir)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for row, k in enumerate(word_counts):
            writer.writerow([" ".join(words[(row + j) % len(words)] for j in range(k)), "pos"])
    return path


def easy_csv(path: Path, model_dir: Path, n: int = 200, seed: int = 0, random_labels: bool = False) -> Path:
    """'pos' texts repeat one word, 'neg' texts another; the rest are random vocabulary words."""
    words = vocab_words(model_dir)
    w1, w2, rest = words[0], words[1], words[2:]
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(n):
            label = "pos" if i % 2 == 0 else "neg"
            filler = [rng.choice(rest) for _ in range(rng.randint(2, 6))]
            marker = [w1 if label == "pos" else w2] * 3
            tokens = marker + filler
            rng.shuffle(tokens)
            if random_labels:
                label = rng.choice(["pos", "neg"])
            writer.writerow([" ".join(tokens), label])
    return path


def dataset_yaml(path: Path, select: str) -> str:
    return f"{{path: {json.dumps(str(path))}, label_column: label, select: {select}}}"


def fine_tune_yaml(
    data: Path, *, name: str = "ft", target: float = 0.95, max_steps: int = 100,
    eval_every: int = 10, batch_size: int = 8, runs: int = 1, extra: str = "",
    learning_rate: float = 1.0e-3,
) -> str:
    return f"""
  - kind: fine_tune
    name: {name}
    train: {dataset_yaml(data, "train")}
    eval: {dataset_yaml(data, "holdout")}
    target: {{metric: accuracy, value: {target}}}
    sequence_length: {SEQ}
    batch_size: {batch_size}
    eval_batch_size: 64
    learning_rate: {learning_rate:.1e}
    max_steps: {max_steps}
    eval_every_steps: {eval_every}
    runs: {runs}{extra}
"""


def suite_yaml(model_dir: Path, scenarios: str) -> str:
    return f"""
name: fine-tune-test
model: {{path: {json.dumps(str(model_dir))}, device: cpu}}
inputs: {{kind: synthetic, sequence_length: {SEQ}, num_samples: 32}}
scenarios:{scenarios}"""


def run_cli(scenario: Path, out: Path) -> dict[str, Any]:
    assert main(["run", str(scenario), "--output", str(out), "--quiet"]) == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def by_name(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in results["scenarios"]}
