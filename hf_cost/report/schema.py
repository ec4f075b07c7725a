"""The results.json schema. Bump SCHEMA_VERSION on any incompatible change.

Conventions: units live in key names (`_ms`, `_s`, `_mib`, `_bytes`,
`_per_s`); every summary figure sits beside the raw samples it was computed
from, so it can be recomputed. docs/results.schema.json is generated from these
models (`python -m hf_cost schema`), and a test keeps the two in step.
"""

from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from hf_cost.core.candidate_info import CandidateInfo
from hf_cost.core.results import ScenarioResult
from hf_cost.core.run_info import CheckpointInfo, Environment
from hf_cost.core.selection import SelectionSummary
from hf_cost.report.comparison import Comparison
from hf_cost.report.cost import CostReport

# 4.0: every kind's figures typed from the step registry (building kinds too: fine_tune's
# scoring.runs is scoring.run_count), typed memory, energy, environment and checkpoint; a failed
# step's metrics and a step without memory figures are null. 3.x files are read by upgrading
# them (report/results_file.py).
SCHEMA_VERSION = "4.0"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class RunResult(_Out):
    schema_version: str = SCHEMA_VERSION
    hf_cost_version: str
    created_utc: str
    scenario_file: str
    suite: dict[str, Any] = Field(description="The fully resolved scenario file (includes merged, defaults filled)")
    environment: Environment
    model: CheckpointInfo = Field(description="The scenario file's checkpoint: id, revision, commit, source")
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
    selection: SelectionSummary | None = Field(
        None, description="The scenario's `select:` over this run's candidates (select/run_selection.py)"
    )
    costs: CostReport | None = Field(
        None, description="Money, machine-hours and FLOPs per candidate from hardware.price_per_hour and the "
        "workload (report/cost.py); None when neither is given"
    )


def results_json_schema() -> dict[str, Any]:
    """The JSON Schema of results.json: RunResult with every registered kind's metrics model
    in the union (docs/results.schema.json is this, `python -m hf_cost schema` prints it)."""
    from hf_cost.core.registry import metrics_models

    models = metrics_models()
    entry = create_model(
        "ScenarioResult", __base__=ScenarioResult, __module__=__name__,
        metrics=(Union[models] | None, Field(description=ScenarioResult.model_fields["metrics"].description)),  # type: ignore[valid-type]
    )
    run = create_model("RunResult", __base__=RunResult, __module__=__name__, scenarios=(list[entry], ...))  # type: ignore[valid-type]
    return run.model_json_schema()
