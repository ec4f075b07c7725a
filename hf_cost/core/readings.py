"""What a step measured about the machine while it ran: peak memory, energy, and the CPU other
processes took (each attached to every result entry the step produced)."""

from __future__ import annotations

from pydantic import Field

from hf_cost.core.bounds import NonNegative, Out


class MemoryReading(Out):
    """Peak memory over a step (measure/memory.py): RSS over the post-load baseline, CUDA peaks."""

    baseline_rss_mib: NonNegative
    peak_rss_mib: NonNegative
    peak_rss_delta_mib: float
    rss_method: str
    cuda_max_memory_allocated_mib: NonNegative | None = None
    cuda_max_memory_reserved_mib: NonNegative | None = None


class EnergyReading(Out):
    """codecarbon over the step that produced the entry (measure/energy.py)."""

    energy_kwh: NonNegative | None
    cpu_energy_kwh: NonNegative | None
    gpu_energy_kwh: NonNegative | None
    ram_energy_kwh: NonNegative | None
    emissions_kg_co2eq: NonNegative | None
    duration_s: NonNegative
    method: str
    detail: str
    region: str
    carbon_intensity_g_per_kwh: NonNegative | None
    covers: list[str] = Field(description="every entry of the step the reading covers")


class MachineLoad(Out):
    """The noise sentinel over the step that produced the entry (measure/machine_load.py): how
    much CPU other processes used, and steal, from /proc/stat minus this process's own time.
    Figures are None where /proc/stat cannot be read (`method` says why)."""

    interval_s: NonNegative = Field(description="wall time the reading covers")
    cpus: int | None = Field(description="logical CPUs /proc/stat sums")
    other_processes_cores: NonNegative | None = Field(
        None, description="mean CPU used by other processes, in cores: max(0, busy_cpu_s − own_cpu_s) / interval_s"
    )
    steal_share: NonNegative | None = Field(
        None, description="steal_cpu_s / total_cpu_s: the share of CPU time the hypervisor gave elsewhere"
    )
    busy_cpu_s: float | None = Field(None, description="all CPUs' user+nice+system+irq+softirq over the interval")
    steal_cpu_s: float | None = Field(None, description="all CPUs' steal over the interval")
    total_cpu_s: float | None = Field(None, description="all CPUs' busy+idle+iowait+steal over the interval")
    own_cpu_s: float = Field(description="this process's CPU (threads and reaped children) over the interval")
    resolution_cores: NonNegative | None = Field(
        None, description="the counters' resolution, cpus / (USER_HZ · interval_s): a flag needs an excess clear of it"
    )
    threshold_cores: float = Field(description="other_processes_cores above this (plus the resolution) flags it")
    steal_threshold: float = Field(description="steal_share above this (plus the resolution) flags it")
    busy: bool | None = Field(None, description="the machine was busy: the result's figures carry others' load")
    method: str

    def warning(self) -> str | None:
        """'machine busy: 1.6 cores used by other processes, steal 3 %', when it was busy."""
        if not self.busy:
            return None
        steal = "" if self.steal_share is None else f", steal {self.steal_share * 100:.0f} %"
        return f"machine busy: {self.other_processes_cores or 0:.1f} cores used by other processes{steal}"
