"""Selection over results: the `select` command, a run's `select:` block, their text and plot.

`select_results` is the one entry point: results.json dicts + a spec -> a JSON-able summary
(points with their CIs, frontier, feasible set, recommendation or tie, every loser's verdict,
the environments). The report, the console and the card read that summary.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from hf_cost.select.constraints import (
    Constraint,
    Objective,
    SelectionSpec,
    unknown_metric,
)

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


def select_results(files: list[tuple[str, dict[str, Any]]], spec: SelectionSpec) -> dict[str, Any]:
    from hf_cost.select.from_results import points_from_results
    from hf_cost.select.pareto import select

    points = points_from_results(files)
    chosen = select(points, SelectionSpec(constraints=spec.constraints, objectives=spec.objectives))
    used = {c.metric for c in spec.constraints} | {o.metric for o in spec.objectives}
    return {
        "spec": spec.model_dump(mode="json"),
        "files": [path for path, _ in files],
        "points": {p.name: {"source": p.source, "environment": p.environment,
                            "metrics": {k: asdict(v) for k, v in sorted(p.metrics.items()) if k in used}}
                   for p in points},
        **asdict(chosen),
    }


def plot_summary(files: list[tuple[str, dict[str, Any]]], spec: Any, path: Path) -> Path:
    """Draw the selection into `path` (a run's own plots/ folder: created when missing)."""
    png = summary_png(files, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def summary_png(files: list[tuple[str, dict[str, Any]]], spec: Any) -> bytes:
    """The selection plot as PNG bytes, axes from the spec (plot_axes)."""
    from hf_cost.select.from_results import points_from_results
    from hf_cost.select.pareto import select
    from hf_cost.select.plot import selection_png

    points = points_from_results(files)
    plain = SelectionSpec(constraints=spec.constraints, objectives=spec.objectives)
    x, y = plot_axes(spec)
    size = getattr(spec, "plot_size", "size_mb")
    return selection_png(points, select(points, plain), plain, x=x, y=y, size=size, title=f"selection: {y} vs {x}")


def plot_axes(spec: Any) -> tuple[str, str]:
    """(x, y): the block's, else y = the deciding objective and x = the next one (or p90 latency)."""
    objectives = [o.metric for o in spec.objectives]
    y = getattr(spec, "plot_y", None) or objectives[0]
    others = [m for m in objectives if m != y]
    x = getattr(spec, "plot_x", None) or (others[0] if others else "p90_latency_ms")
    return x, y


def selection_lines(summary: dict[str, Any]) -> list[str]:
    """The summary in words: recommendation, frontier, feasible, verdicts, environments."""
    rec = summary["recommended"]
    lines = [f"recommended: {rec}" if rec else "recommended: none", f"why: {summary['reason']}"]
    if summary["ties"]:
        lines.append(f"ties (CIs overlap on the deciding metric): {', '.join(summary['ties'])}")
    lines.append(f"Pareto frontier ({', '.join(o['metric'] + ' ' + o['direction'] for o in summary['spec']['objectives'])}): "
                 + (", ".join(summary["frontier"]) or "none"))
    lines.append("meet every constraint: " + (", ".join(summary["feasible"]) or "none"))
    for name, verdict in summary["verdicts"].items():
        lines.append(f"- {name}: {verdict}")
    envs = summary.get("environments") or []
    if envs:
        lines.append(("MIXED HARDWARE: " if summary["mixed_hardware"] else "measured on: ") + "; ".join(envs))
    return lines


def selection_markdown(summary: dict[str, Any] | None, plot: str | None) -> list[str]:
    if summary is None:
        return []
    lines = ["", "## Selection", ""]
    cons = summary["spec"]["constraints"]
    if cons:
        lines.append("Constraints: " + "; ".join(
            f"{c['metric']} {'<=' if c['max'] is not None else '>='} "
            f"{c['max'] if c['max'] is not None else c['min']:g} ({c['bound']})" for c in cons) + ".")
    lines += [""] + [f"- {line}" if not line.startswith("- ") else f"  {line}" for line in selection_lines(summary)]
    if plot:
        lines += ["", f"![selection]({plot})"]
    return lines
