"""Which int8 instruction set this CPU has, read from /proc/cpuinfo (no py-cpuinfo needed).

ONNX Runtime's dynamic int8 kernels differ by instruction set, and Optimum has one
quantization config per set (`AutoQuantizationConfig.avx2/avx512/avx512_vnni/arm64`).
`choose_isa` picks the best one this CPU has, in the order avx512_vnni > avx512 (the
`avx512f` flag) > avx2 on x86, and arm64 on aarch64; `refusal` says why an ISA asked for by
name cannot run here. Both take the flags and machine as arguments, so tests pass
hand-written /proc/cpuinfo text instead of this machine's.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
X86_ORDER = (("avx512_vnni", "avx512_vnni"), ("avx512", "avx512f"), ("avx2", "avx2"))  # (ISA, flag)
ARM_MACHINES = ("aarch64", "arm64")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")


@dataclass(frozen=True)
class CpuFlags:
    machine: str  # platform.machine(), lower case
    flags: frozenset[str]  # every flag of the first processor listed; empty when unreadable
    readable: bool  # False: no /proc/cpuinfo (macOS, Windows): the flags are unknown
    source: str

    @property
    def is_arm(self) -> bool:
        return self.machine in ARM_MACHINES

    @property
    def is_x86(self) -> bool:
        return self.machine in X86_MACHINES

    def has(self, flag: str) -> bool:
        return flag in self.flags


def parse_cpuinfo(text: str) -> frozenset[str]:
    """The flags of the first processor: the `flags` line (x86) or `Features` line (arm)."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def read_cpu_flags(path: Path | None = None, machine: str | None = None) -> CpuFlags:
    path = CPUINFO if path is None else path
    machine = (machine or platform.machine()).lower()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuFlags(machine=machine, flags=frozenset(), readable=False, source=f"{path} unreadable")
    return CpuFlags(machine=machine, flags=parse_cpuinfo(text), readable=True, source=str(path))


def choose_isa(cpu: CpuFlags) -> tuple[str | None, str]:
    """The best ISA config for this CPU and why; (None, reason) when none fits."""
    if cpu.is_arm:
        return "arm64", f"machine is {cpu.machine}"
    if not cpu.readable:
        return None, f"cannot read the CPU flags ({cpu.source}): set isa explicitly"
    for isa, flag in X86_ORDER:
        if cpu.has(flag):
            found = [f for _, f in X86_ORDER if cpu.has(f)]
            return isa, f"{cpu.source} flags include {', '.join(found)}; best is {flag}"
    return None, f"{cpu.source} lists none of avx512_vnni, avx512f, avx2 (machine {cpu.machine})"


def refusal(isa: str, cpu: CpuFlags) -> str | None:
    """Why ``isa`` cannot be used on this CPU, or None when it can (or cannot be known)."""
    if isa == "arm64":
        if cpu.is_arm:
            return None
        return f"isa arm64 asked for, but this machine is {cpu.machine}"
    if cpu.is_arm:
        return f"isa {isa} is an x86 instruction set, but this machine is {cpu.machine}"
    if not cpu.readable:
        return None  # unknown: allowed, and the build says the flags could not be checked
    flag = dict(X86_ORDER)[isa]
    if cpu.has(flag):
        return None
    best, _ = choose_isa(cpu)
    hint = f"isa: auto would pick {best}" if best else "this CPU has none of the int8 ISAs Optimum knows"
    return f"isa {isa} needs the CPU flag {flag}, which {cpu.source} does not list ({hint})"
