"""Peak memory per scenario, as the increase over a baseline.

`tracemalloc` cannot see torch's allocations, so host memory is resident set size.
On Linux the kernel's high-water mark (VmHWM) is reset at the start of each
scenario by writing 5 to /proc/self/clear_refs, so one scenario's peak never
leaks into the next. Where that is not possible the process-wide ``ru_maxrss`` is
used and the result says it is not isolated. On CUDA, the allocator's peak
counters are reset per scenario too.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MIB = 1024 * 1024
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def current_rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _ru_maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass
class MemoryPeak:
    """Filled in by `track_peak_memory` when its block ends."""

    baseline_rss_mib: float
    peak_rss_mib: float = 0.0
    method: str = ""
    cuda_max_allocated_mib: float | None = None
    cuda_max_reserved_mib: float | None = None

    @property
    def peak_rss_delta_mib(self) -> float:
        return max(0.0, self.peak_rss_mib - self.baseline_rss_mib)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline_rss_mib": round(self.baseline_rss_mib, 2),
            "peak_rss_mib": round(self.peak_rss_mib, 2),
            "peak_rss_delta_mib": round(self.peak_rss_delta_mib, 2),
            "rss_method": self.method,
            "cuda_max_memory_allocated_mib": self.cuda_max_allocated_mib,
            "cuda_max_memory_reserved_mib": self.cuda_max_reserved_mib,
        }


class track_peak_memory:  # noqa: N801 - used as a context manager
    """``with track_peak_memory(baseline_bytes, cuda_device) as peak: ...``

    ``baseline_bytes`` is the RSS after imports and model load; the result reports
    the scenario's peak and its increase over that baseline.
    """

    def __init__(self, baseline_bytes: int, cuda_device: Any | None = None):
        self.cuda_device = cuda_device
        self.peak = MemoryPeak(baseline_rss_mib=baseline_bytes / _MIB)

    def __enter__(self) -> MemoryPeak:
        isolated = _reset_peak() and _status_kib("VmHWM") is not None
        self.peak.method = (
            "VmHWM reset per scenario (/proc/self/clear_refs)"
            if isolated
            else "ru_maxrss (process-wide, not isolated per scenario)"
        )
        self._isolated = isolated
        if self.cuda_device is not None:
            import torch

            torch.cuda.synchronize(self.cuda_device)
            torch.cuda.reset_peak_memory_stats(self.cuda_device)
        return self.peak

    def __exit__(self, *exc: object) -> None:
        if self._isolated:
            self.peak.peak_rss_mib = (_status_kib("VmHWM") or 0) / 1024
        else:
            self.peak.peak_rss_mib = _ru_maxrss_bytes() / _MIB
        if self.cuda_device is not None:
            import torch

            torch.cuda.synchronize(self.cuda_device)
            self.peak.cuda_max_allocated_mib = torch.cuda.max_memory_allocated(self.cuda_device) / _MIB
            self.peak.cuda_max_reserved_mib = torch.cuda.max_memory_reserved(self.cuda_device) / _MIB
