"""Narrow a dataset's rows: equality filter, rows with empty cells, seeded (stratified)
holdout split, subsample.

Pure index arithmetic over columns, so it is the same for any `datasets` source.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any, Mapping, Sequence

from hf_cost.config.schema import DatasetSpec
from hf_cost.errors import DataError


def select_rows(ds: Any, spec: DatasetSpec, where: str) -> Any:
    """Apply ``spec.where``, ``spec.select`` and ``spec.max_samples`` to ``ds``."""
    return narrow_rows(ds, spec, where)[0]


def narrow_rows(
    ds: Any, spec: DatasetSpec, where: str, required: Mapping[str, str | None] | None = None
) -> tuple[Any, dict[str, int]]:
    """Like `select_rows`, and rows with an empty cell in a ``required`` column (scenario key
    -> column) are dropped after ``where`` and before the split, or refused (``missing: error``).
    Returns the narrowed dataset and the dropped rows per column, each row counted once,
    under the first of ``required`` that is empty in it."""
    rows = list(range(len(ds)))
    if spec.where:
        for column, wanted in spec.where.items():
            if column not in ds.column_names:
                raise DataError(
                    f"column '{column}' not in the dataset (columns: {', '.join(ds.column_names)})",
                    where=f"{where}.where",
                )
            allowed = {str(v) for v in (wanted if isinstance(wanted, list) else [wanted])}
            values = list(ds[column])  # datasets 5 returns a lazy Column: index a list
            names = getattr(ds.features.get(column), "names", None)
            if names is not None:  # a ClassLabel column: match label names as well as ids
                values = [names[v] if str(v) not in allowed else v for v in values]
            rows = [i for i in rows if str(values[i]) in allowed]
        if not rows:
            raise DataError(f"no rows match {spec.where}", where=f"{where}.where")
    rows, dropped = drop_missing(ds, rows, required or {}, spec.missing == "error", where)
    strata = list(ds[spec.label_column]) if spec.stratify and spec.label_column else None
    if spec.select != "all":
        train, holdout = split_holdout(rows, strata, spec.holdout_fraction, spec.seed)
        rows = train if spec.select == "train" else holdout
        if not rows:
            raise DataError(f"the {spec.select} part is empty", where=f"{where}.holdout_fraction")
    if spec.max_samples is not None and spec.max_samples < len(rows):
        rows = subsample(rows, strata, spec.max_samples, spec.seed)
    return (ds.select(rows) if len(rows) != len(ds) else ds), dropped


def is_missing(value: Any) -> bool:
    """None, NaN (pandas' reading of an empty csv cell) or a blank string."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def drop_missing(
    ds: Any, rows: list[int], required: Mapping[str, str | None], refuse: bool, where: str
) -> tuple[list[int], dict[str, int]]:
    """``rows`` without those empty in a ``required`` column, and the count per column."""
    dropped: dict[str, int] = {}
    first_key = None
    for key, column in required.items():
        if column is None:
            continue
        values = list(ds[column])
        if getattr(ds.features.get(column), "names", None) is not None:  # ClassLabel: -1 = none
            bad = [i for i in rows if values[i] is None or values[i] < 0]
        else:
            bad = [i for i in rows if is_missing(values[i])]
        if not bad:
            continue
        if refuse:
            raise DataError(
                f"column '{column}' is empty in {len(bad)} row(s) (first: row {bad[0] + 1}, "
                "counting data rows from 1); fill them in, or set missing: drop to skip them",
                where=f"{where}.{key}",
            )
        first_key = first_key or key
        dropped[column] = dropped.get(column, 0) + len(bad)
        skip = set(bad)
        rows = [i for i in rows if i not in skip]
    if dropped and not rows:
        raise DataError(
            f"all {sum(dropped.values())} rows have an empty cell ({_per_column(dropped)}); "
            "nothing is left",
            where=f"{where}.{first_key}",
        )
    return rows, dropped


def describe_dropped(dropped: Mapping[str, int]) -> str:
    """`` (3 rows with empty cells dropped: text 2, label 1)``, or '' when none were."""
    if not dropped:
        return ""
    n = sum(dropped.values())
    return f" ({n} row{'s' if n != 1 else ''} with empty cells dropped: {_per_column(dropped)})"


def _per_column(dropped: Mapping[str, int]) -> str:
    return ", ".join(f"{column} {count}" for column, count in dropped.items())


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
