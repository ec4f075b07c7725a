"""Binning a dataset column into periods: labels, order, gap-aware positions, errors."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from hf_cost.drift.periods import bin_periods, check_named_periods, periods_without_rows
from hf_cost.errors import ConfigError, DataError

BOUNDARY = ["2023-12-31", "2024-01-01", "2024-03-31", "2024-04-01", "2024-06-30", "2024-07-01"]


@pytest.mark.parametrize(
    ("granularity", "expected"),
    [
        ("month", ["2023-12", "2024-01", "2024-03", "2024-04", "2024-06", "2024-07"]),
        ("quarter", ["2023-Q4", "2024-Q1", "2024-Q1", "2024-Q2", "2024-Q2", "2024-Q3"]),
        ("half", ["2023-H2", "2024-H1", "2024-H1", "2024-H1", "2024-H1", "2024-H2"]),
        ("year", ["2023", "2024", "2024", "2024", "2024", "2024"]),
    ],
)
def test_date_granularities_at_boundaries(granularity, expected):
    col = bin_periods(BOUNDARY, granularity, "date")
    assert col.labels == expected
    assert col.order == sorted(set(expected))
    assert col.missing == 0


def test_positions_by_hand():
    # Months: 2023-12 is ordinal 2023*12+11; 2024-01 is +1, 2024-03 +3, 2024-04 +4, ...
    month = bin_periods(BOUNDARY, "month", "date").positions
    assert month == {"2023-12": 0.0, "2024-01": 1.0, "2024-03": 3.0, "2024-04": 4.0,
                     "2024-06": 6.0, "2024-07": 7.0}
    quarter = bin_periods(BOUNDARY, "quarter", "date").positions
    assert quarter == {"2023-Q4": 0.0, "2024-Q1": 1.0, "2024-Q2": 2.0, "2024-Q3": 3.0}
    year = bin_periods(["2019-05-05", "2024-01-01"], "year", "date").positions
    assert year == {"2019": 0.0, "2024": 5.0}


def test_gaps_count_in_positions():
    col = bin_periods(["2024-02-10", "2023-03-01", "2024-05-31"], "half", "date")
    assert col.order == ["2023-H1", "2024-H1"]
    assert col.positions == {"2023-H1": 0.0, "2024-H1": 2.0}


def test_order_is_chronological_not_textual():
    col = bin_periods(["2024-11-01", "2024-02-01", "2023-12-01"], "month", "date")
    assert col.order == ["2023-12", "2024-02", "2024-11"]
    assert col.labels == ["2024-11", "2024-02", "2023-12"]


def test_time_zone_conversion_before_binning():
    value = "2024-06-30T23:30:00-02:00"  # = 2024-07-01 01:30 UTC = 2024-06-30 22:30 in Sao Paulo (-03)
    assert bin_periods([value], "half", "date").labels == ["2024-H2"]
    assert bin_periods([value], "half", "date", timezone="America/Sao_Paulo").labels == ["2024-H1"]
    # Z suffix is UTC; in Tokyo (+09) 2024-12-31 20:00 UTC is already 2025-01-01.
    assert bin_periods(["2024-12-31T20:00:00Z"], "year", "d").labels == ["2024"]
    assert bin_periods(["2024-12-31T20:00:00Z"], "year", "d", timezone="Asia/Tokyo").labels == [
        "2025"
    ]
    # Naive values are taken as already in the zone: not shifted.
    naive = ["2024-12-31T20:00:00", "2024-12-31 23:30:00", datetime(2024, 12, 31, 23, 59)]
    assert bin_periods(naive, "year", "d", timezone="Asia/Tokyo").labels == ["2024"] * 3


def test_date_and_datetime_objects():
    aware = datetime(2024, 6, 30, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    values = [date(2024, 3, 31), aware, pd.Timestamp("2024-09-01"), np.datetime64("2024-10-02")]
    assert bin_periods(values, "quarter", "date").labels == [
        "2024-Q1", "2024-Q3", "2024-Q3", "2024-Q4"
    ]


def test_missing_values_counted():
    values = ["2024-01-05", None, "", "   ", float("nan"), np.nan, pd.NaT, "2024-02-01"]
    col = bin_periods(values, "month", "date")
    assert col.missing == 6
    assert col.labels == ["2024-01", None, None, None, None, None, None, "2024-02"]
    assert col.order == ["2024-01", "2024-02"]


def test_all_missing_refused():
    with pytest.raises(DataError, match="column 'when' has no values"):
        bin_periods([None, "", float("nan")], "month", "when")
    with pytest.raises(DataError, match="has no values"):
        bin_periods([None, " "], "label", "when")


def test_bad_value_message_names_column_row_value():
    values = ["2024-01-01"] * 17 + ["31/02/2024"]
    with pytest.raises(DataError) as info:
        bin_periods(values, "month", "date")
    text = str(info.value)
    assert "column 'date'" in text and "'31/02/2024'" in text and "(data row 18, counting from 1)" in text
    assert "ISO 8601" in text and "\n" not in text


def test_long_bad_value_truncated():
    with pytest.raises(DataError) as info:
        bin_periods(["x" * 200], "month", "date")
    assert "x" * 38 not in str(info.value) and "..." in str(info.value)


@pytest.mark.parametrize("value", [1711843200, 1711843200.0, True])
def test_numbers_and_bools_are_not_dates(value):
    with pytest.raises(DataError) as info:
        bin_periods(["2024-01-01", value], "month", "date")
    text = str(info.value)
    assert "(data row 2, counting from 1)" in text
    assert ("epoch seconds are not guessed" in text) != isinstance(value, bool)


def test_unknown_zone_and_granularity_and_order_with_dates():
    with pytest.raises(ConfigError, match="timezone") as info:
        bin_periods(["2024-01-01"], "month", "date", timezone="Mars/Olympus")
    assert "Mars/Olympus" in str(info.value)
    with pytest.raises(ConfigError, match="granularity"):
        bin_periods(["2024-01-01"], "week", "date")
    with pytest.raises(ConfigError) as info:
        bin_periods(["2024-01-01"], "month", "date", order=["2024-01"], where="drift")
    assert info.value.where == "drift.order"


def test_label_natural_sort():
    values = ["week 10", "week 2", "week 1", "week 2", 3]
    col = bin_periods(values, "label", "wk")
    assert col.order == ["3", "week 1", "week 2", "week 10"]  # '' sorts before 'week '
    col = bin_periods(["week 10", "week 2", "week 1"], "label", "wk")
    assert col.order == ["week 1", "week 2", "week 10"]
    assert col.positions == {"week 1": 0.0, "week 2": 1.0, "week 10": 2.0}
    col = bin_periods(["2024-H1", "2023-H2", " 2023-H1 "], "label", "p")
    assert col.order == ["2023-H1", "2023-H2", "2024-H1"]
    assert col.labels == ["2024-H1", "2023-H2", "2023-H1"]


def test_label_ints_keep_decimal_text():
    col = bin_periods([10, 9, 10.0, None], "label", "release")
    assert col.labels == ["10", "9", "10", None]
    assert col.order == ["9", "10"] and col.missing == 1


def test_label_given_order():
    col = bin_periods(["new", "old", "mid", "old"], "label", "era", order=["old", "mid", "new"])
    assert col.order == ["old", "mid", "new"]
    assert col.positions == {"old": 0.0, "mid": 1.0, "new": 2.0}
    # A listed period without rows is left out of order, leaves a gap, and is reported apart.
    given = ["ancient", "old", "mid", "new"]
    col = bin_periods(["new", "old"], "label", "era", order=given)
    assert col.order == ["old", "new"]
    assert col.positions == {"old": 0.0, "new": 2.0}
    assert periods_without_rows(given, col) == ["ancient", "mid"]


def test_label_absent_from_order_refused():
    with pytest.raises(DataError) as info:
        bin_periods(["old", "future", "later"], "label", "era", order=["old", "new"])
    text = str(info.value)
    assert "'future'" in text and "'era'" in text and "(data row 2)" in text and "later" not in text


def test_check_named_periods_lists_known_periods():
    col = bin_periods(["2023-02-01", "2023-08-01", "2024-01-01"], "half", "date")
    check_named_periods(["2023-H1", "2023-H2"], col, "training_window", "drift")
    with pytest.raises(DataError) as info:
        check_named_periods(["2023-H1", "2022-H2"], col, "training_window", "drift")
    text = str(info.value)
    assert info.value.where == "drift.training_window"
    assert "'2022-H2'" in text and "column 'date'" in text
    assert "2023-H1, 2023-H2, 2024-H1" in text
