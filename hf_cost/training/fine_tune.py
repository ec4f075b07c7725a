"""fine_tune's training session: the `from` checkpoint with a classification head for the
training data's labels, trained `runs` times to the quality target (training/session.py),
its FLOPs per sample measured on one batch, the kept model saved, the result typed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_cost.config.building import FineTuneScenario
from hf_cost.core.build_metrics import TrainingMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.training.loop import TrainData
from hf_cost.training.result import training_metrics, training_result
from hf_cost.training.session import (
    TrainingContext,
    prepare_training,
    save_kept,
    train_runs,
)


def fine_tune(step: FineTuneScenario, ctx: TrainingContext) -> tuple[ScenarioResult, Path | None]:
    """Train, save and score; the saved checkpoint's staged path (None on non-main processes)."""
    setup = prepare_training(step, ctx)
    train, evalset = setup.train, setup.evalset
    make_model = model_factory(ctx, train.label_names)
    flops = training_flops(make_model, setup.data, step.batch_size)
    ctx.progress.say(
        f"[{step.name}] fine-tuning on {len(train)} samples ({train.description}), "
        f"evaluating on {len(evalset)} ({evalset.description}); {setup.accelerator.num_processes} "
        f"process(es), mixed precision {setup.precision}, "
        f"target {step.target.metric} >= {step.target.value}"
    )
    runs = train_runs(step, ctx, setup, make_model)
    saved = save_kept(runs, step.name or step.kind, ctx, setup)
    metrics = training_metrics(TrainingMetrics, setup, runs, saved, flops)
    return training_result(step, setup, runs, metrics), saved.path


def model_factory(ctx: TrainingContext, labels: list[str]) -> Any:
    """A fresh model from the `from` checkpoint with a head for ``labels``, per call."""
    from transformers import AutoModelForSequenceClassification

    def make() -> Any:
        return AutoModelForSequenceClassification.from_pretrained(
            ctx.checkpoint.reference,
            **ctx.checkpoint.pretrained_kwargs(),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={n: i for i, n in enumerate(labels)},
            attn_implementation=ctx.spec.attn_implementation,
            ignore_mismatched_sizes=True,  # a fresh head when the checkpoint's does not fit
        )

    return make


def training_flops(make_model: Any, data: TrainData, batch_size: int) -> dict[str, float]:
    """Per sample, on one batch: the measured training step, the forward, and 3 x forward."""
    from hf_cost.measure.flops import count_forward_flops, count_train_step_flops

    model = make_model()
    model.train()
    n = min(batch_size, int(data.labels.shape[0]))
    batch = {k: v[:n] for k, v in data.tensors.items()}
    forward = count_forward_flops(model, batch).total / n
    step = count_train_step_flops(model, {**batch, "labels": data.labels[:n]}).total / n
    del model
    return {"train_per_sample": step, "forward_per_sample": forward, "three_x_forward_per_sample": 3 * forward}
