"""What a user asks of a checkpoint: hard limits (constraints) and what to optimise (objectives).

A limit is checked against a chosen figure of the measurement. The default, ``conservative``,
compares the pessimistic end of the confidence interval (the upper bound for a ``max``, the
lower bound for a ``min``), so a candidate passes only if the limit holds across its CI, not
just at its point estimate. Every check records which figure it used, so a report can say so.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, model_validator

from hf_cost.config.base import Strict
from hf_cost.config.fields import Float
from hf_cost.errors import ConfigError

if TYPE_CHECKING:
    from hf_cost.select.pareto import Measure

_FIGURE_WORDS = {"value": "value", "ci_low": "lower CI bound", "ci_high": "upper CI bound"}

# Every metric select/from_results.py gives a candidate (its docstring says how each is measured),
# plus one `accuracy:CELL` per quality cell of a run. A name outside these is a typo, refused.
METRICS = (
    "p50_latency_ms", "p90_latency_ms", "accuracy", "speedup", "throughput_samples_per_s", "peak_rss_mib",
    "size_mb", "size_mib", "parameters_m", "gflop_per_sample", "cost_per_million", "cost_per_million_p90",
    "accuracy_slope_pts_per_period",
)
CELL = "accuracy:"


def unknown_metric(name: str, cells: Iterable[str] | None = None) -> str | None:
    """Why `name` is not a metric, with a did-you-mean and the names known; None when it is one.

    ``cells`` are the quality cells measured (``accuracy:CELL`` must name one of them); None
    accepts any cell, for a scenario's `select:` validated before its run.
    """
    if name in METRICS:
        return None
    if name.startswith(CELL) and len(name) > len(CELL):
        if cells is None:
            return None
        known_cells = sorted(set(cells))
        if name[len(CELL):] in known_cells:
            return None
        hint = difflib.get_close_matches(name, [CELL + c for c in known_cells], n=1)
        return (f"no quality cell '{name[len(CELL):]}' in the results" + (f"; did you mean '{hint[0]}'?" if hint else "")
                + f" (cells: {', '.join(known_cells) or 'none'})")
    hint = difflib.get_close_matches(name, METRICS, n=1)
    return (f"unknown metric '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
            + f" (known: {', '.join(METRICS)}, {CELL}CELL)")


def spec_metrics(spec: Any) -> list[tuple[str, str]]:
    """(key path, metric name) of every metric a spec names: constraints, objectives, plot axes."""
    named = [(f"constraints[{i}].metric", c.metric) for i, c in enumerate(spec.constraints)]
    named += [(f"objectives[{i}].metric", o.metric) for i, o in enumerate(spec.objectives)]
    named += [(key, getattr(spec, key)) for key in ("plot_x", "plot_y", "plot_size") if getattr(spec, key, None)]
    return named


class Constraint(Strict):
    """``metric <= max`` or ``metric >= min``, compared on the figure ``bound`` names."""

    metric: str = Field(min_length=1, description="e.g. p90_latency_ms, accuracy, peak_rss_mib.")
    max: Float | None = Field(None, description="Pass when the figure is <= max.")
    min: Float | None = Field(None, description="Pass when the figure is >= min.")
    bound: Literal["value", "ci_low", "ci_high", "conservative"] = Field(
        "conservative",
        description="Figure compared: conservative = ci_high for a max, ci_low for a min "
        "(the point value when that bound was not measured).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Constraint:
        if (self.max is None) == (self.min is None):
            given = "both" if self.max is not None else "neither"
            raise ValueError(f"give exactly one of 'max' or 'min' (got {given})")
        return self

    @property
    def op(self) -> str:
        return "<=" if self.max is not None else ">="

    @property
    def limit(self) -> float:
        return self.max if self.max is not None else self.min  # type: ignore[return-value]

    def describe(self) -> str:
        """``p90_latency_ms <= 20``."""
        return f"{self.metric} {self.op} {fmt(self.limit)}"


class Objective(Strict):
    metric: str = Field(min_length=1)
    direction: Literal["min", "max"]


class SelectionSpec(Strict):
    """Constraints every recommended candidate must meet; objectives in order of importance.

    The first objective decides; later ones only break ties on the ones before them.
    """

    constraints: list[Constraint] = Field(default_factory=list)
    objectives: list[Objective] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_objectives(self) -> SelectionSpec:
        seen: set[str] = set()
        for obj in self.objectives:
            if obj.metric in seen:
                raise ValueError(f"objectives: metric '{obj.metric}' is listed twice")
            seen.add(obj.metric)
        return self


def load_selection_spec(path: Path) -> SelectionSpec:
    """Read and validate a selection YAML file; errors name the file and the key path."""
    from hf_cost.config.errors import format_validation_error
    from hf_cost.config.loader import load_yaml
    from hf_cost.safe_files import LIMITS, check_regular

    check_regular(path, what="constraints file", limit=LIMITS["constraints"])  # no FIFO, device, huge file
    data = load_yaml(path)
    try:
        return SelectionSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, SelectionSpec), where=str(path)) from None


def fmt(x: float | None) -> str:
    """A number to 3 significant figures, without exponents in the usual range: 12345 -> 12300."""
    if x is None:
        return "n/a"
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= 9 or mag <= -7:
        return f"{x:.3g}"
    rounded = round(x, 2 - mag)
    if rounded != 0:
        mag = math.floor(math.log10(abs(rounded)))  # 9.996 rounds to 10.0: one digit fewer
    decimals = max(0, 2 - mag)
    return f"{round(x, 2 - mag):.{decimals}f}"


def known(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def check(constraint: Constraint, measure: Measure | None) -> dict[str, Any]:
    """One constraint on one point: {metric, limit, op, compared, figure_used, figure_wanted, ok}.

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
