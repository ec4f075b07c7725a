"""An estimated peak TFLOP/s for a CPU, for MFU: cores used × clock × FLOPs per cycle per core.

Each factor says where it came from, and the whole is labelled an estimate: a CPU's datasheet
rarely gives a FLOP/s figure, and what the flags show is an upper bound (the clock drops under
wide vector load, and some parts have one AVX-512 FMA unit per core where most have two).

- cores: the threads torch uses (``torch.get_num_threads()``), capped by the physical cores in
  this process's affinity mask (two hyperthreads share one core's vector units);
- clock: ``/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq`` (the maximum, kHz), else the
  first ``cpu MHz`` line of /proc/cpuinfo (the current clock, labelled so), else no estimate;
- FLOPs per cycle per core: from the instruction sets /proc/cpuinfo lists, at the dtype
  (``_PER_CYCLE`` below). The number of FMA units per core is not in the flags: two are assumed.

Reading (``read_cpu_facts``) is separate from the arithmetic (``estimate_cpu_peak``), so tests
pass hand-written /proc/cpuinfo and sysfs text instead of this machine's. No heavy import at
module level: torch is imported inside ``read_cpu_facts``.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from hf_cost.measure.cpu_flags import ARM_MACHINES, CPUINFO, X86_MACHINES, parse_cpuinfo

MAX_FREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")

# FLOPs per cycle per core, best instruction set first: (flags needed, FLOPs, label).
# An FMA is 2 FLOPs (multiply and add); a 512-bit register holds 16 fp32 or 32 fp16 values,
# a 256-bit one 8 fp32. "2 FMA units assumed": Xeon Gold/Platinum and recent AMD/Intel cores
# issue two vector FMAs per cycle; some parts (Xeon Bronze/Silver, AMD Zen 4's 512-bit ops
# split over two 256-bit halves) reach half of that, and the flags cannot tell them apart.
#   AVX-512F:  2 units × 16 lanes × 2 = 64 (Intel quotes "64 FP32 operations per cycle" for
#              AVX-512 in the brief cited below)
#   AVX2+FMA:  2 units × 8 lanes × 2 = 32
#   AVX:       no FMA; one 8-lane add and one 8-lane multiply per cycle = 16
#   SSE:       one 4-lane add and one 4-lane multiply per cycle = 8
#   AVX512_BF16 (VDPBF16PS): 16 fp32 lanes × 2 bf16 products each × 2 FLOPs × 2 units = 128
#   AVX512-FP16: 2 units × 32 fp16 lanes × 2 = 128
#   AMX-BF16:  1,024 BF16 operations per cycle per core. Intel, "Accelerate AI Workloads with
#              Intel AMX" (solution brief, p. 4): 4th Gen Xeon Scalable with AMX "can perform
#              2,048 INT8 operations per cycle ... 1,024 BF16 operations per cycle, as compared
#              to 64 FP32 operations per cycle" (quoted in PyTorch's recipe "Leverage Intel
#              Advanced Matrix Extensions"). It agrees with the tile shape: one TDPBF16PS on
#              16×32 by 32×16 tiles is 16·16·32 = 8,192 multiply-adds = 16,384 FLOPs, issued
#              once per 16 cycles by the core's one TMUL unit.
#   AMX-FP16:  TDPFP16PS has TDPBF16PS's tile shape; the same 1,024 is assumed.
# fp32 matmuls do not use AMX in PyTorch's default settings, so float32 ignores it. A dtype
# with none of its instruction sets listed (bf16 on a CPU without AMX or AVX512_BF16, which
# torch runs by converting to fp32) gets no estimate rather than a guess.
_PER_CYCLE: dict[str, tuple[tuple[tuple[str, ...], int, str], ...]] = {
    "float32": (
        (("avx512f",), 64, "AVX-512F, 2 FMA units assumed"),
        (("avx2", "fma"), 32, "AVX2+FMA, 2 FMA units assumed"),
        (("avx",), 16, "AVX without FMA, one add and one multiply unit assumed"),
        (("sse",), 8, "SSE, one add and one multiply unit assumed"),
    ),
    "bfloat16": (
        (("amx_bf16", "amx_tile"), 1024, "AMX-BF16, Intel's figure for 4th Gen Xeon"),
        (("avx512_bf16",), 128, "AVX512_BF16 dot products, 2 FMA units assumed"),
    ),
    "float16": (
        (("amx_fp16", "amx_tile"), 1024, "AMX-FP16, assumed equal to AMX-BF16"),
        (("avx512_fp16",), 128, "AVX512-FP16, 2 FMA units assumed"),
    ),
}


@dataclass(frozen=True)
class CpuFacts:
    """What the estimate reads about this machine; tests build one from hand-written text."""

    machine: str  # platform.machine(), lower case
    cpuinfo_text: str | None  # /proc/cpuinfo; None when unreadable
    max_freq_text: str | None  # cpuinfo_max_freq (kHz); None when absent
    torch_threads: int
    affinity: frozenset[int] | None  # CPUs this process may run on; None when unknown


@dataclass(frozen=True)
class Factor:
    value: float | None  # cores, Hz, or FLOPs per cycle per core; None when unknown
    source: str


@dataclass(frozen=True)
class CpuPeak:
    """The estimate: ``tflops`` = cores × clock_hz × flops_per_cycle / 1e12, or None.

    ``source`` is one line: the formula with each factor's figure and origin, or why there is
    no estimate (starting "peak unknown").
    """

    tflops: float | None
    cores: Factor
    clock_hz: Factor
    flops_per_cycle: Factor
    source: str


def read_cpu_facts(cpuinfo: Path = CPUINFO, max_freq: Path = MAX_FREQ) -> CpuFacts:
    import torch

    def text(path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    try:
        affinity: frozenset[int] | None = frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        affinity = None
    return CpuFacts(machine=platform.machine().lower(), cpuinfo_text=text(cpuinfo),
                    max_freq_text=text(max_freq), torch_threads=torch.get_num_threads(), affinity=affinity)


def _processors(cpuinfo_text: str) -> list[dict[str, str]]:
    """One dict per processor block of /proc/cpuinfo (blocks are separated by blank lines)."""
    blocks, current = [], {}
    for line in cpuinfo_text.splitlines() + [""]:
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip().lower()] = value.strip()
        elif not line.strip() and current:
            blocks.append(current)
            current = {}
    return blocks


def cores_used(facts: CpuFacts) -> Factor:
    """torch's threads, capped by the physical cores (else CPUs) in the affinity mask."""
    threads = facts.torch_threads
    blocks = _processors(facts.cpuinfo_text or "")
    allowed = [b for b in blocks if facts.affinity is None or _int(b.get("processor")) in facts.affinity]
    if allowed and all("physical id" in b and "core id" in b for b in allowed):
        limit, what = len({(b["physical id"], b["core id"]) for b in allowed}), "physical cores"
    elif facts.affinity is not None:
        limit, what = len(facts.affinity), "CPUs (physical cores unknown)"
    else:
        limit, what = None, ""
    where = "in the affinity mask" if facts.affinity is not None else "in /proc/cpuinfo"
    if limit is None or threads <= limit:
        return Factor(threads, "torch threads")
    return Factor(limit, f"{what} {where}; torch uses {threads} threads")


def clock(facts: CpuFacts) -> Factor:
    """The maximum clock from sysfs, else the current one from /proc/cpuinfo, in Hz."""
    khz = _int((facts.max_freq_text or "").strip())
    if khz:
        return Factor(khz * 1000, "cpuinfo_max_freq")
    for block in _processors(facts.cpuinfo_text or "")[:1]:
        try:
            mhz = float(block.get("cpu mhz", ""))
        except ValueError:
            break
        if mhz > 0:
            return Factor(round(mhz * 1e6), "current clock, cpu MHz in /proc/cpuinfo; no cpuinfo_max_freq")
    return Factor(None, f"no clock frequency: no {MAX_FREQ} and no 'cpu MHz' in {CPUINFO}")


def flops_per_cycle(facts: CpuFacts, dtype: str) -> Factor:
    """FLOPs per cycle per core at ``dtype`` from the instruction sets the CPU lists."""
    if facts.machine in ARM_MACHINES:
        return Factor(None, f"machine {facts.machine}: no FLOPs-per-cycle table for Arm cores "
                            "(NEON/SVE widths and unit counts vary by core)")
    if facts.machine not in X86_MACHINES:
        return Factor(None, f"machine {facts.machine or 'unknown'}: no FLOPs-per-cycle table")
    if facts.cpuinfo_text is None:
        return Factor(None, f"cannot read {CPUINFO}: instruction sets unknown")
    key = dtype.removeprefix("torch.")
    if key not in _PER_CYCLE:
        return Factor(None, f"dtype {dtype!r} has no FLOPs-per-cycle entry (only {', '.join(_PER_CYCLE)})")
    flags = parse_cpuinfo(facts.cpuinfo_text)
    for needed, flops, label in _PER_CYCLE[key]:
        if all(flag in flags for flag in needed):
            return Factor(flops, label)
    names = sorted({f for needed, _, _ in _PER_CYCLE[key] for f in needed})
    return Factor(None, f"{CPUINFO} lists none of the {key} instruction sets known here ({', '.join(names)})")


def estimate_cpu_peak(dtype: str, facts: CpuFacts | None = None) -> CpuPeak:
    """The estimated peak TFLOP/s of the cores torch uses at ``dtype``; see the module docstring."""
    facts = read_cpu_facts() if facts is None else facts
    cores, hz, per_cycle = cores_used(facts), clock(facts), flops_per_cycle(facts, dtype)
    missing = [f.source for f in (per_cycle, hz) if f.value is None]
    if missing:
        return CpuPeak(None, cores, hz, per_cycle, "peak unknown: no CPU estimate: " + "; ".join(missing))
    tflops = int(cores.value) * int(hz.value) * int(per_cycle.value) / 1e12  # type: ignore[arg-type]
    ghz = f"{hz.value / 1e9:.3f}".rstrip("0").rstrip(".")  # type: ignore[operator]
    source = (f"estimate: {cores.value} cores ({cores.source}) × {ghz} GHz ({hz.source}) × "
              f"{per_cycle.value} FLOP/cycle ({per_cycle.source}) = {tflops:.4g} TFLOP/s")
    return CpuPeak(tflops, cores, hz, per_cycle, source)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
