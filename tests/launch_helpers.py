"""Real multi-process runs: `accelerate launch --num_processes N --cpu -m hf_cost run`, offline,
on a free port, and a tiny classifier to start them from."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def launch_run(scenario: Path, out: Path, processes: int = 2, timeout_s: int = 300) -> subprocess.CompletedProcess:
    """`accelerate launch --num_processes N --cpu -m hf_cost run SCENARIO --output OUT --quiet`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes), "--cpu",
           "--main_process_port", str(port), "-m", "hf_cost", "run", str(scenario), "--output", str(out), "--quiet"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(cmd, check=False, cwd=scenario.parent, env=env, capture_output=True, text=True,
                          timeout=timeout_s)


def launch_failure(proc: subprocess.CompletedProcess) -> str:
    """The tails of a launch's output, for an assertion message."""
    return proc.stdout[-3000:] + proc.stderr[-3000:]


def tiny_classifier(bare_dir: Path, target: Path) -> Path:
    """``bare_dir``'s encoder and tokenizer with a fresh neg/pos classification head, saved in ``target``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        bare_dir, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1},
    )
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(bare_dir).save_pretrained(target)
    return target
