"""The typed result of a training step: its runs, olympic scoring, throughput, FLOPs and the
saved model (`training_metrics`, of TrainingMetrics or a kind's extension of it such as
DistillMetrics), and the ScenarioResult around them (`training_result`: validity, the peak
memory of the runs, the loss and quality curves)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, TypeVar

from hf_cost.config.building import TrainingStep
from hf_cost.core.build_metrics import Scoring, TrainingMetrics, TrainingRun
from hf_cost.core.results import ScenarioResult, Validity
from hf_cost.training.loop import RunRecord
from hf_cost.training.olympic import olympic_score
from hf_cost.training.session import Saved, TrainingRuns, TrainingSetup

M = TypeVar("M", bound=TrainingMetrics)

TIMING_NOTE = (
    "time_to_target_s: first step to stop, evaluation included (MLPerf Training); "
    "throughput excludes evaluation time; samples counted over all processes"
)


def training_run(r: RunRecord) -> TrainingRun:
    return TrainingRun(
        seed=r.seed, converged=r.converged, stop_reason=r.stop_reason,
        time_to_target_s=r.time_to_target_s, wall_s=r.wall_s, eval_s=r.eval_s,
        steps=r.steps, samples=r.samples, tokens=r.tokens,
        final_quality=r.final_quality,
        final_quality_step=r.steps,
        evaluated_after_stop=r.evaluated_after_stop,
        train_samples_per_s=r.samples / r.train_s if r.train_s > 0 else None,
        peak_rss_delta_mib=r.memory.peak_rss_delta_mib if r.memory is not None else None,
    )


def training_metrics(
    metrics: type[M], setup: TrainingSetup, runs: TrainingRuns, saved: Saved, flops: dict[str, float],
    **extra: Any,
) -> M:
    """``metrics`` (TrainingMetrics or a subclass, whose own fields come in ``extra``) of the runs.

    ``flops``: per sample, ``train_per_sample`` (measured) and ``three_x_forward_per_sample``.
    """
    records, kept = runs.records, runs.records[runs.kept_run]
    scoring = Scoring(**olympic_score([r.time_to_target_s for r in records]))
    train_s = sum(r.train_s for r in records)
    samples = sum(r.samples for r in records)
    tokens = sum(r.tokens for r in records)
    sps = samples / train_s if train_s > 0 else None
    finals = [r.final_quality for r in records if r.final_quality is not None]
    return metrics(
        time_to_target_s=scoring.score_s,
        scoring=scoring,
        converged=scoring.valid,
        runs=[training_run(r) for r in records],
        train_samples_per_s=sps,
        train_tokens_per_s=tokens / train_s if train_s > 0 else None,
        train_flops_per_sample=flops["train_per_sample"],
        train_flops_per_sample_3x_forward_estimate=flops["three_x_forward_per_sample"],
        train_flops_total=flops["train_per_sample"] * samples,
        achieved_train_gflops_per_s=flops["train_per_sample"] * sps / 1e9 if sps else None,
        final_quality_median=statistics.median(finals) if finals else None,
        saved_checkpoint=saved.saved_as,
        saved_step=kept.steps,
        saved_quality=kept.final_quality,
        saved_run_index=runs.kept_run,
        dropped_rows={"train": setup.train.dropped, "eval": setup.evalset.dropped},
        **extra,
    )


def validity(step: TrainingStep, scoring: Scoring) -> Validity:
    """VALID when the olympic scoring is (training/olympic.py); fewer than 3 runs are reduced settings."""
    recs = []
    if not scoring.valid:
        failed = scoring.run_count - scoring.converged_runs
        recs.append(
            f"{failed} of {scoring.run_count} run(s) did not reach {step.target.metric} >= "
            f"{step.target.value}: raise max_steps/max_time_s or lower the target"
        )
    return Validity(
        result="VALID" if scoring.valid else "INVALID",
        convergence_satisfied=scoring.valid,
        reduced_settings=step.runs < 3,
        recommendations=recs + (["fewer than 3 runs: no olympic scoring"] if step.runs < 3 else []),
    )


def training_result(
    step: TrainingStep, setup: TrainingSetup, runs: TrainingRuns, metrics: TrainingMetrics, notes: Sequence[str] = (),
) -> ScenarioResult:
    """The step's entry in results.json; ``notes`` come after the shared ones."""
    name = step.name or step.kind
    records = runs.records
    return ScenarioResult(
        name=name,
        kind=step.kind,
        candidate=name,
        settings={**step.model_dump(mode="json", by_alias=True), "sequence_length": setup.seq,
                  "labels": setup.train.label_names, "mixed_precision_used": setup.precision,
                  "num_processes": setup.accelerator.num_processes},
        metrics=metrics,
        validity=validity(step, metrics.scoring),
        memory=max((r.memory for r in records if r.memory is not None), key=lambda m: m.peak_rss_mib, default=None),
        raw={
            "loss_curves": [r.loss_curve for r in records],
            "quality_curves": [r.quality_curve for r in records],
        },
        notes=[
            TIMING_NOTE,
            f"train: {setup.train.description}; eval: {setup.evalset.description}",
            *notes,
        ],
    )
