"""The performance sample set: inputs tokenised and placed on the device before timing.

LoadGen calls this the "performance sample set": a fixed, seeded set of samples
that queries draw from. Everything expensive (reading, tokenising, padding,
moving to the device) happens here, before any clock starts. Rows with an empty text
(or pair) are dropped before sampling and named in ``source``, or refused (``missing: error``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hf_cost.config.schema import DatasetInputs, SyntheticInputs


@dataclass
class PerformanceSet:
    tensors: dict[str, Any]  # name -> (num_samples, sequence_length) tensor on the device
    source: str
    seed: int
    sequence_length: int

    @property
    def num_samples(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    def batch(self, indices: Any) -> dict[str, Any]:
        """Rows ``indices`` (a LongTensor on the device) of every input tensor."""
        return {name: t.index_select(0, indices) for name, t in self.tensors.items()}

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "num_samples": self.num_samples,
            "sequence_length": self.sequence_length,
            "seed": self.seed,
            "input_names": sorted(self.tensors),
        }


def build_performance_set(
    inputs: SyntheticInputs | DatasetInputs, tokenizer: Any, device: Any
) -> PerformanceSet:
    import torch

    seq = inputs.sequence_length
    if isinstance(inputs, SyntheticInputs):
        tensors = _synthetic(inputs.num_samples, seq, inputs.seed, tokenizer)
        source = "synthetic token ids"
    else:
        from hf_cost.data.selection import describe_dropped

        texts, pairs, dropped = _texts(inputs)
        enc = tokenizer(
            texts, pairs, padding="max_length", truncation=True, max_length=seq, return_tensors="pt"
        )
        tensors = dict(enc)
        source = f"dataset {inputs.dataset.id or inputs.dataset.path} ({inputs.dataset.split})"
        source += describe_dropped(dropped)
    tensors = {k: v.to(device) for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    return PerformanceSet(tensors=tensors, source=source, seed=inputs.seed, sequence_length=seq)


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
