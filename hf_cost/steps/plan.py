"""The plan stage: every step's `check`, in file order, before any weights load.

`validate` stops after this; whatever `run` could fail on that can be known now is refused
here. Building kinds' checks return their candidate's label names, which later checks read.
"""

from __future__ import annotations

from typing import Any

from hf_cost.config.lineage import label_names
from hf_cost.core.names import BASE
from hf_cost.core.registry import kinds, step_class
from hf_cost.errors import ConfigError
from hf_cost.steps.base import Plan


def check_steps(suite: Any, model_config: Any) -> dict[str, list[str] | None]:
    """Check the inputs and every step; return each candidate's label names (None: no head)."""
    from hf_cost.data.preflight import check_inputs

    check_inputs(suite)
    plan = Plan(suite=suite, model_config=model_config, labels={BASE: _base_labels(suite, model_config)})
    for i, cfg in enumerate(suite.scenarios):
        step = step_class(cfg.kind)()
        if suite.model.generative and not step.serves_lms:
            lm_kinds = sorted(k for k in kinds() if step_class(k).serves_lms)
            raise ConfigError(
                f"kind '{cfg.kind}' does not run causal LMs yet (model.task: text-generation); the kinds that "
                f"do: {', '.join(lm_kinds)}", where=f"scenarios[{i}].kind")
        labels = step.check(cfg, plan, f"scenarios[{i}]")
        if step.builds:
            plan.labels[cfg.name] = labels
    return plan.labels


def _base_labels(suite: Any, config: Any) -> list[str] | None:
    if suite.model.task != "sequence-classification":
        return None
    return label_names(config)
