"""Free-text quality of a causal LM by generation: each row's text in a prompt, the answer generated
and scored against the row's reference text with ROUGE (rouge-score) or chrF (sacrebleu), through
the bundled `evaluate` modules, with bootstrap CIs over documents (quality/text_scores.py). Two
candidates scored on the same rows get a paired difference in the comparison."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hf_cost.config.base import DatasetSpec, MeasuredStep
from hf_cost.config.fields import BatchSize, PosInt
from hf_cost.core.bounds import Count, NonNegative, Out, better
from hf_cost.core.format import dropped
from hf_cost.core.results import KindMetrics, ScenarioResult, SummaryCells, TextQualityFigure
from hf_cost.errors import UserError
from hf_cost.measure.timing import clock
from hf_cost.models.context import RunContext
from hf_cost.steps.base import MeasureStep, Plan

METRIC_OPTIONS = {"rouge": ("use_stemmer",), "chrf": ("word_order", "lowercase")}


class FreeTextScenario(MeasuredStep):
    """A causal LM's answers scored against reference texts (ROUGE or chrF)."""

    kind: Literal["free_text"]
    dataset: DatasetSpec
    reference_column: str = Field(min_length=1, description="The column holding each row's reference answer.")
    metric: Literal["rouge", "chrf"] = Field("rouge", description=(
        "rouge: ROUGE-1/2/L F-measures (rouge-score), headline rougeL, 0..1; chrf: sacrebleu's corpus chrF "
        "(chrF++ with word_order 2), 0..100"))
    prompt: str | None = Field(None, description="This step's prompt, with '{text}' once; default: generation.prompt.")
    max_new_tokens: PosInt | None = Field(None, description="Default: generation.max_new_tokens.")
    batch_size: BatchSize = 8
    bootstrap_resamples: PosInt = 1000
    use_stemmer: bool = Field(False, description="rouge only: Porter-stem tokens before matching.")
    word_order: Literal[0, 2] = Field(0, description="chrf only: 2 adds word 1- and 2-grams (chrF++).")
    lowercase: bool = Field(False, description="chrf only: ignore case (ROUGE's tokenizer always does).")

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str | None) -> str | None:
        from hf_cost.config.generation import check_prompt

        return None if v is None else check_prompt(v)

    @model_validator(mode="after")
    def _options_of_the_metric(self) -> FreeTextScenario:
        for metric, keys in METRIC_OPTIONS.items():
            # a value other than the default: a resolved suite (results.json) writes every default out
            wrong = [k for k in keys if metric != self.metric
                     and getattr(self, k) != type(self).model_fields[k].default]
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: a {metric} setting, and metric is {self.metric}")
        if self.dataset.label_column is not None:
            raise ValueError("dataset.label_column: free_text scores against reference_column; remove it")
        return self

    def options(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in METRIC_OPTIONS[self.metric]}

    def activation_batches(self) -> list[tuple[str, int, bool]]:
        return [("batch_size", self.batch_size, False)]


class TextScore(Out):
    value: NonNegative = better(True, "the corpus score (scale: 1 for ROUGE, 100 for chrF)")
    ci_low: NonNegative
    ci_high: NonNegative
    ci_level: float
    n: Count
    scale: float = Field(description="the score's maximum: 1 (ROUGE) or 100 (chrF)")
    method: str


class FreeTextMetrics(KindMetrics):
    metric: Literal["rouge", "chrf"]
    scores: dict[str, TextScore] = Field(description="rouge1, rouge2, rougeL; or chrf / chrf++")
    headline: str = Field(description="the score the step leads with: rougeL, chrf or chrf++")
    n: Count = Field(description="rows scored")
    empty_answers: Count = Field(description="answers with no text once stripped (they score 0)")
    answers_at_max_new_tokens: Count = Field(description="answers that used every one of max_new_tokens (perhaps cut off)")
    new_tokens_mean: NonNegative
    scorer: str = Field(description="the scoring package and its settings (sacrebleu's signature for chrF)")
    prompt: str
    chat_template: bool
    duration_s: NonNegative
    throughput_samples_per_s: NonNegative
    dropped_rows: dict[str, int] = Field(default_factory=dict, description="column -> rows with an empty cell")

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        s = self.scores[self.headline]
        digits = 4 if s.scale == 1 else 2
        others = " · ".join(f"{k} {v.value:.{digits}f}" for k, v in self.scores.items() if k != self.headline)
        return SummaryCells(
            n=f"{self.n} rows" + dropped(self.dropped_rows),
            headline=f"{self.headline} {s.value:.{digits}f}" + (f" · {others}" if others else "")
            + f" · {self.empty_answers} empty",
            spread=f"95% CI [{s.ci_low:.{digits}f}, {s.ci_high:.{digits}f}] (bootstrap over rows)",
        )

    def text_quality(self, result: ScenarioResult) -> TextQualityFigure:
        if self.metric == "rouge":
            raw = {"per_document": {t: result.raw[t] for t in self.scores if t in result.raw}}
        else:
            raw = {"statistics": result.raw["statistics"]}
        options = {k: result.settings[k] for k in METRIC_OPTIONS[self.metric] if k in result.settings}
        return TextQualityFigure(cell=result.name, metric=self.metric, score=self.scores[self.headline], raw=raw,
                                 options=options, seed=int(result.settings.get("dataset", {}).get("seed", 0)))

    def check_raw(self, raw: dict[str, Any]) -> str | None:
        keys = [k for k in self.scores] if self.metric == "rouge" else ["statistics"]
        for key in keys:
            if len(raw.get(key) or []) != self.n:
                return f"{key}: one entry per row is needed (a paired difference resamples it)"
        return None


class FreeTextRunner(MeasureStep):
    kind = "free_text"
    config = FreeTextScenario
    metrics = FreeTextMetrics
    serves_lms = True

    def check(self, cfg: FreeTextScenario, plan: Plan, where: str) -> None:
        import importlib.util

        from hf_cost.quality.text_scores import PACKAGES

        if not plan.suite.model.generative:
            raise UserError("free_text scores a causal LM's generated answers: set model.task: text-generation",
                            where=f"{where}.kind")
        if importlib.util.find_spec(PACKAGES[cfg.metric]) is None:
            raise UserError(f"metric {cfg.metric} needs the {PACKAGES[cfg.metric]} package: "
                            "pip install -e \".[text]\"", where=f"{where}.metric")
        _generation(cfg, plan.suite.generation, where)
        _rows(cfg, where)

    def run(self, scenario: FreeTextScenario, ctx: RunContext) -> list[ScenarioResult]:
        from hf_cost.quality.lm_answers import generate_answers
        from hf_cost.quality.text_scores import score_texts

        cand, generation = ctx.candidate, _generation(scenario, ctx.suite.generation, ctx.where)
        texts, references, source, dropped_rows = _rows(scenario, f"{ctx.where}.dataset")
        ctx.progress.say(f"[{scenario.name}] answering {len(texts)} prompts from {source} (batches of "
                         f"{scenario.batch_size}, up to {generation.max_new_tokens} new tokens), scored by "
                         f"{scenario.metric} against column '{scenario.reference_column}'")
        ctx.progress.reset()
        with ctx.memory() as memory, cand.decoding(generation):
            t0 = clock()
            answers, new_tokens, prompt_tokens = generate_answers(
                cand, texts, generation, scenario.batch_size,
                tick=lambda done: ctx.progress.tick(lambda: f"{done}/{len(texts)} answered"))
            elapsed = clock() - t0
        answers = [a.strip() for a in answers]
        scored = score_texts(scenario.metric, answers, references, scenario.options(),
                             n_resamples=scenario.bootstrap_resamples, seed=scenario.dataset.seed)
        scorer = (f"sacrebleu {scored['signature']}" if scenario.metric == "chrf" else
                  f"rouge-score, F-measure per row, tokens [a-z0-9]+ lower-cased"
                  f"{', Porter-stemmed' if scenario.use_stemmer else ''}")
        head = scored["headline"]
        cut = sum(n >= generation.max_new_tokens for n in new_tokens)
        # per row: each ROUGE type's F-measure, or chrF's n-gram statistics (what a resample sums)
        raw_scores = scored["per_document"] if scenario.metric == "rouge" else {"statistics": scored["statistics"]}
        return [ScenarioResult(
            name=scenario.name or self.kind, kind=self.kind, candidate=cand.name,
            settings={**scenario.model_dump(), "generation": generation.model_dump()},
            metrics={"metric": scenario.metric, "scores": scored["scores"], "headline": head, "n": len(texts),
                     "empty_answers": sum(not a for a in answers), "answers_at_max_new_tokens": cut,
                     "new_tokens_mean": sum(new_tokens) / len(new_tokens), "scorer": scorer,
                     "prompt": generation.prompt, "chat_template": generation.chat_template,
                     "duration_s": elapsed, "throughput_samples_per_s": len(texts) / elapsed,
                     "dropped_rows": dropped_rows},
            memory=memory.to_dict(),
            raw={"answers": answers, "references": references, "new_tokens": new_tokens,
                 "prompt_tokens": prompt_tokens, **raw_scores},
            notes=[f"dataset: {source}; references: column '{scenario.reference_column}'; prompt "
                   f"{generation.prompt!r}{' in the chat template' if generation.chat_template else ''}; answers "
                   f"stripped of surrounding whitespace, nothing else; scorer: {scorer}; "
                   f"{scored['scores'][head]['method']}; {cut} of {len(texts)} answers stopped at max_new_tokens"],
        )]


def _generation(cfg: FreeTextScenario, generation: Any, where: str) -> Any:
    """The suite's generation settings with this step's prompt and max_new_tokens, checked as a whole."""
    from pydantic import ValidationError

    from hf_cost.config.generation import GenerationSettings

    update = {k: getattr(cfg, k) for k in ("prompt", "max_new_tokens") if getattr(cfg, k) is not None}
    if not update:
        return generation
    try:
        return GenerationSettings.model_validate({**generation.model_dump(exclude_unset=True), **update})
    except ValidationError as exc:
        why = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise UserError(f"with the generation block: {why}", where=where) from None


def _rows(cfg: FreeTextScenario, where: str) -> tuple[list[str], list[str], str, dict[str, int]]:
    """Texts and references: rows with an empty text or reference are dropped and counted."""
    from hf_cost.data.selection import narrow_rows
    from hf_cost.data.sources import load_split, require_columns

    spec = cfg.dataset
    ds = load_split(spec, f"{where}.dataset")
    require_columns(ds, {"text_column": spec.text_column}, f"{where}.dataset")
    require_columns(ds, {"reference_column": cfg.reference_column}, where)
    ds, dropped_rows = narrow_rows(ds, spec, f"{where}.dataset",
                                   {"text_column": spec.text_column, "reference_column": cfg.reference_column})
    if len(ds) == 0:
        raise UserError("no rows left to score after where/select/max_samples and empty references",
                        where=f"{where}.dataset")
    return ([str(t) for t in ds[spec.text_column]], [str(r) for r in ds[cfg.reference_column]],
            spec.display_name, dropped_rows)
