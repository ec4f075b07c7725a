"""The typed result of a lora step: its runs scored as fine_tune's are (training/olympic.py,
training/result.validity), throughput in examples and tokens, the adapter's figures, and the raw
per-evaluation figures and the saved model's answers behind every quality number."""

from __future__ import annotations

import statistics
from typing import Any

from hf_cost.core.build_metrics import LoraMetrics, Scoring
from hf_cost.core.results import ScenarioResult
from hf_cost.training.lora_loop import LoraRunRecord
from hf_cost.training.olympic import olympic_score
from hf_cost.training.result import TIMING_NOTE, training_run, validity


def lora_metrics(records: list[LoraRunRecord], kept: int, flops: dict[str, float], figures: dict[str, Any],
                 saved_as: str | None, dropped: dict[str, dict[str, int]]) -> LoraMetrics:
    """LoraMetrics of the runs; ``figures``: the adapter's own fields (LoraMetrics beyond TrainingMetrics)."""
    scoring = Scoring(**olympic_score([r.time_to_target_s for r in records]))
    train_s = sum(r.train_s for r in records)
    samples = sum(r.samples for r in records)
    rate = (lambda count: count / train_s if train_s > 0 else None)
    sps = rate(samples)
    finals = [r.final_quality for r in records if r.final_quality is not None]
    k = records[kept]
    return LoraMetrics(
        time_to_target_s=scoring.score_s, scoring=scoring, converged=scoring.valid,
        runs=[training_run(r) for r in records],
        train_samples_per_s=sps,
        train_tokens_per_s=rate(sum(r.tokens for r in records)),
        train_answer_tokens_per_s=rate(sum(r.answer_tokens for r in records)),
        train_flops_per_sample=flops["train_per_sample"],
        train_flops_per_sample_3x_forward_estimate=flops["three_x_forward_per_sample"],
        train_flops_total=flops["train_per_sample"] * samples,
        achieved_train_gflops_per_s=flops["train_per_sample"] * sps / 1e9 if sps else None,
        final_quality_median=statistics.median(finals) if finals else None,
        saved_checkpoint=saved_as, saved_step=k.steps, saved_quality=k.final_quality, saved_run_index=kept,
        saved_unparseable_share=k.final.unparseable_share if k.final is not None else None,
        dropped_rows=dropped,
        **figures,
    )


def lora_result(step: Any, name: str, records: list[LoraRunRecord], kept: int, metrics: LoraMetrics,
                settings: dict[str, Any], references: list[str], notes: list[str]) -> ScenarioResult:
    """The step's entry in results.json; ``references``: the eval rows' label names, in order."""
    final = records[kept].final
    return ScenarioResult(
        name=name, kind=step.kind, candidate=name,
        settings={**step.model_dump(mode="json", by_alias=True), **settings},
        metrics=metrics,
        validity=validity(step, metrics.scoring),
        memory=max((r.memory for r in records if r.memory is not None), key=lambda m: m.peak_rss_mib, default=None),
        raw={
            "loss_curves": [r.loss_curve for r in records],
            "quality_curves": [r.quality_curve for r in records],
            "evaluations": [r.evaluations for r in records],
            "saved_answers": final.answers if final is not None else [],
            "saved_parsed": final.parsed if final is not None else [],
            "eval_references": references,
        },
        notes=[TIMING_NOTE, *notes],
    )
