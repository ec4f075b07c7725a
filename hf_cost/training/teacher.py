"""The frozen teacher of a distillation: loading it, the student it makes, the loss hook that
runs it on every training batch, and the FLOPs of a training step that include its forward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hf_cost.training.loop import LossHook, TrainData
from hf_cost.training.session import TrainingContext


@dataclass(frozen=True)
class Alignment:
    """The intermediate-layer losses: their weights and the teacher layer each student layer imitates."""

    hidden_weight: float
    attention_weight: float
    layer_map: list[int]

    @property
    def active(self) -> bool:
        return self.hidden_weight > 0 or self.attention_weight > 0


def load_teacher(ctx: TrainingContext, device: Any, attn_implementation: str | None = None) -> Any:
    """The `from` checkpoint as a classifier on ``device``, in eval mode, without gradients;
    ``attn_implementation`` overrides the model spec's (eager, to output attention probabilities)."""
    from transformers import AutoModelForSequenceClassification

    teacher = AutoModelForSequenceClassification.from_pretrained(
        ctx.checkpoint.reference, **ctx.checkpoint.pretrained_kwargs(),
        attn_implementation=attn_implementation or ctx.spec.attn_implementation,
    )
    teacher.to(device).eval()
    teacher.requires_grad_(False)
    return teacher


def student_factory(teacher: Any, layers: list[int], **config_changes: Any) -> Any:
    """A fresh student from the teacher's ``layers`` (training/student.py), per call."""

    def make_student() -> Any:
        from hf_cost.training.student import build_student

        return build_student(teacher, layers, **config_changes)

    return make_student


def kd_hook(
    teacher: Any, alpha: float, temperature: float, accelerator: Any, alignment: Alignment | None = None
) -> LossHook:
    """The loss hook of train_once: the frozen teacher on the same batch (its hidden states and
    attentions too when ``alignment`` asks for them), then the KD loss plus the alignment terms.
    Rows labelled NO_LABEL (kd_loss.py) get no cross-entropy."""
    import torch

    from hf_cost.training.kd_loss import attention_kl, hidden_mse, kd_loss

    hidden = alignment is not None and alignment.hidden_weight > 0
    attend = alignment is not None and alignment.attention_weight > 0
    wanted = {"output_hidden_states": True} if hidden else {}
    if attend:
        wanted["output_attentions"] = True

    def loss_fn(model: Any, inputs: dict[str, Any], labels: Any) -> Any:
        with torch.no_grad(), accelerator.autocast():
            t_out = teacher(**inputs, **wanted)
        s_out = model(**inputs, **wanted)
        loss = kd_loss(s_out.logits, t_out.logits, labels, alpha=alpha, temperature=temperature)
        if alignment is None:
            return loss
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(inputs["input_ids"])
        if hidden:
            loss = loss + alignment.hidden_weight * hidden_mse(
                s_out.hidden_states, t_out.hidden_states, alignment.layer_map, mask)
        if attend:
            loss = loss + alignment.attention_weight * attention_kl(
                s_out.attentions, t_out.attentions, alignment.layer_map, mask)
        return loss

    return loss_fn


def distill_flops(teacher: Any, make_student: Any, data: TrainData, batch_size: int) -> tuple[dict[str, float], int]:
    """FLOPs per sample on one batch (the student's step plus the teacher's forward; the
    estimate 3 x student forward + teacher forward) and the student's parameter count."""
    from hf_cost.measure.flops import count_forward_flops, count_train_step_flops
    from hf_cost.training.student import parameter_count

    device = next(teacher.parameters()).device
    n = min(batch_size, int(data.labels.shape[0]))
    batch = {k: v[:n].to(device) for k, v in data.tensors.items()}
    student = make_student()
    student.train()
    student_forward = count_forward_flops(student, batch).total / n
    student_step = count_train_step_flops(student, {**batch, "labels": data.labels[:n].to(device)}).total / n
    teacher_forward = count_forward_flops(teacher, batch).total / n
    params = parameter_count(student)
    del student
    return {
        "train_per_sample": student_step + teacher_forward,
        "three_x_forward_per_sample": 3 * student_forward + teacher_forward,
        "student_step_per_sample": student_step,
        "student_forward_per_sample": student_forward,
        "teacher_forward_per_sample": teacher_forward,
    }, params
