"""A candidate's lineage: the chain of building steps back to 'base' (`from:`), and what it
decides: the train sets it saw, its encoder's shape, its label names.

Every question about where a candidate came from is answered here, from the validated Suite
and the base model's transformers config alone (nothing heavy is imported, no weights load):

- a step is a building step when its kind says so (``step_class(kind).builds``);
- a training step (fine_tune, distill: a `config.building.TrainingStep`) saw its `train` rows,
  so an int8 copy of a fine-tuned model was trained on the fine-tune's rows, and a student
  distilled from it on both the teacher's rows and its own;
- each building kind says how it changes its parent's encoder (``step_class(kind).shape_after``,
  default: unchanged), so no kind is named here;
- label names: base's from its config (`label_names`), every other candidate's as its step's
  check found them (the plan fills ``Lineage.label_names`` in file order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hf_cost.config.base import DatasetSpec
from hf_cost.config.building import TrainingStep
from hf_cost.core.names import BASE
from hf_cost.core.registry import step_class
from hf_cost.errors import UserError


@dataclass(frozen=True)
class Shape:
    """What a candidate's encoder has, known before weights load."""

    layers: int
    heads: int | None  # all layers together; None when it cannot be known before the build
    intermediate: int | None  # FFN neurons per layer; None when the config does not say
    uniform: bool = True  # the same number of heads in every layer


@dataclass(frozen=True)
class TrainedOn:
    step: str  # the training step's name
    where: str  # its key path, e.g. scenarios[0].train
    train: DatasetSpec


def label_names(config: Any) -> list[str]:
    """A transformers config's label names, in class-index order (``id2label[0]``, ``[1]``, ...)."""
    return [str(config.id2label[i]) for i in range(config.num_labels)]


class Lineage:
    """The candidates of one suite and where each came from.

    ``model_config`` (the base model's transformers config) is needed by `layer_count` and
    `shape` only; ``labels`` is the dict of label names the plan fills (shared, not copied).
    """

    def __init__(self, suite: Any, model_config: Any = None,
                 labels: dict[str, list[str] | None] | None = None) -> None:
        self.suite = suite
        self.model_config = model_config
        self.label_names: dict[str, list[str] | None] = {} if labels is None else labels
        self._built = {cfg.name: i for i, cfg in enumerate(suite.scenarios) if step_class(cfg.kind).builds}

    @classmethod
    def of(cls, plan: Any) -> Lineage:
        """The lineage a plan (steps.base.Plan) knows: its suite, base config and label names."""
        return cls(plan.suite, plan.model_config, plan.labels)

    def ancestry(self, name: str) -> list[tuple[int, Any]]:
        """(index in `scenarios`, step config) of ``name``'s building step and each one it was
        built from, nearest first; [] for 'base'."""
        chain: list[tuple[int, Any]] = []
        seen: list[str] = []
        while name != BASE:
            if name in seen:
                raise ValueError(f"'{name}' is built from itself: {' <- '.join([*seen, name])}")
            if name not in self._built:
                known = ", ".join([BASE, *self._built])
                raise KeyError(f"'{name}' is not a candidate of this suite (candidates: {known})")
            seen.append(name)
            i = self._built[name]
            cfg = self.suite.scenarios[i]
            chain.append((i, cfg))
            name = cfg.source
        return chain

    def training_sets(self, name: str) -> list[TrainedOn]:
        """The train sets of every training step in ``name``'s lineage, nearest first."""
        return [TrainedOn(step=cfg.name, where=f"scenarios[{i}].train", train=cfg.train)
                for i, cfg in self.ancestry(name) if isinstance(cfg, TrainingStep)]

    def layer_count(self, name: str) -> int:
        """Encoder layers of ``name``: base's, as the steps that built it changed them."""
        return self._shape(self.ancestry(name)).layers

    def shape(self, name: str, where: str) -> Shape:
        """The encoder shape of ``name``: base's config, changed by the steps that built it.
        A UserError at ``where``.from when one of them made no transformers checkpoint (an
        ONNX graph, quanto weights), the nearest such step named."""
        chain = self.ancestry(name)
        for _, cfg in chain:
            kind_cls = step_class(cfg.kind)
            checker = getattr(kind_cls, "not_a_checkpoint_for", None)
            if (checker(cfg) if checker is not None else getattr(kind_cls, "not_a_checkpoint", None)) is not None:
                raise UserError(
                    f"'{cfg.name}' is built by {cfg.kind}, with no float transformers checkpoint to prune: "
                    "prune first, then export or quantize",
                    where=f"{where}.from",
                )
        return self._shape(chain)

    def labels(self, name: str) -> list[str] | None:
        """``name``'s label names (None: no classification head), as the plan found them."""
        if name not in self.label_names:
            raise KeyError(f"no label names known for '{name}': its building step is not checked yet")
        return self.label_names[name]

    def _shape(self, chain: list[tuple[int, Any]]) -> Shape:
        if self.model_config is None:
            raise ValueError("this Lineage has no base model config, so it knows no encoder shape")
        c = self.model_config
        layers, heads = int(c.num_hidden_layers), getattr(c, "num_attention_heads", None)
        shape = Shape(layers, layers * heads if isinstance(heads, int) else None, getattr(c, "intermediate_size", None))
        for _, cfg in reversed(chain):  # from base outwards
            shape = step_class(cfg.kind).shape_after(cfg, shape)
        return shape
