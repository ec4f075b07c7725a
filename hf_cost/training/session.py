"""A training session: what every step that trains (fine_tune, distill) does around the loop.

The context of one building step (`training_context`), the accelerator and tokenised data
(`prepare_training`), the seeded runs with their peak memory (`train_runs`) and saving the
kept model into the run's staging directory (`save_kept`). The result is assembled by
training/result.py; fine_tune's whole session is training/fine_tune.py, and distill composes
the same functions with its teacher (training/teacher.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_cost.config.building import TrainingStep
from hf_cost.config.schema import ModelSpec
from hf_cost.core.readings import MemoryReading
from hf_cost.models.resolve import ResolvedCheckpoint
from hf_cost.progress import Progress
from hf_cost.training.loop import LossHook, RunRecord, TrainData


@dataclass
class TrainingContext:
    spec: ModelSpec
    checkpoint: ResolvedCheckpoint  # of the `from` candidate
    sequence_length: int
    checkpoints_dir: Path | None  # in the run's staging directory; None on non-main processes
    baseline_rss_bytes: int
    progress: Progress
    where: str = "scenarios"
    final_path: Any = None  # staged path -> where it will be after the run (RunOutput.final_path)


@dataclass
class TrainingSetup:
    """What every run of a training step shares: the accelerator and data."""

    accelerator: Any
    device: str
    precision: str
    seq: int
    train: Any  # data.labelled.LabelledSet
    evalset: Any
    data: TrainData


@dataclass
class TrainingRuns:
    """The runs of one step: their records, and the model kept (first converged run, else the last)."""

    records: list[RunRecord]
    model: Any
    kept_run: int


@dataclass
class Saved:
    """Where the kept model went: ``path`` in staging (None on non-main processes) and
    ``saved_as``, the path results.json names (where it will be after the run)."""

    path: Path | None
    saved_as: str | None


def training_context(step: TrainingStep, build: Any) -> TrainingContext:
    """The context of ``step`` from its building context (steps.base.BuildContext)."""
    from hf_cost.measure.memory import current_rss_bytes

    store, output = build.store, build.output
    return TrainingContext(
        spec=store.spec,
        checkpoint=store.checkpoint_of(step.source),
        sequence_length=store.suite.inputs.sequence_length,
        checkpoints_dir=output.path_in_stage("checkpoints") if output else None,
        final_path=output.final_path if output else None,
        baseline_rss_bytes=current_rss_bytes(),
        progress=build.progress,
        where=build.where,
    )


def mixed_precision_for(step: TrainingStep, device: str) -> str:
    if step.mixed_precision != "auto":
        return step.mixed_precision
    if not device.startswith("cuda"):
        return "no"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def prepare_training(step: TrainingStep, ctx: TrainingContext, label_names: list[str] | None = None) -> TrainingSetup:
    """The accelerator and the tokenised train/eval sets; labels from the data unless given."""
    import torch
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from hf_cost.data.labelled import load_labelled
    from hf_cost.data.performance_set import PerformanceSet
    from hf_cost.models.load import pick_device

    device = pick_device(ctx.spec.device)
    precision = mixed_precision_for(step, device)
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision=precision)
    seq = step.sequence_length or ctx.sequence_length
    train = load_labelled(step.train, f"{ctx.where}.train", label_names)
    evalset = load_labelled(step.eval, f"{ctx.where}.eval", train.label_names)
    tokenizer = AutoTokenizer.from_pretrained(ctx.checkpoint.reference, **ctx.checkpoint.pretrained_kwargs())
    eval_tensors = {k: v.to(accelerator.device) for k, v in evalset.tokenize(tokenizer, seq).items()}
    data = TrainData(
        tensors=train.tokenize(tokenizer, seq),
        labels=torch.tensor(train.labels, dtype=torch.long),
        eval_set=PerformanceSet(eval_tensors, evalset.description, step.eval.seed, seq),
        eval_labels=evalset.labels,
        tokenizer=tokenizer,
    )
    return TrainingSetup(accelerator, device, precision, seq, train, evalset, data)


def train_runs(
    step: TrainingStep, ctx: TrainingContext, setup: TrainingSetup, make_model: Any, loss_fn: LossHook | None = None,
    to_budget: bool = False,
) -> TrainingRuns:
    """`runs` runs with seeds seed, seed+1, ...; the model of the first converged run (else the last).
    ``to_budget``: every run trains on to its budget after meeting the target (train_once)."""
    import torch

    from hf_cost.measure.memory import track_peak_memory
    from hf_cost.training.loop import train_once

    records, keep_model, kept_run = [], None, 0
    for i in range(step.runs):
        seed = step.seed + i
        ctx.progress.say(f"[{step.name}] run {i + 1}/{step.runs} (seed {seed})")
        cuda = torch.device(setup.device) if setup.device.startswith("cuda") else None
        with track_peak_memory(ctx.baseline_rss_bytes, cuda) as mem:
            record, model = train_once(step, setup.accelerator, make_model, setup.data, seed, ctx.progress, loss_fn,
                                       to_budget)
        record.memory = MemoryReading(**mem.to_dict())
        records.append(record)
        if keep_model is None and (record.converged or i == step.runs - 1):
            keep_model, kept_run = model, i
    return TrainingRuns(records, keep_model, kept_run)


def save_kept(runs: TrainingRuns, name: str, ctx: TrainingContext, setup: TrainingSetup) -> Saved:
    """Save the kept model and its tokenizer into the run's staging directory (a fresh folder:
    nothing is replaced). Every process waits here; only the main one writes.

    ``name`` is a validated identifier; the path is checked to stay inside staging,
    and the whole staging directory is removed if the run does not complete.
    """
    from hf_cost.output import inside

    accelerator = setup.accelerator
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process or ctx.checkpoints_dir is None:
        return Saved(None, None)
    target = ctx.checkpoints_dir / name
    inside(ctx.checkpoints_dir.parent, target)
    target.mkdir(parents=True, exist_ok=False)
    runs.model.save_pretrained(target)
    setup.data.tokenizer.save_pretrained(target)
    return Saved(target, str(ctx.final_path(target) if ctx.final_path else target))
