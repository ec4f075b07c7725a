"""The `drift` scenario: quality and inputs of each candidate across dated periods of one dataset.

Kept apart from schema.py (which holds the other measuring steps) so each file stays small.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from hf_cost.config.base import DatasetSpec, MeasuredStep, Strict
from hf_cost.config.fields import BatchSize, Float, PeriodLabel, PosInt, ShownText
from hf_cost.config.generation import AnswerSettings

# Keys only a classifier's drift reads; a causal LM's drift refuses them when set (steps/drift.py).
ENCODER_ONLY = ("sequence_length", "exclude_training_rows", "domain_classifier", "max_texts_per_side", "horizon",
                "label_free")
# Keys only a causal LM's drift reads; a classifier's refuses them when set.
LM_ONLY = ("answers", "max_length")


class LabelFreeSettings(Strict):
    """How a classifier's accuracy is estimated without labels, and when an estimate is not trusted."""

    calibration_folds: PosInt = Field(
        5, ge=2, description="Folds over the in-window held-out rows: a calibrator (temperature or per-class "
        "isotonic) is kept only when it lowers the out-of-fold expected calibration error.")
    untrusted_domain_auc: Float = Field(
        0.80, gt=0.5, le=1.0, description="A period whose domain-classifier AUC is at least this (and above its "
        "permutation baseline, when it has one) left the training distribution: its estimates are untrusted. "
        "0.80 lies between the default run's periods where the estimates held (AUC 0.65) and those where they "
        "failed (AUC 0.96 and above).")
    untrusted_unseen_word_rate: Float = Field(
        0.10, gt=0.0, le=1.0, description="A period whose share of words never seen in the training window is at "
        "least this: its estimates are untrusted (the default run: 3 % where they held, 15 % and more where they "
        "failed).")
    alert_chunks: PosInt = Field(
        5, ge=2, description="Alert thresholds: the in-window rows are cut into this many seeded chunks; the headline "
        "estimate's mean over them ± 3 standard deviations (NannyML's default) bounds the normal range.")
    alert_lower: Float | None = Field(
        None, ge=0.0, le=1.0, description="A constant lower threshold on the estimated accuracy instead of mean - 3σ.")
    alert_upper: Float | None = Field(
        None, ge=0.0, le=1.0, description="A constant upper threshold instead of mean + 3σ.")

    @model_validator(mode="after")
    def _ordered(self) -> LabelFreeSettings:
        if self.alert_lower is not None and self.alert_upper is not None and self.alert_lower >= self.alert_upper:
            raise ValueError(f"alert_lower ({self.alert_lower:g}) must be below alert_upper ({self.alert_upper:g})")
        return self


class DriftScenario(MeasuredStep):
    """Every period of ``dataset.period_column`` scored like accuracy mode, with decay statistics
    (in-distribution vs out-of-distribution, period-to-period change, slope per period), input
    drift against the training window, and label-free accuracy estimates. A causal LM
    (model.task: text-generation): perplexity per period (no labels needed) with its decay, and,
    when the dataset has a label column, accuracy by generation per period."""

    kind: Literal["drift"]
    dataset: DatasetSpec
    period_column: ShownText = Field(description="The column holding each row's date or period label.")
    granularity: Literal["month", "quarter", "half", "year", "label"] = Field(
        "label",
        description="month / quarter / half / year: the column holds dates (ISO 8601), binned so; "
        "label: the column holds period labels, ordered naturally (or by `order`).",
    )
    timezone: str = Field("UTC", description="Dates with an offset are converted to this zone before binning.")
    order: list[PeriodLabel] | None = Field(None, min_length=1, description="granularity label: the periods in order.")
    training_window: list[PeriodLabel] | None = Field(
        None,
        min_length=1,
        description="The periods the candidates were trained on. Default: the periods of the train "
        "rows of the fine_tune / distill step that built each candidate.",
    )
    exclude_training_rows: bool = Field(
        True, description="Rows whose text is in the candidate's training set are not scored."
    )
    min_rows_per_period: PosInt = Field(
        30, description="A period with fewer rows is kept and flagged: its CI is wide."
    )
    batch_size: BatchSize = 32
    sequence_length: PosInt | None = Field(None, description="Defaults to inputs.sequence_length.")
    bootstrap_resamples: PosInt = 1000
    domain_classifier: bool = Field(
        True, description="Train a small text classifier per period (training window vs period): its AUC."
    )
    max_texts_per_side: PosInt = Field(1000, description="Domain classifier: texts per side at most.")
    horizon: PosInt | None = Field(
        None,
        description="Eval-Stream (Wild-Time): also report each candidate's mean accuracy over the "
        "`horizon` periods right after its training window. Train one candidate per window with "
        "fine_tune steps (periods up to t) to get the protocol's curve.",
    )

    label_free: LabelFreeSettings = Field(
        default_factory=LabelFreeSettings, description="Label-free accuracy estimates: calibration, and the "
        "input-drift levels at which a period's estimates are labelled untrusted.")

    answers: AnswerSettings | None = Field(
        None, description="Causal LM with dataset.label_column: how each period's generated answers become labels "
        "(as the accuracy kind's answers:); default parser when omitted.")
    max_length: PosInt | None = Field(
        None, description="Causal LM: tokens scored per document for perplexity at most (its first ones, BOS "
        "included). Default: the model's max_position_embeddings, at most 1024 (as the perplexity kind).")

    @field_validator("period_column")
    @classmethod
    def _column(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("give the name of the column holding dates or periods")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DriftScenario:
        if self.order is not None and self.granularity != "label":
            raise ValueError("order: only used with granularity: label (dates are ordered by time)")
        for key in ("order", "training_window"):
            values = getattr(self, key)
            if values is not None and len(set(values)) != len(values):
                dup = next(v for v in values if values.count(v) > 1)
                raise ValueError(f"{key}: '{dup}' is listed twice")
        return self
