"""Accuracy mode: every evaluation sample once through `Candidate.forward`, then scored.

Batches are built exactly as the offline runner builds them (`PerformanceSet.batch`
over index slices), so accuracy is measured on the code path that is timed.
"""

from __future__ import annotations

from typing import Any

from hf_cost.config.schema import AccuracyScenario, AnswerSettings
from hf_cost.core.metrics import AccuracyMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.data.performance_set import PerformanceSet
from hf_cost.errors import UserError
from hf_cost.measure.timing import clock
from hf_cost.models.context import RunContext
from hf_cost.quality.metric_loader import load_metric
from hf_cost.quality.predict import model_label_names, predict
from hf_cost.steps.base import MeasureStep, Plan, scored_candidates


class AccuracyRunner(MeasureStep):
    kind = "accuracy"
    config = AccuracyScenario
    metrics = AccuracyMetrics
    needs_head = True
    serves_lms = True

    def check(self, cfg: AccuracyScenario, plan: Plan, where: str) -> None:
        """Each scored candidate has a head, and the dataset's labels are among its labels;
        extra metrics load now, so an unknown or unreachable one fails before any run.
        A causal LM: the parser can produce the dataset's labels (quality/answers.check_parser)."""
        from hf_cost.data.labelled import load_labelled

        if plan.suite.model.generative:
            answer_labels(cfg, where)
            _check_metrics(cfg.extra_metrics, f"{where}.extra_metrics")
            return
        if cfg.answers is not None:
            raise UserError("answers: only a causal LM's answers are parsed (model.task: text-generation)",
                            where=f"{where}.answers")
        checked: set[tuple[str, ...]] = set()
        for key, labels in scored_candidates(cfg, plan, where):
            if tuple(labels) not in checked:
                load_labelled(cfg.dataset, f"{where}.dataset", labels)
                checked.add(tuple(labels))
        _check_metrics(cfg.extra_metrics, f"{where}.extra_metrics")

    def run(self, scenario: AccuracyScenario, ctx: RunContext) -> list[ScenarioResult]:
        if getattr(ctx.candidate, "generates", False):
            return [self._answers(scenario, ctx)]
        from hf_cost.data.labelled import load_labelled
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


    def _answers(self, scenario: AccuracyScenario, ctx: RunContext) -> ScenarioResult:
        """A causal LM, zero-shot: every row's prompt answered, the answer parsed to a label and
        scored (exact match through `evaluate`, with accuracy and macro F1 over the parsed labels)."""
        from hf_cost.quality.answers import AnswerParser, score_answers
        from hf_cost.quality.lm_answers import generate_answers
        from hf_cost.quality.scoring import score_classification

        cand, generation = ctx.candidate, ctx.suite.generation
        data, labels = answer_labels(scenario, ctx.where)
        settings = scenario.answers or AnswerSettings()
        parser = AnswerParser(labels, settings.regex)
        texts = data.texts
        ctx.progress.say(f"[{scenario.name}] answering {len(texts)} prompts from {data.description} "
                         f"(batches of {scenario.batch_size}, up to {generation.max_new_tokens} new tokens)")
        ctx.progress.reset()
        with ctx.memory() as memory:
            t0 = clock()
            answers, new_tokens, prompt_tokens = generate_answers(
                cand, texts, generation, scenario.batch_size,
                tick=lambda done: ctx.progress.tick(lambda: f"{done}/{len(texts)} answered"))
            elapsed = clock() - t0
        references = [labels[i] for i in data.labels]
        scored = score_answers(answers, references, parser, n_resamples=scenario.bootstrap_resamples,
                               seed=scenario.dataset.seed)
        no_answer = len(labels)  # an unparseable answer: a class of its own, never right
        preds = [no_answer if p is None else labels.index(p) for p in scored["parsed"]]
        scores = score_classification(preds, data.labels, [*labels, NO_ANSWER],
                                      n_resamples=scenario.bootstrap_resamples, seed=scenario.dataset.seed)
        scores["per_class"].pop(NO_ANSWER, None)
        extra = {m: load_metric(m).compute(predictions=preds, references=data.labels) for m in scenario.extra_metrics}
        rule = (f"regex {settings.regex!r}, its group compared with the labels (case ignored)" if settings.regex
                else "the first label named in the answer as a whole word, case ignored")
        return ScenarioResult(
            name=scenario.name or self.kind, kind=self.kind, candidate=cand.name,
            settings={**scenario.model_dump(), "labels": labels, "generation": generation.model_dump()},
            metrics={**scores, "extra_metrics": extra, "duration_s": elapsed,
                     "throughput_samples_per_s": len(texts) / elapsed, "dropped_rows": data.dropped,
                     "answers": {"exact_match": scored["exact_match"], "unparseable": scored["unparseable"]["count"],
                                 "unparseable_share": scored["unparseable"]["share"], "parser": rule,
                                 "prompt": generation.prompt, "chat_template": generation.chat_template,
                                 "new_tokens_mean": sum(new_tokens) / len(new_tokens)}},
            memory=memory.to_dict(),
            raw={"predictions": preds, "references": data.labels, "answers": answers, "parsed": scored["parsed"],
                 "new_tokens": new_tokens, "prompt_tokens": prompt_tokens},
            notes=[f"dataset: {data.description}; zero-shot by generation: prompt {generation.prompt!r}"
                   f"{' in the chat template' if generation.chat_template else ''}; parser: {rule}; "
                   f"{scored['unparseable']['count']} of {len(texts)} answers named no label (scored wrong; "
                   f"'{NO_ANSWER}' counts as a predicted class in the macro averages); CIs: "
                   f"{scores['accuracy']['method']}"],
        )


NO_ANSWER = "(no answer)"
# bundled metrics that take other inputs than label ids
NOT_LABEL_METRICS = {"perplexity": "use the perplexity kind", "exact_match": "an LM's accuracy step reports it"}


def answer_labels(cfg: AccuracyScenario, where: str) -> tuple[Any, list[str]]:
    """The labelled rows and the labels an LM's answers are parsed to (answers.labels, else the
    dataset's own), refused with one line when the parser cannot produce them."""
    from hf_cost.data.labelled import load_labelled
    from hf_cost.quality.answers import check_parser

    settings = cfg.answers or AnswerSettings()
    data = load_labelled(cfg.dataset, f"{where}.dataset", settings.labels)
    labels = list(data.label_names)
    try:
        check_parser(labels, settings.regex)
    except ValueError as exc:
        raise UserError(str(exc), where=f"{where}.answers") from None
    return data, labels


def _check_metrics(names: list[str], where: str) -> None:
    """Load each extra metric now, so an unknown or unreachable one fails before any run."""
    from hf_cost.quality.metric_loader import load_metric

    for i, name in enumerate(names):
        if name in NOT_LABEL_METRICS:
            raise UserError(f"{name!r} does not score label predictions ({NOT_LABEL_METRICS[name]})",
                            where=f"{where}[{i}]")
        try:
            load_metric(name)
        except UserError as exc:
            raise UserError(str(exc), where=f"{where}[{i}]") from None
