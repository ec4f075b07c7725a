"""Draw a selection: candidates on two metrics, their CIs, the frontier and the constraint limits.

The picture shows what the recommendation rests on: error bars for every CI that was measured,
the excluded side of each constraint on a plotted axis shaded, the Pareto frontier as a step
line and the recommended point ringed. It uses matplotlib's object API with the Agg canvas
(no pyplot), so it changes no global backend or state and needs no display. The PNG carries a
tEXt chunk Software = "hf_cost select" (SOFTWARE), which is how `select --plot` recognises a
file it may replace without --force.
"""

from __future__ import annotations

import io
from pathlib import Path

from hf_cost.config.selection import SelectionSpec, fmt
from hf_cost.select.pareto import Point, Selection
from hf_cost.select.targets import SOFTWARE

_MAX_AREA = 600.0  # points^2 of the largest marker when area shows a metric
_PLAIN_AREA = 60.0


def plot_selection(
    points: list[Point],
    selection: Selection,
    spec: SelectionSpec,
    path: Path,
    *,
    x: str,
    y: str,
    size: str | None = None,
    title: str = "",
) -> Path:
    """Scatter ``x`` vs ``y`` and save a PNG (dpi 120) at ``path``; returns ``path``."""
    path = Path(path)
    png = selection_png(points, selection, spec, x=x, y=y, size=size, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def selection_png(
    points: list[Point],
    selection: Selection,
    spec: SelectionSpec,
    *,
    x: str,
    y: str,
    size: str | None = None,
    title: str = "",
) -> bytes:
    """The plot as PNG bytes (drawn in memory, so a caller can write it atomically).

    Points missing ``x`` or ``y``, and points with a failed step, are left out and named in a footnote.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    failed = [p.name for p in points if p.failed]
    shown = [p for p in points if p.measure(x) and p.measure(y) and not p.failed]
    hidden = [p.name for p in points if p not in shown and not p.failed]
    several_sources = len({p.source for p in points if p.source}) > 1
    feasible = set(selection.feasible)

    fig = Figure(figsize=(8, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    sizes = _areas(shown, size)
    handles = []
    for group, colour, label in ((True, "tab:blue", "meets constraints"), (False, "tab:gray", "fails a constraint")):
        members = [(p, s) for p, s in zip(shown, sizes) if (p.name in feasible) == group]
        if not members:
            continue
        xs = [p.measure(x).value for p, _ in members]  # type: ignore[union-attr]
        ys = [p.measure(y).value for p, _ in members]  # type: ignore[union-attr]
        ax.errorbar(
            xs, ys, xerr=_errs(members, x), yerr=_errs(members, y),
            fmt="none", ecolor=colour, alpha=0.6, capsize=3, zorder=2,
        )
        ax.scatter(xs, ys, s=[s for _, s in members], c=colour, alpha=0.8, zorder=3)
        handles.append(Line2D([], [], linestyle="none", marker="o", color=colour, alpha=0.8, label=label))
    for p in shown:
        label = f"{p.name} ({p.source})" if several_sources and p.source else p.name
        ax.annotate(label, (p.measure(x).value, p.measure(y).value), textcoords="offset points",  # type: ignore[union-attr]
                    xytext=(6, 6), fontsize=8)

    front = sorted((p for p in shown if p.name in selection.frontier), key=lambda p: p.measure(x).value)  # type: ignore[union-attr]
    if front:
        ax.step([p.measure(x).value for p in front], [p.measure(y).value for p in front],  # type: ignore[union-attr]
                where="post", color="tab:green", linestyle="--", zorder=1)
        handles.append(Line2D([], [], color="tab:green", linestyle="--", label="Pareto frontier"))
    best = next((p for p in shown if p.name == selection.recommended), None)
    if best is not None:
        ring = sizes[shown.index(best)] * 2 + 150
        ax.scatter([best.measure(x).value], [best.measure(y).value], s=ring,  # type: ignore[union-attr]
                   facecolors="none", edgecolors="black", linewidths=2, zorder=4)
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=10, markerfacecolor="none",
                              markeredgecolor="black", markeredgewidth=2, label=f"recommended: {best.name}"))

    handles += [Patch(color="tab:red", alpha=0.15, label=t) for t in _shade_constraints(ax, spec, x, y)]
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if title:
        ax.set_title(title)
    top = max((p.measure(size).value for p in shown if size and p.measure(size)), default=None)  # type: ignore[union-attr]
    if top is not None:
        handles.append(Line2D([], [], linestyle="none", marker="o", color="lightgray",
                              label=f"marker area \u221d {size} (largest {fmt(top)})"))
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="best")
    notes = []
    if hidden:
        notes.append(f"not plotted (no {x} or {y}): {', '.join(hidden)}")
    if failed:
        notes.append(f"not plotted (a step failed): {', '.join(failed)}")
    if selection.mixed_hardware:
        notes.append("measured on different hardware: latency and memory are not like for like")
    if notes:
        fig.text(0.01, 0.01, "; ".join(notes), fontsize=7, color="dimgray")
    out = io.BytesIO()
    fig.savefig(out, dpi=120, format="png", metadata={"Software": SOFTWARE})
    fig.clear()
    return out.getvalue()


def _areas(points: list[Point], size: str | None) -> list[float]:
    """Marker areas proportional to ``size`` (largest = _MAX_AREA); plain where not measured."""
    if size is None:
        return [_PLAIN_AREA] * len(points)
    values = [p.measure(size).value if p.measure(size) else None for p in points]  # type: ignore[union-attr]
    top = max((abs(v) for v in values if v is not None), default=0.0)
    if top == 0:
        return [_PLAIN_AREA] * len(points)
    return [max(_MAX_AREA * abs(v) / top, 4.0) if v is not None else _PLAIN_AREA for v in values]


def _errs(members: list[tuple[Point, float]], metric: str) -> list[list[float]] | None:
    """Asymmetric error bars from the CIs (0 where a point has none); None when no point has one."""
    lows, highs, any_ci = [], [], False
    for p, _ in members:
        m = p.measure(metric)
        if m is not None and m.has_ci:
            any_ci = True
            lows.append(max(m.value - m.ci_low, 0.0))  # type: ignore[operator]
            highs.append(max(m.ci_high - m.value, 0.0))  # type: ignore[operator]
        else:
            lows.append(0.0)
            highs.append(0.0)
    return [lows, highs] if any_ci else None


def _shade_constraints(ax, spec: SelectionSpec, x: str, y: str) -> list[str]:
    """Shade the excluded side of each limit on a plotted metric, out to the axis edge; the labels."""
    on_axes = [c for c in spec.constraints if c.metric in (x, y)]
    if not on_axes:
        return []
    # Make sure every limit is in view, then freeze the limits so the shading reaches the edge.
    for c in on_axes:
        (ax.axvline if c.metric == x else ax.axhline)(c.limit, color="tab:red", linewidth=1, alpha=0.7)
    ax.margins(0.08)
    ax.autoscale_view()
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    labels = []
    for c in on_axes:
        figure = {"ci_low": "lower CI bound", "ci_high": "upper CI bound", "value": "value"}.get(
            c.bound, "upper CI bound" if c.max is not None else "lower CI bound")
        label = f"excluded: {c.metric} {'>' if c.max is not None else '<'} {fmt(c.limit)} (on the {figure})"
        if c.metric == x:
            lo, hi = (c.limit, xlim[1]) if c.max is not None else (xlim[0], c.limit)
            ax.axvspan(lo, hi, color="tab:red", alpha=0.1, zorder=0)
        else:
            lo, hi = (c.limit, ylim[1]) if c.max is not None else (ylim[0], c.limit)
            ax.axhspan(lo, hi, color="tab:red", alpha=0.1, zorder=0)
        labels.append(label)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    return labels
