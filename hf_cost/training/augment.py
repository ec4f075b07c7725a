"""Rows that carry only the teacher's soft labels: augmented copies of the training texts and
unlabelled text (distill's `augment` and `unlabelled`).

Augmentation follows Tang et al. (2019), "Distilling task-specific knowledge from BERT into
simple neural networks", section 3.2: every word (whitespace-separated) is replaced by the
mask token with probability ``mask_prob``; then, with probability ``ngram_prob``, only a random
n-gram of the text is kept, n drawn uniformly from 1 to 5. (The paper's third rule, POS-guided
word replacement, needs a tagger and is not implemented.) A copy identical to its source is
kept: it still carries the teacher's soft label, at no information gain.

The extra rows are appended to the tokenised training data with the label NO_LABEL (-100), so
the KD loss gives them no cross-entropy (training/kd_loss.py).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from hf_cost.config.base import DatasetSpec
from hf_cost.training.kd_loss import NO_LABEL
from hf_cost.training.loop import TrainData

MAX_NGRAM = 5


def augment_text(text: str, rng: random.Random, mask_token: str, mask_prob: float, ngram_prob: float) -> str:
    """One augmented copy of ``text`` (Tang et al. 2019): masking, then n-gram sampling."""
    words = [mask_token if rng.random() < mask_prob else w for w in text.split()]
    if words and rng.random() < ngram_prob:
        n = min(rng.randint(1, MAX_NGRAM), len(words))
        start = rng.randint(0, len(words) - n)
        words = words[start:start + n]
    return " ".join(words)


def augment_texts(texts: list[str], copies: int, mask_token: str, mask_prob: float, ngram_prob: float,
                  seed: int) -> list[str]:
    """``copies`` augmented texts per text, in row order (row 0's copies first), seeded."""
    rng = random.Random(seed)
    return [augment_text(t, rng, mask_token, mask_prob, ngram_prob) for t in texts for _ in range(copies)]


def mask_token_of(tokenizer: Any) -> str:
    """The tokenizer's mask token, else its unknown token (Tang et al. use [MASK])."""
    token = getattr(tokenizer, "mask_token", None) or getattr(tokenizer, "unk_token", None)
    if not token:
        raise ValueError("augment: the tokenizer has neither a mask token nor an unknown token")
    return str(token)


def load_texts(spec: DatasetSpec, where: str) -> list[str]:
    """The non-empty texts of ``spec`` after its where/select/max_samples (labels are not read)."""
    from hf_cost.data.selection import narrow_rows
    from hf_cost.data.sources import load_split, require_columns

    ds = load_split(spec, where)
    columns = {"text_column": spec.text_column}
    require_columns(ds, columns, where)
    ds, _ = narrow_rows(ds, spec.model_copy(update={"stratify": False}), where, columns)
    return [str(t) for t in ds[spec.text_column]]


def with_soft_label_rows(data: TrainData, texts: list[str], sequence_length: int) -> TrainData:
    """``data`` with ``texts`` appended, tokenised like the training rows and labelled NO_LABEL."""
    import torch

    if not texts:
        return data
    enc = data.tokenizer(texts, padding="max_length", truncation=True, max_length=sequence_length,
                         return_tensors="pt")
    tensors = {k: torch.cat([v, enc[k]]) for k, v in data.tensors.items()}
    labels = torch.cat([data.labels, torch.full((len(texts),), NO_LABEL, dtype=data.labels.dtype)])
    return replace(data, tensors=tensors, labels=labels)
