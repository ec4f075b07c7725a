"""Pydantic models of a scenario file. `kind:` picks the scenario class, once, here.

Every model forbids unknown keys, so a typo is an error that names the key, not a
setting silently ignored. Numbers are finite and never booleans; names are safe
directory names; budgets that contradict each other are refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from hf_cost.config.base import BuildingStep, DatasetSpec, MeasuredStep, Strict
from hf_cost.config.building import (
    DistillStep,
    FineTuneScenario,
    OnnxInt8Step,
    OnnxStep,
    PruneStep,
    QualityTarget,
    QuantoStep,
    TrainingStep,
)  # re-exported: the scenario file's models, in one place for users of the package
from hf_cost.config.cost import Budget, CardBlock, EnergySettings, Pricing, Workload
from hf_cost.config.drift import DriftScenario
from hf_cost.config.errors import format_validation_error
from hf_cost.config.fields import BatchSize, Float, NonNegInt, PosFloat, PosInt, SafeName, Seed
from hf_cost.config.generation import AnswerSettings, GenerationSettings
from hf_cost.config.loader import load_yaml
from hf_cost.config.model import ModelSpec
from hf_cost.config.selection import SelectBlock
from hf_cost.core.names import BASE
from hf_cost.errors import ConfigError

# LoadGen's TestSettings defaults; a scenario may ask for less and is then marked "reduced".
LOADGEN_MIN_DURATION_S = 10.0
LOADGEN_MIN_QUERY_COUNT = 100
LengthMode = Literal["natural", "fixed"]
Engine = Literal["loop", "loadgen"]
ENGINE_HELP = ("loop: hf_cost's own timing loop (the default: its overhead over a bare torch loop is the "
               "smaller, benchmarks/loadgen_engines.py); loadgen: MLPerf LoadGen issues the queries and decides "
               "validity, its logs are kept in loadgen/<step>/<candidate>/")


class _InputsBase(Strict):
    sequence_length: PosInt = Field(
        128, description="fixed: tokens per sample (padded/truncated); natural: the truncation cap."
    )
    num_samples: PosInt = Field(256, description="Size of the performance sample set.")
    seed: Seed = Field(0, description="Seed for sampling and synthetic token ids.")
    lengths: LengthMode | None = Field(
        None, validate_default=True,
        description="natural: each sample at its own tokenised length, a batch padded to its longest "
        "member; fixed: every sample padded to sequence_length. Default: natural for dataset inputs, "
        "fixed for synthetic ones (resolved when the file is loaded).",
    )


class SyntheticInputs(_InputsBase):
    """Random token ids drawn from the tokenizer's vocabulary (no special tokens)."""

    kind: Literal["synthetic"] = "synthetic"

    @field_validator("lengths")
    @classmethod
    def _fixed(cls, v: LengthMode | None) -> LengthMode:
        if v == "natural":
            raise ValueError(
                "synthetic token ids have no natural length (every sample is sequence_length tokens): "
                "use lengths: fixed, or dataset inputs"
            )
        return "fixed"


class DatasetInputs(_InputsBase):
    """Real text from a dataset, tokenised before timing starts."""

    kind: Literal["dataset"]
    dataset: DatasetSpec

    @field_validator("lengths")
    @classmethod
    def _natural_by_default(cls, v: LengthMode | None) -> LengthMode:
        return v or "natural"


Inputs = Annotated[Union[SyntheticInputs, DatasetInputs], Field(discriminator="kind")]


class SingleStreamScenario(MeasuredStep):
    """MLPerf single-stream: one sample per query, next query issued on completion."""

    kind: Literal["single_stream"]
    warmup_queries: NonNegInt = 10
    min_duration_s: PosFloat = LOADGEN_MIN_DURATION_S
    min_query_count: PosInt = LOADGEN_MIN_QUERY_COUNT
    max_duration_s: PosFloat | None = Field(
        None, description="Hard stop; a run cut short by it is INVALID."
    )
    target_percentile: Float = Field(0.90, gt=0.0, lt=1.0)
    engine: Engine = Field("loop", description=ENGINE_HELP)

    @model_validator(mode="after")
    def _budget(self) -> SingleStreamScenario:
        if self.max_duration_s is not None and self.max_duration_s < self.min_duration_s:
            raise ValueError(
                f"max_duration_s: {self.max_duration_s:g} s is less than min_duration_s "
                f"({self.min_duration_s:g} s), so every run would be cut short and INVALID"
            )
        return self

    @property
    def reduced(self) -> bool:
        return (
            self.min_duration_s < LOADGEN_MIN_DURATION_S
            or self.min_query_count < LOADGEN_MIN_QUERY_COUNT
        )


class OfflineScenario(MeasuredStep):
    """MLPerf offline: all samples issued as one query, batched by the runner."""

    kind: Literal["offline"]
    batch_sizes: list[BatchSize] = Field(default_factory=lambda: [1, 8, 32], min_length=1)
    warmup_batches: NonNegInt = Field(3, description="Also calibrate the expected rate (at least 1).")
    min_duration_s: PosFloat = LOADGEN_MIN_DURATION_S
    min_sample_count: PosInt = LOADGEN_MIN_QUERY_COUNT
    engine: Engine = Field("loop", description=ENGINE_HELP)
    bucket_by_length: bool = Field(False, description=(
        "sort the issued samples by token count before cutting them into batches, so each batch is "
        "padded little (natural lengths only); the reported padded_token_share shows the gain"))

    @field_validator("batch_sizes", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        # a bool is wrapped too, so that the item check says why it is refused
        return [v] if isinstance(v, (int, float)) else v

    def activation_batches(self) -> list[tuple[str, int, bool]]:
        return [(f"batch_sizes[{j}]", b, False) for j, b in enumerate(self.batch_sizes)]

    @property
    def reduced(self) -> bool:
        return (
            self.min_duration_s < LOADGEN_MIN_DURATION_S
            or self.min_sample_count < LOADGEN_MIN_QUERY_COUNT
        )


class AccuracyScenario(MeasuredStep):
    """Accuracy mode: every sample once through the runners' inference path, then scored."""

    kind: Literal["accuracy"]
    dataset: DatasetSpec
    batch_size: BatchSize = 32
    sequence_length: PosInt | None = Field(None, description="Defaults to inputs.sequence_length.")
    bootstrap_resamples: PosInt = 1000
    extra_metrics: list[str] = Field(
        default_factory=list, description="More `evaluate` metric ids (Hub; online only)."
    )
    answers: AnswerSettings | None = Field(
        None, description="model.task text-generation: each row's text goes into generation.prompt, the answer is "
        "generated and parsed to a label (default parser when omitted); unparseable answers count wrong and "
        "their share is reported.")

    def activation_batches(self) -> list[tuple[str, int, bool]]:
        return [("batch_size", self.batch_size, False)]

    @model_validator(mode="after")
    def _labels(self) -> AccuracyScenario:
        if self.dataset.label_column is None:
            raise ValueError("dataset.label_column is required to score accuracy")
        return self


class CompareScenario(MeasuredStep):
    """Candidates timed side by side in alternating rounds (ABBA order), so a noisy machine's
    drift hits all of them; per-round speed-ups vs the reference get a 95 % CI."""

    kind: Literal["compare"]
    reference: SafeName | None = Field(None, description="Default: the first candidate compared.")
    mode: Literal["single_stream", "offline"] = Field(
        "single_stream", description="single_stream: per-round p50 latency; offline: per-round throughput."
    )
    batch_size: BatchSize = Field(1, description="offline mode: samples per batch.")
    rounds: PosInt = Field(10, description="Even counts balance the order (ABBA); at least 2 for a CI.")
    round_duration_s: PosFloat = Field(1.0, description="Time each candidate runs in each round.")
    warmup_queries: NonNegInt = 10

    @model_validator(mode="after")
    def _enough(self) -> CompareScenario:
        if self.rounds < 2:
            raise ValueError("rounds: a ratio needs at least 2 rounds for a confidence interval")
        if self.candidates is not None and len(self.candidates) < 2:
            raise ValueError("candidates: name at least 2 candidates to compare")
        if self.reference is not None and self.candidates is not None and self.reference not in self.candidates:
            raise ValueError(f"reference: '{self.reference}' is not among candidates {self.candidates}")
        return self


__all__ = [
    "AccuracyScenario", "BuildingStep", "CompareScenario", "DatasetInputs", "DriftScenario", "DatasetSpec", "DistillStep", "FineTuneScenario",
    "Hardware", "MeasuredStep", "ModelSpec", "OfflineScenario", "OnnxInt8Step", "OnnxStep", "PruneStep",
    "QualityTarget", "QuantoStep", "SingleStreamScenario", "Suite", "SyntheticInputs", "TrainingStep",
    "load_suite",
]


class Hardware(Pricing):
    """Peak compute for MFU (without it, a known GPU's figure is used, else 'peak unknown'), and
    what an hour of the machine costs (for cost figures)."""

    peak_tflops: PosFloat | None = Field(
        None, description="Dense peak TFLOP/s of this device at the scenario's dtype."
    )


class Suite(Strict):
    """A whole scenario file."""

    name: SafeName | None = Field(
        None, description="Names the output directory; defaults to the file name, made safe."
    )
    model: ModelSpec
    inputs: Inputs = Field(default_factory=SyntheticInputs)
    hardware: Hardware = Field(default_factory=Hardware)
    scenarios: list[Any] = Field(
        min_length=1, description="The steps in order; `kind` picks each one's model from the step registry."
    )
    reference: SafeName | None = Field(
        None, description="The candidate the comparison table is relative to; default: the first one."
    )
    workload: Workload = Field(default_factory=Workload, description="What cost figures are scaled to.")
    budget: Budget = Field(default_factory=Budget, description="What a team can spend (a verdict each).")
    energy: EnergySettings = Field(default_factory=EnergySettings, description="Energy and CO2-eq per step.")
    card: CardBlock | None = Field(None, description="A model card this run updates at the end.")
    select: SelectBlock | None = Field(
        None, description="Pick a checkpoint at the end of the run: constraints, objectives, plot axes."
    )
    generation: GenerationSettings | None = Field(
        None, description="model.task text-generation: the prompt and decoding every request uses "
        "(default: the row's text as a chat turn, greedy, 32 new tokens)."
    )

    @model_validator(mode="before")
    @classmethod
    def _inputs_kind(cls, data: Any) -> Any:
        """`inputs:` without `kind` means dataset inputs when it has a dataset, else synthetic."""
        inputs = data.get("inputs") if isinstance(data, dict) else None
        if isinstance(inputs, dict) and "kind" not in inputs:
            data = {**data, "inputs": {**inputs, "kind": "dataset" if "dataset" in inputs else "synthetic"}}
        return data

    @model_validator(mode="after")
    def _generation_for_lms(self) -> Suite:
        if self.model.generative:
            if self.generation is None:
                self.generation = GenerationSettings()
            if isinstance(self.inputs, SyntheticInputs):
                raise ValueError(
                    "inputs: model.task text-generation sends prompts, so it needs dataset inputs (kind: dataset) "
                    "whose text fills the prompt; synthetic token ids are no request"
                )
        elif self.generation is not None:
            raise ValueError(
                f"generation: only a causal LM generates (model.task: text-generation); model.task is "
                f"{self.model.task}"
            )
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> Suite:
        seen: dict[str, int] = {}  # casefolded: names are directories, some file systems ignore case
        for i, sc in enumerate(self.scenarios):
            if sc.name is None:
                count = sum(1 for other in self.scenarios[:i] if other.kind == sc.kind)
                sc.name = sc.kind if count == 0 else f"{sc.kind}-{count + 1}"
            j = seen.get(sc.name.casefold())
            if j is not None:
                other = self.scenarios[j].name
                case = "" if other == sc.name else f" as '{other}' (names are compared ignoring case)"
                raise ValueError(f"scenarios[{i}].name: '{sc.name}' is already used by scenarios[{j}]{case}")
            seen[sc.name.casefold()] = i
            if sc.name.casefold() == BASE:
                raise ValueError(f"scenarios[{i}].name: '{BASE}' names the scenario file's own model")
        built = [BASE]  # candidates in the order they are built
        for i, sc in enumerate(self.scenarios):
            refs = [("from", sc.source)] if isinstance(sc, BuildingStep) else [
                (f"candidates[{j}]", name) for j, name in enumerate(getattr(sc, "candidates", None) or [])
            ]
            for key, ref in refs:
                if ref not in built:
                    raise ValueError(
                        f"scenarios[{i}].{key}: '{ref}' is not a candidate built before this step "
                        f"(built so far: {', '.join(built)})"
                    )
            if isinstance(sc, BuildingStep):
                built.append(sc.name)
        if self.reference is not None and self.reference not in built:
            raise ValueError(f"reference: '{self.reference}' is not a candidate (candidates: {', '.join(built)})")
        return self


def load_suite(path: str | Path) -> Suite:
    """Load and validate a scenario file. Errors name the file and the key path."""
    data = load_yaml(path)
    model = suite_model()
    try:
        suite = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model), where=str(path)) from None
    if suite.name is None:
        suite.name = _name_from_file(Path(path))
    return suite


_SUITE_MODELS: dict[int, type[Suite]] = {}


def suite_model() -> type[Suite]:
    """`Suite` with `scenarios` narrowed to the registered kinds' config models (core/registry.py):
    `kind` picks one, once. Rebuilt when the registry changes (a test registering a toy kind)."""
    from hf_cost.core.registry import config_models, version

    v = version()
    if v not in _SUITE_MODELS:
        step = Annotated[Union[config_models()], Field(discriminator="kind")]  # type: ignore[valid-type]
        _SUITE_MODELS[v] = create_model(
            "Suite", __base__=Suite, __module__=__name__,
            scenarios=(list[step], Field(min_length=1, description=Suite.model_fields["scenarios"].description)),
        )
    return _SUITE_MODELS[v]


def _name_from_file(path: Path) -> str:
    """The file's stem made a safe name: 'my suite.yaml' -> 'my-suite'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).lstrip("._-")[:64]
    return name or "suite"
