"""The pieces every scenario step shares: the strict base model, dataset blocks, and the two
kinds of step (one that measures candidates, one that builds a candidate from an earlier one).

Kept apart from schema.py so the building steps (config/building.py) and the measuring steps
(config/schema.py) can both use them without a cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hf_cost.config.fields import Float, PosInt, SafeName, Seed


class Strict(BaseModel):
    # allow_inf_nan=False: .inf/.nan are refused by every float field.
    # populate_by_name stays off: a file writes `from`, never the internal name `source`.
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)




Scalar = Union[str, int, float, bool]


class DatasetSpec(Strict):
    """A dataset through `datasets`: a Hub id, or a local csv/json/jsonl/parquet file.

    Rows are narrowed in this order: ``where`` (equality filter), ``select`` (a seeded,
    stratified train/holdout split), ``max_samples`` (a seeded subsample).
    """

    id: str | None = Field(None, description="Hub dataset id.")
    path: str | None = Field(None, description="Local data file (csv, json, jsonl, parquet).")
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str | None = Field(None, description="Labels: names or integer ids.")
    where: dict[str, Union[Scalar, list[Scalar]]] | None = Field(
        None, description="Keep rows whose column equals the value (or one of the list)."
    )
    select: Literal["all", "train", "holdout"] = "all"
    holdout_fraction: Float = Field(0.2, gt=0.0, lt=1.0)
    max_samples: PosInt | None = None
    stratify: bool = Field(True, description="Stratify split and subsample by label.")
    missing: Literal["drop", "error"] = Field(
        "drop",
        description="Rows with an empty text or label: dropped and counted in the result, or refused.",
    )
    seed: Seed = 0

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if (self.id is None) == (self.path is None):
            raise ValueError("give exactly one of 'id' (a Hub dataset id) or 'path' (a local file)")
        return self

    @property
    def display_name(self) -> str:
        name = self.id or Path(self.path or "").name
        parts = [f"{k}={v}" for k, v in (self.where or {}).items()]
        if self.select != "all":
            parts.append(self.select)
        return name + (f" [{', '.join(parts)}]" if parts else "")


class ScenarioBase(Strict):
    name: SafeName | None = Field(None, description="Unique name; defaults to the kind.")

    def activation_batches(self) -> list[tuple[str, int, bool]]:
        """(key, batch size, trains) of every batch the step runs at once: validate checks each
        against the memory estimate (measure/memory_estimate.py). None by default."""
        return []


class MeasuredStep(ScenarioBase):
    candidates: list[SafeName] | None = Field(
        None,
        min_length=1,
        description="The candidates to measure: 'base' and the names of earlier building steps "
        "(fine_tune, ...). Default: every candidate built so far that this kind can measure.",
    )

    @field_validator("candidates")
    @classmethod
    def _each_once(cls, v: list[str] | None) -> list[str] | None:
        for j, name in enumerate(v or []):
            if name in v[:j]:
                raise ValueError(f"'{name}' is listed twice (candidates[{v.index(name)}] and candidates[{j}]); "
                                 "name each candidate once")
        return v


class BuildingStep(ScenarioBase):
    """A step that builds a named candidate (its `name`) from an earlier one (`from`)."""

    source: SafeName = Field(
        "base", alias="from", description="The candidate it starts from: 'base' or an earlier step's name."
    )
