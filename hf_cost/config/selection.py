"""What a user asks of a checkpoint: hard limits (constraints) and what to optimise (objectives),
as written in a `select:` block of a scenario file or a `select --constraints` file.

A limit is checked against a chosen figure of the measurement. The default, ``conservative``,
compares the pessimistic end of the confidence interval (the upper bound for a ``max``, the
lower bound for a ``min``), so a candidate passes only if the limit holds across its CI, not
just at its point estimate. The checks themselves are select/constraints.py's.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from hf_cost.config.base import Strict
from hf_cost.config.fields import Float
from hf_cost.core.drift_metrics import Decay
from hf_cost.core.metrics import AccuracyMetrics, OfflineMetrics, SingleStreamMetrics, Speedup, TokenLatencies
from hf_cost.core.server_metrics import ServerMetrics
from hf_cost.errors import ConfigError

_FIGURE_WORDS = {"value": "value", "ci_low": "lower CI bound", "ci_high": "upper CI bound"}

# Every metric select/from_results.py gives a candidate (its docstring says how each is measured),
# plus one `accuracy:CELL` and one `accuracy_delta:CELL` per quality cell of a run.
# `accuracy_delta:CELL` is the cell's paired accuracy difference to the run's reference, in points
# (paired bootstrap CI); `worst_period_delta` the lowest-CI-low-end period delta over the candidate's
# drift steps, in points (`{metric: worst_period_delta, min: -2}`: that CI low end >= -2 points).
# The reference itself has both at 0 exactly (CI [0, 0]): it is what the deltas are taken against. A name outside these is a typo, refused.
# A metric read from a results model's field takes its direction from that field's schema
# (`higher_is_better`, core/bounds.better): the (model, field) it comes from.
FROM_MODELS: dict[str, tuple[type, str]] = {
    "p50_latency_ms": (SingleStreamMetrics, "target_latency_ms"),  # a single-stream latency percentile
    "p90_latency_ms": (SingleStreamMetrics, "target_latency_ms"),
    "accuracy": (AccuracyMetrics, "accuracy"),  # and every `accuracy:CELL`, `accuracy_delta:CELL`
    "worst_period_delta": (AccuracyMetrics, "accuracy"),  # an accuracy difference: better higher, as accuracy
    "speedup": (Speedup, "ratio_geomean"),
    "throughput_samples_per_s": (OfflineMetrics, "throughput_samples_per_s"),
    "accuracy_slope_pts_per_period": (Decay, "slope"),
    "server_peak_qps": (ServerMetrics, "peak_qps"),  # the highest QPS a server step kept VALID under its bound
    "ttft_p50_ms": (TokenLatencies, "ttft_early_stopping_ms"),  # a causal LM's single-stream token latencies
    "ttft_p90_ms": (TokenLatencies, "ttft_early_stopping_ms"),
    "tpot_p50_ms": (TokenLatencies, "tpot_early_stopping_ms"),
    "tpot_p90_ms": (TokenLatencies, "tpot_early_stopping_ms"),
    "output_tokens_per_s": (OfflineMetrics, "output_tokens_per_s"),  # a causal LM's best offline token rate
}
# Derived metrics: no results field declares their direction (a candidate's size, parameters and
# FLOPs come from CandidateInfo, its peak memory from MemoryReading, costs from the cost report).
# Smaller is the usual aim for each, so it is their default; the other direction is allowed
# (the largest model that meets a latency limit is a fair question).
DERIVED_LOWER_IS_BETTER = (
    "peak_rss_mib", "size_mb", "size_mib", "parameters_m", "gflop_per_sample", "cost_per_million",
    "cost_per_million_p90", "cost_per_million_at_slo", "perplexity", "cost_per_million_output_tokens",
    "cost_per_million_output_tokens_one_stream", "cost_per_million_output_tokens_at_slo",
)
METRICS = (
    "p50_latency_ms", "p90_latency_ms", "accuracy", "speedup", "throughput_samples_per_s", "server_peak_qps",
    "peak_rss_mib", "size_mb", "size_mib", "parameters_m", "gflop_per_sample", "cost_per_million",
    "cost_per_million_p90", "cost_per_million_at_slo", "accuracy_slope_pts_per_period",
    "ttft_p50_ms", "ttft_p90_ms", "tpot_p50_ms", "tpot_p90_ms", "output_tokens_per_s", "perplexity",
    "cost_per_million_output_tokens", "cost_per_million_output_tokens_one_stream", "cost_per_million_output_tokens_at_slo",
    "worst_period_delta",
)
assert set(METRICS) == set(FROM_MODELS) | set(DERIVED_LOWER_IS_BETTER)
CELL = "accuracy:"
DELTA_CELL = "accuracy_delta:"


def _cell_prefix(metric: str) -> str | None:
    """`accuracy:` or `accuracy_delta:` when `metric` names a quality cell after it, else None."""
    return next((p for p in (CELL, DELTA_CELL) if metric.startswith(p) and len(metric) > len(p)), None)


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


def higher_is_better(metric: str) -> bool | None:
    """Which way `metric` is better: its model field's `higher_is_better`, False for a derived
    metric, None for a name that is not a metric."""
    name = "accuracy" if _cell_prefix(metric) else metric
    if name in FROM_MODELS:
        model, field = FROM_MODELS[name]
        extra = model.model_fields[field].json_schema_extra
        return bool(extra["higher_is_better"])  # type: ignore[index,call-overload]
    return False if name in DERIVED_LOWER_IS_BETTER else None


def direction_of(metric: str) -> Literal["min", "max"] | None:
    """`max` for a metric better higher, `min` for one better lower, None for an unknown name."""
    higher = higher_is_better(metric)
    return None if higher is None else ("max" if higher else "min")


def unknown_metric(name: str, cells: Iterable[str] | None = None) -> str | None:
    """Why `name` is not a metric, with a did-you-mean and the names known; None when it is one.

    ``cells`` are the quality cells measured (``accuracy:CELL`` and ``accuracy_delta:CELL`` must
    name one of them); None accepts any cell, for a scenario's `select:` validated before its run.
    """
    if name in METRICS:
        return None
    prefix = _cell_prefix(name)
    if prefix is not None:
        if cells is None:
            return None
        known_cells = sorted(set(cells))
        if name[len(prefix):] in known_cells:
            return None
        hint = difflib.get_close_matches(name, [prefix + c for c in known_cells], n=1)
        return (f"no quality cell '{name[len(prefix):]}' in the results" + (f"; did you mean '{hint[0]}'?" if hint else "")
                + f" (cells: {', '.join(known_cells) or 'none'})")
    hint = difflib.get_close_matches(name, METRICS, n=1)
    return (f"unknown metric '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
            + f" (known: {', '.join(METRICS)}, {CELL}CELL, {DELTA_CELL}CELL)")


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
    """What to optimise. `direction` defaults to the metric's own (its results field's
    `higher_is_better`); the opposite of a direction a results field declares is refused, as it
    would rank the worst candidate first."""

    metric: str = Field(min_length=1)
    direction: Literal["min", "max"] | None = Field(
        None, description="min or max; default: the metric's own direction (accuracy max, latency min, ...)")

    @model_validator(mode="after")
    def _direction(self) -> Objective:
        own = direction_of(self.metric)
        if self.direction is None:
            if own is None:
                raise ValueError(unknown_metric(self.metric) or f"give the direction (min or max) for '{self.metric}'")
            self.direction = own
        elif own is not None and self.direction != own and self.metric not in DERIVED_LOWER_IS_BETTER:
            name = "accuracy" if _cell_prefix(self.metric) else self.metric
            model, field = FROM_MODELS[name]
            raise ValueError(f"direction: {self.metric} is better {'higher' if own == 'max' else 'lower'} "
                             f"({model.__name__}.{field}), so '{self.direction}' would rank the worst first; "
                             f"write {own} or leave direction out")
        return self


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


DEFAULT_SPEC = SelectionSpec(objectives=[Objective(metric="accuracy", direction="max"),
                                         Objective(metric="p90_latency_ms", direction="min")])


def _known(name: str | None) -> str | None:
    """A scenario's metric names are checked when it is validated, before anything runs; its
    quality cells are not known yet, so any `accuracy:CELL` passes here."""
    problem = unknown_metric(name) if name is not None else None
    if problem:
        raise ValueError(problem)
    return name


class BlockConstraint(Constraint):
    _metric_known = field_validator("metric")(_known)


class BlockObjective(Objective):
    _metric_known = field_validator("metric")(_known)


class SelectBlock(SelectionSpec):
    """A scenario file's `select:`: constraints, objectives, and the plot's axes."""

    constraints: list[BlockConstraint] = Field(default_factory=list)  # type: ignore[assignment]
    objectives: list[BlockObjective] = Field(min_length=1)  # type: ignore[assignment]
    plot_x: str | None = Field(None, description="Plot's x axis; default: the second objective, else p90_latency_ms.")
    plot_y: str | None = Field(None, description="Plot's y axis; default: the first (deciding) objective.")
    plot_size: str | None = Field("size_mb", description="Point area; null for equal points.")

    _axes_known = field_validator("plot_x", "plot_y", "plot_size")(_known)
