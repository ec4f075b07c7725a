"""One registry for every step that builds a candidate: fine_tune, distill, onnx, onnx_int8,
quanto, prune.

A builder has two hooks, called by the driver in order:

- ``check(step, plan)``: at preflight (``validate`` too), before any weights load. It checks
  the step's data and settings and returns the label names the candidate will have (None
  for a candidate without a classification head).
- ``build(step, ctx)``: makes the candidate and returns a `Built`: where its checkpoint is
  (or the candidate itself), and the ScenarioResult of building it (time, FLOPs, curves).

Adding a kind = a module with its Builder, an entry in BUILDERS, and its config model in the
scenario schema's `kind` union.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass
class Plan:
    """What preflight knows of the candidates declared so far: name -> label names (or None)."""

    suite: Any
    model_config: Any
    labels: dict[str, list[str] | None] = field(default_factory=dict)


@dataclass
class Built:
    name: str
    parent: str
    origin: str  # "fine-tuned" | "variant"
    recipe: dict[str, Any]
    result: Any = None  # report.schema.ScenarioResult of the building step, if it has one
    checkpoint_dir: Path | None = None  # a saved transformers checkpoint the store loads on demand
    candidate: Any = None  # or the candidate itself (e.g. an ONNX Runtime session), its info filled
    files_dir: Path | None = None  # with a candidate in hand: its staged files (ONNX graph), if any


@dataclass
class BuildContext:
    store: Any  # models.store.CandidateStore: earlier candidates, their checkpoints
    output: Any  # output.RunOutput (None on non-main processes)
    progress: Any
    where: str


class Builder(ABC):
    kind: ClassVar[str]
    all_processes: ClassVar[bool] = False  # True: every process of a distributed launch takes part
    # None: its candidate is a transformers checkpoint others can start from; else what it is instead
    not_a_checkpoint: ClassVar[str | None] = None

    @abstractmethod
    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None: ...

    @abstractmethod
    def build(self, step: Any, ctx: BuildContext) -> Built | None:
        """None on a process that takes part but does not keep the result (non-main)."""


def source_labels(step: Any, plan: Plan, where: str, *, needs_head: bool = False) -> list[str] | None:
    """The label names of the candidate a step starts from; with ``needs_head``, it must have some."""
    from hf_cost.errors import UserError

    labels = plan.labels[step.source]
    if needs_head and labels is None:
        raise UserError(
            f"'{step.source}' has no classification head, and {step.kind} needs one: start from a "
            "fine-tuned candidate, or set model.task: sequence-classification",
            where=f"{where}.from",
        )
    return labels


def require_checkpoint(step: Any, plan: Plan, where: str) -> None:
    """Refuse a `from` candidate without a transformers checkpoint (an ONNX graph, quanto weights)."""
    from hf_cost.errors import UserError

    kind = next((sc.kind for sc in plan.suite.scenarios if sc.name == step.source), None)
    what = builders()[kind].not_a_checkpoint if kind in builders() else None
    if what is not None:
        raise UserError(
            f"'{step.source}' is built by {kind} ({what}), not a transformers checkpoint, so {step.kind} "
            "cannot start from it: name 'base' or a torch candidate (fine_tune, distill, prune)",
            where=f"{where}.from",
        )


def builders() -> dict[str, type[Builder]]:
    """Every building kind -> its Builder. Modules import nothing heavy at the top."""
    from hf_cost.variants.distill import DistillBuilder
    from hf_cost.variants.fine_tune import FineTuneBuilder
    from hf_cost.variants.onnx import OnnxBuilder, OnnxInt8Builder
    from hf_cost.variants.prune import PruneBuilder
    from hf_cost.variants.quanto import QuantoBuilder

    kinds = (FineTuneBuilder, DistillBuilder, OnnxBuilder, OnnxInt8Builder, QuantoBuilder, PruneBuilder)
    return {b.kind: b for b in kinds}
