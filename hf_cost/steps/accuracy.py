"""Accuracy mode: every evaluation sample once through `Candidate.forward`, then scored.

Batches are built exactly as the offline runner builds them (`PerformanceSet.batch`
over index slices), so accuracy is measured on the code path that is timed.
"""

from __future__ import annotations

from typing import Any

from hf_cost.config.schema import AccuracyScenario
from hf_cost.core.metrics import AccuracyMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.data.performance_set import PerformanceSet
from hf_cost.errors import UserError
from hf_cost.measure.timing import clock
from hf_cost.models.context import RunContext
from hf_cost.quality.predict import model_label_names, predict
from hf_cost.steps.base import MeasureStep, Plan, scored_candidates


class AccuracyRunner(MeasureStep):
    kind = "accuracy"
    config = AccuracyScenario
    metrics = AccuracyMetrics
    needs_head = True

    def check(self, cfg: AccuracyScenario, plan: Plan, where: str) -> None:
        """Each scored candidate has a head, and the dataset's labels are among its labels;
        extra metrics load now, so an unknown or unreachable one fails before any run."""
        from hf_cost.data.labelled import load_labelled

        checked: set[tuple[str, ...]] = set()
        for key, labels in scored_candidates(cfg, plan, where):
            if tuple(labels) not in checked:
                load_labelled(cfg.dataset, f"{where}.dataset", labels)
                checked.add(tuple(labels))
        _check_metrics(cfg.extra_metrics, f"{where}.extra_metrics")

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


def _check_metrics(names: list[str], where: str) -> None:
    """Load each extra metric now, so an unknown or unreachable one fails before any run."""
    from hf_cost.quality.metric_loader import load_metric

    for i, name in enumerate(names):
        try:
            load_metric(name)
        except UserError as exc:
            raise UserError(str(exc), where=f"{where}[{i}]") from None
