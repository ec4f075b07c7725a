"""What every step run on MLPerf LoadGen shares: the check that LoadGen is installed, and the
folder in the run's output where LoadGen's logs of a step's candidate go
(``loadgen/<step>/<candidate>/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_cost.errors import UserError
from hf_cost.models.context import RunContext

LOG_FOLDER = "loadgen"


def require_loadgen(where: str) -> None:
    from hf_cost.engines.loadgen import loadgen_available

    if not loadgen_available():
        raise UserError('MLPerf LoadGen is not installed: pip install -e ".[loadgen]"', where=where)


def log_outputs(cfg: Any) -> list[str]:
    """The output paths a LoadGen step declares (its manifest entry)."""
    return [f"{LOG_FOLDER}/{cfg.name}"]


def log_root(cfg: Any, ctx: RunContext) -> Path | None:
    """``loadgen/<step>/<candidate>`` in the run's staged output; None when there is no output."""
    if ctx.artifacts_dir is None:
        return None
    root = Path(ctx.artifacts_dir) / LOG_FOLDER / str(cfg.name) / ctx.candidate.name
    if Path(ctx.artifacts_dir).resolve() not in root.resolve().parents:
        raise UserError(f"refusing to write LoadGen's logs outside the output folder: {root}", where=ctx.where)
    return root


def relative_log_dir(log_dir: Path | None, ctx: RunContext) -> str | None:
    if log_dir is None or ctx.artifacts_dir is None:
        return None
    return str(Path(log_dir).relative_to(ctx.artifacts_dir))
