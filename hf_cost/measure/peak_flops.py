"""Peak TFLOP/s for MFU (a GPU's datasheet figure, the CPU's estimate, or the scenario's) and
MFU itself. The FLOPs MFU divides come from measure/flops.py."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["known_peak_tflops", "mfu", "peak_for"]


# Dense (no structured sparsity) peak TFLOP/s at boost clock, from NVIDIA datasheets:
# H100/H200: "NVIDIA H100 Tensor Core GPU" and "NVIDIA H200 Tensor Core GPU" datasheets
# (their tensor figures are "with sparsity"; the dense figure is half), A100: "NVIDIA
# A100 Tensor Core GPU" datasheet, L4: "NVIDIA L4 Tensor Core GPU" datasheet, T4:
# "NVIDIA T4 Tensor Core GPU" datasheet, V100: "NVIDIA V100 Tensor Core GPU" datasheet.
# A10G is an AWS-only part with no public NVIDIA datasheet; its figures are the ones
# AWS quotes for G5 instances (FP32 31.52, tensor FP16/BF16 70).
# "float32" is the plain (non-tensor-core) FP32 rate, not TF32: PyTorch runs float32
# matmuls without TF32 unless torch.backends.cuda.matmul.allow_tf32 is set.
# "float16"/"bfloat16" are dense tensor-core rates; T4 and V100 have no BF16 support.
# Patterns are tried in order (more specific first) against torch.cuda.get_device_name().
_PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"H100 PCIe", {"float32": 51.0, "float16": 756.5, "bfloat16": 756.5}),
    (r"H100 NVL", {"float32": 60.0, "float16": 835.5, "bfloat16": 835.5}),
    (r"H100", {"float32": 67.0, "float16": 989.5, "bfloat16": 989.5}),  # SXM5
    (r"H200 NVL", {"float32": 60.0, "float16": 835.5, "bfloat16": 835.5}),
    (r"H200", {"float32": 67.0, "float16": 989.5, "bfloat16": 989.5}),  # SXM
    (r"A100", {"float32": 19.5, "float16": 312.0, "bfloat16": 312.0}),  # SXM and PCIe
    (r"A10G", {"float32": 31.52, "float16": 70.0, "bfloat16": 70.0}),
    (r"L4", {"float32": 30.3, "float16": 121.0, "bfloat16": 121.0}),
    (r"T4", {"float32": 8.1, "float16": 65.0}),
    (r"V100S", {"float32": 16.4, "float16": 130.0}),
    (r"V100-PCIE", {"float32": 14.0, "float16": 112.0}),
    (r"V100", {"float32": 15.7, "float16": 125.0}),  # SXM2
)
_DTYPES = ("float32", "float16", "bfloat16")


def known_peak_tflops(device_name: str, dtype: str) -> float | None:
    """Dense peak TFLOP/s of a known NVIDIA GPU for ``dtype``, or None when unknown.

    ``device_name`` is what ``torch.cuda.get_device_name()`` returns (for example
    ``"NVIDIA H100 80GB HBM3"``); a table entry matches as a whole word, so "L4" does
    not match "L40S" nor "A100" match "A10G". ``dtype`` is "float32", "float16" or
    "bfloat16" (a "torch." prefix is accepted). CPUs, unlisted GPUs and dtypes a GPU
    lacks (BF16 on T4/V100) return None. Raises ValueError for any other dtype.
    """
    key = dtype.removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}; got {dtype!r}")
    for pattern, peaks in _PEAK_TFLOPS:
        if re.search(rf"(?<![A-Za-z0-9]){pattern}(?![A-Za-z0-9])", device_name, re.IGNORECASE):
            return peaks.get(key)
    return None


def mfu(achieved_flops_per_s: float, peak_tflops: float | None) -> float | None:
    """Model FLOPs utilisation: achieved model FLOP/s divided by peak FLOP/s.

    ``MFU = achieved_flops_per_s / (peak_tflops * 1e12)``, as defined in the PaLM
    paper (Chowdhery et al., 2022, appendix B): the FLOPs the model needs per step
    (here the matmul FLOPs counted above) times steps per second, over the hardware's
    theoretical peak. Returns None when the peak is unknown.
    """
    if peak_tflops is None:
        return None
    if peak_tflops <= 0:
        raise ValueError(f"peak_tflops must be positive, got {peak_tflops}")
    return achieved_flops_per_s / (peak_tflops * 1e12)


def peak_for(
    scenario_peak: float | None, device: str, dtype: str, *, cpu_facts: Any = None
) -> tuple[float | None, str]:
    """The peak TFLOP/s for MFU and where it came from.

    In order: the scenario file's ``hardware.peak_tflops``; for a CUDA device, the datasheet
    table above; for the CPU, ``cpu_peak.estimate_cpu_peak`` (cores × clock × FLOPs per cycle,
    labelled as an estimate, or "peak unknown: ..." with the reason). ``cpu_facts`` (a
    ``cpu_peak.CpuFacts``) replaces this machine's /proc/cpuinfo, sysfs and thread count.
    """
    if scenario_peak is not None:
        return scenario_peak, "scenario file (hardware.peak_tflops)"
    if device.startswith("cuda") and dtype in _DTYPES:
        import torch

        name = torch.cuda.get_device_name(device)
        peak = known_peak_tflops(name, dtype)
        if peak is not None:
            return peak, f"datasheet dense peak for {name} at {dtype}"
    if device == "cpu" or device.startswith("cpu:"):
        from hf_cost.measure.cpu_peak import estimate_cpu_peak

        estimate = estimate_cpu_peak(dtype, cpu_facts)
        return estimate.tflops, estimate.source
    return None, "peak unknown"
