"""Typed metrics of the `drift` kind (hf_cost/drift/): quality per period, decay, input drift.

Kept beside core/metrics.py so each stays small. The input-drift tests keep their own
figures (statistic, p-value or CI, method) as returned by drift/input_shift.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hf_cost.core.drift_lm_metrics import LmDrift, PeriodAnswers, PeriodPerplexity
from hf_cost.core.format import describe_slope, dropped, fmt
from hf_cost.core.metrics import ScoredMetric, _better, _Metrics
from hf_cost.core.results import KindMetrics, PeriodQuality, QualityFigure, ScenarioResult, SummaryCells


class Interval(_Metrics):
    value: float
    ci_low: float
    ci_high: float


class PeriodValue(Interval):
    """One period's mean score in the joint bootstrap (the decay statistics' input)."""

    period: str
    position: float
    n: int
    in_window: bool


class PooledScore(Interval):
    n: int
    periods: list[str]


class AverageScore(Interval):
    periods: list[str]


class WorstScore(Interval):
    period: str


class OutOfDistribution(_Metrics):
    average: AverageScore = Field(description="unweighted mean over the periods outside the training window")
    worst: WorstScore = Field(description="the lowest of them; CI from the per-resample minimum")


class Change(Interval):
    period: str
    previous: str


class Slope(Interval):
    ols_ci_low: float | None = Field(description="t-interval from the points' scatter around the line (df = T - 2)")
    ols_ci_high: float | None
    ols_p_value: float | None
    periods: int
    unit: str
    ci_level: float


class Decay(_Metrics):
    metric: str
    method: str
    ci_level: float
    periods: list[PeriodValue]
    in_distribution: PooledScore | None = _better(True, "pooled over the scored rows of the training window's periods")
    out_of_distribution: OutOfDistribution | None
    drop: Interval | None = _better(False, "in-distribution - out-of-distribution average (positive: worse outside)")
    worst_drop: Interval | None = _better(False, "in-distribution - worst out-of-distribution period")
    changes: list[Change] = Field(description="S(t) = P(t) - P(t-1), consecutive periods")
    slope: Slope | None = _better(True, "least-squares change of the score per period position")


class Band(_Metrics):
    value: float
    ci_low: float
    ci_high: float
    ci_level: float | None = None
    n: int | None = Field(None, description="the period's rows")


class PeriodLabelFree(_Metrics):
    """A period's label-free accuracy estimates (drift/label_free.py)."""

    estimates: dict[str, Band] = Field(description="every estimator (average_confidence[_calibrated], atc[_calibrated], "
                                       "doc, cbpe, cbpe_f1_macro), band: percentile bootstrap over the period's rows")
    headline: str = Field(description="the estimator with the smallest backtest error (cbpe without a backtest)")
    headline_estimate: Band
    trusted: bool = Field(description="False when the period's input drift is beyond the trust levels")
    untrusted_because: list[str] = Field(default_factory=list)
    errors: dict[str, Band] | None = Field(None, description="labelled periods: estimate - true figure, joint bootstrap CI")
    alert: str | None = Field(None, description="'below' / 'above': the headline estimate left the normal range "
                              "(LabelFree.alert_thresholds); None inside it")


class LabelFree(_Metrics):
    """How the label-free estimates were made and how well each did where labels exist."""

    calibration: dict[str, Any] = Field(description="chosen calibrator, ECE before/after with CIs, out-of-fold ECEs")
    backtest: dict[str, Any] = Field(description="per estimator: mean and max absolute error over the labelled "
                                     "out-of-window periods; the headline and why")
    headline: str
    estimators_method: str
    trust_rule: str
    untrusted_periods: list[str]
    alert_thresholds: dict[str, Any] | None = Field(None, description="lower, upper, the in-window chunk values, "
                                                    "their mean and sd, where each side comes from")
    alert_periods: list[str] = Field(default_factory=list)


class PeriodDrift(_Metrics):
    period: str
    position: float = Field(description="x position: periods since the first (gaps count)")
    n: int = Field(description="rows scored (training rows excluded)")
    labelled_rows: int | None = Field(None, description="of those, rows with a label: accuracy, decay and the "
                                      "backtest use them; 0 for a period whose labels have not arrived")
    rows_in_data: int
    in_window: bool
    few_rows: bool = Field(description="fewer rows than min_rows_per_period: the CI is wide")
    note: str | None = None
    accuracy: ScoredMetric | None = None
    f1_macro: ScoredMetric | None = None
    per_class_f1: dict[str, float] | None = None
    label_distribution: dict[str, int] | None = None
    estimated_accuracy: dict[str, Any] | None = Field(
        None, description="label-free: average confidence and ATC (drift/confidence.py), beside the true accuracy"
    )
    label_free: PeriodLabelFree | None = Field(None, description="calibrated, backtested label-free estimates")
    input_drift: dict[str, dict[str, Any] | None] | None = Field(
        None, description="against the training window: unseen words / word pieces, length KS, label prior, "
        "prediction shift, domain-classifier AUC (drift/input_shift.py)"
    )
    perplexity: PeriodPerplexity | None = Field(None, description="causal LM: the period's perplexity")
    answers: PeriodAnswers | None = Field(None, description="causal LM with labels: its answers parsed to labels")


class EvalStream(_Metrics):
    horizon: int
    after: str | None = Field(description="the training window's last period (t)")
    periods: list[str] = Field(description="the periods after t that were scored (t+1 ... t+horizon)")
    average: AverageScore | None = _better(True, "mean accuracy over those periods, bootstrap CI")
    note: str | None = None


class DriftMetrics(KindMetrics):
    period_column: str
    granularity: str
    training_window: list[str]
    training_window_source: str
    reference_rows: int = Field(description="training-window text the input drift is measured against")
    scored_rows: int
    excluded_training_rows: int
    id_rows: int = Field(description="labelled scored rows inside the training window (in-distribution)")
    unlabelled_rows: int = Field(0, description="scored rows with an empty label cell (kept: estimated, not scored)")
    periods: list[PeriodDrift]
    decay: Decay | None = Field(description="accuracy's decay; None when no period has labels")
    stream: EvalStream | None = Field(None, description="with `horizon`: Wild-Time's Eval-Stream figure")
    label_distribution_reference: dict[str, int] = Field(default_factory=dict)
    lm: LmDrift | None = Field(None, description="causal LM: perplexity decay, and how answers were scored")
    label_free: LabelFree | None = Field(None, description="a classifier with 20+ in-window rows: calibration, "
                                         "backtest and trust rule of the label-free estimates")
    duration_s: float = Field(description="inference over every scored row")
    analysis_s: float = Field(description="statistics, input drift and domain classifiers")
    throughput_samples_per_s: float
    dropped_rows: dict[str, int] = Field(default_factory=dict)

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        d = self.decay
        scored = [p for p in self.periods if p.accuracy is not None]
        heads, bits = [], []
        if self.lm is not None:
            heads.append("perplexity per period: " + " · ".join(
                f"{p.period} {fmt(p.perplexity.value)}" for p in self.periods if p.perplexity is not None))
            s = self.lm.perplexity_decay.slope
            if s is not None:
                bits.append(f"log-perplexity slope {s.value:+.3g} nats/token per period "
                            f"[{s.ci_low:+.3g}, {s.ci_high:+.3g}]")
        if scored:
            heads.append("accuracy per period: " + " · ".join(f"{p.period} {p.accuracy.value:.3f}" for p in scored))
        if d is not None and d.drop is not None:
            drop = d.drop
            bits.append(f"ID − OOD {drop.value * 100:+.1f} pts [{drop.ci_low * 100:+.1f}, {drop.ci_high * 100:+.1f}]")
        if d is not None and d.slope is not None:
            bits.append(describe_slope(d.slope.model_dump(), self.granularity))
        lf = self.label_free
        if lf is not None:
            shown = [p for p in self.periods if p.label_free is not None and not p.in_window]
            heads.append(f"label-free ({lf.headline}): " + " · ".join(
                f"{p.period} {p.label_free.headline_estimate.value:.3f}" + ("" if p.label_free.trusted else " UNTRUSTED")
                + (f" ALERT ({p.label_free.alert})" if p.label_free.alert else "")
                for p in shown))
        return SummaryCells(n=f"{self.scored_rows} rows, {len(self.periods)} periods" + dropped(self.dropped_rows),
                            headline="; ".join(heads) or "—", spread="; ".join(bits) or "—")

    def shown_periods(self) -> list[Any]:
        """The periods report.md's and the card's tables show: those of the training window, and the latest."""
        scored = [p for p in self.periods if p.accuracy is not None]
        shown = [p for p in scored if p.in_window]
        return shown + ([scored[-1]] if scored and scored[-1] not in shown else [])

    def quality(self, result: ScenarioResult) -> list[QualityFigure]:
        """One cell per labelled period, in period order: the comparison pairs every period with the
        reference (results.json keeps them all); the window's and the latest are `in_tables`."""
        seed = int(result.settings.get("dataset", {}).get("seed", 0))
        raw = result.raw
        shown = {p.period for p in self.shown_periods()}
        out = []
        for p in self.periods:  # labelled rows only (-1: a row whose label has not arrived)
            if p.accuracy is None:
                continue
            idx = [i for i, q in enumerate(raw["periods"]) if q == p.period and raw["references"][i] >= 0]
            out.append(QualityFigure(
                cell=f"{result.name}:{p.period}", accuracy=p.accuracy, seed=seed,
                predictions=[raw["predictions"][i] for i in idx], references=[raw["references"][i] for i in idx],
                rows=[raw["rows"][i] for i in idx], period=p.period, in_tables=p.period in shown))
        return out

    def period_quality(self) -> PeriodQuality | None:
        if self.decay is None:  # a causal LM scored without labels: no quality per period to show
            return None
        return PeriodQuality(period_column=self.period_column, granularity=self.granularity,
                             training_window=list(self.training_window), periods=list(self.periods))

    def decay_summary(self, result: ScenarioResult) -> dict[str, Any] | None:
        d = self.decay
        if d is None:
            return None
        return {"scenario": result.name, "granularity": self.granularity,
                "slope": None if d.slope is None else d.slope.model_dump(),
                "drop": None if d.drop is None else d.drop.model_dump()}
