"""fine_tune: builds a candidate by training, timed to a quality target (MLPerf-Training style).

Runs `runs` times with seeds seed, seed+1, ... and scores time-to-target the
MLPerf-Training way (olympic). The model of the first converged run (else the last)
is saved under <output>/checkpoints/<name>/ and becomes the candidate `<name>`.

The pieces every training step needs (the context, data preparation, the seeded runs, saving
and result assembly: `fine_tune_context`, `prepare_training`, `train_runs`, `_finish`) are
shared with distill (variants/distill.py), which trains a student through the same loop.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_cost.config.schema import FineTuneScenario, ModelSpec
from hf_cost.models.resolve import ResolvedCheckpoint
from hf_cost.progress import Progress
from hf_cost.report.schema import ScenarioResult, Validity
from hf_cost.training.loop import RunRecord, TrainData
from hf_cost.training.olympic import olympic_score
from hf_cost.variants.registry import BuildContext, Builder, Built, Plan


@dataclass
class FineTuneContext:
    spec: ModelSpec
    checkpoint: ResolvedCheckpoint
    sequence_length: int
    checkpoints_dir: Path | None  # in the run's staging directory; None on non-main processes
    baseline_rss_bytes: int
    progress: Progress
    where: str = "scenarios"
    final_path: Any = None  # staged path -> where it will be after the run (RunOutput.final_path)


def mixed_precision_for(scenario: FineTuneScenario, device: str) -> str:
    if scenario.mixed_precision != "auto":
        return scenario.mixed_precision
    if not device.startswith("cuda"):
        return "no"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


@dataclass
class TrainingSetup:
    """What every run of a training step (fine_tune, distill) shares: the accelerator and data."""

    accelerator: Any
    device: str
    precision: str
    seq: int
    train: Any  # data.labelled.LabelledSet
    evalset: Any
    data: TrainData


def fine_tune_context(step: Any, ctx: BuildContext) -> FineTuneContext:
    from hf_cost.measure.memory import current_rss_bytes

    store, output = ctx.store, ctx.output
    return FineTuneContext(
        spec=store.spec,
        checkpoint=store.checkpoint_of(step.source),
        sequence_length=store.suite.inputs.sequence_length,
        checkpoints_dir=output.path_in_stage("checkpoints") if output else None,
        final_path=output.final_path if output else None,
        baseline_rss_bytes=current_rss_bytes(),
        progress=ctx.progress,
        where=ctx.where,
    )


def prepare_training(scenario: Any, ctx: FineTuneContext, label_names: list[str] | None = None) -> TrainingSetup:
    """The accelerator and the tokenised train/eval sets; labels from the data unless given."""
    import torch
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from hf_cost.data.labelled import load_labelled
    from hf_cost.data.performance_set import PerformanceSet
    from hf_cost.models.load import pick_device

    device = pick_device(ctx.spec.device)
    precision = mixed_precision_for(scenario, device)
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision=precision)
    seq = scenario.sequence_length or ctx.sequence_length
    train = load_labelled(scenario.train, f"{ctx.where}.train", label_names)
    evalset = load_labelled(scenario.eval, f"{ctx.where}.eval", train.label_names)
    tokenizer = AutoTokenizer.from_pretrained(ctx.checkpoint.reference, **ctx.checkpoint.pretrained_kwargs())
    eval_tensors = {k: v.to(accelerator.device) for k, v in evalset.tokenize(tokenizer, seq).items()}
    data = TrainData(
        tensors=train.tokenize(tokenizer, seq),
        labels=torch.tensor(train.labels, dtype=torch.long),
        eval_set=PerformanceSet(eval_tensors, evalset.description, scenario.eval.seed, seq),
        eval_labels=evalset.labels,
        tokenizer=tokenizer,
    )
    return TrainingSetup(accelerator, device, precision, seq, train, evalset, data)


def train_runs(
    scenario: Any, ctx: FineTuneContext, setup: TrainingSetup, make_model: Any, loss_fn: Any = None
) -> tuple[list[RunRecord], Any, int]:
    """`runs` runs with seeds seed, seed+1, ...; the model of the first converged run (else the last)."""
    import torch

    from hf_cost.measure.memory import track_peak_memory
    from hf_cost.training.loop import train_once

    records, keep_model, kept_run = [], None, 0
    for i in range(scenario.runs):
        seed = scenario.seed + i
        ctx.progress.say(f"[{scenario.name}] run {i + 1}/{scenario.runs} (seed {seed})")
        cuda = torch.device(setup.device) if setup.device.startswith("cuda") else None
        with track_peak_memory(ctx.baseline_rss_bytes, cuda) as mem:
            record, model = train_once(scenario, setup.accelerator, make_model, setup.data, seed, ctx.progress, loss_fn)
        record.memory = mem.to_dict()
        records.append(record)
        if keep_model is None and (record.converged or i == scenario.runs - 1):
            keep_model, kept_run = model, i
    return records, keep_model, kept_run


class FineTuneBuilder(Builder):
    kind = "fine_tune"
    all_processes = True  # under `accelerate launch`, every process trains

    def check(self, step: FineTuneScenario, plan: Plan, where: str) -> list[str] | None:
        from hf_cost.data.labelled import load_labelled

        labels = load_labelled(step.train, f"{where}.train").label_names
        load_labelled(step.eval, f"{where}.eval", labels)
        return labels

    def build(self, step: FineTuneScenario, ctx: BuildContext) -> Built | None:
        result, path = self.run(step, fine_tune_context(step, ctx))
        if path is None:
            return None
        return Built(
            name=step.name or self.kind, parent=step.source, origin="fine-tuned",
            recipe=step.model_dump(mode="json", by_alias=True), result=result, checkpoint_dir=path,
        )

    def run(self, scenario: FineTuneScenario, ctx: FineTuneContext) -> tuple[ScenarioResult, Path | None]:
        setup = prepare_training(scenario, ctx)
        train, evalset, labels = setup.train, setup.evalset, setup.train.label_names
        make_model = self._model_factory(ctx, labels)
        flops = self._training_flops(make_model, setup.data, scenario.batch_size)
        ctx.progress.say(
            f"[{scenario.name}] fine-tuning on {len(train)} samples ({train.description}), "
            f"evaluating on {len(evalset)} ({evalset.description}); {setup.accelerator.num_processes} "
            f"process(es), mixed precision {setup.precision}, "
            f"target {scenario.target.metric} >= {scenario.target.value}"
        )
        records, keep_model, kept_run = train_runs(scenario, ctx, setup, make_model)
        return self._finish(scenario, ctx, setup, records, keep_model, kept_run, flops)

    def _finish(
        self, scenario: Any, ctx: FineTuneContext, setup: TrainingSetup, records: list[RunRecord],
        keep_model: Any, kept_run: int, flops: dict[str, Any],
    ) -> tuple[ScenarioResult, Path | None]:
        """Save the kept model into staging and assemble the result (shared with distill)."""
        train, evalset = setup.train, setup.evalset
        saved = self._save(keep_model, setup.data.tokenizer, scenario.name or self.kind, ctx, setup.accelerator)
        saved_as = None if saved is None else str(ctx.final_path(saved) if ctx.final_path else saved)
        result = self._result(
            scenario, records, flops, train.label_names, setup.precision, setup.accelerator.num_processes,
            kept_run, saved_as, setup.seq,
        )
        result.metrics["dropped_rows"] = {"train": train.dropped, "eval": evalset.dropped}
        result.notes.append(f"train: {train.description}; eval: {evalset.description}")
        return result, saved

    @staticmethod
    def _model_factory(ctx: FineTuneContext, labels: list[str]) -> Any:
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

    @staticmethod
    def _training_flops(make_model: Any, data: Any, batch_size: int) -> dict[str, Any]:
        from hf_cost.measure.flops import count_forward_flops, count_train_step_flops

        model = make_model()
        model.train()
        n = min(batch_size, int(data.labels.shape[0]))
        batch = {k: v[:n] for k, v in data.tensors.items()}
        forward = count_forward_flops(model, batch).total / n
        step = count_train_step_flops(model, {**batch, "labels": data.labels[:n]}).total / n
        del model
        return {"train_per_sample": step, "forward_per_sample": forward, "three_x_forward_per_sample": 3 * forward}

    @staticmethod
    def _save(model: Any, tokenizer: Any, name: str, ctx: FineTuneContext, accelerator: Any) -> Path | None:
        """Save into the run's staging directory (a fresh folder: nothing is replaced).

        ``name`` is a validated identifier; the path is checked to stay inside staging,
        and the whole staging directory is removed if the run does not complete.
        """
        from hf_cost.output import inside

        accelerator.wait_for_everyone()
        if not accelerator.is_main_process or ctx.checkpoints_dir is None:
            return None
        target = ctx.checkpoints_dir / name
        inside(ctx.checkpoints_dir.parent, target)
        target.mkdir(parents=True, exist_ok=False)
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        return target

    def _result(
        self,
        scenario: FineTuneScenario,
        records: list[RunRecord],
        flops: dict[str, float],
        labels: list[str],
        precision: str,
        processes: int,
        kept_run: int,
        saved_as: str | None,
        seq: int,
    ) -> ScenarioResult:
        olympic = olympic_score([r.time_to_target_s for r in records])
        train_s = sum(r.train_s for r in records)
        samples = sum(r.samples for r in records)
        tokens = sum(r.tokens for r in records)
        sps = samples / train_s if train_s > 0 else None
        finals = [r.final_quality for r in records if r.final_quality is not None]
        recs = []
        if not olympic["valid"]:
            failed = olympic["runs"] - olympic["converged_runs"]
            recs.append(
                f"{failed} of {olympic['runs']} run(s) did not reach {scenario.target.metric} >= "
                f"{scenario.target.value}: raise max_steps/max_time_s or lower the target"
            )
        validity = Validity(
            result="VALID" if olympic["valid"] else "INVALID",
            convergence_satisfied=olympic["valid"],
            reduced_settings=scenario.runs < 3,
            recommendations=recs + (["fewer than 3 runs: no olympic scoring"] if scenario.runs < 3 else []),
        )
        per_run = [
            {
                "seed": r.seed, "converged": r.converged, "stop_reason": r.stop_reason,
                "time_to_target_s": r.time_to_target_s, "wall_s": r.wall_s, "eval_s": r.eval_s,
                "steps": r.steps, "samples": r.samples, "tokens": r.tokens,
                "final_quality": r.final_quality,
                "final_quality_step": r.steps,
                "evaluated_after_stop": r.evaluated_after_stop,
                "train_samples_per_s": r.samples / r.train_s if r.train_s > 0 else None,
                "peak_rss_delta_mib": r.memory.get("peak_rss_delta_mib"),
            }
            for r in records
        ]
        return ScenarioResult(
            name=scenario.name or self.kind,
            kind=self.kind,
            candidate=scenario.name or self.kind,
            settings={**scenario.model_dump(mode="json", by_alias=True), "sequence_length": seq, "labels": labels,
                      "mixed_precision_used": precision, "num_processes": processes},
            metrics={
                "time_to_target_s": olympic["score_s"],
                "scoring": olympic,
                "converged": olympic["valid"],
                "runs": per_run,
                "train_samples_per_s": sps,
                "train_tokens_per_s": tokens / train_s if train_s > 0 else None,
                "train_flops_per_sample": flops["train_per_sample"],
                "train_flops_per_sample_3x_forward_estimate": flops["three_x_forward_per_sample"],
                "train_flops_total": flops["train_per_sample"] * samples,
                "achieved_train_gflops_per_s": flops["train_per_sample"] * sps / 1e9 if sps else None,
                "final_quality_median": statistics.median(finals) if finals else None,
                "saved_checkpoint": saved_as,
                "saved_step": records[kept_run].steps,
                "saved_quality": records[kept_run].final_quality,
                "saved_run_index": kept_run,
            },
            validity=validity,
            memory=max((r.memory for r in records), key=lambda m: m.get("peak_rss_mib", 0)),
            raw={
                "loss_curves": [r.loss_curve for r in records],
                "quality_curves": [r.quality_curve for r in records],
            },
            notes=[
                "time_to_target_s: first step to stop, evaluation included (MLPerf Training); "
                "throughput excludes evaluation time; samples counted over all processes",
            ],
        )
