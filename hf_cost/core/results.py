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

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, model_validator

from hf_cost.core.bounds import Count, NonNegative, Parameters


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


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


@dataclass(frozen=True)
class ServingRate:
    """A sustained rate a kind measured, at one batch size: samples/s over `samples` samples."""

    samples_per_s: float
    batch_size: int
    samples: int


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


@dataclass(frozen=True)
class QualityFigure:
    """One quality cell (accuracy with its CI) and the predictions it is scored from."""

    cell: str  # the cell's name: the step's name, or 'step:period'
    accuracy: Any  # ScoredMetric
    predictions: list[int]
    references: list[int]
    rows: list[int] | None  # dataset rows, when the cell is a subset (paired only on the same rows)
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

    def check_raw(self, raw: dict[str, list[Any]]) -> str | None:
        """Why the raw samples a reader uses cannot be used ('KEY: why'); None when they can.

        The schema types `raw` only as lists; a kind whose readers recompute figures from its
        raw samples says here what they need, and the results loader refuses a file without it.
        """
        return None


class MemoryReading(Out):
    """Peak memory over a step (measure/memory.py): RSS over the post-load baseline, CUDA peaks."""

    baseline_rss_mib: NonNegative
    peak_rss_mib: NonNegative
    peak_rss_delta_mib: float
    rss_method: str
    cuda_max_memory_allocated_mib: NonNegative | None = None
    cuda_max_memory_reserved_mib: NonNegative | None = None


class EnergyReading(Out):
    """codecarbon over the step that produced the entry (measure/energy.py)."""

    energy_kwh: NonNegative | None
    cpu_energy_kwh: NonNegative | None
    gpu_energy_kwh: NonNegative | None
    ram_energy_kwh: NonNegative | None
    emissions_kg_co2eq: NonNegative | None
    duration_s: NonNegative
    method: str
    detail: str
    region: str
    carbon_intensity_g_per_kwh: NonNegative | None
    covers: list[str] = Field(description="every entry of the step the reading covers")


class MachineLoad(Out):
    """The noise sentinel over the step that produced the entry (measure/machine_load.py): how
    much CPU other processes used, and steal, from /proc/stat minus this process's own time.
    Figures are None where /proc/stat cannot be read (`method` says why)."""

    interval_s: NonNegative = Field(description="wall time the reading covers")
    cpus: int | None = Field(description="logical CPUs /proc/stat sums")
    other_processes_cores: NonNegative | None = Field(
        None, description="mean CPU used by other processes, in cores: max(0, busy_cpu_s − own_cpu_s) / interval_s"
    )
    steal_share: NonNegative | None = Field(
        None, description="steal_cpu_s / total_cpu_s: the share of CPU time the hypervisor gave elsewhere"
    )
    busy_cpu_s: float | None = Field(None, description="all CPUs' user+nice+system+irq+softirq over the interval")
    steal_cpu_s: float | None = Field(None, description="all CPUs' steal over the interval")
    total_cpu_s: float | None = Field(None, description="all CPUs' busy+idle+iowait+steal over the interval")
    own_cpu_s: float = Field(description="this process's CPU (threads and reaped children) over the interval")
    resolution_cores: NonNegative | None = Field(
        None, description="the counters' resolution, cpus / (USER_HZ · interval_s): a flag needs an excess clear of it"
    )
    threshold_cores: float = Field(description="other_processes_cores above this (plus the resolution) flags it")
    steal_threshold: float = Field(description="steal_share above this (plus the resolution) flags it")
    busy: bool | None = Field(None, description="the machine was busy: the result's figures carry others' load")
    method: str

    def warning(self) -> str | None:
        """'machine busy: 1.6 cores used by other processes, steal 3 %', when it was busy."""
        if not self.busy:
            return None
        steal = "" if self.steal_share is None else f", steal {self.steal_share * 100:.0f} %"
        return f"machine busy: {self.other_processes_cores or 0:.1f} cores used by other processes{steal}"


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


class AnalyticTerms(Out):
    """The analytic formula's FLOPs of one sample as a polynomial of its length S:
    ``quadratic * S^2 + linear * S + constant`` (measure/flops.analytic_encoder_terms)."""

    quadratic: Count = Field(description="4*L*H: Q K^T and A V, per token pair")
    linear: Count = Field(description="L*(8H^2 + 4HI): projections and FFN, per token")
    constant: Count = Field(description="2H^2 for the pooler + 2H*labels for a head, per sample")

    def at(self, length: int) -> int:
        return self.quadratic * length * length + self.linear * length + self.constant


class FlopsAtLength(Out):
    """One length the FLOPs were counted at (natural lengths): measured vs the analytic formula."""

    sequence_length: int
    samples: Count = Field(description="samples of the performance set with this length")
    measured_per_sample: Count
    analytic_per_sample: int | None
    relative_difference: float | None = Field(description="|measured - analytic| / analytic")


class FlopsInfo(Out):
    sequence_length: int = Field(
        description="the length measured_per_sample was counted at: inputs.sequence_length (fixed lengths) "
        "or the performance set's median length (natural lengths)"
    )
    batch_size: int
    measured_per_sample: Count = Field(
        description="torch FlopCounterMode, matmul-class ops incl. attention, over one forward of one sample "
        "of sequence_length tokens (natural lengths: the median; the mean is mean_per_sample)"
    )
    analytic_per_sample: int | None = Field(description="closed-form encoder formula; None for non-encoders")
    relative_difference: float | None
    by_operator: dict[str, int]
    source: Literal["measured", "inherited"] = Field(
        "measured", description="counted on this candidate, or taken from its parent (same graph)"
    )
    method: str
    analytic_terms: AnalyticTerms | None = Field(
        None, description="the analytic formula as a polynomial of the length; None for non-encoders and older files"
    )
    mean_per_sample: float | None = Field(
        None, description="FLOPs per sample averaged over the performance set, each sample at the length it runs "
        "at (fixed: all at sequence_length, so equal to measured_per_sample); what MFU uses. None in older files"
    )
    per_sample_from: Literal["measured", "analytic"] | None = Field(
        None, description="where the per-length FLOPs behind mean_per_sample come from: the analytic formula "
        "per length (natural lengths, when it agrees with the counts at measured_at_lengths) or counts"
    )
    per_length: dict[str, int] | None = Field(
        None, description="natural lengths: FLOPs of one sample at each length in the performance set "
        "(inputs.length_distribution.histogram gives how many samples have it)"
    )
    measured_at_lengths: list[FlopsAtLength] | None = Field(
        None, description="natural lengths: the lengths counted with FlopCounterMode (min, median, max), each "
        "cross-checked against the analytic formula"
    )

    @property
    def per_sample(self) -> float:
        """FLOPs of an average sample of the run: mean_per_sample (natural lengths), else the count."""
        return self.mean_per_sample if self.mean_per_sample is not None else self.measured_per_sample


class CandidateInfo(Out):
    """What a candidate is, where it came from, and what it weighs. Runners never look inside
    a candidate; reports read this."""

    name: str
    origin: Literal["base", "fine-tuned", "variant"]
    parent: str | None = Field(None, description="The candidate it was built from")
    recipe: dict[str, Any] = Field(default_factory=dict, description="The building step's settings")
    runtime: Literal["torch", "onnxruntime"]
    dtype: str = Field(description="Weights' data type; a quantized candidate says what is int8")
    device: str
    parameters: Parameters
    parameter_bytes: Count
    size_on_disk_bytes: Count | None = Field(description="Weight files on disk (the files it loads)")
    path: str | None = Field(description="Where its files are after the run")
    model: dict[str, Any] = Field(description="Loader details: class, commit, source, attention")
    load_time_s: NonNegative
    baseline_rss_mib: NonNegative = Field(description="RSS after imports and this model's load; memory deltas are over it")
    flops: FlopsInfo | None = None


