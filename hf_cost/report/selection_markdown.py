"""A selection summary in words: the lines `select` and the console print, and report.md's section.

Read from the typed summary (core/selection.py) alone, so the report never imports select/.
"""

from __future__ import annotations

from hf_cost.core.selection import SelectionSummary


def selection_lines(summary: SelectionSummary) -> list[str]:
    """Recommendation, reason, ties, frontier, feasible set, verdicts, environments."""
    rec = summary.recommended
    lines = [f"recommended: {rec}" if rec else "recommended: none", f"why: {summary.reason}"]
    if summary.ties:
        lines.append(f"ties (CIs overlap on the deciding metric): {', '.join(summary.ties)}")
    objectives = ", ".join(f"{o.metric} {o.direction}" for o in summary.spec.objectives)
    lines.append(f"Pareto frontier ({objectives}): " + (", ".join(summary.frontier) or "none"))
    lines.append("meet every constraint: " + (", ".join(summary.feasible) or "none"))
    for name, verdict in summary.verdicts.items():
        lines.append(f"- {name}: {verdict}")
    if summary.environments:
        lines.append(("MIXED HARDWARE: " if summary.mixed_hardware else "measured on: ")
                     + "; ".join(summary.environments))
    return lines


def selection_markdown(summary: SelectionSummary | None, plot: str | None) -> list[str]:
    """report.md's selection section (nothing without a selection): constraints, the lines, the plot."""
    if summary is None:
        return []
    lines = ["", "## Selection", ""]
    cons = summary.spec.constraints
    if cons:
        lines.append("Constraints: " + "; ".join(
            f"{c.metric} {'<=' if c.max is not None else '>='} "
            f"{c.max if c.max is not None else c.min:g} ({c.bound})" for c in cons) + ".")
    lines += [""] + [f"- {line}" if not line.startswith("- ") else f"  {line}" for line in selection_lines(summary)]
    if plot:
        lines += ["", f"![selection]({plot})"]
    return lines
