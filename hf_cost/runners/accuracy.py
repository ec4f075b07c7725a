"""Accuracy mode: every evaluation sample once through `Candidate.forward`, then scored.

Batches are built exactly as the offline runner builds them (`PerformanceSet.batch`
over index slices), so accuracy is measured on the code path that is timed.
"""

from __future__ import annotations

from typing import Any

from hf_cost.config.schema import AccuracyScenario
from hf_cost.data.performance_set import PerformanceSet
from hf_cost.errors import UserError
from hf_cost.models.candidate import Candidate
from hf_cost.report.schema import ScenarioResult
from hf_cost.runners.base import RunContext, Runner, clock


def model_label_names(candidate: Candidate, where: str) -> list[str]:
    """The classifier's labels in id order; a candidate without a head cannot be scored."""
    if candidate.label_names is None:
        raise UserError(
            f"candidate '{candidate.name}' has no classification head: set model.task: "
            "sequence-classification, or measure a fine-tuned candidate",
            where=where,
        )
    return candidate.label_names


def predict_logits(candidate: Candidate, pset: PerformanceSet, batch_size: int) -> Any:
    """Logits of every sample in ``pset``, in order, batch by batch: a float32 (n, classes) array."""
    import numpy as np
    import torch

    parts = []
    n = pset.num_samples
    order = torch.arange(n, device=candidate.device)
    for start in range(0, n, batch_size):
        logits = candidate.forward(pset.batch(order[start : start + batch_size]))
        parts.append(logits.detach().float().cpu().numpy())
    return np.concatenate(parts, axis=0)


def predict(candidate: Candidate, pset: PerformanceSet, batch_size: int) -> list[int]:
    """Argmax class of every sample in ``pset``, in order (ties: the lowest class id)."""
    return predict_logits(candidate, pset, batch_size).argmax(axis=-1).tolist()


class AccuracyRunner(Runner):
    kind = "accuracy"
    needs_head = True

    def run(self, scenario: AccuracyScenario, ctx: RunContext) -> list[ScenarioResult]:
        from hf_cost.data.labelled import load_labelled
        from hf_cost.quality.metric_loader import load_metric
        from hf_cost.quality.scoring import score_classification

        cand = ctx.candidate
        labels = model_label_names(cand, f"{ctx.where}.candidates")
        data = load_labelled(scenario.dataset, f"{ctx.where}.dataset", labels)
        seq = scenario.sequence_length or ctx.perf_set.sequence_length
        tensors = {k: v.to(cand.device) for k, v in data.tokenize(cand.tokenizer, seq).items()}
        pset = PerformanceSet(tensors=tensors, source=data.description, seed=scenario.dataset.seed, sequence_length=seq)
        ctx.progress.say(f"[{scenario.name}] accuracy mode: {len(data)} samples from {data.description}")
        with ctx.memory() as memory:
            t0 = clock()
            preds = predict(cand, pset, scenario.batch_size)
            elapsed = clock() - t0
        scores = score_classification(
            preds, data.labels, labels, n_resamples=scenario.bootstrap_resamples, seed=scenario.dataset.seed
        )
        extra: dict[str, Any] = {}
        for metric_id in scenario.extra_metrics:
            extra[metric_id] = load_metric(metric_id).compute(predictions=preds, references=data.labels)
        notes = [f"dataset: {data.description}; CIs: {scores['accuracy']['method']}"]
        if data.dropped:
            notes.append(f"{sum(data.dropped.values())} rows with an empty text or label were not scored")
        return [
            ScenarioResult(
                name=scenario.name or self.kind,
                kind=self.kind,
                candidate=ctx.candidate.name,
                settings={**scenario.model_dump(), "sequence_length": seq, "labels": labels},
                metrics={**scores, "extra_metrics": extra, "duration_s": elapsed,
                         "throughput_samples_per_s": len(data) / elapsed,
                         "dropped_rows": data.dropped},  # column -> rows with an empty cell
                memory=memory.to_dict(),
                raw={"predictions": preds, "references": data.labels},
                notes=notes,
            )
        ]
