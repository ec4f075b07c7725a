"""The scenario blocks of LoRA on a causal LM: `lora` (train an adapter to a quality target) and
`lora_merge` (fold a trained adapter into a plain transformers checkpoint).

A `lora` step is a TrainingStep (train/eval data, target, budget, runs, seeds: as fine_tune), so
the lineage knows the rows its candidate saw; its quality is zero-shot-style accuracy by
generation, parsed as the accuracy kind parses an LM's answers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from hf_cost.config.base import BuildingStep
from hf_cost.config.building import TrainingStep
from hf_cost.config.fields import BatchSize, Float, PosFloat, PosInt

MAX_RANK = 1024


class LoraStep(TrainingStep):
    """LoRA (Hu et al. 2021) through PEFT: each Linear named in `target_modules` gets a trainable
    W + (alpha / r) B A beside its frozen weight; only A and B train. Each example is the suite's
    `generation:` prompt for the row followed by its label word and EOS; the loss is on the answer
    tokens only."""

    kind: Literal["lora"]
    r: PosInt = Field(8, description="Rank of the update B A.")
    alpha: PosFloat = Field(16.0, description="Scale of the update: alpha / r.")
    dropout: Float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter's input (training only).")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "v_proj"], min_length=1,
        description="Names of the Linear modules adapted (a module matches when its name is this or ends "
        "with '.' + this, as PEFT matches).")
    learning_rate: PosFloat = 2e-4
    eval_batch_size: BatchSize = Field(16, description="Prompts answered at once during evaluation.")

    @field_validator("r")
    @classmethod
    def _rank(cls, v: int) -> int:
        if v > MAX_RANK:
            raise ValueError(f"{v} is more than {MAX_RANK}: a LoRA rank this large is almost certainly a typo")
        return v

    @field_validator("target_modules")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for j, name in enumerate(v):
            if not name.strip() or name != name.strip():
                raise ValueError(f"target_modules[{j}] = {name!r} is blank or has surrounding spaces")
            if name in v[:j]:
                raise ValueError(f"{name!r} is listed twice; name each module once")
        return v

    @model_validator(mode="after")
    def _one_text(self) -> LoraStep:
        for key in ("train", "eval"):
            if getattr(self, key).text_pair_column is not None:
                raise ValueError(f"{key}.text_pair_column: an LM's prompt holds one text ('{{text}}'); "
                                 "join the two columns into one")
        return self


class LoraMergeStep(BuildingStep):
    """A `lora` candidate's adapter merged into its base weights (PEFT merge_and_unload): a plain
    transformers checkpoint, measured like any other, with no adapter matmuls at inference."""

    kind: Literal["lora_merge"]
    probe_prompts: PosInt = Field(8, description="Prompts of the performance set the merged and unmerged logits "
                                                 "are compared on.")
