"""Write results.json and report.md into the run's staging directory.

They reach the output directory only when `RunOutput.commit` moves the whole run in
(hf_cost/output.py), so nothing here needs to be atomic on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from hf_cost.report.markdown import render_markdown
from hf_cost.report.schema import RunResult


def write_results(result: RunResult, directory: Path) -> list[Path]:
    json_text = json.dumps(result.model_dump(mode="json"), indent=2, allow_nan=False) + "\n"
    md_text = render_markdown(result)  # render both before writing either
    paths = [directory / "results.json", directory / "report.md"]
    paths[0].write_text(json_text, encoding="utf-8")
    paths[1].write_text(md_text, encoding="utf-8")
    return paths + write_plots(result, directory)


SELECTION_PLOT = "plots/selection.png"


def write_plots(result: RunResult, directory: Path) -> list[Path]:
    """PNG plots report.md links to (plots/...), drawn from the result alone."""
    from hf_cost.report.drift_plot import drift_groups, drift_plot_name, plot_drift

    paths = []
    for name, results in drift_groups(result.scenarios).items():
        title = f"{result.suite.get('name')}: {name}, quality per period and input drift"
        paths.append(plot_drift(results, directory / drift_plot_name(name), title))
    if result.selection is not None:
        from hf_cost.config.schema import suite_model
        from hf_cost.select.run_selection import plot_summary

        spec = suite_model().model_validate(result.suite).select
        paths.append(plot_summary([("results.json", result)], spec, directory / SELECTION_PLOT))
    return paths
