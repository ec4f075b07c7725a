"""One fine-tuning run through Accelerate, timed MLPerf-Training style.

The clock runs from the first training step to the stop (target reached or budget
spent), evaluation included. Evaluation happens on the main process through the
same `predict` path as accuracy mode; its result is broadcast so every process
stops at the same step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hf_cost.config.schema import FineTuneScenario
from hf_cost.core.readings import MemoryReading
from hf_cost.data.performance_set import PerformanceSet
from hf_cost.interrupts import raise_if_interrupted
from hf_cost.measure.timing import clock
from hf_cost.models.torch_candidate import TorchCandidate
from hf_cost.progress import Progress
from hf_cost.quality.predict import predict

# (model, inputs, labels) -> the scalar loss to back-propagate
LossHook = Callable[[Any, dict[str, Any], Any], Any]


@dataclass
class TrainData:
    tensors: dict[str, Any]  # tokenised training inputs (CPU), first dimension = samples
    labels: Any  # LongTensor
    eval_set: PerformanceSet  # tokenised evaluation inputs on the main process's device
    eval_labels: list[int]
    tokenizer: Any


@dataclass
class RunRecord:
    seed: int
    converged: bool = False
    stop_reason: str = ""
    time_to_target_s: float | None = None
    target_step: int | None = None  # the step of the first evaluation that met the target
    wall_s: float = 0.0
    eval_s: float = 0.0
    steps: int = 0
    samples: int = 0
    tokens: int = 0
    final_quality: float | None = None  # of the model as it stands at the last step
    evaluated_after_stop: bool = False  # the last step was not an evaluation step
    loss_curve: list[list[float]] = field(default_factory=list)  # [step, t_s, loss]
    quality_curve: list[list[float]] = field(default_factory=list)  # [step, t_s, value]
    memory: MemoryReading | None = None  # filled by session.train_runs

    @property
    def train_s(self) -> float:
        return self.wall_s - self.eval_s


def quality_of(preds: list[int], refs: list[int], metric: str, num_labels: int) -> float:
    """Accuracy or macro-F1 without bootstrap (the per-evaluation stopping check)."""
    import numpy as np

    from hf_cost.quality.scoring import confusion_matrices, metrics_from_confusion

    codes = np.asarray(refs) * num_labels + np.asarray(preds)
    values = metrics_from_confusion(confusion_matrices(codes, num_labels))
    return float(values[metric])


def train_once(
    scenario: FineTuneScenario,
    accelerator: Any,
    make_model: Callable[[], Any],
    data: TrainData,
    seed: int,
    progress: Progress,
    loss_fn: LossHook | None = None,
    to_budget: bool = False,
) -> tuple[RunRecord, Any]:
    """Train one model from ``make_model()``; return its record and the unwrapped model.

    The loss is the model's own (``model(**inputs, labels=labels).loss``) unless ``loss_fn``
    is given: then ``loss_fn(model, inputs, labels)`` (distillation runs its teacher there).
    ``to_budget``: keep training after the target is met, until max_steps / max_time_s; the
    time to target is then the clock at the first evaluation that met it.
    """
    import torch
    from accelerate.utils import broadcast_object_list, set_seed
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import get_linear_schedule_with_warmup

    set_seed(seed)
    model = make_model()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=scenario.learning_rate, weight_decay=scenario.weight_decay
    )
    schedule = get_linear_schedule_with_warmup(optimizer, scenario.warmup_steps, scenario.max_steps)
    keys = sorted(data.tensors)
    dataset = TensorDataset(*(data.tensors[k] for k in keys), data.labels)
    loader = DataLoader(
        dataset, batch_size=scenario.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        drop_last=len(dataset) >= scenario.batch_size * accelerator.num_processes,
    )
    model, optimizer, loader, schedule = accelerator.prepare(model, optimizer, loader, schedule)
    num_labels = int(accelerator.unwrap_model(model).config.num_labels)
    record = RunRecord(seed=seed)
    local_samples = local_tokens = 0

    def evaluate() -> float:
        value = None
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            unwrapped.eval()
            cand = TorchCandidate("fine-tune-eval", unwrapped, data.tokenizer)
            value = quality_of(predict(cand, data.eval_set, scenario.eval_batch_size), data.eval_labels, scenario.target.metric, num_labels)
        return broadcast_object_list([value])[0] if accelerator.num_processes > 1 else value

    def agree(flag: bool) -> bool:
        if accelerator.num_processes == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
        return bool(accelerator.reduce(t, reduction="sum").item() > 0)

    start = clock()
    done = False
    while not done:
        for batch in loader:
            raise_if_interrupted()
            model.train()
            inputs = dict(zip(keys, batch[:-1]))
            if loss_fn is None:
                loss = model(**inputs, labels=batch[-1]).loss
            else:
                loss = loss_fn(model, inputs, batch[-1])
            accelerator.backward(loss)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            record.steps += 1
            local_samples += int(batch[-1].shape[0])
            local_tokens += int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else inputs["input_ids"].numel()
            now = clock() - start
            record.loss_curve.append([record.steps, now, float(loss.detach())])
            if record.steps % scenario.eval_every_steps == 0 or record.steps == scenario.max_steps:
                t_eval = clock()
                quality = evaluate()
                record.eval_s += clock() - t_eval
                record.final_quality = quality
                record.quality_curve.append([record.steps, clock() - start, quality])
                progress.say(
                    f"  seed {seed} step {record.steps}: loss {record.loss_curve[-1][2]:.4f}, "
                    f"{scenario.target.metric} {quality:.4f} (target {scenario.target.value})"
                )
                if quality >= scenario.target.value and not record.converged:
                    record.converged, record.time_to_target_s = True, clock() - start
                    record.target_step = record.steps
                    if not to_budget:
                        record.stop_reason, done = "target reached", True
                        break
            if record.steps >= scenario.max_steps:
                record.stop_reason, done = "max_steps reached", True
                break
            over_time = scenario.max_time_s is not None and clock() - start >= scenario.max_time_s
            if agree(over_time):
                record.stop_reason, done = "max_time_s reached", True
                break
    record.wall_s = clock() - start
    if record.converged and not to_budget:
        record.time_to_target_s = record.wall_s
    elif record.converged:
        record.stop_reason = (f"target reached at step {record.target_step}, "
                              f"trained on to the budget ({record.stop_reason})")
    if not record.quality_curve or record.quality_curve[-1][0] != record.steps:
        # Stopped by a budget between evaluations: score the model that is returned (and
        # saved), not the last evaluated one. Outside the timed interval.
        record.final_quality = evaluate()
        record.evaluated_after_stop = True
        progress.say(
            f"  seed {seed} stopped at step {record.steps} ({record.stop_reason}): "
            f"{scenario.target.metric} {record.final_quality:.4f} on the final model"
        )
    totals = torch.tensor([local_samples, local_tokens], dtype=torch.float64, device=accelerator.device)
    if accelerator.num_processes > 1:
        totals = accelerator.reduce(totals, reduction="sum")
    record.samples, record.tokens = int(totals[0].item()), int(totals[1].item())
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.eval()
    accelerator.free_memory()
    return record, unwrapped
