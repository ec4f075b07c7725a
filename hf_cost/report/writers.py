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
    return paths
