"""Labelled text for fine-tuning and accuracy: texts, label ids, and the label names.

Label names are mapped onto a model's ``label2id``; a label the model does not know
is an error that names the label, the column and the model's labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from hf_cost.config.schema import DatasetSpec
from hf_cost.data.selection import select_rows
from hf_cost.data.sources import load_split, require_columns
from hf_cost.errors import DataError


@dataclass
class LabelledSet:
    texts: list[str]
    pairs: list[str] | None
    labels: list[int]
    label_names: list[str]
    description: str

    def __len__(self) -> int:
        return len(self.labels)

    def tokenize(self, tokenizer: Any, sequence_length: int) -> dict[str, Any]:
        """Padded to ``sequence_length`` (the same shapes the runners time)."""
        enc = tokenizer(
            self.texts, self.pairs, padding="max_length", truncation=True,
            max_length=sequence_length, return_tensors="pt",
        )
        return dict(enc)


def load_labelled(
    spec: DatasetSpec, where: str, label_names: Sequence[str] | None = None
) -> LabelledSet:
    """Load, narrow and label-map ``spec``. ``label_names``: the model's labels, id order."""
    if spec.label_column is None:
        raise DataError("label_column is required", where=f"{where}.label_column")
    return labelled_from_dataset(load_split(spec, where), spec, where, label_names)


def labelled_from_dataset(
    ds: Any, spec: DatasetSpec, where: str = "dataset", label_names: Sequence[str] | None = None
) -> LabelledSet:
    """Narrow and label-map a `datasets.Dataset` already in hand, as ``spec`` says
    (its columns, ``where``, ``select``, ``max_samples``; its source keys are not used)."""
    if spec.label_column is None:
        raise DataError("label_column is required", where=f"{where}.label_column")
    require_columns(
        ds,
        {"text_column": spec.text_column, "text_pair_column": spec.text_pair_column,
         "label_column": spec.label_column},
        where,
    )
    ds = select_rows(ds, spec, where)
    raw = ds[spec.label_column]
    feature = ds.features.get(spec.label_column)
    class_names = getattr(feature, "names", None)  # datasets.ClassLabel: ints with names
    if class_names is not None:
        raw = [class_names[i] for i in raw]
    if label_names is not None:
        names = list(label_names)
    else:
        names = list(class_names) if class_names is not None else _names_from(raw)
    ids = _map_labels(raw, names, f"{where}.label_column", spec.label_column)
    return LabelledSet(
        texts=[str(t) for t in ds[spec.text_column]],
        pairs=[str(t) for t in ds[spec.text_pair_column]] if spec.text_pair_column else None,
        labels=ids,
        label_names=names,
        description=spec.display_name,
    )


def _names_from(raw: Sequence[Any]) -> list[str]:
    values = set(raw)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return [str(i) for i in range(max(values) + 1)]
    return sorted(str(v) for v in values)


def _map_labels(raw: Sequence[Any], names: list[str], where: str, column: str) -> list[int]:
    index = {n: i for i, n in enumerate(names)}
    ids: list[int] = []
    for value in raw:
        if isinstance(value, int) and not isinstance(value, bool) and str(value) not in index:
            if not 0 <= value < len(names):
                raise DataError(
                    f"label id {value} in column '{column}' is out of range for the model's "
                    f"{len(names)} labels ({', '.join(names)})",
                    where=where,
                )
            ids.append(value)
            continue
        key = str(value)
        if key not in index:
            raise DataError(
                f"label '{key}' in column '{column}' is not one of the model's labels: "
                f"{', '.join(names)}",
                where=where,
            )
        ids.append(index[key])
    return ids
