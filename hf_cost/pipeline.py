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

from hf_cost.config.schema import FineTuneScenario, Suite, load_suite
from hf_cost.distributed import is_main_process
from hf_cost.errors import ConfigError, UserError
from hf_cost.models.resolve import ResolvedCheckpoint, resolve_checkpoint
from hf_cost.progress import Progress


@dataclass
class Prepared:
    path: Path
    suite: Suite
    checkpoint: ResolvedCheckpoint


def prepare(path: str | Path, progress: Progress | None = None) -> Prepared:
    """Validate the file, resolve the model's config, check inputs; load no weights."""
    from hf_cost.data.preflight import check_datasets
    from hf_cost.measure.memory_estimate import check_batch_sizes
    from hf_cost.models.checkpoint_files import check_checkpoint_files

    progress = progress or Progress(enabled=False)
    path = Path(path)
    suite = load_suite(path)
    checkpoint = _in_file(path, lambda: resolve_checkpoint(suite.model, log=progress.say))
    _in_file(path, lambda: check_checkpoint_files(checkpoint))
    _in_file(path, lambda: _check_sequence_lengths(suite, checkpoint.config))
    _in_file(path, lambda: check_batch_sizes(suite, checkpoint.config))
    _in_file(path, lambda: check_datasets(suite, checkpoint.config))
    return Prepared(path=path, suite=suite, checkpoint=checkpoint)


def _check_sequence_lengths(suite: Suite, config: Any) -> None:
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return
    lengths = [("inputs.sequence_length", suite.inputs.sequence_length)] + [
        (f"scenarios[{i}].sequence_length", sc.sequence_length)
        for i, sc in enumerate(suite.scenarios)
        if getattr(sc, "sequence_length", None) is not None
    ]
    for key, seq in lengths:
        if seq > limit:
            raise ConfigError(
                f"{seq} exceeds the model's maximum of {limit} (max_position_embeddings)", where=key
            )


def expected_entries(suite: Suite) -> list[str]:
    """The output entries a run of ``suite`` will write (checked for collisions up front)."""
    names = [f"checkpoints/{s.name}" for s in suite.scenarios if isinstance(s, FineTuneScenario)]
    return ["results.json", "report.md", *names]


def run_suite(prepared: Prepared, output: Any, progress: Progress) -> Any:
    """Run every scenario in order and return the RunResult (results files not written).

    ``output`` is the run's `RunOutput` (None on a non-main process): checkpoints are
    written into its staging directory and recorded under their final paths.

    Models are loaded when a scenario first needs them: the baseline, or a checkpoint
    an earlier fine_tune scenario saved. Under `accelerate launch` every process takes
    part in fine-tuning; the other scenarios run on the main process only, and only
    the main process gets a RunResult back (the others get None).
    """
    from hf_cost.measure.environment import collect_environment
    from hf_cost.measure.memory import current_rss_bytes
    from hf_cost.report.schema import RunResult
    from hf_cost.runners import RUNNERS
    from hf_cost.runners.fine_tune import FineTuneContext, FineTuneRunner

    from hf_cost.models.load import pick_device

    suite = prepared.suite
    _in_file(prepared.path, lambda: pick_device(suite.model.device))  # no GPU: fail before work
    main_process = is_main_process()
    if not main_process:
        progress = Progress(enabled=False)
    contexts: dict[str, Any] = {}  # candidate name -> RunContext
    saved: dict[str, Path] = {}  # fine_tune scenario name -> checkpoint directory
    results = []
    for i, scenario in enumerate(suite.scenarios):
        where = f"scenarios[{i}]"
        if isinstance(scenario, FineTuneScenario):
            ctx = FineTuneContext(
                spec=suite.model, checkpoint=prepared.checkpoint,
                sequence_length=suite.inputs.sequence_length,
                checkpoints_dir=output.path_in_stage("checkpoints") if output else None,
                final_path=output.final_path if output else None,
                baseline_rss_bytes=current_rss_bytes(),
                progress=progress, where=where,
            )
            result, path = _in_file(prepared.path, lambda: FineTuneRunner().run(scenario, ctx))
            if path is not None:
                saved[scenario.name or scenario.kind] = path
            results.append(result)
            continue
        if not main_process:
            continue
        name = scenario.checkpoint or "baseline"
        if name not in contexts:
            contexts[name] = _in_file(
                prepared.path, lambda: _context_for(prepared, name, saved.get(name), progress)
            )
            if name in saved:  # recorded where it will be after the run, not in staging
                contexts[name].info.model["path"] = str(output.final_path(saved[name]))
        run_ctx = contexts[name]
        run_ctx.where = where
        for r in _in_file(prepared.path, lambda: RUNNERS[scenario.kind]().run(scenario, run_ctx)):
            r.candidate = name
            results.append(r)
    if not main_process:
        return None
    first = next(iter(contexts.values()), None)
    return RunResult(
        hf_cost_version=_version(),
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        scenario_file=str(prepared.path),
        suite=suite.model_dump(mode="json"),
        environment=collect_environment(),
        model=_checkpoint_info(prepared),
        candidates={n: c.info for n, c in contexts.items()},
        inputs=first.perf_set.describe() if first else suite.inputs.model_dump(mode="json"),
        peak_tflops=first.peak_tflops if first else None,
        peak_source=first.peak_source if first else "peak unknown",
        scenarios=results,
    )


def _context_for(prepared: Prepared, name: str, path: Path | None, progress: Progress) -> Any:
    """Load a candidate and build what its runners need (performance set, FLOPs, peak)."""
    from hf_cost.data.performance_set import build_performance_set
    from hf_cost.measure.memory import current_rss_bytes
    from hf_cost.models.candidate import Candidate
    from hf_cost.models.load import load_model
    from hf_cost.models.resolve import resolve_checkpoint
    from hf_cost.report.schema import CandidateInfo
    from hf_cost.runners import RunContext

    suite = prepared.suite
    spec, checkpoint = suite.model, prepared.checkpoint
    if path is not None:  # a fine-tuned checkpoint saved by an earlier scenario
        spec = spec.model_copy(update={"id": None, "path": str(path), "task": "sequence-classification"})
        checkpoint = resolve_checkpoint(spec)
    progress.say(f"loading {name}: {spec.display_name} ({checkpoint.source})")
    t0 = time.perf_counter()
    loaded = load_model(spec, checkpoint)
    load_time = time.perf_counter() - t0
    progress.say(
        f"loaded in {load_time:.1f} s: {loaded.info['parameters'] / 1e6:.1f}M parameters, "
        f"{loaded.info['dtype']} on {loaded.info['device']}"
    )
    candidate = Candidate(name, loaded)
    perf_set = build_performance_set(suite.inputs, loaded.tokenizer, loaded.device)
    flops = measure_flops(candidate, perf_set, checkpoint.config)
    peak, peak_source = peak_for(suite, loaded.info)
    baseline = current_rss_bytes()
    return RunContext(
        candidate=candidate,
        perf_set=perf_set,
        flops_per_sample=flops.measured_per_sample if flops else None,
        peak_tflops=peak,
        baseline_rss_bytes=baseline,
        progress=progress,
        peak_source=peak_source,
        info=CandidateInfo(
            model=loaded.info, load_time_s=load_time, baseline_rss_mib=baseline / 2**20, flops=flops
        ),
    )


def _checkpoint_info(prepared: Prepared) -> dict[str, Any]:
    c = prepared.checkpoint
    return {
        "id": prepared.suite.model.id, "path": str(c.local_dir), "revision": c.revision,
        "commit": c.commit, "source": c.source, "task": prepared.suite.model.task,
        "architecture": getattr(c.config, "model_type", None),
    }


def _in_file(path: Path, fn: Any) -> Any:
    """Run ``fn``; a UserError raised inside gets the scenario file's name in front."""
    try:
        return fn()
    except UserError as exc:
        if exc.where and str(path) in exc.where:
            raise
        where = f"{path}: {exc.where}" if exc.where else str(path)
        message = str(exc).removeprefix(f"{exc.where}: ") if exc.where else str(exc)
        raise type(exc)(message, where=where) from None


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
