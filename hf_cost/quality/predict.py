"""Predictions of a candidate over a sample set, batch by batch: the path accuracy, drift and
training evaluation all score."""

from __future__ import annotations

from typing import Any

from hf_cost.core.candidate import Candidate
from hf_cost.data.performance_set import PerformanceSet
from hf_cost.errors import UserError


def model_label_names(candidate: Candidate, where: str) -> list[str]:
    """The classifier's labels in id order; a candidate without a head cannot be scored."""
    if candidate.label_names is None:
        raise UserError(
            f"candidate '{candidate.name}' has no classification head: set model.task: "
            "sequence-classification, or measure a fine-tuned candidate",
            where=where,
        )
    return candidate.label_names


def predict_logits(candidate: Candidate, pset: PerformanceSet, batch_size: int) -> Any:
    """Logits of every sample in ``pset``, in order, batch by batch: a float32 (n, classes) array."""
    import numpy as np
    import torch

    parts = []
    n = pset.num_samples
    order = torch.arange(n, device=candidate.device)
    for start in range(0, n, batch_size):
        logits = candidate.forward(pset.batch(order[start : start + batch_size]))
        parts.append(logits.detach().float().cpu().numpy())
    return np.concatenate(parts, axis=0)


def predict(candidate: Candidate, pset: PerformanceSet, batch_size: int) -> list[int]:
    """Argmax class of every sample in ``pset``, in order (ties: the lowest class id)."""
    return predict_logits(candidate, pset, batch_size).argmax(axis=-1).tolist()
