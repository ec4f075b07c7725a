"""Perplexity of a causal LM on held-out text: token-level NLL per document, a bootstrap CI over
documents, through the bundled `evaluate` module (quality/perplexity.py). No labels needed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hf_cost.config.base import DatasetSpec, MeasuredStep
from hf_cost.config.fields import BatchSize, PosInt
from hf_cost.core.bounds import Count, NonNegative, Out, better
from hf_cost.core.format import dropped, fmt
from hf_cost.core.results import KindMetrics, ScenarioResult, SummaryCells
from hf_cost.errors import UserError
from hf_cost.measure.timing import clock
from hf_cost.models.context import RunContext
from hf_cost.steps.base import MeasureStep, Plan

MAX_DOCUMENT_TOKENS = 1024


class PerplexityScenario(MeasuredStep):
    """Perplexity of each LM candidate on a text dataset (its text_column; labels are not read)."""

    kind: Literal["perplexity"]
    dataset: DatasetSpec
    max_length: PosInt | None = Field(None, description=(
        "Tokens scored per document at most (its first ones, BOS included); longer documents are truncated "
        f"and counted. Default: the model's max_position_embeddings, at most {MAX_DOCUMENT_TOKENS}."))
    batch_size: BatchSize = 8
    bootstrap_resamples: PosInt = 1000

    def activation_batches(self) -> list[tuple[str, int, bool]]:
        return [("batch_size", self.batch_size, False)]


class PerplexityValue(Out):
    value: NonNegative = better(False, "exp(sum NLL / sum predicted tokens) over the scored documents")
    ci_low: NonNegative
    ci_high: NonNegative
    ci_level: float
    n: Count
    method: str


class PerplexityMetrics(KindMetrics):
    perplexity: PerplexityValue
    mean_nll_per_token: NonNegative = better(False, "nats per predicted token")
    documents: Count = Field(description="documents scored (2 tokens or more)")
    tokens: Count = Field(description="tokens predicted (each document's length - 1)")
    excluded_documents: Count = Field(description="documents with fewer than 2 tokens: nothing to predict")
    truncated_documents: Count = Field(description="documents cut at max_length")
    duration_s: NonNegative
    tokens_per_s: NonNegative
    dropped_rows: dict[str, int] = Field(default_factory=dict, description="column -> rows with an empty cell")

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        p = self.perplexity
        return SummaryCells(
            n=f"{self.documents} documents, {self.tokens} tokens" + dropped(self.dropped_rows),
            headline=f"perplexity {fmt(p.value)}",
            spread=f"95% CI [{fmt(p.ci_low)}, {fmt(p.ci_high)}] (bootstrap over documents); "
            f"{fmt(self.mean_nll_per_token, digits=3)} nats/token",
        )

    def perplexity_figure(self) -> PerplexityValue:
        return self.perplexity


class PerplexityRunner(MeasureStep):
    kind = "perplexity"
    config = PerplexityScenario
    metrics = PerplexityMetrics
    serves_lms = True

    def check(self, cfg: PerplexityScenario, plan: Plan, where: str) -> None:
        if not plan.suite.model.generative:
            raise UserError("perplexity scores a causal LM's next-token predictions: set model.task: "
                            "text-generation", where=f"{where}.kind")
        limit = getattr(plan.model_config, "max_position_embeddings", None)
        if limit is not None and cfg.max_length is not None and cfg.max_length > limit:
            raise UserError(f"max_length {cfg.max_length} is more than the model's max_position_embeddings "
                            f"({limit})", where=f"{where}.max_length")
        _texts(cfg, where)  # the dataset and its text column exist, and some rows are left

    def run(self, scenario: PerplexityScenario, ctx: RunContext) -> list[ScenarioResult]:
        from hf_cost.quality.perplexity import corpus_perplexity

        cand = ctx.candidate
        texts, source, dropped_rows = _texts(scenario, f"{ctx.where}.dataset")
        limit = getattr(cand.module.config, "max_position_embeddings", None) or MAX_DOCUMENT_TOKENS
        max_length = scenario.max_length or min(limit, MAX_DOCUMENT_TOKENS)
        ctx.progress.say(f"[{scenario.name}] perplexity of {cand.name} on {len(texts)} documents from {source}")
        with ctx.memory() as memory:
            t0 = clock()
            docs = cand.document_nll(texts, max_length, scenario.batch_size)
            elapsed = clock() - t0
        try:
            scores = corpus_perplexity(docs, n_resamples=scenario.bootstrap_resamples, seed=scenario.dataset.seed)
        except ValueError as exc:
            raise UserError(str(exc), where=f"{ctx.where}.dataset") from None
        return [ScenarioResult(
            name=scenario.name or self.kind, kind=self.kind, candidate=cand.name,
            settings={**scenario.model_dump(), "max_length": max_length},
            metrics={**scores, "duration_s": elapsed, "tokens_per_s": scores["tokens"] / elapsed,
                     "dropped_rows": dropped_rows},
            memory=memory.to_dict(),
            raw={"nll_sums": [d.nll_sum for d in docs], "token_counts": [d.n_predicted for d in docs],
                 "truncated": [d.truncated for d in docs]},
            notes=[f"dataset: {source}; {scores['perplexity']['method']}; per document: NLL (nats) of tokens 2..n "
                   "given their prefixes, BOS first where the tokenizer has one (raw.nll_sums, raw.token_counts; "
                   "documents with 0 tokens predicted are excluded)"],
        )]


def _texts(cfg: PerplexityScenario, where: str) -> tuple[list[str], str, dict[str, int]]:
    from hf_cost.data.selection import narrow_rows
    from hf_cost.data.sources import load_split, require_columns

    spec = cfg.dataset
    ds = load_split(spec, where)
    columns = {"text_column": spec.text_column}
    require_columns(ds, columns, where)
    ds, dropped_rows = narrow_rows(ds, spec, where, columns)
    if len(ds) == 0:
        raise UserError("no rows left to score after where/select/max_samples", where=where)
    return [str(t) for t in ds[spec.text_column]], spec.display_name, dropped_rows
