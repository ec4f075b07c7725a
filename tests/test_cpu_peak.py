"""The CPU peak estimate for MFU: hand-computed cases from hand-written /proc/cpuinfo and sysfs text."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_cost.measure.cpu_peak import CpuFacts, estimate_cpu_peak, read_cpu_facts
from hf_cost.measure.peak_flops import peak_for

SKYLAKE_SP = "fpu sse sse2 avx fma avx2 avx512f avx512dq avx512bw avx512vl"
ZEN3 = "fpu sse sse2 avx fma avx2"
SAPPHIRE_RAPIDS = SKYLAKE_SP + " avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8"


def cpuinfo(flags: str, cores: int = 2, threads_per_core: int = 1, mhz: str | None = "2000.000") -> str:
    """/proc/cpuinfo text for one socket: processors numbered 0.., hyperthreads share a core id."""
    blocks = []
    for p in range(cores * threads_per_core):
        lines = [f"processor\t: {p}", "physical id\t: 0", f"core id\t\t: {p % cores}"]
        if mhz is not None:
            lines.append(f"cpu MHz\t\t: {mhz}")
        lines.append(f"flags\t\t: {flags}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def facts(flags: str = SKYLAKE_SP, *, max_khz: str | None = "3100000\n", threads: int = 2,
          affinity: frozenset[int] | None = frozenset({0, 1}), machine: str = "x86_64", **kw) -> CpuFacts:
    return CpuFacts(machine=machine, cpuinfo_text=cpuinfo(flags, **kw), max_freq_text=max_khz,
                    torch_threads=threads, affinity=affinity)


def test_avx512_fp32_two_cores_at_3_1_ghz() -> None:
    # 2 cores × 3.1e9 Hz × (2 FMA units × 16 fp32 lanes × 2 FLOPs) = 396.8e9 FLOP/s
    est = estimate_cpu_peak("float32", facts())
    assert est.tflops == pytest.approx(0.3968)
    assert (est.cores.value, est.clock_hz.value, est.flops_per_cycle.value) == (2, 3.1e9, 64)
    assert est.source == ("estimate: 2 cores (torch threads) × 3.1 GHz (cpuinfo_max_freq) × 64 FLOP/cycle "
                          "(AVX-512F, 2 FMA units assumed) = 0.3968 TFLOP/s")


def test_avx2_fma_and_older_instruction_sets() -> None:
    # AVX2+FMA: 2 × 8 × 2 = 32; AVX without FMA: 8-lane add + 8-lane multiply = 16; SSE: 4 + 4 = 8
    assert estimate_cpu_peak("float32", facts(ZEN3)).tflops == pytest.approx(2 * 3.1e9 * 32 / 1e12)
    assert estimate_cpu_peak("float32", facts("fpu sse sse2 avx")).tflops == pytest.approx(2 * 3.1e9 * 16 / 1e12)
    assert estimate_cpu_peak("float32", facts("fpu sse sse2")).tflops == pytest.approx(2 * 3.1e9 * 8 / 1e12)
    # avx2 without the fma flag is not AVX2+FMA
    assert estimate_cpu_peak("float32", facts("sse avx avx2")).flops_per_cycle.value == 16


def test_amx_bf16_and_fallbacks() -> None:
    # AMX: 1,024 BF16 FLOPs per cycle per core (Intel); 2 cores × 2.0 GHz × 1024 = 4.096 TFLOP/s
    est = estimate_cpu_peak("bfloat16", facts(SAPPHIRE_RAPIDS, max_khz="2000000"))
    assert est.tflops == pytest.approx(4.096)
    assert "AMX-BF16" in est.flops_per_cycle.source
    # torch.bfloat16 spelled with the prefix; AVX512_BF16 without AMX: 2 × 16 × 2 × 2 = 128
    est = estimate_cpu_peak("torch.bfloat16", facts(SKYLAKE_SP + " avx512_bf16", max_khz="2000000"))
    assert est.tflops == pytest.approx(2 * 2e9 * 128 / 1e12)
    # no bf16 instructions at all: no estimate, and it says which flags it looked for
    est = estimate_cpu_peak("bfloat16", facts(ZEN3))
    assert est.tflops is None
    assert est.source.startswith("peak unknown") and "amx_bf16" in est.source and "avx512_bf16" in est.source
    # fp32 on the AMX machine still uses AVX-512 (PyTorch's fp32 matmuls do not use AMX)
    assert estimate_cpu_peak("float32", facts(SAPPHIRE_RAPIDS)).flops_per_cycle.value == 64


def test_fp16_where_flags_allow() -> None:
    assert estimate_cpu_peak("float16", facts(SAPPHIRE_RAPIDS)).flops_per_cycle.value == 128  # AVX512-FP16
    assert estimate_cpu_peak("float16", facts(SAPPHIRE_RAPIDS + " amx_fp16")).flops_per_cycle.value == 1024
    est = estimate_cpu_peak("float16", facts(SKYLAKE_SP))
    assert est.tflops is None and "avx512_fp16" in est.source


def test_no_frequency_means_no_estimate() -> None:
    est = estimate_cpu_peak("float32", facts(max_khz=None, mhz=None))
    assert est.tflops is None and est.clock_hz.value is None
    assert est.source.startswith("peak unknown") and "cpuinfo_max_freq" in est.source and "cpu MHz" in est.source
    # sysfs missing but /proc/cpuinfo has the current clock: used, and labelled as current
    est = estimate_cpu_peak("float32", facts(max_khz=None, mhz="2100.000"))
    assert est.clock_hz.value == 2.1e9 and "current" in est.clock_hz.source
    assert est.tflops == pytest.approx(2 * 2.1e9 * 64 / 1e12)
    # an unparseable sysfs value falls back the same way
    assert estimate_cpu_peak("float32", facts(max_khz="garbage", mhz="2100.000")).clock_hz.value == 2.1e9


def test_arm_unknown_machine_and_other_dtypes_give_none_with_reason() -> None:
    est = estimate_cpu_peak("float32", facts("fp asimd sve", machine="aarch64"))
    assert est.tflops is None and "aarch64" in est.source
    est = estimate_cpu_peak("float32", facts(machine="riscv64"))
    assert est.tflops is None and "riscv64" in est.source
    est = estimate_cpu_peak("int8 weights (s8, per-tensor), dynamic int8 activations (u8)", facts())
    assert est.tflops is None and "int8" in est.source
    unreadable = CpuFacts("x86_64", None, "3100000", 2, frozenset({0, 1}))
    assert estimate_cpu_peak("float32", unreadable).tflops is None


def test_cores_capped_by_affinity_and_physical_cores() -> None:
    # 4 torch threads on 2 cores with 2 hyperthreads each: the hyperthreads share FMA units
    est = estimate_cpu_peak("float32", facts(threads=4, cores=2, threads_per_core=2, affinity=frozenset(range(4))))
    assert est.cores.value == 2 and "physical cores in the affinity mask" in est.cores.source
    # only CPUs 0 and 1 allowed, out of 4 physical cores: 2
    est = estimate_cpu_peak("float32", facts(threads=4, cores=4, affinity=frozenset({0, 1})))
    assert est.cores.value == 2 and "torch uses 4 threads" in est.cores.source
    # fewer torch threads than cores: the threads count
    est = estimate_cpu_peak("float32", facts(threads=1, cores=4, affinity=frozenset(range(4))))
    assert (est.cores.value, est.cores.source) == (1, "torch threads")
    assert est.tflops == pytest.approx(1 * 3.1e9 * 64 / 1e12)


def test_scenario_peak_wins_then_estimate_for_cpu() -> None:
    assert peak_for(12.5, "cpu", "float32", cpu_facts=facts()) == (12.5, "scenario file (hardware.peak_tflops)")
    peak, source = peak_for(None, "cpu", "float32", cpu_facts=facts())
    assert peak == pytest.approx(0.3968) and source.startswith("estimate: 2 cores")
    peak, source = peak_for(None, "cpu", "float32", cpu_facts=facts(max_khz=None, mhz=None))
    assert peak is None and source.startswith("peak unknown")


def test_read_cpu_facts_from_files(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(cpuinfo(ZEN3))
    (tmp_path / "max").write_text("3500000\n")
    read = read_cpu_facts(tmp_path / "cpuinfo", tmp_path / "max")
    assert read.max_freq_text == "3500000\n" and "avx2" in (read.cpuinfo_text or "") and read.torch_threads >= 1
    missing = read_cpu_facts(tmp_path / "nope", tmp_path / "nope")
    assert missing.cpuinfo_text is None and missing.max_freq_text is None
