"""One runner per scenario kind, looked up in one registry."""

from __future__ import annotations

from hf_cost.runners.accuracy import AccuracyRunner
from hf_cost.runners.base import Runner, RunContext
from hf_cost.runners.compare import CompareRunner
from hf_cost.runners.drift import DriftRunner
from hf_cost.runners.offline import OfflineRunner
from hf_cost.runners.single_stream import SingleStreamRunner

# Scenario kinds that measure candidates. Steps that build candidates (fine_tune, ...) are
# in variants/registry.py.
RUNNERS: dict[str, type[Runner]] = {
    r.kind: r for r in (SingleStreamRunner, OfflineRunner, AccuracyRunner, CompareRunner, DriftRunner)
}

__all__ = ["RUNNERS", "RunContext", "Runner"]
