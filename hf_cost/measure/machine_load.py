"""The noise sentinel: how much CPU other processes used while a step measured.

Why: on a shared 2-core machine a torch model's latency rose 50-fold in some rounds and not
in others, and nothing in the results said the machine was busy. Every measuring step now
records the load around it (steps/base.py) and a result measured on a busy machine says so.

How: `/proc/stat`'s first line ("cpu", all CPUs, in USER_HZ ticks: user nice system idle iowait
irq softirq steal guest guest_nice) is read at enter and exit, and so is this process's own CPU
time (`os.times()`: every thread, plus children it has reaped). Over the interval:

- busy = user + nice + system + irq + softirq (guest time is already inside user and nice);
- other processes' CPU, in cores = max(0, busy seconds − own seconds) / interval seconds;
- steal share = steal / (busy + idle + iowait + steal): the CPU the hypervisor gave elsewhere.

Two readings, not a sampler: the figure is the mean over the step, which is what its
aggregated latencies and rates see. A background sampler could give a peak, but it would wake
on the cores it measures, and a brief burst inside a long step moves its figures little anyway.

The counters tick at USER_HZ (100/s), one tick per CPU, so over a short interval the busy
figure is only known to ±cpus/(USER_HZ · interval) cores (`resolution_cores`: 0.2 cores over
0.1 s on 2 CPUs, 0.002 over 10 s). A result is flagged only when its excess is clear of that:
other − resolution > threshold, or steal share − resolution/cpus > the steal threshold.

Threshold: 0.25 cores (`BUSY_CORES`; the `HF_COST_BUSY_CORES` environment variable overrides
it). torch uses every core by default, so any CPU another process takes is taken from the
measurement; an idle Linux machine's daemons use a few hundredths of a core, and one busy
process uses a whole one. 0.25 cores sits well above the first and well below the second: on
this 2-core machine it is 1/8 of the CPU, on a larger one still a quarter of a core taken from
a run that expects them all. Steal above 5 % of the CPU time (`BUSY_STEAL_SHARE`) flags too.

Limits: a worker process this one has not yet reaped counts as another process (hf_cost starts
none while measuring); one reaped inside the interval brings its whole lifetime into this
process's time (under-counting others, never over). Inside a container /proc/stat is the
host's, so neighbours on the host count: they are the noise this is for. Where /proc/stat
cannot be read (macOS, Windows) the figures are None and `method` says why.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_cost.core.readings import MachineLoad
from hf_cost.errors import UserError

PROC_STAT = Path("/proc/stat")
BUSY_CORES = 0.25  # other processes' CPU (cores) above which a result is flagged
BUSY_STEAL_SHARE = 0.05  # steal above this share of the CPU time flags a result too
ENV_BUSY_CORES = "HF_COST_BUSY_CORES"
METHOD = ("/proc/stat all-CPU busy (user+nice+system+irq+softirq) and steal ticks at the step's "
          "start and end, minus this process's CPU time (os.times: threads and reaped children); "
          "mean over the interval")


@dataclass(frozen=True)
class CpuTicks:
    """The all-CPU line of /proc/stat, in USER_HZ ticks, and how many CPUs it sums."""

    busy: int  # user + nice + system + irq + softirq
    steal: int
    total: int  # busy + idle + iowait + steal (guest is inside user/nice, so not added)
    cpus: int


def parse_proc_stat(text: str) -> CpuTicks:
    """The all-CPU figures of a /proc/stat text. Fields a kernel does not give count as 0."""
    cpus, fields = 0, None
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name == "cpu":
            fields = [int(v) for v in rest.split()]
        elif name.startswith("cpu") and name[3:].isdigit():
            cpus += 1
    if fields is None or len(fields) < 4:
        raise ValueError("/proc/stat has no all-CPU 'cpu' line with at least 4 fields")
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return CpuTicks(busy=busy, steal=steal, total=busy + idle + iowait + steal, cpus=cpus)


def own_cpu_s() -> float:
    """This process's CPU seconds: every thread, plus the children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def busy_threshold_cores() -> float:
    """`HF_COST_BUSY_CORES` when set (a number of cores ≥ 0), else `BUSY_CORES`."""
    raw = os.environ.get(ENV_BUSY_CORES)
    if raw is None or raw.strip() == "":
        return BUSY_CORES
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise UserError(f"{raw!r} is not a number of cores ≥ 0 (e.g. 0.25)", where=ENV_BUSY_CORES)
    return value


def is_busy(other_cores: float, steal_share: float, resolution_cores: float, cpus: int, *,
            threshold_cores: float, steal_threshold: float) -> bool:
    """Flag a reading only when its excess is clear of the counters' resolution."""
    steal_resolution = resolution_cores / cpus if cpus else resolution_cores
    return (other_cores - resolution_cores > threshold_cores
            or steal_share - steal_resolution > steal_threshold)


def load_between(before: CpuTicks, after: CpuTicks, own_s: float, interval_s: float, hz: int, *,
                 threshold_cores: float, steal_threshold: float = BUSY_STEAL_SHARE) -> MachineLoad:
    """The reading between two /proc/stat samples, with ``own_s`` CPU seconds of this process
    over ``interval_s`` wall seconds (pure: the sentinel and the tests call it)."""
    busy_s = (after.busy - before.busy) / hz
    steal_s = (after.steal - before.steal) / hz
    total_s = (after.total - before.total) / hz
    cpus = after.cpus or before.cpus or (os.cpu_count() or 1)
    if interval_s <= 0 or total_s <= 0:
        return unmeasured("the interval was too short for /proc/stat's ticks", interval_s, own_s,
                          threshold_cores, steal_threshold)
    other = max(0.0, busy_s - own_s) / interval_s
    steal_share = max(0.0, steal_s) / total_s
    resolution = cpus / (hz * interval_s)
    return MachineLoad(
        interval_s=interval_s, cpus=cpus, other_processes_cores=other, steal_share=steal_share,
        busy_cpu_s=busy_s, steal_cpu_s=steal_s, total_cpu_s=total_s, own_cpu_s=own_s,
        resolution_cores=resolution, threshold_cores=threshold_cores, steal_threshold=steal_threshold,
        busy=is_busy(other, steal_share, resolution, cpus, threshold_cores=threshold_cores,
                     steal_threshold=steal_threshold),
        method=f"{METHOD}; USER_HZ {hz}",
    )


def unmeasured(why: str, interval_s: float, own_s: float, threshold_cores: float,
               steal_threshold: float = BUSY_STEAL_SHARE) -> MachineLoad:
    return MachineLoad(interval_s=max(0.0, interval_s), cpus=os.cpu_count(), own_cpu_s=own_s,
                       threshold_cores=threshold_cores, steal_threshold=steal_threshold,
                       method=f"not measured: {why}")


def _read_ticks() -> CpuTicks | str:
    """/proc/stat's figures, or why they cannot be read here."""
    try:
        return parse_proc_stat(PROC_STAT.read_text(encoding="ascii"))
    except OSError as exc:
        return f"{PROC_STAT} cannot be read on this system ({sys.platform}: {exc.strerror or exc})"
    except ValueError as exc:
        return f"{PROC_STAT} could not be parsed ({exc})"


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100


class MachineLoadSentinel:
    """``with MachineLoadSentinel() as s: ...`` then ``s.reading`` (a core.results.MachineLoad)."""

    def __init__(self, threshold_cores: float | None = None) -> None:
        self.threshold_cores = busy_threshold_cores() if threshold_cores is None else threshold_cores
        self.reading: MachineLoad | None = None

    def __enter__(self) -> MachineLoadSentinel:
        self._before = _read_ticks()
        self._own = own_cpu_s()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        interval = time.perf_counter() - self._t0
        own = own_cpu_s() - self._own
        after = _read_ticks()
        if isinstance(self._before, str) or isinstance(after, str):
            why = self._before if isinstance(self._before, str) else after
            self.reading = unmeasured(str(why), interval, own, self.threshold_cores)
        else:
            self.reading = load_between(self._before, after, own, interval, _clock_ticks(),
                                        threshold_cores=self.threshold_cores)

    def around(self, fn: Any) -> Any:
        """``fn()`` inside the sentinel; the reading is in ``self.reading`` after."""
        with self:
            return fn()
