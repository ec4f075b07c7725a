"""The driver: scenario file -> model -> candidate -> runners -> RunResult -> writers.

`prepare` is everything `validate` does (no weights loaded); `run_suite` continues
from there. Steps are small functions so later stages (variants, fine-tuning)
slot in without copying the driver.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hf_cost.config.schema import Suite, load_suite
from hf_cost.errors import ConfigError, UserError
from hf_cost.models.resolve import ResolvedCheckpoint, resolve_checkpoint
from hf_cost.progress import Progress


@dataclass
class Prepared:
    path: Path
    suite: Suite
    checkpoint: ResolvedCheckpoint


def prepare(path: str | Path, progress: Progress | None = None) -> Prepared:
    """Validate the file and resolve the model's config; fail fast, load no weights."""
    progress = progress or Progress(enabled=False)
    path = Path(path)
    suite = load_suite(path)
    try:
        checkpoint = resolve_checkpoint(suite.model, log=progress.say)
    except UserError as exc:
        raise type(exc)(str(exc), where=str(path)) from None
    limit = getattr(checkpoint.config, "max_position_embeddings", None)
    seq = suite.inputs.sequence_length
    if limit is not None and seq > limit:
        raise ConfigError(
            f"inputs.sequence_length: {seq} exceeds the model's maximum of {limit} "
            f"(max_position_embeddings)",
            where=str(path),
        )
    return Prepared(path=path, suite=suite, checkpoint=checkpoint)


def run_suite(prepared: Prepared, progress: Progress) -> Any:
    """Load, measure every scenario, and return the RunResult (nothing written)."""
    from hf_cost.data.performance_set import build_performance_set
    from hf_cost.measure.environment import collect_environment
    from hf_cost.measure.memory import current_rss_bytes
    from hf_cost.models.candidate import Candidate
    from hf_cost.models.load import load_model
    from hf_cost.report.schema import RunResult
    from hf_cost.runners import RUNNERS, RunContext

    suite = prepared.suite
    progress.say(f"loading {suite.model.display_name} ({prepared.checkpoint.source})")
    t0 = time.perf_counter()
    loaded = load_model(suite.model, prepared.checkpoint)
    load_time = time.perf_counter() - t0
    progress.say(
        f"loaded in {load_time:.1f} s: {loaded.info['parameters'] / 1e6:.1f}M parameters, "
        f"{loaded.info['dtype']} on {loaded.info['device']}"
    )
    candidate = Candidate("baseline", loaded)
    perf_set = build_performance_set(suite.inputs, loaded.tokenizer, loaded.device)
    flops = measure_flops(candidate, perf_set, prepared.checkpoint.config)
    peak, peak_source = peak_for(suite, loaded.info)
    ctx = RunContext(
        candidate=candidate,
        perf_set=perf_set,
        flops_per_sample=flops.measured_per_sample if flops else None,
        peak_tflops=peak,
        baseline_rss_bytes=current_rss_bytes(),
        progress=progress,
    )
    results = []
    for scenario in suite.scenarios:
        results.extend(RUNNERS[scenario.kind]().run(scenario, ctx))
    return RunResult(
        hf_cost_version=_version(),
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        scenario_file=str(prepared.path),
        suite=suite.model_dump(mode="json"),
        environment=collect_environment(),
        model=loaded.info,
        inputs=perf_set.describe(),
        flops=flops,
        peak_tflops=peak,
        peak_source=peak_source,
        load_time_s=load_time,
        baseline_rss_mib=ctx.baseline_rss_bytes / 2**20,
        scenarios=results,
    )


def measure_flops(candidate: Any, perf_set: Any, config: Any) -> Any:
    """FLOPs of one sample, measured and (for encoders) analytic, side by side."""
    import torch

    from hf_cost.measure.flops import analytic_encoder_flops, count_forward_flops
    from hf_cost.report.schema import FlopsInfo

    one = perf_set.batch(torch.zeros(1, dtype=torch.long, device=candidate.device))
    measured = count_forward_flops(candidate.model, one)
    model = candidate.model
    base = getattr(model, "base_model", model)
    try:
        analytic = analytic_encoder_flops(
            config,
            perf_set.sequence_length,
            1,
            with_pooler=getattr(base, "pooler", None) is not None,
            num_labels=model.config.num_labels if base is not model else None,
        )
    except ValueError:
        analytic = None
    rel = abs(measured.total - analytic) / analytic if analytic else None
    return FlopsInfo(
        sequence_length=perf_set.sequence_length,
        batch_size=1,
        measured_per_sample=measured.total,
        analytic_per_sample=analytic,
        relative_difference=rel,
        by_operator=measured.by_operator,
        method=(
            "torch.utils.flop_counter.FlopCounterMode over one forward (matmuls and attention, "
            "CPU SDPA mapped); analytic = L*(8SH^2 + 4S^2H + 4SHI) + pooler + head"
        ),
    )


def peak_for(suite: Suite, model_info: dict[str, Any]) -> tuple[float | None, str]:
    if suite.hardware.peak_tflops is not None:
        return suite.hardware.peak_tflops, "scenario file (hardware.peak_tflops)"
    if model_info["device"].startswith("cuda"):
        import torch

        from hf_cost.measure.flops import known_peak_tflops

        name = torch.cuda.get_device_name(model_info["device"])
        peak = known_peak_tflops(name, model_info["dtype"])
        if peak is not None:
            return peak, f"datasheet dense peak for {name} at {model_info['dtype']}"
    return None, "peak unknown"


def _version() -> str:
    import hf_cost

    return hf_cost.__version__
