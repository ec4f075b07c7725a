"""`python -m hf_cost select RESULTS.json... [--constraints FILE] [--plot PNG] [--json FILE] [--force]`.

Everything that can fail is done before anything is printed or written: the targets are
checked (select/targets.py), the inputs read through their checked loaders, every metric name
looked up, the summary, its JSON and the PNG made in memory. Only then are the files written
(atomically) and the selection printed, so a failure is one line with nothing half done.
"""

from __future__ import annotations

import json
from pathlib import Path


def run_select(results: list[Path], constraints: Path | None, plot: Path | None, json_out: Path | None,
               force: bool = False) -> int:
    from hf_cost.config.selection import DEFAULT_SPEC, load_selection_spec, spec_metrics, unknown_metric
    from hf_cost.errors import ConfigError
    from hf_cost.report.selection_markdown import selection_lines
    from hf_cost.select.from_results import load_results, quality_cells
    from hf_cost.select.run_selection import select_results, summary_png
    from hf_cost.select.targets import (
        SOFTWARE,
        check_target,
        is_own_json,
        is_own_png,
        write_files,
    )

    inputs = [*results, *([constraints] if constraints is not None else [])]
    for path, flag, suffix, own in ((json_out, "--json", ".json", is_own_json), (plot, "--plot", ".png", is_own_png)):
        if path is not None:
            check_target(path, flag=flag, suffix=suffix, inputs=inputs, force=force, own=own)

    spec = load_selection_spec(constraints) if constraints is not None else DEFAULT_SPEC
    files = load_results(results)
    cells = quality_cells(files)
    for key, name in spec_metrics(spec):
        problem = unknown_metric(name, cells)
        if problem:
            raise ConfigError(f"{key}: {problem}", where=str(constraints) if constraints is not None else None)

    summary = select_results(files, spec)
    lines = selection_lines(summary)
    writes = []
    if plot is not None:
        writes.append((plot, summary_png(files, spec)))
    if json_out is not None:
        record = {"written_by": SOFTWARE, **summary.model_dump(mode="json")}
        text = json.dumps(record, indent=2, allow_nan=False) + "\n"
        writes.append((json_out, text.encode("utf-8")))
    write_files(writes)
    print("\n".join(lines + [f"wrote {path}" for path, _ in writes]))
    return 0
