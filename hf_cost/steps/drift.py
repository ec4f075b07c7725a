"""Drift mode: each candidate scored on every period of a dated dataset (the accuracy runner's
inference path), with decay statistics, input drift against its training window and
label-free accuracy estimates (hf_cost/drift/). A causal LM: perplexity per period with its
decay, and accuracy by generation per period where the dataset has labels (drift/lm.py)."""

from __future__ import annotations

from typing import Any

from hf_cost.config.drift import ENCODER_ONLY, LM_ONLY, DriftScenario
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
    serves_lms = True

    def __init__(self) -> None:
        # Shared across this step's candidates: input drift that does not depend on the candidate,
        # the dataset's rows (by label set) and training windows (by lineage and label set).
        self._cache: dict[Any, Any] = {}
        self._rows: dict[tuple[str, ...], Any] = {}
        self._windows: dict[tuple[Any, ...], Any] = {}

    def outputs(self, cfg: DriftScenario) -> list[str]:
        return [f"plots/drift-{cfg.name}.png"]

    def check(self, cfg: DriftScenario, plan: Plan, where: str) -> None:
        """Periods parse, named periods exist, and every candidate's training window is known.
        A causal LM: see steps/drift_lm.check_lm."""
        from hf_cost.drift.data import load_period_rows, training_window
        from hf_cost.errors import DataError, UserError

        if plan.suite.model.generative:
            return _check_lm(cfg, plan, where)
        for key in LM_ONLY:
            if key in cfg.model_fields_set:
                raise UserError("only a causal LM's drift reads it (model.task: text-generation)",
                                where=f"{where}.{key}")
        if cfg.dataset.label_column is None:
            raise UserError("dataset.label_column is required to score each period (a classifier's drift; only a "
                            "causal LM's perplexity needs no labels)", where=f"{where}.dataset.label_column")
        loaded: dict[tuple[str, ...], Any] = {}
        for key, name, labels in scored_candidates(cfg, plan, where, with_names=True):
            rows = loaded.get(tuple(labels))
            if rows is None:
                rows = loaded[tuple(labels)] = load_period_rows(cfg.dataset, cfg, f"{where}.dataset", labels,
                                                                 order=cfg.order, keep_unlabelled=True)
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

        if getattr(ctx.candidate, "generates", False):
            return [_run_lm(scenario, ctx, self.kind)]
        sc, cand = scenario, ctx.candidate
        labels = model_label_names(cand, f"{ctx.where}.candidates")
        key = tuple(labels)
        if key not in self._rows:
            self._rows[key] = load_period_rows(sc.dataset, sc, f"{ctx.where}.dataset", labels, order=sc.order,
                                               keep_unlabelled=True)
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
        notes = [(f"dataset: {data.description}; periods from column '{sc.period_column}' "
                 f"({sc.granularity}); CIs: percentile bootstrap, {sc.bootstrap_resamples} resamples")]
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
                     "logits": [[round(float(x), 6) for x in row] for row in logits],  # the label-free estimates' input
                     "rows": [rows.row_numbers[i] for i in scored]},  # data row in the file, from 1
                notes=notes,
            )
        ]


def _max_prob(logits: Any) -> list[float]:
    from hf_cost.drift.confidence import max_softmax

    return [round(float(x), 6) for x in max_softmax(logits)]


# Why a causal LM's drift refuses a classifier-only key (config/drift.ENCODER_ONLY), in one line each.
_NOT_FOR_LMS = {
    "sequence_length": "prompts are never truncated; perplexity reads max_length",
    "exclude_training_rows": "an LM's training rows are not in the scenario, so none can be excluded",
    "domain_classifier": "input drift is measured for classifiers only",
    "max_texts_per_side": "input drift (its domain classifier) is measured for classifiers only",
    "horizon": "Eval-Stream needs a candidate trained on the periods up to t (fine_tune), which LMs are not",
    "label_free": "the label-free estimates read a classifier's softmax probabilities, which an answer parser lacks",
}


def _check_lm(cfg: DriftScenario, plan: Plan, where: str) -> None:
    """A causal LM: no classifier-only key, one text per row, max_length within the model, the
    rows and periods load, the reference periods exist, and the parser can produce the labels."""
    from hf_cost.drift.lm import lm_window, load_lm_rows
    from hf_cost.errors import DataError, UserError

    for key in ENCODER_ONLY:
        if key in cfg.model_fields_set:
            raise UserError(f"not read for a causal LM: {_NOT_FOR_LMS[key]}", where=f"{where}.{key}")
    if cfg.dataset.text_pair_column is not None:
        raise UserError("a causal LM reads one text per row", where=f"{where}.dataset.text_pair_column")
    if cfg.answers is not None and cfg.dataset.label_column is None:
        raise UserError("answers are scored against dataset.label_column, which is not set", where=f"{where}.answers")
    limit = getattr(plan.model_config, "max_position_embeddings", None)
    if limit is not None and cfg.max_length is not None and cfg.max_length > limit:
        raise UserError(f"max_length {cfg.max_length} is more than the model's max_position_embeddings ({limit})",
                        where=f"{where}.max_length")
    rows = load_lm_rows(cfg, where)
    empty = [p for p in cfg.order or [] if p not in rows.column.order]
    if empty:
        raise DataError(f"period '{empty[0]}' has no rows in column '{cfg.period_column}'", where=f"{where}.order")
    lm_window(cfg, rows.column, where)


def _run_lm(sc: DriftScenario, ctx: RunContext, kind: str) -> ScenarioResult:
    """Every row's document NLL (perplexity per period), and with labels every row's answer,
    then drift/lm.analyse_lm."""
    from hf_cost.config.generation import AnswerSettings
    from hf_cost.drift.lm import analyse_lm, lm_window, load_lm_rows
    from hf_cost.quality.answers import AnswerParser, score_answers
    from hf_cost.quality.lm_answers import generate_answers
    from hf_cost.steps.accuracy import NO_ANSWER
    from hf_cost.steps.perplexity import MAX_DOCUMENT_TOKENS

    cand, generation = ctx.candidate, ctx.suite.generation
    rows = load_lm_rows(sc, ctx.where)
    window, source = lm_window(sc, rows.column, ctx.where)
    limit = getattr(cand.module.config, "max_position_embeddings", None) or MAX_DOCUMENT_TOKENS
    max_length = sc.max_length or min(limit, MAX_DOCUMENT_TOKENS)
    say = lambda m: ctx.progress.say(f"[{sc.name}] {cand.name}: {m}")  # noqa: E731
    say(f"{len(rows.texts)} rows over {len(rows.column.order)} periods; reference {', '.join(window)} ({source})")
    answers, settings = None, sc.answers or AnswerSettings()
    with ctx.memory() as memory:
        t0 = clock()
        docs = cand.document_nll(rows.texts, max_length, sc.batch_size)
        nll_s = clock() - t0
        if rows.labels is not None:
            t1 = clock()
            texts, new_tokens, prompt_tokens = generate_answers(cand, rows.texts, generation, sc.batch_size)
            answers = {"answers": texts, "parser": AnswerParser(rows.label_names, settings.regex)}
            gen_s = clock() - t1
    t2 = clock()
    figures = analyse_lm(sc, rows, window, docs, answers, NO_ANSWER, ctx.where, say)
    elapsed = nll_s + (gen_s if answers is not None else 0.0)
    lm: dict[str, Any] = {"perplexity_decay": figures["perplexity_decay"], "max_length": max_length,
                          "nll_duration_s": nll_s}
    raw: dict[str, Any] = {"periods": rows.periods, "rows": rows.row_numbers, "nll_sums": [d.nll_sum for d in docs],
                           "token_counts": [d.n_predicted for d in docs], "truncated": [d.truncated for d in docs]}
    ppl_method = next(p["perplexity"]["method"] for p in figures["periods"] if "perplexity" in p)
    notes = [(f"dataset: {rows.description}; periods from column '{sc.period_column}' ({sc.granularity}); "
              f"perplexity per period: {ppl_method}; decay: {figures['perplexity_decay']['method']}"),
             ("not measured for a causal LM: input drift and the label-free accuracy estimates (AC/ATC read a "
             "classifier's max-softmax confidence, which an answer parser does not have)")]
    if answers is not None:
        refs = [rows.label_names[i] for i in rows.labels]  # type: ignore[union-attr]
        overall = score_answers(answers["answers"], refs, answers["parser"], n_resamples=sc.bootstrap_resamples,
                                seed=sc.dataset.seed)
        rule = (f"regex {settings.regex!r}, its group compared with the labels (case ignored)"
                if settings.regex else "the first label named in the answer as a whole word, case ignored")
        lm.update(answers={"exact_match": overall["exact_match"], "unparseable": overall["unparseable"]["count"],
                           "unparseable_share": overall["unparseable"]["share"]}, parser=rule,
                  prompt=generation.prompt, chat_template=generation.chat_template, generation_duration_s=gen_s)
        parsed = overall["parsed"]
        raw.update(answers=answers["answers"], parsed=parsed, references=rows.labels, new_tokens=new_tokens,
                   prompt_tokens=prompt_tokens,
                   predictions=[len(rows.label_names) if q is None else rows.label_names.index(q) for q in parsed])
        notes.append(f"answers by generation: prompt {generation.prompt!r}; parser: {rule}; unparseable answers are "
                     f"scored wrong ('{NO_ANSWER}' is a class of its own in macro-F1)")
    notes += [f"period {p['period']}: {p['n']} rows, fewer than min_rows_per_period ({sc.min_rows_per_period}): "
              "its CI is wide" for p in figures["periods"] if p["few_rows"]]
    n = len(rows.texts)
    inside = set(window)
    metrics = {"period_column": sc.period_column, "granularity": sc.granularity, "training_window": window,
               "training_window_source": source, "reference_rows": sum(p in inside for p in rows.periods),
               "scored_rows": n, "excluded_training_rows": 0, "id_rows": sum(p in inside for p in rows.periods),
               "periods": figures["periods"], "decay": figures["decay"], "lm": lm, "duration_s": elapsed,
               "analysis_s": clock() - t2, "throughput_samples_per_s": n / elapsed if elapsed > 0 else 0.0,
               "dropped_rows": rows.dropped}
    if rows.labels is not None:
        ids = [rows.labels[i] for i, p in enumerate(rows.periods) if p in inside]
        metrics["label_distribution_reference"] = {name: ids.count(j) for j, name in enumerate(rows.label_names)}
    return ScenarioResult(name=sc.name or kind, kind=kind, candidate=cand.name,
                          settings={**sc.model_dump(), "max_length": max_length, "labels": rows.label_names,
                                    "generation": generation.model_dump()},
                          metrics=metrics, memory=memory.to_dict(), raw=raw, notes=notes)
