"""One runner per scenario kind, looked up in one registry."""

from __future__ import annotations

from hf_cost.runners.accuracy import AccuracyRunner
from hf_cost.runners.base import Runner, RunContext
from hf_cost.runners.offline import OfflineRunner
from hf_cost.runners.single_stream import SingleStreamRunner

# Scenario kinds measured on a loaded candidate. fine_tune trains one instead and is
# driven by the pipeline directly (runners/fine_tune.py).
RUNNERS: dict[str, type[Runner]] = {
    r.kind: r for r in (SingleStreamRunner, OfflineRunner, AccuracyRunner)
}

__all__ = ["RUNNERS", "RunContext", "Runner"]
