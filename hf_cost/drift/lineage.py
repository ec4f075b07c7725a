"""What a candidate was trained on: the train sets of the training steps in its lineage.

A candidate's lineage is the chain of building steps back to 'base' (`from:`). Every training
step on the way (fine_tune, distill) saw its `train` rows, so the training window of, say, an
int8 copy of a fine-tuned model is the fine-tune's, and a student distilled from it saw both the
teacher's rows and its own. The scenario file's own model ('base') has no known training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hf_cost.config.base import DatasetSpec
from hf_cost.config.building import TrainingStep
from hf_cost.models.candidate import BASE


@dataclass(frozen=True)
class TrainedOn:
    step: str  # the training step's name
    where: str  # its key path, e.g. scenarios[0].train
    train: DatasetSpec


def training_sets(suite: Any, name: str) -> list[TrainedOn]:
    """The train sets of every training step in ``name``'s lineage, nearest first."""
    index = {sc.name: i for i, sc in enumerate(suite.scenarios)}
    found: list[TrainedOn] = []
    seen: set[str] = set()
    while name != BASE and name not in seen and name in index:
        seen.add(name)
        i = index[name]
        step = suite.scenarios[i]
        if isinstance(step, TrainingStep):
            found.append(TrainedOn(step=step.name, where=f"scenarios[{i}].train", train=step.train))
        name = step.source
    return found


def describe(sets: list[TrainedOn]) -> str:
    """'the train rows of fine_tune step finetune-2023h1' (for notes and the report)."""
    if not sets:
        return "given in the scenario (training_window)"
    steps = ", ".join(f"'{s.step}'" for s in sets)
    return f"the periods of the train rows of step{'s' if len(sets) > 1 else ''} {steps}"
