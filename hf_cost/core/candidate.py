"""A Candidate is one runnable form of a checkpoint: the base model, a fine-tuned copy, a variant.

Runners and accuracy scoring use only this interface (forward, synchronize, tokenizer,
label names, device, and a typed description), so a torch model and an ONNX Runtime
session are measured by the same code, and the predictions that are timed are the
predictions that are scored. Nothing outside a candidate's own module reaches inside it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Candidate(ABC):
    name: str
    tokenizer: Any
    device: Any  # torch.device where input tensors must be
    label_names: list[str] | None  # a classifier's labels in id order; None without a head
    info: Any  # report.schema.CandidateInfo: origin, parent, recipe, runtime, dtype, size, FLOPs
    generates: bool = False  # a causal LM: answers by `generate` (models/lm_candidate.py), timed per token

    @abstractmethod
    def forward(self, batch: dict[str, Any]) -> Any:
        """One forward pass on a batch of input tensors; logits (classifiers) or the last
        hidden state, as a torch tensor."""

    def synchronize(self) -> None:
        """Wait for queued device work, so a clock read after it sees the work done."""

    @property
    def is_cuda(self) -> bool:
        return getattr(self.device, "type", "cpu") == "cuda"

    @abstractmethod
    def flops(self, sample: dict[str, Any], config: Any) -> Any:
        """FLOPs of one forward on ``sample`` (a batch of one), as report.schema.FlopsInfo, or
        None where they cannot be counted. Says how it was counted."""

    def describe(self) -> Any:
        return self.info
