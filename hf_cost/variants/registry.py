"""One registry for every step that builds a candidate (fine_tune; later quantize, distill, prune).

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
    candidate: Any = None  # or the candidate itself (e.g. an ONNX Runtime session)


@dataclass
class BuildContext:
    store: Any  # models.store.CandidateStore: earlier candidates, their checkpoints
    output: Any  # output.RunOutput (None on non-main processes)
    progress: Any
    where: str


class Builder(ABC):
    kind: ClassVar[str]
    all_processes: ClassVar[bool] = False  # True: every process of a distributed launch takes part

    @abstractmethod
    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None: ...

    @abstractmethod
    def build(self, step: Any, ctx: BuildContext) -> Built | None:
        """None on a process that takes part but does not keep the result (non-main)."""


def builders() -> dict[str, type[Builder]]:
    from hf_cost.variants.fine_tune import FineTuneBuilder

    return {b.kind: b for b in (FineTuneBuilder,)}
