"""The results.json schema. Bump SCHEMA_VERSION on any incompatible change.

Conventions: units live in key names (`_ms`, `_s`, `_mib`, `_bytes`,
`_per_s`); every summary figure sits beside the raw samples it was computed
from, so it can be recomputed. docs/results.schema.json is generated from these
models (`python -m hf_cost schema`), and a test keeps the two in step.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hf_cost.report.comparison import Comparison
from hf_cost.report.cost import CostReport
from hf_cost.report.drift_metrics import DriftMetrics
from hf_cost.report.metrics import (
    AccuracyMetrics,
    CompareMetrics,
    Count,
    NonNegative,
    OfflineMetrics,
    Parameters,
    SingleStreamMetrics,
)

SCHEMA_VERSION = "3.1"  # 3.1: the drift kind
# Each measuring kind's typed metrics (report/metrics.py, report/drift_metrics.py), by kind.
MEASURED = {
    "single_stream": SingleStreamMetrics, "offline": OfflineMetrics, "accuracy": AccuracyMetrics,
    "compare": CompareMetrics, "drift": DriftMetrics,
}


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Validity(_Out):
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


class ScenarioResult(_Out):
    name: str = Field(description="Scenario name; offline sweep points are 'NAME[bs=B]'")
    kind: str
    candidate: str = Field(description="The candidate measured, or built: 'base' or a building step's name")
    status: Literal["ok", "failed"] = Field(
        "ok", description="failed: the step raised; `error` says why, and no figures are given"
    )
    error: str | None = Field(None, description="Why the step failed (one line), when status is failed")
    settings: dict[str, Any] = Field(description="The scenario's validated settings, plus per-point ones")
    metrics: SingleStreamMetrics | OfflineMetrics | AccuracyMetrics | CompareMetrics | DriftMetrics | dict[str, Any] = Field(
        union_mode="left_to_right",
        description="Summary figures, units in the names: typed for single_stream, offline and "
        "accuracy (report/metrics.py); a building step's own figures otherwise",
    )
    validity: Validity | None = None
    memory: dict[str, Any] = Field(default_factory=dict)
    raw: dict[str, list[Any]] = Field(description="Raw per-query / per-batch samples the metrics come from")
    energy: dict[str, Any] | None = Field(
        None, description="codecarbon over the step that produced this entry (measure/energy.py); `covers` "
        "names every entry of that step, `method` says measured (RAPL/NVML) or estimated"
    )
    notes: list[str] = Field(default_factory=list)


    @model_validator(mode="before")
    @classmethod
    def _typed_metrics(cls, data: Any) -> Any:
        """A measuring kind's metrics are validated as that kind's model, never guessed."""
        if isinstance(data, dict) and data.get("status", "ok") == "ok" and data.get("kind") in MEASURED:
            metrics = data.get("metrics")
            if isinstance(metrics, dict):
                data = {**data, "metrics": MEASURED[data["kind"]].model_validate(metrics)}
        return data


class FlopsInfo(_Out):
    sequence_length: int
    batch_size: int
    measured_per_sample: Count = Field(description="torch FlopCounterMode, matmul-class ops incl. attention")
    analytic_per_sample: int | None = Field(description="closed-form encoder formula; None for non-encoders")
    relative_difference: float | None
    by_operator: dict[str, int]
    source: Literal["measured", "inherited"] = Field(
        "measured", description="counted on this candidate, or taken from its parent (same graph)"
    )
    method: str


class CandidateInfo(_Out):
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


class RunResult(_Out):
    schema_version: str = SCHEMA_VERSION
    hf_cost_version: str
    created_utc: str
    scenario_file: str
    suite: dict[str, Any] = Field(description="The fully resolved scenario file (includes merged, defaults filled)")
    environment: dict[str, Any]
    model: dict[str, Any] = Field(description="The scenario file's checkpoint: id, revision, commit, source")
    candidates: dict[str, CandidateInfo] = Field(
        description="Every candidate measured ('base', fine-tuned ones, variants): origin, recipe, size, FLOPs"
    )
    inputs: dict[str, Any] = Field(description="The performance sample set: source, size, sequence length, seed")
    peak_tflops: float | None = Field(None, description="Peak used for MFU, and where it came from in peak_source")
    peak_source: str = "peak unknown"
    scenarios: list[ScenarioResult]
    comparison: Comparison | None = Field(
        None, description="The candidates side by side, relative to the reference (report/comparison.py)"
    )
    selection: dict[str, Any] | None = Field(
        None, description="The scenario's `select:` over this run's candidates (select/run_selection.py)"
    )
    costs: CostReport | None = Field(
        None, description="Money, machine-hours and FLOPs per candidate from hardware.price_per_hour and the "
        "workload (report/cost.py); None when neither is given"
    )
