"""Drift mode: each candidate scored on every period of a dated dataset (the accuracy runner's
inference path), with decay statistics, input drift against its training window and
label-free accuracy estimates (hf_cost/drift/)."""

from __future__ import annotations

from typing import Any

from hf_cost.config.drift import DriftScenario
from hf_cost.core.drift_metrics import DriftMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.data.performance_set import PerformanceSet
from hf_cost.measure.timing import clock
from hf_cost.models.context import RunContext
from hf_cost.quality.predict import model_label_names, predict_logits
from hf_cost.steps.base import MeasureStep, Plan, scored_candidates


class DriftRunner(MeasureStep):
    kind = "drift"
    config = DriftScenario
    metrics = DriftMetrics
    needs_head = True

    def __init__(self) -> None:
        # Shared across this step's candidates: input drift that does not depend on the candidate,
        # the dataset's rows (by label set) and training windows (by lineage and label set).
        self._cache: dict[Any, Any] = {}
        self._rows: dict[tuple[str, ...], Any] = {}
        self._windows: dict[tuple[Any, ...], Any] = {}

    def outputs(self, cfg: DriftScenario) -> list[str]:
        return [f"plots/drift-{cfg.name}.png"]

    def check(self, cfg: DriftScenario, plan: Plan, where: str) -> None:
        """Periods parse, named periods exist, and every candidate's training window is known."""
        from hf_cost.drift.data import load_period_rows, training_window
        from hf_cost.errors import DataError

        loaded: dict[tuple[str, ...], Any] = {}
        for key, name, labels in scored_candidates(cfg, plan, where, with_names=True):
            rows = loaded.get(tuple(labels))
            if rows is None:
                rows = loaded[tuple(labels)] = load_period_rows(cfg.dataset, cfg, f"{where}.dataset", labels, order=cfg.order)
                empty = [p for p in cfg.order or [] if p not in rows.column.order]
                if empty:
                    raise DataError(f"period '{empty[0]}' has no rows in column '{cfg.period_column}'",
                                    where=f"{where}.order")
            training_window(cfg, plan.suite, name, rows, where, labels)  # loads the train sets' columns

    def run(self, scenario: DriftScenario, ctx: RunContext) -> list[ScenarioResult]:
        from hf_cost.config.lineage import Lineage
        from hf_cost.data.labelled import LabelledSet
        from hf_cost.drift.analysis import analyse
        from hf_cost.drift.data import load_period_rows, training_window

        sc, cand = scenario, ctx.candidate
        labels = model_label_names(cand, f"{ctx.where}.candidates")
        key = tuple(labels)
        if key not in self._rows:
            self._rows[key] = load_period_rows(sc.dataset, sc, f"{ctx.where}.dataset", labels, order=sc.order)
        rows = self._rows[key]
        lineage = (tuple(t.step for t in Lineage(ctx.suite).training_sets(cand.name)), key)
        if lineage not in self._windows:
            self._windows[lineage] = training_window(sc, ctx.suite, cand.name, rows, ctx.where, labels)
        window = self._windows[lineage]
        data = rows.data
        pairs = data.pairs or [None] * len(data)
        drop = sc.exclude_training_rows or window.reference_is_scored_data
        scored = [i for i in range(len(data)) if not (drop and (data.texts[i], pairs[i]) in window.excluded)]
        say = lambda m: ctx.progress.say(f"[{sc.name}] {cand.name}: {m}")  # noqa: E731
        say(f"{len(scored)} of {len(data)} rows scored over {len(rows.column.order)} periods "
            f"({len(data) - len(scored)} in the training set); training window {', '.join(window.periods)} "
            f"({window.source})")
        subset = LabelledSet(
            texts=[data.texts[i] for i in scored], pairs=[pairs[i] for i in scored] if data.pairs else None,
            labels=[data.labels[i] for i in scored], label_names=data.label_names, description=data.description,
        )
        seq = sc.sequence_length or ctx.perf_set.sequence_length
        tensors = {k: v.to(cand.device) for k, v in subset.tokenize(cand.tokenizer, seq).items()}
        pset = PerformanceSet(tensors=tensors, source=data.description, seed=sc.dataset.seed, sequence_length=seq)
        with ctx.memory() as memory:
            t0 = clock()
            logits = predict_logits(cand, pset, sc.batch_size)
            elapsed = clock() - t0
        t1 = clock()
        metrics = analyse(sc, rows, window, scored, logits, cand.tokenizer, self._cache, say)
        metrics.update(duration_s=elapsed, analysis_s=clock() - t1,
                       throughput_samples_per_s=len(scored) / elapsed, dropped_rows=data.dropped)
        preds = logits.argmax(axis=-1)
        notes = [f"dataset: {data.description}; periods from column '{sc.period_column}' "
                 f"({sc.granularity}); CIs: percentile bootstrap, {sc.bootstrap_resamples} resamples"]
        notes += [f"period {p['period']}: {p['n']} rows, fewer than min_rows_per_period "
                  f"({sc.min_rows_per_period}): its CI is wide" for p in metrics["periods"] if p["few_rows"]]
        if data.dropped:
            notes.append(f"{sum(data.dropped.values())} rows with an empty cell were not scored")
        return [
            ScenarioResult(
                name=sc.name or self.kind, kind=self.kind, candidate=cand.name,
                settings={**sc.model_dump(), "sequence_length": seq, "labels": labels},
                metrics=metrics, memory=memory.to_dict(),
                raw={"periods": [rows.periods[i] for i in scored], "predictions": preds.tolist(),
                     "references": subset.labels, "confidence": _max_prob(logits),
                     "rows": [rows.row_numbers[i] for i in scored]},  # data row in the file, from 1
                notes=notes,
            )
        ]


def _max_prob(logits: Any) -> list[float]:
    from hf_cost.drift.confidence import max_softmax

    return [round(float(x), 6) for x in max_softmax(logits)]
