"""distill: knowledge distillation (Hinton et al. 2015) of the `from` candidate into a student
with fewer encoder layers, initialised from the teacher's own layers (DistilBERT-style, Sanh
et al. 2019: every other layer by default).

The student trains through the same training session as fine_tune (training/session.py,
the Accelerate loop of training/loop.py), with a loss hook that runs the frozen teacher
without gradients on the same batch and applies the KD loss (training/teacher.py, kd_loss.py),
plus, when asked, TinyBERT's hidden-state MSE and MiniLM's attention KL against the mapped
teacher layers; rows without a hard label (augmented copies, unlabelled text:
training/augment.py, distill_setup.py) get no cross-entropy. `train_to_budget` trains on past
the target. Time to target, olympic scoring over `runs`, curves and the saved checkpoint are
the session's (training/result.py). Training FLOPs per sample include the teacher's forward:
measured with FlopCounterMode (the student's forward + backward, plus the teacher's forward)
beside the estimate 3 x student forward + teacher forward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_cost.config.building import DistillStep
from hf_cost.config.lineage import label_names
from hf_cost.core.build_metrics import DistillMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.errors import UserError
from hf_cost.measure.timing import clock
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan, require_checkpoint, source_labels
from hf_cost.training.distill_setup import alignment_of, check_soft_label_rows, distill_notes, soft_label_rows
from hf_cost.training.result import training_metrics, training_result
from hf_cost.training.session import TrainingContext, prepare_training, save_kept, train_runs, training_context
from hf_cost.training.teacher import distill_flops, kd_hook, load_teacher, student_factory


class DistillBuilder(BuildStep):
    kind = "distill"
    config = DistillStep
    metrics = DistillMetrics
    all_processes = True  # under `accelerate launch`, every process trains (and runs the teacher)

    @classmethod
    def shape_after(cls, step: Any, parent: Any) -> Any:
        """The student keeps the teacher's layers ``student_layers`` (default every other one),
        each with its heads (a per-layer count only while every layer has the same)."""
        from hf_cost.config.lineage import Shape
        from hf_cost.training.student import default_layers

        kept = len(step.student_layers or default_layers(parent.layers))
        uniform = parent.uniform and parent.heads is not None
        heads = parent.heads // parent.layers * kept if uniform else None
        return Shape(kept, heads, parent.intermediate, parent.uniform)

    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None:
        from hf_cost.config.lineage import Lineage
        from hf_cost.data.labelled import load_labelled
        from hf_cost.training.student import default_layers, layers_error, layout_error

        labels = source_labels(step, plan, where, needs_head=True)
        require_checkpoint(step, plan, where)
        key = f"{where}.student_layers"
        problem = layout_error(plan.model_config, plan.suite.model.trust_remote_code)
        if problem:
            raise UserError(f"cannot build a student from '{step.source}': {problem}", where=key)
        n = Lineage.of(plan).layer_count(step.source)
        problem = layers_error(step.student_layers or default_layers(n), n)
        if problem:
            raise UserError(f"teacher '{step.source}': {problem}", where=key)
        load_labelled(step.train, f"{where}.train", labels)
        load_labelled(step.eval, f"{where}.eval", labels)
        check_soft_label_rows(step, where, n)
        return labels

    def build(self, step: DistillStep, ctx: BuildContext) -> Built | None:
        result, path = self.run(step, training_context(step, ctx))
        if path is None:
            return None
        return Built(
            name=step.name or self.kind, parent=step.source, origin="variant",
            recipe=step.model_dump(mode="json", by_alias=True), result=result, checkpoint_dir=path,
        )

    def run(self, step: DistillStep, ctx: TrainingContext) -> tuple[ScenarioResult, Path | None]:
        """The training session with the teacher: its student, its KD loss hook, DistillMetrics."""
        from hf_cost.training.student import default_layers, layers_error, parameter_count

        t0 = clock()
        config = ctx.checkpoint.config
        labels = label_names(config)
        setup = prepare_training(step, ctx, labels)
        attend = step.attention_weight > 0  # attention probabilities need eager attention
        teacher = load_teacher(ctx, setup.accelerator.device, "eager" if attend else None)
        n = int(teacher.config.num_hidden_layers)
        layers = list(step.student_layers or default_layers(n))
        problem = layers_error(layers, n)
        if problem:  # check() saw the same from the scenario file; this is the loaded teacher
            raise UserError(f"teacher '{step.source}': {problem}", where=f"{ctx.where}.student_layers")
        alignment = alignment_of(step, teacher.config, layers, ctx.where)
        # attention dropout off when imitating attention: the probabilities compared are the ones used
        make_student = student_factory(teacher, layers, **({"attention_probs_dropout_prob": 0.0} if attend else {}))
        rows = soft_label_rows(step, ctx.where, setup)
        flops, student_params = distill_flops(teacher, make_student, setup.data, step.batch_size)
        teacher_params = parameter_count(teacher)
        ctx.progress.say(
            f"[{step.name}] distilling {step.source} ({n} layers, {teacher_params / 1e6:.2f}M parameters) "
            f"into layers {layers} ({student_params / 1e6:.2f}M) on {rows.describe()}, alpha "
            f"{step.alpha}, T {step.temperature}, hidden {step.hidden_weight}, attention {step.attention_weight}; "
            f"{setup.accelerator.num_processes} process(es), mixed precision {setup.precision}, target "
            f"{step.target.metric} >= {step.target.value}{' (then on to the budget)' if step.train_to_budget else ''}"
        )
        loss_fn = kd_hook(teacher, step.alpha, step.temperature, setup.accelerator,
                          alignment if alignment.active else None)
        runs = train_runs(step, ctx, setup, make_student, loss_fn, to_budget=step.train_to_budget)
        saved = save_kept(runs, step.name or self.kind, ctx, setup)
        metrics = training_metrics(
            DistillMetrics, setup, runs, saved, flops,
            student_layers=layers,
            teacher_layers=n,
            teacher_parameters=teacher_params,
            student_parameters=student_params,
            student_to_teacher_parameters=student_params / teacher_params,
            alpha=step.alpha,
            temperature=step.temperature,
            student_train_step_flops_per_sample=flops["student_step_per_sample"],
            student_forward_flops_per_sample=flops["student_forward_per_sample"],
            teacher_forward_flops_per_sample=flops["teacher_forward_per_sample"],
            build_time_s=clock() - t0,
            train_to_budget=step.train_to_budget,
            hidden_weight=step.hidden_weight,
            attention_weight=step.attention_weight,
            layer_map=alignment.layer_map if alignment.active else None,
            labelled_rows=rows.labelled,
            augmented_rows=rows.augmented,
            unlabelled_rows=rows.unlabelled,
        )
        notes = [
            (
                "train_flops_per_sample (measured, FlopCounterMode, matmul-class operators) = the student's "
                "forward + backward on one batch + the frozen teacher's forward on it (no backward); the "
                "estimate is 3 x student forward + teacher forward; the KD loss itself is element-wise"
            ),
            (
                f"student: teacher layers {layers} copied with embeddings, pooler and classifier "
                "(Sanh et al. 2019); loss = alpha*CE + (1-alpha)*T^2*KL(teacher||student) (Hinton et al. 2015)"
            ),
            "build_time_s: teacher load, FLOP counting, every run, and saving the student",
            *distill_notes(step, alignment, rows),
        ]
        return training_result(step, setup, runs, metrics, notes), saved.path
