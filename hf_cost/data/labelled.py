"""Labelled text for fine-tuning and accuracy: texts, label ids, and the label names.

Label names are mapped onto a model's ``label2id``; a label the model does not know
is an error that names the label, the column and the model's labels. Rows with an empty
text, pair or label are dropped before the split and counted (``dropped``), or refused
(``missing: error``); they never reach the tokenizer as the text "None".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from hf_cost.config.schema import DatasetSpec
from hf_cost.data.selection import describe_dropped, narrow_rows
from hf_cost.data.sources import load_split, require_columns
from hf_cost.errors import DataError


@dataclass
class LabelledSet:
    texts: list[str]
    pairs: list[str] | None
    labels: list[int]
    label_names: list[str]
    description: str
    dropped: dict[str, int] = field(default_factory=dict)  # column -> rows with an empty cell

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
    columns = {"text_column": spec.text_column, "text_pair_column": spec.text_pair_column,
               "label_column": spec.label_column}
    require_columns(ds, columns, where)
    ds, dropped = narrow_rows(ds, spec, where, columns)
    feature = ds.features.get(spec.label_column)
    class_names = getattr(feature, "names", None)  # datasets.ClassLabel: ints with names
    if class_names is not None:
        raw = [class_names[i] for i in ds[spec.label_column]]
    else:  # an int column with empty csv cells is read as floats: 1.0 is the id 1
        raw = [_integral(v) for v in ds[spec.label_column]]
    if label_names is not None:
        names = list(label_names)
    else:
        names = list(class_names) if class_names is not None else _names_from(raw)
    if label_names is None:  # names from the data become the model's labels, shown in reports and cards
        _check_label_names(names, f"{where}.label_column", spec.label_column)
    ids = _map_labels(raw, names, f"{where}.label_column", spec.label_column)
    if label_names is None:
        _require_two_classes(ids, names, f"{where}.label_column")
    return LabelledSet(
        texts=[str(t) for t in ds[spec.text_column]],
        pairs=[str(t) for t in ds[spec.text_pair_column]] if spec.text_pair_column else None,
        labels=ids,
        label_names=names,
        description=spec.display_name + describe_dropped(dropped),
        dropped=dropped,
    )


def _check_label_names(names: Sequence[str], where: str, column: str) -> None:
    from hf_cost.config.fields import MAX_PERIOD_LABEL, shown, text_problem

    for name in names:
        problem = text_problem(name, limit=MAX_PERIOD_LABEL, what="a class label")
        if problem:
            raise DataError(f"class label {shown(name)} in column '{column}' {problem}", where=where)


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _require_two_classes(ids: Sequence[int], names: Sequence[str], where: str) -> None:
    """Labels inferred from the data (a fine-tune's train set) must hold 2 classes or more:
    with one, `transformers` would build a regression head and train it to a constant."""
    present = sorted(set(ids))
    if len(present) < 2:
        shown = ", ".join(f"'{names[i]}'" for i in present)
        raise DataError(
            f"the training data has only {len(present)} class ({shown}); "
            "a classifier needs at least 2",
            where=where,
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
