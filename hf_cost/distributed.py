"""Multi-process CPU runs under `accelerate launch --cpu --num_processes N`.

Without MPI, accelerate's simple launcher starts ONE process for `--cpu`, whatever
N is (it only sets MASTER_ADDR/MASTER_PORT when N > 1). hf_cost notices that case
and re-launches itself with `torch.distributed.run --nproc_per_node N`, so the N
processes it was asked for train together over gloo. `accelerate launch --multi_gpu
--num_processes N` and `torchrun --nproc_per_node N -m hf_cost ...` also work on a CPU.

Only the main process keeps results and staged files; `from_main` hands the others what it
decided (after each building step: the candidate's checkpoint, or why it was not built).
"""

from __future__ import annotations

import os
import sys

# How long the other processes wait for the main one at `from_main`: it may build alone (prune,
# an ONNX export) for longer than the 30 minutes a collective waits by default.
MAIN_PROCESS_WAIT_S = 24 * 3600

_main_group: list = []  # the gloo group of `from_main`, made once per process


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def process_count() -> int:
    """How many processes this run has (WORLD_SIZE, set by torchrun and `accelerate launch`)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def from_main(value: object, *, cpu: bool) -> object:
    """``value`` as the main process passed it, on every process (each one calls this at the
    same point; what non-main processes pass is ignored); ``value`` itself in a single-process run.

    The process group is started as training would start it (accelerate's PartialState, on
    the CPU when ``cpu`` or ACCELERATE_USE_CPU), so a later Accelerator takes it over; the value
    travels over a gloo group of its own, which waits MAIN_PROCESS_WAIT_S for the main process.
    """
    if process_count() == 1:
        return value
    from datetime import timedelta

    import torch.distributed as dist

    if not dist.is_initialized():
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        PartialState(cpu=cpu or parse_flag_from_env("ACCELERATE_USE_CPU"))
    if not _main_group:
        _main_group.append(dist.new_group(backend="gloo", timeout=timedelta(seconds=MAIN_PROCESS_WAIT_S)))
    box = [value]
    dist.broadcast_object_list(box, src=0, group=_main_group[0])
    return box[0]


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
