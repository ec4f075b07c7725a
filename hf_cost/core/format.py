"""Small formatters shared by every reader of results (report, cards, the kinds' hooks)."""

from __future__ import annotations

from typing import Any

_UNIT_WORDS = {"month": "month", "quarter": "quarter", "half": "half-year", "year": "year",
               "label": "period"}


def percentile_key(p: float) -> str:
    """0.5 -> 'p50', 0.999 -> 'p99.9'."""
    return "p" + f"{p * 100:.6g}"


def gflop(flops: float) -> str:
    """FLOPs in GFLOP with 4 significant digits (tiny test models stay readable)."""
    return f"{flops / 1e9:.4g} GFLOP"


def fmt(x: float | None, unit: str = "", digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}{unit}"


def dropped(counts: dict[str, int] | None) -> str:
    """' (3 rows with empty cells dropped)' or ''."""
    total = sum((counts or {}).values())
    return f" ({total} row{'s' if total != 1 else ''} with empty cells dropped)" if total else ""


def describe_slope(slope: dict[str, Any], granularity: str, metric: str = "accuracy") -> str:
    """One line such as 'loses 2.1 points per half-year (95 % CI 1.4–2.8)'.

    Points are x100 of a 0-1 metric. A falling trend is written as a positive loss, its interval
    negated and swapped; an interval containing 0 adds '; no clear trend (CI includes 0)'.
    """
    unit = _UNIT_WORDS.get(granularity, "period")
    level = f"{100 * float(slope.get('ci_level', 0.95)):g} %"
    value, low, high = (100 * float(slope[k]) for k in ("value", "ci_low", "ci_high"))
    verb = "gains"
    if value < 0:
        verb, value, low, high = "loses", -value, -high, -low
    text = f"{verb} {value:.1f} points per {unit} ({level} CI {low:.1f}–{high:.1f})"
    if float(slope["ci_low"]) <= 0.0 <= float(slope["ci_high"]):
        text += "; no clear trend (CI includes 0)"
    return text
