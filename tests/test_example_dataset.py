"""The synthetic support-ticket dataset in data/support_tickets: shape, determinism, drift."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

DATA_DIR = Path(__file__).parents[1] / "data" / "support_tickets"
CSV_PATH = DATA_DIR / "tickets.csv"
GENERATOR = DATA_DIR / "generate.py"
COLUMNS = ["id", "date", "period", "text", "label", "product"]


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    return pd.read_csv(CSV_PATH, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def periods(tickets: pd.DataFrame) -> list[str]:
    return sorted(tickets["period"].unique())


def period_bounds(period: str) -> tuple[date, date]:
    match = re.fullmatch(r"(\d{4})-H([12])", period)
    assert match, f"period {period!r} is not like 2023-H1"
    year, half = int(match[1]), int(match[2])
    return (date(year, 1, 1), date(year, 6, 30)) if half == 1 else (date(year, 7, 1), date(year, 12, 31))


def run_generator(*args: str) -> None:
    subprocess.run([sys.executable, str(GENERATOR), *args], check=True, capture_output=True)


def test_header_is_exactly_the_six_columns():
    with open(CSV_PATH, newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == COLUMNS


def test_size_periods_and_classes(tickets, periods):
    assert len(tickets) >= 2000
    assert len(periods) >= 4
    labels = set(tickets["label"])
    assert 2 <= len(labels) <= 3
    assert all(label == label.lower() for label in labels)
    assert tickets["id"].is_unique


def test_every_period_has_every_class_roughly_balanced(tickets, periods):
    labels = sorted(tickets["label"].unique())
    counts = tickets.groupby(["period", "label"]).size().unstack(fill_value=0)
    for period in periods:
        row = counts.loc[period, labels]
        assert (row > 0).all(), f"{period} lacks a class: {row.to_dict()}"
        assert row.min() / row.sum() > 0.8 / len(labels), f"{period} unbalanced: {row.to_dict()}"


def test_dates_fall_inside_their_period(tickets):
    for day, period in zip(tickets["date"], tickets["period"]):
        start, end = period_bounds(period)
        assert start <= date.fromisoformat(day) <= end, (day, period)


def test_texts_are_non_empty_with_5_to_60_words(tickets):
    words = tickets["text"].str.split().str.len()
    assert (tickets["text"].str.strip() != "").all()
    assert words.min() >= 5 and words.max() <= 60


def test_regenerating_with_default_seed_is_byte_identical(tmp_path):
    out = tmp_path / "tickets.csv"
    run_generator("--out", str(out))
    assert out.read_bytes() == CSV_PATH.read_bytes()


def test_another_seed_gives_another_file(tmp_path):
    out = tmp_path / "tickets.csv"
    run_generator("--out", str(out), "--seed", "7")
    assert out.read_bytes() != CSV_PATH.read_bytes()


@pytest.mark.parametrize("word, in_first, in_last", [
    ("refund", True, False),
    ("broken", True, False),
    ("chargeback", False, True),
    ("slaps", False, True),
])
def test_class_words_are_replaced_over_time(tickets, periods, word, in_first, in_last):
    def uses(period: str) -> bool:
        texts = tickets.loc[tickets["period"] == period, "text"].str.lower()
        return bool(texts.str.contains(rf"\b{word}\b").any())

    assert (uses(periods[0]), uses(periods[-1])) == (in_first, in_last)


def test_bag_of_words_model_from_first_period_degrades_on_last(tickets, periods):
    first = tickets[tickets["period"] == periods[0]]
    last = tickets[tickets["period"] == periods[-1]]
    train, held_out = train_test_split(first, test_size=0.3, stratify=first["label"], random_state=0)
    vectorizer = CountVectorizer()
    model = LogisticRegression(max_iter=1000, random_state=0)
    model.fit(vectorizer.fit_transform(train["text"]), train["label"])

    in_period = model.score(vectorizer.transform(held_out["text"]), held_out["label"])
    last_period = model.score(vectorizer.transform(last["text"]), last["label"])
    assert in_period - last_period >= 0.10, (in_period, last_period)
    assert last_period > 0.45, last_period


def test_product_is_the_product_the_ticket_names(tickets):
    """The free-text reference column: a product name the ticket's text contains (case ignored; a typo
    may have hit it), or empty when the ticket names no product."""
    rows = tickets.to_dict("records")
    named = [r for r in rows if r["product"]]
    assert 1000 < len(named) < len(rows)
    inside = sum(r["product"].casefold() in r["text"].casefold() for r in named)
    assert inside / len(named) > 0.97
    unnamed = [r for r in rows if not r["product"]]
    known = {r["product"] for r in named}
    assert not any(p.casefold() in r["text"].casefold() for r in unnamed for p in known if len(p.split()) > 1)
