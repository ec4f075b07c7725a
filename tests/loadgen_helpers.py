"""A run whose candidate raises inside a LoadGen test, in a subprocess with a timeout (a hang
fails the test instead of blocking it). Shared by test_server.py and test_loadgen_engines.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HF_HOME, REPO_ROOT

# argv: scenario, output, N, message, method. Calls of the candidate's `method` (forward: an encoder's
# TorchCandidate.forward; generate: a causal LM's GenerativeCandidate.generate) are counted only while a
# LoadGen test runs (the count restarts with each test; warm-up's are outside any), and the N-th raises
# RuntimeError(message).
FAILING = """
import sys
import mlperf_loadgen
from hf_cost.models.lm_candidate import GenerativeCandidate
from hf_cost.models.torch_candidate import TorchCandidate

method = sys.argv[5]
owner = {"forward": TorchCandidate, "generate": GenerativeCandidate}[method]
forward, start_test, calls = getattr(owner, method), mlperf_loadgen.StartTestWithLogSettings, [None]
fail_at, message = int(sys.argv[3]), sys.argv[4]

def in_test(*args):
    calls[0] = 0
    try:
        return start_test(*args)
    finally:
        calls[0] = None

def failing(self, batch, *args, **kwargs):
    if calls[0] is not None:
        calls[0] += 1
        if calls[0] == fail_at:
            raise RuntimeError(message)
    return forward(self, batch, *args, **kwargs)

mlperf_loadgen.StartTestWithLogSettings = in_test
setattr(owner, method, failing)
from hf_cost.cli import main
sys.exit(main(["run", sys.argv[1], "--output", sys.argv[2], "--quiet"]))
"""


def run_with_failing_forward(scenario: Path, out: Path, fail_at: int, message: str,
                             timeout_s: float = 120, method: str = "forward") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(HF_HOME), HF_HUB_CACHE=str(HF_HOME / "hub"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    try:
        return subprocess.run([sys.executable, "-c", FAILING, str(scenario), str(out), str(fail_at), message,
                               method],
                              check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the run did not return within {timeout_s:g} s: LoadGen waited on queries that were never "
                    "completed")
