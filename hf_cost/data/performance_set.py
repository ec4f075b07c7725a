"""The performance sample set: inputs tokenised and placed on the device before timing.

LoadGen calls this the "performance sample set": a fixed, seeded set of samples
that queries draw from. Everything expensive (reading, tokenising, padding,
moving to the device) happens here, before any clock starts. Rows with an empty text
(or pair) are dropped before sampling and named in ``source``, or refused (``missing: error``).

Lengths (``inputs.lengths``): ``fixed`` pads every sample to ``sequence_length``; ``natural``
keeps each sample's own tokenised length (``sequence_length`` is then only the truncation cap):
a batch is cut to its longest member and a one-sample query to the sample's own length. The
tensors are stored padded (with the tokenizer's own pad ids and a zero attention mask) to the
longest sample of the set, so a cut is a slice, never a new tokenisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hf_cost.config.schema import DatasetInputs, SyntheticInputs


@dataclass
class PerformanceSet:
    tensors: dict[str, Any]  # name -> (num_samples, width) tensor on the device
    source: str
    seed: int
    sequence_length: int  # fixed: every sample's length; natural: the truncation cap
    lengths: str = "fixed"  # "natural" or "fixed" (inputs.lengths, resolved)
    sample_lengths: list[int] | None = None  # each sample's own token count; None: the width
    padding_side: str = "right"  # where the tokenizer put the padding

    @property
    def num_samples(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    @property
    def natural(self) -> bool:
        return self.lengths == "natural"

    @property
    def width(self) -> int:
        """Columns of the stored tensors (fixed: sequence_length; natural: the longest sample)."""
        return int(next(iter(self.tensors.values())).shape[-1])

    def token_counts(self) -> list[int]:
        """Each sample's own token count (its attention mask's sum)."""
        return list(self.sample_lengths) if self.sample_lengths is not None else [self.width] * self.num_samples

    def batch(self, indices: Any) -> dict[str, Any]:
        """Rows ``indices`` (a LongTensor on the device) of every input tensor; in natural mode cut
        to the longest of those rows (a host read of ``indices``: call it before a clock starts)."""
        if not self.natural:
            return {name: t.index_select(0, indices) for name, t in self.tensors.items()}
        width = self.batch_width(indices)
        return {name: self._cut(t, width).index_select(0, indices) for name, t in self.tensors.items()}

    def one(self, i: int) -> dict[str, Any]:
        """Sample ``i`` alone, a batch of one (views, no copy); in natural mode at its own length."""
        if not self.natural:
            return {name: t[i : i + 1] for name, t in self.tensors.items()}
        width = self._count(i)
        return {name: self._cut(t[i : i + 1], width) for name, t in self.tensors.items()}

    def batch_width(self, indices: Any) -> int:
        """Tokens per row of ``batch(indices)``: padding included."""
        if not self.natural:
            return self.width
        return max(self._count(i) for i in _rows(indices))

    def tokens(self, indices: Any) -> tuple[int, int]:
        """(real tokens, tokens run) of ``batch(indices)``: tokens run = rows x batch_width."""
        rows = _rows(indices)
        return sum(self._count(i) for i in rows), len(rows) * self.batch_width(rows)

    def _count(self, i: int) -> int:
        return self.sample_lengths[i] if self.sample_lengths is not None else self.width

    def _cut(self, t: Any, width: int) -> Any:
        return t[:, :width] if self.padding_side != "left" else t[:, t.shape[-1] - width :]

    def describe(self) -> dict[str, Any]:
        counts = self.token_counts()
        return {
            "source": self.source,
            "num_samples": self.num_samples,
            "sequence_length": self.sequence_length,
            "seed": self.seed,
            "input_names": sorted(self.tensors),
            "lengths": self.lengths,
            "length_distribution": length_distribution(counts),
            # what padding every sample to sequence_length costs (the whole set in one batch)
            "padded_token_share_at_sequence_length": (
                (len(counts) * self.sequence_length - sum(counts)) / (len(counts) * self.sequence_length)
            ),
        }


def length_distribution(counts: list[int]) -> dict[str, Any]:
    """min, p50, p90, max (LoadGen's nearest rank: ``sorted[int(n * p)]``), mean, and the
    histogram {length: samples} of ``counts`` (token counts of the samples)."""
    ordered = sorted(counts)
    n = len(ordered)
    histogram: dict[str, int] = {}
    for c in ordered:
        histogram[str(c)] = histogram.get(str(c), 0) + 1
    return {
        "min": ordered[0], "p50": ordered[int(n * 0.5)], "p90": ordered[int(n * 0.9)], "max": ordered[-1],
        "mean": sum(ordered) / n, "histogram": histogram,
    }


def _rows(indices: Any) -> list[int]:
    return [int(i) for i in (indices.tolist() if hasattr(indices, "tolist") else indices)]


def build_performance_set(
    inputs: SyntheticInputs | DatasetInputs, tokenizer: Any, device: Any, generation: Any = None
) -> PerformanceSet:
    """``generation`` (a causal LM's GenerationSettings): each sample is the row's prompt, left-padded
    and never truncated (data/prompts.py); prompts longer than sequence_length are dropped and counted."""
    import torch

    seq = inputs.sequence_length
    counts: list[int] | None = None
    if generation is not None:
        assert isinstance(inputs, DatasetInputs)  # the scenario schema refuses synthetic inputs for LMs
        return _prompt_set(inputs, tokenizer, device, generation)
    if isinstance(inputs, SyntheticInputs):
        tensors = _synthetic(inputs.num_samples, seq, inputs.seed, tokenizer)
        source = "synthetic token ids"
    else:
        from hf_cost.data.selection import describe_dropped

        texts, pairs, dropped = _texts(inputs)
        # each sample's own length, truncated at the cap as the padded encodings below are
        counts = [len(ids) for ids in tokenizer(texts, pairs, truncation=True, max_length=seq)["input_ids"]]
        if inputs.lengths == "natural":
            enc = tokenizer(
                texts, pairs, padding="longest", truncation=True, max_length=seq, return_tensors="pt",
                return_attention_mask=True,
            )
        else:
            enc = tokenizer(
                texts, pairs, padding="max_length", truncation=True, max_length=seq, return_tensors="pt"
            )
        tensors = dict(enc)
        source = f"dataset {inputs.dataset.id or inputs.dataset.path} ({inputs.dataset.split})"
        source += describe_dropped(dropped)
    tensors = {k: v.to(device) for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    return PerformanceSet(
        tensors=tensors, source=source, seed=inputs.seed, sequence_length=seq, lengths=inputs.lengths or "fixed",
        sample_lengths=counts, padding_side=getattr(tokenizer, "padding_side", "right"),
    )


def _prompt_set(inputs: DatasetInputs, tokenizer: Any, device: Any, generation: Any) -> PerformanceSet:
    import torch

    from hf_cost.data.prompts import encode_prompts, render_prompts
    from hf_cost.data.selection import describe_dropped
    from hf_cost.errors import UserError

    texts, _, dropped = _texts(inputs)
    ids = encode_prompts(render_prompts(texts, generation, tokenizer), generation, tokenizer)
    kept = [row for row in ids if len(row) <= inputs.sequence_length]
    if not kept:
        raise UserError(
            f"every sampled prompt is longer than inputs.sequence_length ({inputs.sequence_length} tokens; the "
            f"shortest has {min(len(r) for r in ids)}): raise it", where="inputs.sequence_length",
        )
    width = max(len(r) for r in kept)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in kept])  # left padding: prompts end together
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in kept])
    source = f"dataset {inputs.dataset.id or inputs.dataset.path} ({inputs.dataset.split}) in the prompt template"
    source += describe_dropped(dropped)
    if len(kept) < len(ids):
        source += (f"; {len(ids) - len(kept)} of {len(ids)} sampled prompts longer than sequence_length "
                   f"{inputs.sequence_length} dropped (prompts are never truncated)")
    return PerformanceSet(
        tensors={"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}, source=source,
        seed=inputs.seed, sequence_length=inputs.sequence_length, lengths="natural",
        sample_lengths=[len(r) for r in kept], padding_side="left",
    )


def _synthetic(n: int, seq: int, seed: int, tokenizer: Any) -> dict[str, Any]:
    """[CLS] random ids [SEP], with ids drawn from the non-special vocabulary."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    special = set(tokenizer.all_special_ids)
    low = max(special) + 1 if special and max(special) < len(tokenizer) // 2 else 0
    ids = torch.randint(low, len(tokenizer), (n, seq), generator=generator)
    if tokenizer.cls_token_id is not None and seq >= 2:
        ids[:, 0] = tokenizer.cls_token_id
    if tokenizer.sep_token_id is not None and seq >= 2:
        ids[:, -1] = tokenizer.sep_token_id
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if "token_type_ids" in tokenizer.model_input_names:
        out["token_type_ids"] = torch.zeros_like(ids)
    return out


def _texts(inputs: DatasetInputs) -> tuple[list[str], list[str] | None, dict[str, int]]:
    """Seeded sample of ``num_samples`` rows (with replacement only if the split is smaller),
    and the rows dropped for an empty text or pair, per column."""
    import random

    from hf_cost.data.selection import narrow_rows
    from hf_cost.data.sources import load_split, require_columns

    spec = inputs.dataset
    ds = load_split(spec)
    columns = {"text_column": spec.text_column, "text_pair_column": spec.text_pair_column}
    require_columns(ds, columns, where="inputs.dataset")
    ds, dropped = narrow_rows(ds, spec, "inputs.dataset", columns)
    rng = random.Random(inputs.seed)
    rows = list(range(len(ds)))
    if len(rows) >= inputs.num_samples:
        picked = rng.sample(rows, inputs.num_samples)
    else:
        picked = [rng.choice(rows) for _ in range(inputs.num_samples)]
    sub = ds.select(picked)
    texts = [str(t) for t in sub[spec.text_column]]
    pairs = [str(t) for t in sub[spec.text_pair_column]] if spec.text_pair_column else None
    return texts, pairs, dropped
