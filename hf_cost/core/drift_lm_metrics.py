"""Typed metrics of the `drift` kind on a causal LM: perplexity per period and its decay
(drift/lm_decay.py), and per-period answers by generation where the dataset has labels.

Kept beside core/drift_metrics.py (which holds the figures every drift result has) so each
stays small. Raw per-document NLL sums and token counts are kept in the result's raw block.
"""

from __future__ import annotations

from pydantic import Field

from hf_cost.core.bounds import Count, NonNegative, Out, Share
from hf_cost.core.bounds import better as _better
from hf_cost.core.metrics import ScoredMetric


class ValueCI(Out):
    value: float
    ci_low: float
    ci_high: float


class PeriodPerplexity(Out):
    """One period's perplexity exactly as the perplexity kind computes it (quality/perplexity.py)."""

    value: NonNegative = _better(False, "exp(sum NLL / sum predicted tokens) over the period's scored documents")
    ci_low: NonNegative
    ci_high: NonNegative
    ci_level: float
    n: Count = Field(description="documents scored")
    method: str
    mean_nll_per_token: NonNegative = Field(description="nats per predicted token (log-perplexity)")
    documents: Count
    tokens: Count = Field(description="tokens predicted (each document's length - 1)")
    excluded_documents: Count = Field(description="documents with fewer than 2 tokens: nothing to predict")
    truncated_documents: Count = Field(description="documents cut at max_length")


class PeriodAnswers(Out):
    """One period's generated answers parsed to labels (quality/answers.py)."""

    exact_match: ScoredMetric = _better(True, "parsed label == reference, bootstrap CI over the period's rows")
    unparseable: Count = Field(description="answers that named no label (scored wrong)")
    unparseable_share: Share = _better(False, "unparseable / n")


class LogPerplexityPeriod(Out):
    period: str
    position: float
    documents: Count
    tokens: Count
    in_reference: bool
    mean_nll_per_token: ValueCI = Field(description="L(t), nats per token, joint bootstrap CI")
    ratio_to_reference: ValueCI = _better(False, "perplexity ratio exp(L(t) - L(reference)); > 1: worse")


class ReferencePerplexity(Out):
    periods: list[str]
    documents: Count
    tokens: Count
    mean_nll_per_token: ValueCI
    perplexity: ValueCI


class LogPerplexityChange(ValueCI):
    period: str
    previous: str


class LogPerplexitySlope(ValueCI):
    ols_ci_low: float | None = Field(description="t-interval from the points' scatter around the line (df = T - 2)")
    ols_ci_high: float | None
    ols_p_value: float | None
    periods: int
    unit: str
    ci_level: float


class PerplexityDecay(Out):
    metric: str
    method: str
    ci_level: float
    reference: ReferencePerplexity
    periods: list[LogPerplexityPeriod]
    changes: list[LogPerplexityChange] = Field(description="L(t) - L(t-1), consecutive periods")
    slope: LogPerplexitySlope | None = _better(False, "least-squares change of L(t) per period position")
    first_significant_rise: str | None = Field(
        description="first period outside the reference whose ratio's CI lies wholly above 1")


class LmDrift(Out):
    """What a causal LM's drift measured besides the per-period figures."""

    perplexity_decay: PerplexityDecay
    max_length: Count = Field(description="tokens scored per document at most")
    answers: PeriodAnswers | None = Field(None, description="over every scored row (labels only)")
    parser: str | None = Field(None, description="how an answer becomes a label (labels only)")
    prompt: str | None = None
    chat_template: bool | None = None
    nll_duration_s: NonNegative = Field(description="document NLL over every scored row")
    generation_duration_s: NonNegative | None = Field(None, description="answers generated for every row (labels only)")
