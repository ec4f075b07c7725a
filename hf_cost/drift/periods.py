"""Bin a dataset column into ordered periods (month, quarter, half-year, year, or given labels).

Drift is measured per period, so every row needs a period label, the periods need an order, and a
trend line needs an x position per period. Dates are binned in one time zone: a timezone-aware
value is converted to ``timezone`` first (``2024-06-30T23:30:00-02:00`` is 2024-07-01 01:30 UTC,
so half ``2024-H2``); naive datetimes and plain dates are taken as already in ``timezone``.

Positions count gaps: they are the ordinal of the period in units of the granularity, relative to
the first period present (2023-H1, 2024-H1 -> 0, 2), so a missing half-year does not make the
decay look twice as steep. Numbers are never read as dates (epoch seconds are not guessed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

import numpy as np

from hf_cost.config.fields import shown, text_problem
from hf_cost.errors import ConfigError, DataError

GRANULARITIES = ("month", "quarter", "half", "year", "label")
_DATE_GRANULARITIES = GRANULARITIES[:4]
_EXPECTED = "expected ISO 8601 such as 2024-03-31 or 2024-03-31T23:00:00+02:00"
_LISTED = 20  # periods shown in an error message before "..."


@dataclass
class PeriodColumn:
    """One period label per row (None where missing), the periods in order, their x positions."""

    labels: list[str | None]
    order: list[str]
    positions: dict[str, float]
    missing: int
    column: str = ""  # the dataset column the labels came from, for messages


def bin_periods(
    values: Sequence[Any],
    granularity: str,
    column: str,
    *,
    timezone: str = "UTC",
    order: Sequence[str] | None = None,
    where: str = "dataset",
    row_numbers: Sequence[int] | None = None,
) -> PeriodColumn:
    """Period label of every value of ``column``; see the module docstring for the rules.

    Raises ConfigError on an unknown granularity or time zone, or ``order`` with a date
    granularity; DataError on a value that is not a date, a label missing from ``order``, a
    label a report cannot show (over 64 characters, a control character, '<!--' or '-->';
    `config.fields.text_problem`), or a column with no values at all. Messages name a value's data row counting from 1: its
    position in ``values`` + 1, or ``row_numbers[i]`` when the values are a filtered subset.
    """
    rows = list(row_numbers) if row_numbers is not None else [i + 1 for i in range(len(values))]
    if granularity not in GRANULARITIES:
        raise ConfigError(
            f"unknown value {granularity!r}; use one of {', '.join(GRANULARITIES)}",
            where=f"{where}.granularity",
        )
    if granularity == "label":
        result = _bin_labels(values, column, order, where, rows)
    else:
        if order is not None:
            raise ConfigError("only used with granularity: label", where=f"{where}.order")
        result = _bin_dates(values, granularity, column, _zone(timezone, where), where, rows)
    if not result.order:
        raise DataError(f"column {column!r} has no values", where=where)
    result.column = column
    return result


def check_named_periods(named: Sequence[str], column: PeriodColumn, key: str, where: str) -> None:
    """Raise DataError if a period named under ``key`` (e.g. training_window) has no rows."""
    known = set(column.order)
    for name in named:
        if str(name).strip() not in known:
            raise DataError(
                f"{str(name).strip()!r} is not a period of column {column.column!r}; "
                f"periods: {_listing(column.order)}",
                where=f"{where}.{key}",
            )


def periods_without_rows(order: Sequence[str], column: PeriodColumn) -> list[str]:
    """The periods of a given ``order`` that no row falls in (for a warning in the report)."""
    present = set(column.order)
    return [str(p).strip() for p in order if str(p).strip() not in present]


def natural_key(text: str) -> tuple[list[Any], str]:
    """Sort key comparing digit runs as numbers: 'week 2' < 'week 10', '2023-H2' < '2024-H1'."""
    parts = re.split(r"(\d+)", text)
    return [int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)], text


def _listing(order: Sequence[str]) -> str:
    shown = ", ".join(order[:_LISTED])
    return shown if len(order) <= _LISTED else f"{shown}, ... ({len(order)} in all)"


def _zone(name: str, where: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(
            f"unknown time zone {name!r}; use an IANA name such as UTC or Europe/Berlin",
            where=f"{where}.timezone",
        ) from None


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    if isinstance(value, np.datetime64):
        return bool(np.isnat(value))
    return type(value).__name__ in ("NaTType", "NAType")


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return repr(text) if isinstance(value, str) else text


def _bad_date(value: Any, row: int, column: str, where: str) -> DataError:
    why = ""
    if isinstance(value, (bool, np.bool_)):
        why = " (a boolean)"
    elif isinstance(value, (int, float, np.integer, np.floating)):
        why = " (a number: epoch seconds are not guessed)"
    return DataError(
        f"column {column!r}: cannot read {_shown(value)} (data row {row}, counting from 1) as a "
        f"date{why}; {_EXPECTED}",
        where=where,
    )


def _year_month(value: Any, zone: tzinfo, row: int, column: str, where: str) -> tuple[int, int]:
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _bad_date(value, row, column, where) from None
    if isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(zone)
        return value.year, value.month
    if isinstance(value, date):
        return value.year, value.month
    raise _bad_date(value, row, column, where)


def _ordinal(year: int, month: int, granularity: str) -> int:
    if granularity == "month":
        return year * 12 + month - 1
    if granularity == "quarter":
        return year * 4 + (month - 1) // 3
    if granularity == "half":
        return year * 2 + (month - 1) // 6
    return year


def _label(ordinal: int, granularity: str) -> str:
    if granularity == "month":
        return f"{ordinal // 12:04d}-{ordinal % 12 + 1:02d}"
    if granularity == "quarter":
        return f"{ordinal // 4:04d}-Q{ordinal % 4 + 1}"
    if granularity == "half":
        return f"{ordinal // 2:04d}-H{ordinal % 2 + 1}"
    return f"{ordinal:04d}"


def _bin_dates(
    values: Sequence[Any], granularity: str, column: str, zone: tzinfo, where: str, rows: list[int]
) -> PeriodColumn:
    ordinals: list[int | None] = []
    for row, value in enumerate(values):
        if _is_missing(value):
            ordinals.append(None)
        else:
            ordinals.append(_ordinal(*_year_month(value, zone, rows[row], column, where), granularity))
    present = sorted({o for o in ordinals if o is not None})
    names = {o: _label(o, granularity) for o in present}
    labels = [None if o is None else names[o] for o in ordinals]
    positions = {names[o]: float(o - present[0]) for o in present}
    return PeriodColumn(labels, [names[o] for o in present], positions, labels.count(None))


def _label_text(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))  # an int column that pandas turned float because of a gap
    return str(value).strip()


def _bin_labels(
    values: Sequence[Any], column: str, order: Sequence[str] | None, where: str, rows: list[int]
) -> PeriodColumn:
    labels = [None if _is_missing(v) else _label_text(v) for v in values]
    for row, lab in enumerate(labels):
        problem = text_problem(lab) if lab is not None else None
        if problem:
            raise DataError(f"column {column!r}: label {shown(lab)} (data row {rows[row]}) {problem}; "
                            "it names a period in the report, plot and card", where=where)
    present = {lab for lab in labels if lab is not None}
    if order is None:
        ranked = sorted(present, key=natural_key)
        positions = {lab: float(i) for i, lab in enumerate(ranked)}
        return PeriodColumn(labels, ranked, positions, labels.count(None))
    given = [str(p).strip() for p in order]
    seen: set[str] = set()
    for name in given:
        if name in seen:
            raise ConfigError(f"{name!r} is listed twice", where=f"{where}.order")
        seen.add(name)
    for row, lab in enumerate(labels):
        if lab is not None and lab not in seen:
            raise DataError(
                f"column {column!r}: label {lab!r} (data row {rows[row]}) is not in order; "
                f"order: {_listing(given)}",
                where=f"{where}.order",
            )
    ranked = [name for name in given if name in present]
    # Positions are indices in the given order, so a listed period with no rows leaves a gap.
    index = {name: i for i, name in enumerate(given)}
    first = index[ranked[0]] if ranked else 0
    positions = {name: float(index[name] - first) for name in ranked}
    return PeriodColumn(labels, ranked, positions, labels.count(None))
