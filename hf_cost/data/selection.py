"""Narrow a dataset's rows: equality filter, seeded (stratified) holdout split, subsample.

Pure index arithmetic over columns, so it is the same for any `datasets` source.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Sequence

from hf_cost.config.schema import DatasetSpec
from hf_cost.errors import DataError


def select_rows(ds: Any, spec: DatasetSpec, where: str) -> Any:
    """Apply ``spec.where``, ``spec.select`` and ``spec.max_samples`` to ``ds``."""
    rows = list(range(len(ds)))
    if spec.where:
        for column, wanted in spec.where.items():
            if column not in ds.column_names:
                raise DataError(
                    f"column '{column}' not in the dataset (columns: {', '.join(ds.column_names)})",
                    where=f"{where}.where",
                )
            allowed = {str(v) for v in (wanted if isinstance(wanted, list) else [wanted])}
            values = ds[column]
            names = getattr(ds.features.get(column), "names", None)
            if names is not None:  # a ClassLabel column: match label names as well as ids
                values = [names[v] if str(v) not in allowed else v for v in values]
            rows = [i for i in rows if str(values[i]) in allowed]
        if not rows:
            raise DataError(f"no rows match {spec.where}", where=f"{where}.where")
    strata = ds[spec.label_column] if spec.stratify and spec.label_column else None
    if spec.select != "all":
        train, holdout = split_holdout(rows, strata, spec.holdout_fraction, spec.seed)
        rows = train if spec.select == "train" else holdout
        if not rows:
            raise DataError(f"the {spec.select} part is empty", where=f"{where}.holdout_fraction")
    if spec.max_samples is not None and spec.max_samples < len(rows):
        rows = subsample(rows, strata, spec.max_samples, spec.seed)
    return ds.select(rows) if len(rows) != len(ds) else ds


def _groups(rows: Sequence[int], strata: Sequence[Any] | None) -> list[list[int]]:
    if strata is None:
        return [list(rows)]
    groups: dict[str, list[int]] = defaultdict(list)
    for i in rows:
        groups[str(strata[i])].append(i)
    return [groups[k] for k in sorted(groups)]


def split_holdout(
    rows: Sequence[int], strata: Sequence[Any] | None, fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Disjoint (train, holdout); each stratum contributes round(fraction * size) to holdout."""
    rng = random.Random(seed)
    train: list[int] = []
    holdout: list[int] = []
    for group in _groups(rows, strata):
        shuffled = group[:]
        rng.shuffle(shuffled)
        k = round(fraction * len(shuffled))
        holdout.extend(shuffled[:k])
        train.extend(shuffled[k:])
    return sorted(train), sorted(holdout)


def subsample(rows: Sequence[int], strata: Sequence[Any] | None, n: int, seed: int) -> list[int]:
    """``n`` rows, seeded; per stratum in proportion to its size (largest remainders)."""
    rng = random.Random(seed)
    groups = _groups(rows, strata)
    total = sum(len(g) for g in groups)
    quotas = [n * len(g) / total for g in groups]
    counts = [int(q) for q in quotas]
    order = sorted(range(len(groups)), key=lambda i: quotas[i] - counts[i], reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    picked: list[int] = []
    for group, count in zip(groups, counts):
        picked.extend(rng.sample(group, count))
    return sorted(picked)
