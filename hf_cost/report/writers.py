"""Write results.json and report.md, each atomically."""

from __future__ import annotations

import json
from pathlib import Path

from hf_cost.report.atomic import write_all_atomic
from hf_cost.report.markdown import render_markdown
from hf_cost.report.schema import RunResult


def write_results(result: RunResult, out_dir: Path) -> list[Path]:
    json_text = json.dumps(result.model_dump(mode="json"), indent=2, allow_nan=False) + "\n"
    md_text = render_markdown(result)  # render both before writing either
    paths = [out_dir / "results.json", out_dir / "report.md"]
    write_all_atomic({paths[0]: json_text, paths[1]: md_text})
    return paths
