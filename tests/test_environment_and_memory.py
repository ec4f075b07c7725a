"""Hub reachability, multi-process detection, environment capture and per-scenario memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hf_cost.distributed import requested_cpu_processes
from hf_cost.measure.memory import current_rss_bytes, track_peak_memory

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_unreachable_hub_switches_every_hf_library_offline() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env["HF_ENDPOINT"] = "https://hub.invalid"  # .invalid never resolves
    env["PYTHONPATH"] = str(REPO_ROOT)
    code = (
        "import os; from hf_cost.hub_access import configure_hub_access as c; "
        "print(c(), *(os.environ.get(v) for v in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE', "
        "'HF_EVALUATE_OFFLINE')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["True", "1", "1", "1"]
    assert "running offline" in out.stderr


def test_a_users_offline_setting_is_honoured_without_probing() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "https://hub.invalid"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    code = "from hf_cost.hub_access import configure_hub_access as c; print(c())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False" and out.stderr == ""


@pytest.mark.parametrize(
    "cmdline, expected",
    [
        (["accelerate", "launch", "--num_processes", "2", "--cpu", "-m", "hf_cost"], 2),
        (["accelerate", "launch", "--num-processes=3", "--cpu", "-m", "hf_cost"], 3),
        (["accelerate", "launch", "--cpu", "-m", "hf_cost"], None),
    ],
)
def test_accelerate_cpu_launch_is_recognised(monkeypatch, cmdline, expected) -> None:
    import psutil

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    parent = SimpleNamespace(cmdline=lambda: cmdline)
    monkeypatch.setattr(psutil, "Process", lambda *a: SimpleNamespace(parent=lambda: parent))
    assert requested_cpu_processes() == expected


def test_no_relaunch_inside_a_distributed_process(monkeypatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert requested_cpu_processes() is None


def test_environment_names_libraries_hardware_and_code_version() -> None:
    from hf_cost.measure.environment import collect_environment

    env = collect_environment()
    assert env["libraries"]["torch"] and env["libraries"]["transformers"]
    assert env["cpu"]["logical_cores"] >= 1 and env["cpu"]["torch_threads"] >= 1
    assert env["hf_cost_version"]
    commit = env["git_commit"]
    assert commit is None or len(commit.removesuffix("-dirty")) == 40


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux-only peak reset")
def test_peak_memory_is_isolated_per_scenario() -> None:
    """A big allocation in one scenario must not show up as the next scenario's peak."""
    import numpy as np

    baseline = current_rss_bytes()
    with track_peak_memory(baseline) as big:
        block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
        del block
    with track_peak_memory(current_rss_bytes()) as small:
        np.ones(1024).sum()
    assert "VmHWM reset" in big.method
    assert big.peak_rss_delta_mib > 250
    assert small.peak_rss_delta_mib < 50
