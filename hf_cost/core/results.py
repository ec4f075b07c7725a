"""The result types every layer shares: one entry per step (`ScenarioResult`), its validity,
memory and energy readings, and `KindMetrics`, the base of every kind's typed figures.

Readers (report/, cards/, select/) never ask which kind a result is: they call the hooks a
kind's metrics model implements (`summary_cells`, `latency`, `serving_rate`, `quality`,
`slo_rate`, `build_summary`, `training`, ...). A hook a kind does not implement returns None (or nothing).
The model of each kind comes from the registry (core/registry.py), so a result is validated as
its kind's model and never guessed from which keys it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, SerializeAsAny, model_validator

from hf_cost.core.bounds import Out
from hf_cost.core.readings import EnergyReading, MachineLoad, MemoryReading


@dataclass(frozen=True)
class SummaryCells:
    """The three cells of a result's row in report.md and the console: n, headline, spread."""

    n: str
    headline: str
    spread: str


@dataclass(frozen=True)
class Latency:
    """A single-query latency a kind measured: what the comparison and cost rows read."""

    p50_ms: float
    p90_ms: float
    queries: int
    tokens: TokenFigures | None = None  # a causal LM's request, token by token


@dataclass(frozen=True)
class TokenFigures:
    """A causal LM's single-stream figures: TTFT and TPOT percentiles and new tokens per second
    (new tokens / the sum of request latencies: one request at a time)."""

    ttft_p50_ms: float
    ttft_p90_ms: float
    tpot_p50_ms: float | None  # None when every answer had one token
    tpot_p90_ms: float | None
    output_tokens_per_s: float
    output_tokens_mean: float


@dataclass(frozen=True)
class ServingRate:
    """A sustained rate a kind measured, at one batch size: samples/s over `samples` samples."""

    samples_per_s: float
    batch_size: int
    samples: int
    output_tokens_per_s: float | None = None  # a causal LM: new tokens per second at that rate


@dataclass(frozen=True)
class SloRate:
    """The highest rate a kind sustained under a latency bound: LoadGen's Server scenario VALID at
    `qps` target queries/s with its `percentile` latency within `latency_bound_ms`.

    `searched`: the rate is a searched peak (find_peak); otherwise one VALID run's target, a lower
    bound on the peak. `probes`: the LoadGen runs behind it; `step`: the step's name.
    """

    qps: float
    latency_bound_ms: float
    percentile: float
    probes: int
    step: str
    searched: bool
    output_tokens_per_s: float | None = None  # a causal LM: new tokens per second at that rate
    bounds: str | None = None  # a causal LM's bounds in words (p99 TTFT ≤ ... ms, p99 TPOT ≤ ... ms)


@dataclass(frozen=True)
class QualityFigure:
    """One quality cell (accuracy with its CI) and the predictions it is scored from."""

    cell: str  # the cell's name: the step's name, or 'step:period'
    accuracy: Any  # ScoredMetric
    predictions: list[int]
    references: list[int]
    rows: list[int] | None  # dataset rows, when the cell is a subset (paired only on the same rows)
    seed: int
    period: str | None = None  # a drift step's period: the cell is one of the periods its worst-period Δ is taken over
    in_tables: bool = True  # shown in report.md's and the card's tables (False: results.json only)


@dataclass(frozen=True)
class TextQualityFigure:
    """One free-text quality cell (its headline score with CI) and the per-document values behind it."""

    cell: str  # the step's name
    metric: str  # rouge or chrf
    score: Any  # TextScore: the headline score (rougeL, chrf, chrf++)
    raw: dict[str, Any]  # per_document (rouge) or statistics (chrf): what a paired bootstrap resamples
    options: dict[str, Any]  # the metric's settings (use_stemmer; word_order, lowercase)
    seed: int


@dataclass(frozen=True)
class BuildFigures:
    """What a building step cost: wall time and training FLOPs, if it trained."""

    time_s: float | None
    train_flops_total: float | None


@dataclass(frozen=True)
class TrainingFigures:
    """A training step's figures the cost model reads."""

    wall_s_per_run: list[float]
    samples_per_run: list[int]
    steps_per_run: list[int]
    train_samples_per_s: float
    train_flops_per_sample: float | None
    train_flops_per_sample_3x_forward_estimate: float | None


@dataclass(frozen=True)
class TrainingOutcome:
    """What a training step reached: its time to target (None: not reached), runs and convergence."""

    time_to_target_s: float | None
    runs: int
    converged: bool


@dataclass(frozen=True)
class PeriodQuality:
    """Quality per dated period of one step (a drift step): the card's drift table.

    `periods` are the kind's own period figures (each with `period`, `n`, `in_window`,
    `few_rows`, and `accuracy` / `f1_macro` as ScoredMetric or None when not scored).
    """

    period_column: str
    granularity: str
    training_window: list[str]
    periods: list[Any]


@dataclass(frozen=True)
class Compute:
    """Achieved GFLOP/s and the measured rate it is computed from."""

    gflops_per_s: float
    mfu: float | None
    basis: str


class KindMetrics(Out):
    """Base of every kind's figures, and the hooks through which readers use them."""

    # How the energy per 1k inferences is chosen: the lowest rank among the steps with a reading.
    energy_rank: ClassVar[int | None] = None
    # The recipe settings a card names for the step that built a candidate, in this order;
    # None: every scalar setting, sorted.
    card_settings: ClassVar[tuple[str, ...] | None] = None

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        return SummaryCells(n="—", headline="—", spread="—")

    def compute(self) -> Compute | None:
        """Achieved compute of the step and the rate it comes from, when it has one."""
        return None

    def latency(self) -> Latency | None:
        return None

    def serving_rate(self, result: ScenarioResult) -> ServingRate | None:
        return None

    def slo_rate(self, result: ScenarioResult) -> SloRate | None:
        """The highest rate the step sustained under its latency bound (LoadGen VALID), when it has one."""
        return None

    def inferences(self) -> int | None:
        """Inferences the step ran (for energy per 1k inferences)."""
        return None

    def speedup(self, result: ScenarioResult) -> dict[str, Any] | None:
        """An interleaved speed-up vs a reference with its CI."""
        return None

    def quality(self, result: ScenarioResult) -> list[QualityFigure]:
        return []

    def decay_summary(self, result: ScenarioResult) -> dict[str, Any] | None:
        """Quality decay over dated periods (slope and drop with CIs)."""
        return None

    def build_summary(self) -> BuildFigures | None:
        """Set by building kinds: a result with it is the candidate's build row, not a measurement."""
        return None

    def training(self) -> TrainingFigures | None:
        return None

    def training_outcome(self) -> TrainingOutcome | None:
        """Set by kinds that train to a quality target: time to target, runs, convergence."""
        return None

    def latency_samples(self, result: ScenarioResult) -> list[float] | None:
        """The raw single-query latencies `latency()` is computed from (selection bootstraps them)."""
        return None

    def period_quality(self) -> PeriodQuality | None:
        """Quality per dated period, when the kind scores periods."""
        return None

    def token_samples(self, result: ScenarioResult) -> dict[str, list[float]] | None:
        """A causal LM's raw per-request token latencies ('ttft_ms', 'tpot_ms': requests with
        >= 2 new tokens) that `latency().tokens` is computed from (selection bootstraps them)."""
        return None

    def answer_figures(self) -> Any:
        """A causal LM scored by generation: its AnswerFigures (exact match, unparseable share), when it has them."""
        return None

    def perplexity_figure(self) -> Any:
        """A language-modelling figure (value, ci_low, ci_high, n, method), when the kind has one."""
        return None

    def text_quality(self, result: ScenarioResult) -> TextQualityFigure | None:
        """Free text scored against references (ROUGE / chrF), when the kind scores it."""
        return None

    def check_raw(self, raw: dict[str, list[Any]]) -> str | None:
        """Why the raw samples a reader uses cannot be used ('KEY: why'); None when they can.

        The schema types `raw` only as lists; a kind whose readers recompute figures from its
        raw samples says here what they need, and the results loader refuses a file without it.
        """
        return None


class Validity(Out):
    """MLPerf-style validity of one scenario run. A flag is None where it does not apply."""

    result: Literal["VALID", "INVALID"]
    min_duration_satisfied: bool | None = None
    min_queries_satisfied: bool | None = Field(
        None, description="min_query_count (single-stream) or min_sample_count (offline)"
    )
    early_stopping_satisfied: bool | None = Field(None, description="single-stream only")
    convergence_satisfied: bool | None = Field(None, description="fine-tune only: olympic scoring valid")
    reduced_settings: bool = Field(
        description="True when the scenario asked for less than LoadGen's defaults (10 s, 100 queries) "
        "or, for fine-tuning, fewer than 3 runs"
    )
    recommendations: list[str] = Field(default_factory=list)

    @classmethod
    def decide(
        cls,
        *,
        min_duration_satisfied: bool,
        min_queries_satisfied: bool,
        early_stopping_satisfied: bool | None,
        reduced_settings: bool,
        recommendations: list[str],
    ) -> Validity:
        ok = min_duration_satisfied and min_queries_satisfied and early_stopping_satisfied is not False
        return cls(
            result="VALID" if ok else "INVALID",
            min_duration_satisfied=min_duration_satisfied,
            min_queries_satisfied=min_queries_satisfied,
            early_stopping_satisfied=early_stopping_satisfied,
            reduced_settings=reduced_settings,
            recommendations=recommendations,
        )


class ScenarioResult(Out):
    """One entry of results.json: a step's result for one candidate (or one sweep point)."""

    name: str = Field(description="Scenario name; offline sweep points are 'NAME[bs=B]'")
    kind: str
    candidate: str = Field(description="The candidate measured, or built: 'base' or a building step's name")
    status: Literal["ok", "failed"] = Field(
        "ok", description="failed: the step raised; `error` says why, and no figures are given"
    )
    error: str | None = Field(None, description="Why the step failed (one line), when status is failed")
    settings: dict[str, Any] = Field(description="The scenario's validated settings, plus per-point ones")
    metrics: SerializeAsAny[KindMetrics] | None = Field(
        description="The kind's typed figures (its metrics model in the registry); None when the step failed"
    )
    validity: Validity | None = None
    memory: MemoryReading | None = Field(None, description="Peak memory over the step, when it measured it")
    raw: dict[str, list[Any]] = Field(description="Raw per-query / per-batch samples the metrics come from")
    energy: EnergyReading | None = Field(
        None, description="codecarbon over the step that produced this entry (measure/energy.py); `covers` "
        "names every entry of that step, `method` says measured (RAPL/NVML) or estimated"
    )
    notes: list[str] = Field(default_factory=list)
    machine_load: MachineLoad | None = Field(
        None, description="The noise sentinel over the step that produced this entry (measure/machine_load.py): "
        "other processes' CPU in cores and steal; `busy` flags a result measured on a busy machine. "
        "Measuring steps only; absent in files written before it"
    )

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, data: Any) -> Any:
        """Metrics are validated as the kind's registered model, never guessed; an unknown kind is refused."""
        from hf_cost.core.registry import metrics_model

        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("memory") == {}:
            data["memory"] = None
        if data.get("status", "ok") == "failed":
            if data.get("metrics") in ({}, None):
                data["metrics"] = None
            return data
        metrics = data.get("metrics")
        if isinstance(metrics, dict):
            model = metrics_model(str(data.get("kind")))
            if model is None:
                raise ValueError(f"unknown kind '{data.get('kind')}'")
            data["metrics"] = model.model_validate(metrics)
        return data

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        """'name' for a building step's own row, else 'name (candidate)'."""
        return self.name if self.candidate == self.name else f"{self.name} ({self.candidate})"

    @property
    def builds(self) -> bool:
        """True for the row of the step that built its candidate (not a measurement of it)."""
        return self.ok and self.metrics is not None and self.metrics.build_summary() is not None


