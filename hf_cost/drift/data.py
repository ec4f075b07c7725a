"""Labelled rows with the period each one falls in, and each candidate's training window.

The period column is required like the text and label columns: a row with an empty date is
dropped and counted (or refused with ``missing: error``). Dates are binned by
`drift.periods.bin_periods`, which names the column and shows the value it cannot read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from hf_cost.config.base import DatasetSpec
from hf_cost.config.lineage import Lineage, TrainedOn
from hf_cost.data.labelled import LabelledSet, labelled_from_dataset
from hf_cost.data.selection import describe_dropped, is_missing, narrow_rows
from hf_cost.data.sources import load_split, require_columns
from hf_cost.drift.lineage import describe
from hf_cost.drift.periods import PeriodColumn, bin_periods, check_named_periods
from hf_cost.errors import DataError

_ROW = "__hf_cost_data_row__"


@dataclass
class PeriodRows:
    data: LabelledSet
    periods: list[str]  # one per row
    column: PeriodColumn
    row_numbers: list[int] = field(default_factory=list)  # each row's data row in the file, from 1
    unlabelled: int = 0  # rows kept with an empty label (label id UNLABELLED)

    def rows_in(self, period: str) -> list[int]:
        return [i for i, p in enumerate(self.periods) if p == period]


@dataclass
class Window:
    """The periods a candidate was trained on, and the text it saw there (the reference corpus)."""

    periods: list[str]
    source: str  # where the window comes from, in words
    reference: LabelledSet  # the training rows (or a seeded half of the in-window rows)
    reference_periods: list[str] = field(default_factory=list)  # one per reference row
    excluded: set[tuple[str, str | None]] = field(default_factory=set)  # (text, pair) not scored
    reference_is_scored_data: bool = False  # True: the reference is half the in-window rows, never scored


UNLABELLED = -1  # the label id of a row whose label cell is empty (kept_unlabelled rows only)


def load_period_rows(spec: DatasetSpec, sc: Any, where: str, label_names: Sequence[str] | None,
                     *, order: Sequence[str] | None = None, step: str | None = None,
                     keep_unlabelled: bool = False) -> PeriodRows:
    """``spec``'s rows (narrowed as it says) labelled by the model's ``label_names``, each with
    its period from ``sc.period_column`` binned by ``sc.granularity``. ``step``: the key path of
    the drift step (where `period_column` and `timezone` are), default ``where`` minus its last key.
    ``keep_unlabelled``: a row with an empty label cell is kept with the label id UNLABELLED (a
    period whose labels have not arrived is a normal case for drift), not dropped."""
    step = step or where.rsplit(".", 1)[0]
    columns = {"text_column": spec.text_column, "text_pair_column": spec.text_pair_column,
               "label_column": spec.label_column}
    if keep_unlabelled:
        require_columns(load_split(spec, where), {"label_column": spec.label_column}, where)
        columns.pop("label_column")
    ds, dropped, column = _dated_rows(spec, sc, where, step, columns, order)
    whole = spec.model_copy(update={"where": None, "select": "all", "max_samples": None})
    labelled = [i for i, v in enumerate(ds[spec.label_column]) if not is_missing(v)]
    data = labelled_from_dataset(ds.select(labelled) if keep_unlabelled else ds, whole, where, label_names)
    if keep_unlabelled:  # every row, in file order; the labelled ones carry their label ids
        ids = [UNLABELLED] * len(ds)
        for i, label in zip(labelled, data.labels):
            ids[i] = label
        data = LabelledSet(texts=[str(t) for t in ds[spec.text_column]],
                           pairs=[str(t) for t in ds[spec.text_pair_column]] if spec.text_pair_column else None,
                           labels=ids, label_names=data.label_names, description=data.description)
    data.dropped, data.description = dropped, spec.display_name + data.description.removeprefix(whole.display_name)
    periods = [p for p in column.labels if p is not None]  # none missing: narrow_rows dropped them
    return PeriodRows(data=data, periods=periods, column=column, row_numbers=list(ds[_ROW]),
                      unlabelled=len(ds) - len(labelled) if keep_unlabelled else 0)


@dataclass
class PeriodTexts:
    """Texts without labels (a causal LM's perplexity), each with its period."""

    texts: list[str]
    periods: list[str]  # one per row
    column: PeriodColumn
    row_numbers: list[int]  # each row's data row in the file, from 1
    dropped: dict[str, int]
    description: str


def load_period_texts(spec: DatasetSpec, sc: Any, where: str, *, order: Sequence[str] | None = None) -> PeriodTexts:
    """``spec``'s texts (narrowed as it says; its label column, if any, is not read), each with its
    period, as `load_period_rows` bins them."""
    ds, dropped, column = _dated_rows(spec, sc, where, where.rsplit(".", 1)[0], {"text_column": spec.text_column},
                                      order)
    return PeriodTexts(texts=[str(t) for t in ds[spec.text_column]], periods=[p for p in column.labels if p is not None],
                       column=column, row_numbers=list(ds[_ROW]), dropped=dropped,
                       description=spec.display_name + describe_dropped(dropped))


def _dated_rows(spec: DatasetSpec, sc: Any, where: str, step: str, columns: dict[str, str | None],
                order: Sequence[str] | None) -> tuple[Any, dict[str, int], PeriodColumn]:
    """The narrowed rows (each with its data row number) and their periods; rows with an empty
    cell in ``columns`` or the period column dropped and counted."""
    ds = load_split(spec, where)
    require_columns(ds, columns, where)
    require_columns(ds, {"period_column": sc.period_column}, step)
    ds = ds.add_column(_ROW, list(range(1, len(ds) + 1)))  # data rows counting from 1, for messages
    try:
        ds, dropped = narrow_rows(ds, spec, where, {**columns, "period_column": sc.period_column})
    except DataError as exc:  # an empty date refused (missing: error): the key is the step's
        if not (exc.where or "").endswith(".period_column"):
            raise
        raise DataError(str(exc).removeprefix(f"{exc.where}: "), where=f"{step}.period_column") from None
    column = bin_periods(list(ds[sc.period_column]), sc.granularity, sc.period_column, timezone=sc.timezone,
                         order=order, where=step, row_numbers=list(ds[_ROW]))
    return ds, dropped, column


def training_window(sc: Any, suite: Any, candidate: str, rows: PeriodRows, where: str,
                    label_names: Sequence[str] | None) -> Window:
    """The candidate's training window: ``training_window`` when the scenario gives it, else
    the periods of the train rows of the training steps in its lineage."""
    sets = Lineage(suite).training_sets(candidate)
    if sc.training_window is not None:
        check_named_periods(sc.training_window, rows.column, "training_window", where)
    elif not sets:
        raise DataError(
            f"candidate '{candidate}' was not trained by a step of this file, so its training "
            "window is unknown: give training_window (the periods it was trained on)",
            where=f"{where}.training_window",
        )
    if not sets:  # a given window, no training rows known: half of its rows are the reference
        return _half_as_reference(sc, rows, candidate, where)
    train_rows = [_train_rows(t, sc, label_names, where) for t in sets]
    seen = sorted({p for r in train_rows for p in r.periods}, key=_position_in(rows.column))
    periods = list(sc.training_window) if sc.training_window is not None else seen
    reference, reference_periods = _concat([r.data for r in train_rows], [r.periods for r in train_rows])
    excluded = set(zip(reference.texts, reference.pairs or [None] * len(reference)))
    return Window(periods=periods, source=_source(sc, sets), reference=reference,
                  reference_periods=reference_periods, excluded=excluded)


def _train_rows(t: TrainedOn, sc: Any, label_names: Sequence[str] | None, where: str) -> PeriodRows:
    try:
        return load_period_rows(t.train, sc, t.where, label_names, step=where)
    except DataError as exc:
        if exc.where == where:  # a date or period label bin_periods refused: in the train data's rows
            message = str(exc).removeprefix(f"{exc.where}: ")
            raise DataError(f"the train data of step '{t.step}' ({t.where}): {message}", where=where) from None
        if not (exc.where or "").endswith(".period_column"):
            raise
        raise DataError(
            f"the train data of step '{t.step}' ({t.where}) has no column '{sc.period_column}', so the "
            "training window cannot be read from it: give training_window (the periods it was trained on)",
            where=f"{where}.training_window",
        ) from None


def _source(sc: Any, sets: list[TrainedOn]) -> str:
    if sc.training_window is not None:
        return "given in the scenario (training_window); reference text: " + describe(sets).replace(
            "the periods of the train rows", "the train rows")
    return describe(sets)


# A given window without training rows: at least one row for the reference, one to score.
MIN_WINDOW_ROWS = 2


def _half_as_reference(sc: Any, rows: PeriodRows, candidate: str, where: str) -> Window:
    window = list(sc.training_window)
    inside = [i for i, p in enumerate(rows.periods) if p in set(window)]
    if len(inside) < MIN_WINDOW_ROWS:
        raise DataError(
            f"candidate '{candidate}': the training window ({', '.join(window)}) has {len(inside)} row(s) in "
            f"column '{sc.period_column}'; with no training rows known, a seeded half of the window's rows is "
            f"the reference text and the rest is scored, so the window needs at least {MIN_WINDOW_ROWS} rows",
            where=f"{where}.training_window",
        )
    rng = random.Random(sc.dataset.seed)
    picked = sorted(rng.sample(inside, len(inside) // 2))
    d = rows.data
    reference = LabelledSet(
        texts=[d.texts[i] for i in picked], pairs=[d.pairs[i] for i in picked] if d.pairs else None,
        labels=[d.labels[i] for i in picked], label_names=d.label_names, description=d.description,
    )
    excluded = set(zip(reference.texts, reference.pairs or [None] * len(reference)))
    return Window(periods=window, reference=reference, excluded=excluded, reference_is_scored_data=True,
                  reference_periods=[rows.periods[i] for i in picked],
                  source="given in the scenario (training_window); no training rows are known, so a "
                  "seeded half of the in-window rows is the reference text and is not scored")


def _concat(sets: list[LabelledSet], periods: list[list[str]]) -> tuple[LabelledSet, list[str]]:
    """The rows of every train set, each (text, pair, label) once: a student distilled on its
    teacher's rows saw them once as far as input drift is concerned."""
    first = sets[0]
    seen: set[tuple[str, str | None, int]] = set()
    texts, pairs, labels, where = [], [], [], []
    for s, ps in zip(sets, periods):
        for i, text in enumerate(s.texts):
            pair = s.pairs[i] if s.pairs is not None else None
            key = (text, pair, s.labels[i])
            if key not in seen:
                seen.add(key)
                texts.append(text)
                pairs.append(pair)
                labels.append(s.labels[i])
                where.append(ps[i])
    description = "; ".join(dict.fromkeys(s.description for s in sets))
    merged = LabelledSet(texts=texts, pairs=pairs if first.pairs is not None else None, labels=labels,
                         label_names=first.label_names, description=description)
    return merged, where


def _position_in(column: PeriodColumn) -> Any:
    return lambda p: (column.positions.get(p, float("inf")), p)
