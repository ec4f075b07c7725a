"""Selection over results: the `select` command, a run's `select:` block, their text and plot.

`select_results` is the one entry point: typed RunResults + a spec -> a SelectionSummary
(core/selection.py: points with their CIs, frontier, feasible set, recommendation or tie, every
loser's verdict, the environments). The report, the console and the card read that summary;
its text is report/selection_markdown.py's.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_cost.config.selection import SelectionSpec
from hf_cost.core.selection import SelectionSummary

if TYPE_CHECKING:
    from hf_cost.report.schema import RunResult

def select_results(files: list[tuple[str, RunResult]], spec: SelectionSpec) -> SelectionSummary:
    """The selection over (path, RunResult) pairs under `spec`."""
    from hf_cost.select.from_results import points_from_results
    from hf_cost.select.pareto import select

    points = points_from_results(files)
    chosen = select(points, SelectionSpec(constraints=spec.constraints, objectives=spec.objectives))
    used = {c.metric for c in spec.constraints} | {o.metric for o in spec.objectives}
    return SelectionSummary.model_validate({
        "spec": spec.model_dump(mode="json"),
        "files": [path for path, _ in files],
        "points": {p.name: {"source": p.source, "environment": p.environment,
                            "metrics": {k: asdict(v) for k, v in sorted(p.metrics.items()) if k in used}}
                   for p in points},
        **asdict(chosen),
    })


def plot_summary(files: list[tuple[str, RunResult]], spec: Any, path: Path) -> Path:
    """Draw the selection into `path` (a run's own plots/ folder: created when missing)."""
    png = summary_png(files, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def summary_png(files: list[tuple[str, RunResult]], spec: Any) -> bytes:
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
