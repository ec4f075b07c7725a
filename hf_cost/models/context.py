"""What a measuring step gets for one candidate: the candidate, its performance sample set, its
FLOPs and the peak for MFU, and a memory tracker isolated from the steps before it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hf_cost.core.candidate import Candidate
from hf_cost.data.performance_set import PerformanceSet
from hf_cost.measure.memory import track_peak_memory
from hf_cost.progress import Progress


@dataclass
class RunContext:
    candidate: Candidate
    perf_set: PerformanceSet
    flops_per_sample: float | None  # natural lengths: the mean over perf_set
    peak_tflops: float | None
    baseline_rss_bytes: int
    progress: Progress
    peak_source: str = "peak unknown"
    where: str = "scenarios"  # key path of the scenario being run, for error messages
    # Tests and accuracy checks may watch every output: called with (sample indices, outputs).
    output_sink: Callable[[Any, Any], None] | None = None
    suite: Any = None  # config.schema.Suite: steps that need a candidate's lineage (drift) read it
    # The run's output folder as staged (None without one): a step writes there only the
    # entries its `outputs(cfg)` names (e.g. server's loadgen/<step>/), moved in with the run.
    artifacts_dir: Path | None = None
    # Natural lengths: FLOPs of each sample of perf_set at its own length (flops_per_sample is
    # then their mean over the set); None when every sample has the same FLOPs (fixed lengths).
    sample_flops: list[float] | None = None

    def memory(self) -> track_peak_memory:
        """Peak-memory tracker for one scenario, isolated from the ones before it."""
        cuda = self.candidate.device if self.candidate.is_cuda else None
        return track_peak_memory(self.baseline_rss_bytes, cuda)

    def compute_metrics(self, samples_per_s: float, indices: list[int] | None = None) -> dict[str, Any]:
        """Achieved GFLOP/s and MFU at a given sample rate (MFU = achieved / peak FLOP/s), with the
        mean FLOPs per sample of the samples that ran (``indices``: their positions in perf_set)."""
        from hf_cost.measure.peak_flops import mfu

        per_sample = self.flops_per_sample
        if self.sample_flops is not None and indices:
            per_sample = sum(self.sample_flops[i] for i in indices) / len(indices)
        if per_sample is None:
            return {"achieved_gflops_per_s": None, "mfu": None}
        achieved = per_sample * samples_per_s
        return {"achieved_gflops_per_s": achieved / 1e9, "mfu": mfu(achieved, self.peak_tflops)}
