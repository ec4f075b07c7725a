"""Multi-process CPU runs under `accelerate launch --cpu --num_processes N`.

Without MPI, accelerate's simple launcher starts ONE process for `--cpu`, whatever
N is (it only sets MASTER_ADDR/MASTER_PORT when N > 1). hf_cost notices that case
and re-launches itself with `torch.distributed.run --nproc_per_node N`, so the N
processes it was asked for train together over gloo. `accelerate launch --multi_gpu
--num_processes N` and `torchrun --nproc_per_node N -m hf_cost ...` also work on a CPU.
"""

from __future__ import annotations

import os
import sys


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def requested_cpu_processes() -> int | None:
    """N from `accelerate launch --cpu --num_processes N` that started a single process."""
    if os.environ.get("RANK") is not None or "MASTER_ADDR" not in os.environ:
        return None
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() not in {"true", "1"}:
        return None
    try:
        import psutil

        args = psutil.Process().parent().cmdline()
    except Exception:  # noqa: BLE001 - no parent to read: nothing to fix up
        return None
    for i, arg in enumerate(args):
        for flag in ("--num_processes", "--num-processes"):
            if arg == flag and i + 1 < len(args) and args[i + 1].isdigit():
                return int(args[i + 1])
            if arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
                return int(value) if value.isdigit() else None
    return None


def relaunch_with_torchrun(processes: int, argv: list[str]) -> None:
    """Replace this process with `torch.distributed.run` starting ``processes`` copies."""
    print(
        f"accelerate launch --cpu started one process without MPI; re-launching "
        f"{processes} processes with torch.distributed.run (gloo)",
        file=sys.stderr,
        flush=True,
    )
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        f"--nproc_per_node={processes}",
        f"--master_addr={os.environ.get('MASTER_ADDR', '127.0.0.1')}",
        f"--master_port={os.environ.get('MASTER_PORT', '29500')}",
        "-m", "hf_cost", *argv,
    ]
    sys.stdout.flush()
    os.execv(sys.executable, cmd)
