"""Checking a candidate against a constraint (the spec is config/selection.py's).

A limit is checked against a chosen figure of the measurement. The default, ``conservative``,
compares the pessimistic end of the confidence interval (the upper bound for a ``max``, the
lower bound for a ``min``), so a candidate passes only if the limit holds across its CI, not
just at its point estimate. Every check records which figure it used, so a report can say so.
"""

from __future__ import annotations

import math
from typing import Any

from hf_cost.config.selection import _FIGURE_WORDS, Constraint, fmt


def known(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def check(constraint: Constraint, measure: Any) -> dict[str, Any]:
    """One constraint on one point (`measure`: its pareto.Measure, or None): {metric, limit, op,
    compared, figure_used, figure_wanted, ok}.

    ``figure_wanted`` is what ``bound`` asked for; ``figure_used`` differs from it (it is
    "value") when that CI bound was not measured. A metric that was not measured (or is not
    finite) fails, with compared and figure_used None.
    """
    wanted = constraint.bound
    if wanted == "conservative":
        wanted = "ci_high" if constraint.max is not None else "ci_low"
    out: dict[str, Any] = {
        "metric": constraint.metric,
        "limit": constraint.limit,
        "op": constraint.op,
        "compared": None,
        "figure_used": None,
        "figure_wanted": wanted,
        "ok": False,
    }
    if measure is None or not known(measure.value):
        return out
    figure = wanted if wanted != "value" and known(getattr(measure, wanted)) else "value"
    compared = float(getattr(measure, figure))
    ok = compared <= constraint.limit if constraint.max is not None else compared >= constraint.limit
    out.update(compared=compared, figure_used=figure, ok=bool(ok))
    return out


def violation(constraint: Constraint, result: dict[str, Any]) -> str:
    """``violates p90_latency_ms <= 20 (upper CI bound 31.2)``, or why it could not be checked."""
    if result["figure_used"] is None:
        return f"{constraint.metric} not measured (needed for {constraint.describe()})"
    words = _FIGURE_WORDS[result["figure_used"]]
    note = ""
    if result["figure_wanted"] != result["figure_used"]:
        note = f", no {_FIGURE_WORDS[result['figure_wanted']]} measured"
    return f"violates {constraint.describe()} ({words} {fmt(result['compared'])}{note})"


def shortfall(constraint: Constraint, result: dict[str, Any]) -> float:
    """How far a failed check misses its limit, relative to the limit (inf when not measured)."""
    if result["ok"]:
        return 0.0
    if result["compared"] is None:
        return math.inf
    return abs(result["compared"] - constraint.limit) / max(abs(constraint.limit), 1e-12)
