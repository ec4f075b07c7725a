"""The frozen teacher of a distillation: loading it, the student it makes, the loss hook that
runs it on every training batch, and the FLOPs of a training step that include its forward."""

from __future__ import annotations

from typing import Any

from hf_cost.training.loop import LossHook, TrainData
from hf_cost.training.session import TrainingContext


def load_teacher(ctx: TrainingContext, device: Any) -> Any:
    """The `from` checkpoint as a classifier on ``device``, in eval mode, without gradients."""
    from transformers import AutoModelForSequenceClassification

    teacher = AutoModelForSequenceClassification.from_pretrained(
        ctx.checkpoint.reference, **ctx.checkpoint.pretrained_kwargs(),
        attn_implementation=ctx.spec.attn_implementation,
    )
    teacher.to(device).eval()
    teacher.requires_grad_(False)
    return teacher


def student_factory(teacher: Any, layers: list[int]) -> Any:
    """A fresh student from the teacher's ``layers`` (training/student.py), per call."""

    def make_student() -> Any:
        from hf_cost.training.student import build_student

        return build_student(teacher, layers)

    return make_student


def kd_hook(teacher: Any, alpha: float, temperature: float, accelerator: Any) -> LossHook:
    """The loss hook of train_once: the frozen teacher's logits on the same batch, then the KD loss."""
    import torch

    from hf_cost.training.kd_loss import kd_loss

    def loss_fn(model: Any, inputs: dict[str, Any], labels: Any) -> Any:
        with torch.inference_mode(), accelerator.autocast():
            teacher_logits = teacher(**inputs).logits
        student_logits = model(**inputs).logits
        # clone(): an ordinary tensor, so autograd may keep what it needs of it for backward
        return kd_loss(student_logits, teacher_logits.clone(), labels, alpha=alpha, temperature=temperature)

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
