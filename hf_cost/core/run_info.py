"""Typed descriptions of where a run ran and what it ran on: the environment and the checkpoint."""

from __future__ import annotations

from pydantic import Field

from hf_cost.core.bounds import Count, Out


class CpuInfo(Out):
    model: str
    logical_cores: Count | None
    physical_cores: Count | None
    affinity_cores: Count | None = None
    torch_threads: Count | None = None


class GpuInfo(Out):
    index: Count
    name: str
    memory_mib: Count
    capability: str


class Environment(Out):
    """measure/environment.py: software, CPU, GPUs, and whether the Hub was reachable."""

    hf_cost_version: str
    git_commit: str | None
    python: str
    platform: str
    libraries: dict[str, str | None] = Field(description="distribution -> version (None: not installed)")
    cpu: CpuInfo
    memory_total_mib: Count | None
    gpus: list[GpuInfo]
    hub_offline: bool
    cuda_version: str | None = None

    def describe_hardware(self, detailed: bool = False) -> str:
        """The one hardware line: 'CPU model (N cores), GPU names' (what selection compares runs by);
        ``detailed`` adds physical cores, torch threads and GPU memory (model cards)."""
        if not detailed:
            gpus = ", ".join(g.name for g in self.gpus) or "no GPU"
            return f"{self.cpu.model} ({self.cpu.logical_cores} cores), {gpus}"
        gpus = ", ".join(f"{g.name} ({g.memory_mib / 1024:.0f} GiB)" if g.memory_mib else g.name for g in self.gpus)
        cpu = self.cpu
        return (f"{cpu.model} ({_known(cpu.logical_cores)} logical / {_known(cpu.physical_cores)} physical cores, "
                f"{_known(cpu.torch_threads)} torch threads), {gpus or 'no GPU'}")


class CheckpointInfo(Out):
    """The scenario file's checkpoint: where it came from and which commit was loaded."""

    id: str | None
    path: str | None
    revision: str | None
    commit: str | None
    source: str | None
    task: str | None
    architecture: str | None


def _known(x: object) -> str:
    return "?" if x is None else str(x)
