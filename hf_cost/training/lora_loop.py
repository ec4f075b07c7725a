"""One LoRA training run, timed MLPerf-Training style, with quality by generation.

The clock runs from the first training step to the stop (target reached or budget spent),
evaluation included, as in training/loop.py. Only the adapter's parameters are given to AdamW
(linear schedule with warmup). One process: the step runs on the main process only.

Each evaluation answers every `eval` prompt greedily through the same path as the accuracy kind
(quality/lm_answers.generate_answers on a GenerativeCandidate), parses each answer to a label
(quality/answers.AnswerParser: the first label named as a whole word, case ignored) and scores the
target metric with an unparseable answer as a class of its own that is never right.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from hf_cost.interrupts import raise_if_interrupted
from hf_cost.measure.timing import clock
from hf_cost.progress import Progress
from hf_cost.training.loop import RunRecord, quality_of
from hf_cost.training.lora_data import IGNORE, LoraExamples


@dataclass
class Evaluation:
    """One evaluation: the target metric and the share of answers that named no label."""

    value: float
    unparseable_share: float
    answers: list[str]
    parsed: list[str | None]


@dataclass
class LoraRunRecord(RunRecord):
    answer_tokens: int = 0  # tokens the loss was on (answer + EOS)
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # step, t_s, value, unparseable_share, eval_s
    final: Evaluation | None = None  # of the model as it stands at the last step


def evaluator(eval_texts: list[str], eval_labels: list[int], label_names: list[str], metric: str,
              generation: Any, batch_size: int, tokenizer: Any) -> Callable[[Any], Evaluation]:
    """A function scoring a model (a PeftModel) on the eval prompts, greedy."""
    from hf_cost.models.lm_candidate import GenerativeCandidate
    from hf_cost.quality.answers import AnswerParser
    from hf_cost.quality.lm_answers import generate_answers

    parser = AnswerParser(label_names)
    greedy = generation.model_copy(update={"do_sample": False})

    def evaluate(model: Any) -> Evaluation:
        was_training = model.training
        model.eval()
        cand = GenerativeCandidate("lora-eval", model, tokenizer, greedy)
        answers, _, _ = generate_answers(cand, eval_texts, greedy, batch_size)
        parsed = [parser.parse(a) for a in answers]
        preds = [len(label_names) if p is None else label_names.index(p) for p in parsed]
        value = quality_of(preds, eval_labels, metric, len(label_names) + 1)
        model.train(was_training)
        return Evaluation(value, sum(p is None for p in parsed) / len(parsed), answers, parsed)

    return evaluate


def autocast_for(device: str, precision: str) -> Any:
    """torch.autocast for bf16/fp16 mixed precision; a no-op context for "no"."""
    import torch

    if precision == "no":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


def train_lora_once(step: Any, make_model: Callable[[], Any], data: LoraExamples, evaluate: Callable[[Any], Evaluation],
                    seed: int, device: str, precision: str, pad_id: int, progress: Progress) -> tuple[LoraRunRecord, Any]:
    """Train one adapter from ``make_model()``; its record and the model (eval mode)."""
    import torch
    from transformers import get_linear_schedule_with_warmup, set_seed

    set_seed(seed)
    model = make_model()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=step.learning_rate,
                                  weight_decay=step.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, step.warmup_steps, step.max_steps)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.startswith("cuda") else None
    order = torch.Generator().manual_seed(seed)
    n, size = len(data), min(step.batch_size, len(data))
    record = LoraRunRecord(seed=seed)

    def evaluated(at_stop: bool) -> Evaluation:
        t_eval = clock()
        result = evaluate(model)
        spent = clock() - t_eval
        if not at_stop:
            record.eval_s += spent
        record.final, record.final_quality = result, result.value
        record.evaluations.append({"step": record.steps, "t_s": clock() - start, "value": result.value,
                                   "unparseable_share": result.unparseable_share, "eval_s": spent,
                                   "after_stop": at_stop})
        return result

    start = clock()
    done = False
    while not done:
        perm = torch.randperm(n, generator=order).tolist()
        for first in range(0, n - size + 1, size):  # full batches only (drop_last)
            raise_if_interrupted()
            batch = data.batch(perm[first : first + size], pad_id, device)
            model.train()
            with autocast_for(device, precision):
                loss = model(**batch).loss
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            record.steps += 1
            record.samples += size
            record.tokens += int(batch["attention_mask"].sum())
            record.answer_tokens += int((batch["labels"] != IGNORE).sum())
            record.loss_curve.append([record.steps, clock() - start, float(loss.detach())])
            if record.steps % step.eval_every_steps == 0 or record.steps == step.max_steps:
                quality = evaluated(at_stop=False)
                record.quality_curve.append([record.steps, clock() - start, quality.value])
                progress.say(f"  seed {seed} step {record.steps}: loss {record.loss_curve[-1][2]:.4f}, "
                             f"{step.target.metric} {quality.value:.4f} (target {step.target.value}), "
                             f"unparseable {quality.unparseable_share:.0%}")
                if quality.value >= step.target.value:
                    record.converged, record.stop_reason, done = True, "target reached", True
                    break
            if record.steps >= step.max_steps:
                record.stop_reason, done = "max_steps reached", True
                break
            if step.max_time_s is not None and clock() - start >= step.max_time_s:
                record.stop_reason, done = "max_time_s reached", True
                break
    record.wall_s = clock() - start
    if record.converged:
        record.time_to_target_s = record.wall_s
    if not record.quality_curve or record.quality_curve[-1][0] != record.steps:
        # stopped by a budget between evaluations: score the model returned (and saved), untimed
        evaluated(at_stop=True)
        record.evaluated_after_stop = True
        progress.say(f"  seed {seed} stopped at step {record.steps} ({record.stop_reason}): "
                     f"{step.target.metric} {record.final_quality:.4f} on the final model")
    model.eval()
    return record, model
