"""A Candidate is one runnable form of a checkpoint (the baseline, later its variants).

Every runner, and accuracy scoring, calls `Candidate.forward`: one code path, so
the predictions that are timed are the predictions that are scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hf_cost.models.load import LoadedModel


@dataclass
class Candidate:
    name: str
    loaded: LoadedModel

    @property
    def model(self) -> Any:
        return self.loaded.model

    @property
    def device(self) -> Any:
        return self.loaded.device

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def forward(self, batch: dict[str, Any]) -> Any:
        """One forward pass; returns logits (classifiers) or the last hidden state."""
        import torch

        with torch.inference_mode():
            out = self.loaded.model(**batch)
        logits = getattr(out, "logits", None)
        return logits if logits is not None else out.last_hidden_state

    def synchronize(self) -> None:
        """Wait for queued device work, so a clock read after it sees the work done."""
        if self.is_cuda:
            import torch

            torch.cuda.synchronize(self.device)
