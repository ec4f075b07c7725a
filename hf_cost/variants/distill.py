"""distill: knowledge distillation (Hinton et al. 2015) of the `from` candidate into a student
with fewer encoder layers, initialised from the teacher's own layers (DistilBERT-style, Sanh
et al. 2019: every other layer by default).

The student trains through fine_tune's Accelerate loop (training/loop.py), with a loss hook
that runs the frozen teacher in inference mode on the same batch and applies the KD loss
(training/kd_loss.py); time to target, olympic scoring over `runs`, curves and the saved
checkpoint are fine_tune's. Training FLOPs per sample include the teacher's forward: measured
with FlopCounterMode (the student's forward + backward, plus the teacher's forward) beside the
estimate 3 x student forward + teacher forward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_cost.errors import UserError
from hf_cost.models.candidate import BASE
from hf_cost.runners.base import clock
from hf_cost.variants.fine_tune import (
    FineTuneBuilder,
    FineTuneContext,
    fine_tune_context,
    prepare_training,
    train_runs,
)
from hf_cost.variants.registry import BuildContext, Built, Plan, require_checkpoint, source_labels



def _steps(plan: Plan) -> dict[str, Any]:
    return {s.name or s.kind: s for s in plan.suite.scenarios if hasattr(s, "source")}


def teacher_layer_count(name: str, plan: Plan) -> int:
    """Encoder layers of candidate ``name``: the base's, less what earlier distill steps removed."""
    from hf_cost.training.student import default_layers

    if name == BASE:
        return int(plan.model_config.num_hidden_layers)
    step = _steps(plan)[name]
    parent = teacher_layer_count(step.source, plan)
    if step.kind == "distill":
        return len(step.student_layers or default_layers(parent))
    return parent


class DistillBuilder(FineTuneBuilder):
    kind = "distill"
    all_processes = True  # under `accelerate launch`, every process trains (and runs the teacher)

    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None:
        from hf_cost.data.labelled import load_labelled
        from hf_cost.training.student import default_layers, layers_error, layout_error

        labels = source_labels(step, plan, where, needs_head=True)
        require_checkpoint(step, plan, where)
        key = f"{where}.student_layers"
        problem = layout_error(plan.model_config, plan.suite.model.trust_remote_code)
        if problem:
            raise UserError(f"cannot build a student from '{step.source}': {problem}", where=key)
        n = teacher_layer_count(step.source, plan)
        problem = layers_error(step.student_layers or default_layers(n), n)
        if problem:
            raise UserError(f"teacher '{step.source}': {problem}", where=key)
        load_labelled(step.train, f"{where}.train", labels)
        load_labelled(step.eval, f"{where}.eval", labels)
        return labels

    def build(self, step: Any, ctx: BuildContext) -> Built | None:
        result, path = self.run(step, fine_tune_context(step, ctx))
        if path is None:
            return None
        return Built(
            name=step.name or self.kind, parent=step.source, origin="variant",
            recipe=step.model_dump(mode="json", by_alias=True), result=result, checkpoint_dir=path,
        )

    def run(self, step: Any, ctx: FineTuneContext) -> tuple[Any, Path | None]:
        from hf_cost.training.student import default_layers, layers_error, parameter_count

        t0 = clock()
        config = ctx.checkpoint.config
        labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        setup = prepare_training(step, ctx, labels)
        teacher = self._teacher(ctx, setup.accelerator.device)
        n = int(teacher.config.num_hidden_layers)
        layers = list(step.student_layers or default_layers(n))
        problem = layers_error(layers, n)
        if problem:  # check() saw the same from the scenario file; this is the loaded teacher
            raise UserError(f"teacher '{step.source}': {problem}", where=f"{ctx.where}.student_layers")

        def make_student() -> Any:
            from hf_cost.training.student import build_student

            return build_student(teacher, layers)

        flops, student_params = self._distill_flops(teacher, make_student, setup.data, step.batch_size)
        teacher_params = parameter_count(teacher)
        ctx.progress.say(
            f"[{step.name}] distilling {step.source} ({n} layers, {teacher_params / 1e6:.2f}M parameters) "
            f"into layers {layers} ({student_params / 1e6:.2f}M) on {len(setup.train)} samples, alpha "
            f"{step.alpha}, T {step.temperature}; {setup.accelerator.num_processes} process(es), mixed "
            f"precision {setup.precision}, target {step.target.metric} >= {step.target.value}"
        )
        loss_fn = _kd_hook(teacher, step.alpha, step.temperature, setup.accelerator)
        records, keep_model, kept_run = train_runs(step, ctx, setup, make_student, loss_fn)
        result, saved = self._finish(step, ctx, setup, records, keep_model, kept_run, flops)
        result.metrics.update({
            "student_layers": layers,
            "teacher_layers": n,
            "teacher_parameters": teacher_params,
            "student_parameters": student_params,
            "student_to_teacher_parameters": student_params / teacher_params,
            "alpha": step.alpha,
            "temperature": step.temperature,
            "student_train_step_flops_per_sample": flops["student_step_per_sample"],
            "student_forward_flops_per_sample": flops["student_forward_per_sample"],
            "teacher_forward_flops_per_sample": flops["teacher_forward_per_sample"],
            "build_time_s": clock() - t0,
        })
        result.notes.append(
            "train_flops_per_sample (measured, FlopCounterMode, matmul-class operators) = the student's "
            "forward + backward on one batch + the frozen teacher's forward on it (no backward); the "
            "estimate is 3 x student forward + teacher forward; the KD loss itself is element-wise"
        )
        result.notes.append(
            f"student: teacher layers {layers} copied with embeddings, pooler and classifier "
            "(Sanh et al. 2019); loss = alpha*CE + (1-alpha)*T^2*KL(teacher||student) (Hinton et al. 2015)"
        )
        result.notes.append("build_time_s: teacher load, FLOP counting, every run, and saving the student")
        return result, saved

    @staticmethod
    def _teacher(ctx: FineTuneContext, device: Any) -> Any:
        from transformers import AutoModelForSequenceClassification

        teacher = AutoModelForSequenceClassification.from_pretrained(
            ctx.checkpoint.reference, **ctx.checkpoint.pretrained_kwargs(),
            attn_implementation=ctx.spec.attn_implementation,
        )
        teacher.to(device).eval()
        teacher.requires_grad_(False)
        return teacher

    @staticmethod
    def _distill_flops(teacher: Any, make_student: Any, data: Any, batch_size: int) -> tuple[dict[str, Any], int]:
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


def _kd_hook(teacher: Any, alpha: float, temperature: float, accelerator: Any) -> Any:
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
