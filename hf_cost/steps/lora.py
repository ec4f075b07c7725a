"""lora: a LoRA adapter (PEFT) trained on a causal LM to a quality target, MLPerf-Training style.

Runs `runs` times with seeds seed, seed+1, ... and scores time-to-target as fine_tune does
(olympic). Quality is accuracy by greedy generation on `eval` (the accuracy kind's answer parser).
The first converged run's adapter (else the last's) is saved under <output>/checkpoints/<name>/
(adapter_config.json, adapter_model.safetensors, the tokenizer, base.json) and reloaded from those
files onto the base as the candidate `<name>`, unmerged. `lora_merge` folds it into a checkpoint.

The session is hf_cost/training/lora.py (data: lora_data.py, loop: lora_loop.py, model and files:
lora_model.py, result: lora_result.py).
"""

from __future__ import annotations

from typing import Any

from hf_cost.config.lora import LoraStep
from hf_cost.core.build_metrics import LoraMetrics
from hf_cost.errors import UserError
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan, require_checkpoint


class LoraBuilder(BuildStep):
    kind = "lora"
    config = LoraStep
    metrics = LoraMetrics
    serves_lms = True
    not_a_checkpoint = "a LoRA adapter on its base model: merge it with lora_merge to start from it"

    def check(self, step: LoraStep, plan: Plan, where: str) -> list[str] | None:
        """peft installed; a causal LM; a `from` with transformers weights; the data and its labels;
        the parser can read each label; each target module is a Linear of the architecture."""
        from hf_cost.data.labelled import load_labelled
        from hf_cost.quality.answers import check_parser
        from hf_cost.training.lora_model import INSTALL, linear_module_names, peft_installed, unmatched_targets

        if not peft_installed():
            raise UserError(f"lora needs peft, which is not installed: {INSTALL}", where=f"{where}.kind")
        if not plan.suite.model.generative:
            raise UserError("lora trains causal LMs (model.task: text-generation); for an encoder classifier "
                            "use fine_tune", where=f"{where}.kind")
        require_checkpoint(step, plan, where)
        labels = load_labelled(step.train, f"{where}.train").label_names
        load_labelled(step.eval, f"{where}.eval", labels)
        try:
            check_parser(labels)
        except ValueError as exc:
            raise UserError(str(exc), where=f"{where}.train.label_column") from None
        linears = linear_module_names(plan.model_config)
        missing = unmatched_targets(step.target_modules, linears) if linears is not None else []
        if missing:
            leaves = sorted({n.rsplit(".", 1)[-1] for n in linears})
            raise UserError(f"{', '.join(repr(m) for m in missing)} names no Linear module of this "
                            f"{getattr(plan.model_config, 'model_type', 'model')}; its Linears: {', '.join(leaves)}",
                            where=f"{where}.target_modules")
        return None  # an LM answers in words: no classification head

    def build(self, step: LoraStep, ctx: BuildContext) -> Built | None:
        from hf_cost.training.lora import train_lora
        from hf_cost.training.session import training_context

        outcome = train_lora(step, training_context(step, ctx), ctx.store.suite.generation)
        if outcome.candidate is None:
            return None
        return Built(
            name=step.name or self.kind, parent=step.source, origin="fine-tuned",
            recipe=step.model_dump(mode="json", by_alias=True), result=outcome.result,
            candidate=outcome.candidate, files_dir=outcome.files_dir,
        )


def lora_candidate(store: Any, name: str, where: str) -> Any:
    """The LoraCandidate the lora step `name` built (its files and base), refused with one line
    when that step failed."""
    reason = store.failed(name)
    if reason is not None:
        raise UserError(f"candidate '{name}' was not built ({reason})", where=f"{where}.from")
    return store.entries[name].candidate
