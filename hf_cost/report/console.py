"""The summary table printed at the end of `run`."""

from __future__ import annotations

from hf_cost.core.format import gflop
from hf_cost.report.schema import RunResult
from hf_cost.report.summary import COLUMNS, busy_warnings, summary_row


def print_summary(result: RunResult) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"hf_cost: {result.suite.get('name')} — {result.model.id or result.model.path}"))
    for col in COLUMNS:
        table.add_column(col, overflow="fold")
    for r in result.scenarios:
        row = summary_row(r)
        style = "red" if r.validity and r.validity.result == "INVALID" else None
        table.add_row(*(escape(row[c]) for c in COLUMNS), style=style)
    console = Console(width=max(120, Console().width))
    console.print(table)
    for warning in busy_warnings(result.scenarios):  # a result measured on a busy machine says so
        console.print(escape(warning), style="yellow")
    for name, c in result.candidates.items():
        if c.model.get("weights_note"):  # a GGUF checkpoint: never read as the original release
            console.print(escape(f"{name}: {c.model['weights_note']}"), style="yellow")
        if c.flops is not None:
            f = c.flops
            analytic = "n/a" if f.analytic_per_sample is None else gflop(f.analytic_per_sample)
            console.print(
                escape(f"{name}: FLOPs/sample measured {gflop(f.measured_per_sample)}, analytic {analytic}")
            )
    console.print(f"MFU peak: {result.peak_source}")
    if result.comparison is not None:
        from hf_cost.report.comparison_rows import COMPARISON_COLUMNS, comparison_rows

        keep = ("candidate", "what", "on disk", "p50 (n)", "interleaved speed-up", "accuracy", "Δ accuracy vs ref",
                "worst period Δ")
        cmp_table = Table(title=escape(f"candidates compared (reference: {result.comparison.reference})"))
        for col in keep:
            cmp_table.add_column(col, overflow="fold")
        for row in comparison_rows(result.comparison):
            cmp_table.add_row(*(escape(row[c]) for c in keep))
        console.print(cmp_table)
        console.print(f"the other {len(COMPARISON_COLUMNS) - len(keep)} columns are in report.md")
    if result.selection is not None:
        from hf_cost.report.selection_markdown import selection_lines

        console.print(escape("selection:\n  " + "\n  ".join(selection_lines(result.selection))))
