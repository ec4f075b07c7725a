"""What a candidate was trained on, in words. The train sets themselves come from its
lineage (`config.lineage.Lineage.training_sets`): the train rows of every training step
(fine_tune, distill) back to 'base', whose own training data is unknown.
"""

from __future__ import annotations

from hf_cost.config.lineage import TrainedOn


def describe(sets: list[TrainedOn]) -> str:
    """'the train rows of fine_tune step finetune-2023h1' (for notes and the report)."""
    if not sets:
        return "given in the scenario (training_window)"
    steps = ", ".join(f"'{s.step}'" for s in sets)
    return f"the periods of the train rows of step{'s' if len(sets) > 1 else ''} {steps}"
