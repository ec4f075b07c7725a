"""What every runner gets, and the shared driver steps around a measurement."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from hf_cost.data.performance_set import PerformanceSet
from hf_cost.measure.memory import track_peak_memory
from hf_cost.models.candidate import Candidate
from hf_cost.progress import Progress
from hf_cost.report.schema import ScenarioResult

clock = time.perf_counter  # the one clock for every timed interval


@dataclass
class RunContext:
    candidate: Candidate
    perf_set: PerformanceSet
    flops_per_sample: int | None
    peak_tflops: float | None
    baseline_rss_bytes: int
    progress: Progress
    peak_source: str = "peak unknown"
    where: str = "scenarios"  # key path of the scenario being run, for error messages
    # Tests and accuracy checks may watch every output: called with (sample indices, outputs).
    output_sink: Callable[[Any, Any], None] | None = None
    suite: Any = None  # config.schema.Suite: steps that need a candidate's lineage (drift) read it

    def memory(self) -> track_peak_memory:
        """Peak-memory tracker for one scenario, isolated from the ones before it."""
        cuda = self.candidate.device if self.candidate.is_cuda else None
        return track_peak_memory(self.baseline_rss_bytes, cuda)

    def compute_metrics(self, samples_per_s: float) -> dict[str, Any]:
        """Achieved GFLOP/s and MFU at a given sample rate (MFU = achieved / peak FLOP/s)."""
        from hf_cost.measure.flops import mfu

        if self.flops_per_sample is None:
            return {"achieved_gflops_per_s": None, "mfu": None}
        achieved = self.flops_per_sample * samples_per_s
        return {"achieved_gflops_per_s": achieved / 1e9, "mfu": mfu(achieved, self.peak_tflops)}


class Runner(ABC):
    """One scenario kind, measuring one candidate. `run` returns one result, or one per sweep point."""

    kind: ClassVar[str]
    needs_head: ClassVar[bool] = False  # True: only candidates with a classification head qualify
    multi: ClassVar[bool] = False  # True: measures all its candidates together, through run_many

    def run_many(self, scenario: Any, contexts: list[RunContext]) -> list[ScenarioResult]:
        raise NotImplementedError(f"{self.kind} measures one candidate at a time")

    @abstractmethod
    def run(self, scenario: Any, ctx: RunContext) -> list[ScenarioResult]: ...
