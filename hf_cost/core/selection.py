"""The typed summary of a checkpoint selection: what `select`, a run's `select:` block, report.md,
the console and the model card read (hf_cost/select/ computes it; select/run_selection.py).

Kept in core so that RunResult (report/schema.py) can hold it without the report layer
importing select. Every name in it is a point's name: a candidate, or `candidate@run` when
several results files were compared.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hf_cost.core.bounds import Out


class ConstraintSpec(Out):
    """One constraint as the spec gave it: `metric <= max` or `metric >= min`, on the figure `bound` names."""

    metric: str
    max: float | None = None
    min: float | None = None
    bound: Literal["value", "ci_low", "ci_high", "conservative"] = "conservative"


class ObjectiveSpec(Out):
    metric: str
    direction: Literal["min", "max"] = Field(description="as given, or the metric's own direction when omitted")


class SpecRecord(Out):
    """The selection spec the summary answers (a scenario's `select:` adds the plot's axes)."""

    constraints: list[ConstraintSpec] = Field(default_factory=list)
    objectives: list[ObjectiveSpec]
    plot_x: str | None = None
    plot_y: str | None = None
    plot_size: str | None = None


class MeasureFigure(Out):
    """A point's figure on one metric, with its CI where one was measured."""

    value: float
    ci_low: float | None = None
    ci_high: float | None = None


class SelectionPoint(Out):
    source: str = Field(description="the run it came from (the scenario file's name)")
    environment: str = Field(description="the hardware it was measured on (Environment.describe_hardware)")
    metrics: dict[str, MeasureFigure] = Field(description="the metrics the spec uses")


class ConstraintCheck(Out):
    """One constraint checked on one point: which figure was compared, and whether it passed."""

    metric: str
    limit: float
    op: Literal["<=", ">="]
    compared: float | None = Field(description="None when the metric was not measured")
    figure_used: Literal["value", "ci_low", "ci_high"] | None
    figure_wanted: Literal["value", "ci_low", "ci_high"]
    ok: bool


class SelectionSummary(Out):
    """A selection's answer: recommendation or tie, frontier, feasible set, every other point's verdict."""

    spec: SpecRecord
    files: list[str] = Field(description="the results files the points come from")
    points: dict[str, SelectionPoint]
    frontier: list[str] = Field(description="Pareto frontier on the objectives' point values")
    feasible: list[str] = Field(description="points meeting every constraint")
    recommended: str | None
    ties: list[str] = Field(description="tied with the recommended on the deciding metric; with no winner: all tied")
    reason: str
    verdicts: dict[str, str] = Field(description="why each other point was not recommended")
    checks: dict[str, list[ConstraintCheck]]
    mixed_hardware: bool
    environments: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list, description="points left out of the ranking: a step failed")
