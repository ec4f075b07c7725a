"""`python -m hf_cost select RESULTS.json... [--constraints FILE] [--plot PNG] [--json FILE]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def run_select(results: list[Path], constraints: Path | None, plot: Path | None, json_out: Path | None) -> int:
    from hf_cost.select.constraints import load_selection_spec
    from hf_cost.select.from_results import load_results
    from hf_cost.select.run_selection import DEFAULT_SPEC, plot_summary, select_results, selection_lines

    spec = load_selection_spec(constraints) if constraints is not None else DEFAULT_SPEC
    files = load_results(results)
    summary = select_results(files, spec)
    print("\n".join(selection_lines(summary)))
    if plot is not None:
        print(f"wrote {plot_summary(files, spec, plot)}")
    if json_out is not None:
        _write_json(json_out, summary)
        print(f"wrote {json_out}")
    return 0


def _write_json(path: Path, data: Any) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".select-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
