"""The scenario file's `model:` block: which checkpoint, how it is placed and run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hf_cost.config.base import Strict

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class ModelSpec(Strict):
    """Which checkpoint, and how it is placed and run."""

    id: str | None = Field(None, description="Hub id, e.g. 'sentence-transformers/all-MiniLM-L6-v2'.")
    revision: str = Field("main", description="Hub branch, tag or commit.")
    path: str | None = Field(None, description="Local checkpoint directory instead of a Hub id.")
    task: Literal["feature-extraction", "sequence-classification", "text-generation"] = Field(
        "feature-extraction",
        description="feature-extraction: an encoder (AutoModel); sequence-classification: a classifier "
        "(AutoModelForSequenceClassification); text-generation: a causal LM (AutoModelForCausalLM), "
        "prompted as the `generation:` block says.",
    )
    gguf_file: str | None = Field(
        None, description="A GGUF file in the repository or directory: its weights are de-quantised on load "
        "(transformers' gguf_file=), so the result is labelled as such, never as the original release.",
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "float32"
    attn_implementation: Literal["eager", "sdpa"] = "sdpa"
    trust_remote_code: bool = Field(
        False, description="Run Python code shipped with the checkpoint (custom architectures). Off unless set."
    )

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not _DEVICE_RE.match(v):
            raise ValueError("expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
        return v

    @field_validator("gguf_file")
    @classmethod
    def _gguf_name(cls, v: str | None) -> str | None:
        if v is not None and (not v.endswith(".gguf") or any(c in v for c in "/\\\0") or ".." in v
                              or v.startswith(".")):
            raise ValueError(f"{v!r} is not a GGUF file name: a plain name ending in .gguf, no directories")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.id is None) == (self.path is None):
            raise ValueError("give exactly one of 'id' (a Hub id) or 'path' (a local directory)")
        return self

    @property
    def generative(self) -> bool:
        return self.task == "text-generation"

    @property
    def display_name(self) -> str:
        return self.id if self.id is not None else Path(self.path or "").name
