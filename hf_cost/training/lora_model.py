"""A causal LM with a LoRA adapter (PEFT): made fresh for training, saved, reloaded from its files.

- `with_fresh_adapter`: the base LoRA-wrapped by ``peft.get_peft_model`` (A random, B zero: the
  wrapped model starts equal to the base); only A and B require gradients.
- `parameter_counts`: trainable (requires_grad) and total parameters, counted on the model.
- `save_adapter`: ``PeftModel.save_pretrained`` (adapter_config.json + adapter_model.safetensors),
  the tokenizer, and base.json naming the base checkpoint the adapter belongs to.
- `load_adapter`: the base loaded the way every candidate is (models/load.load_model: the
  scenario's dtype, device, attention), then ``PeftModel.from_pretrained`` on the saved files,
  unmerged: the candidate measured is the one its files give back, not the object trained.
- `linear_module_names`: the Linear modules of an architecture, from its config on the meta
  device (no weights), so `target_modules` can be checked at validate time.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from hf_cost.models.lm_candidate import GenerativeCandidate

ADAPTER_WEIGHTS = "adapter_model.safetensors"
BASE_FILE = "base.json"
INSTALL = 'pip install -e ".[lora]"'


def peft_installed() -> bool:
    return importlib.util.find_spec("peft") is not None


class LoraCandidate(GenerativeCandidate):
    """A base LM with its LoRA adapter applied but not merged (a ``peft.PeftModel``): every adapted
    Linear runs W x + (alpha / r) B A x. Knows its files, so lora_merge can reload it."""

    def __init__(self, name: str, module: Any, tokenizer: Any, generation: Any, adapter_dir: Path,
                 base_checkpoint: Any, info: Any = None):
        super().__init__(name, module, tokenizer, generation, info)
        self.adapter_dir = adapter_dir  # staged files: adapter, tokenizer, base.json
        self.base_checkpoint = base_checkpoint  # models.resolve.ResolvedCheckpoint of the base


def lora_config(step: Any) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=step.r, lora_alpha=step.alpha, lora_dropout=step.dropout,
                      target_modules=list(step.target_modules), bias="none", task_type="CAUSAL_LM")


def with_fresh_adapter(model: Any, step: Any) -> Any:
    """``model`` wrapped with a new adapter (in place: the base's Linears are replaced), train mode."""
    from peft import get_peft_model

    wrapped = get_peft_model(model, lora_config(step))
    wrapped.train()
    return wrapped


def parameter_counts(model: Any) -> tuple[int, int, int]:
    """(trainable parameters, all parameters, bytes of the trainable ones), counted on ``model``."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return (sum(p.numel() for p in trainable), sum(p.numel() for p in model.parameters()),
            sum(p.numel() * p.element_size() for p in trainable))


def adapter_parameter_counts(model: Any) -> tuple[int, int, int]:
    """(adapter parameters, all parameters, adapter bytes) of a PeftModel loaded for inference, where
    nothing requires gradients: the adapter's parameters are those PEFT names lora_*."""
    adapter = [p for n, p in model.named_parameters() if "lora_" in n]
    return (sum(p.numel() for p in adapter), sum(p.numel() for p in model.parameters()),
            sum(p.numel() * p.element_size() for p in adapter))


def adapted_module_count(model: Any) -> int:
    """Linear modules that carry a LoRA adapter (a PEFT LoRA layer holds ``lora_A``)."""
    return sum(1 for _, m in model.named_modules() if hasattr(m, "lora_A") and len(m.lora_A) > 0)


def save_adapter(model: Any, tokenizer: Any, base: Any, source: str, target: Path) -> Path:
    """Adapter files, tokenizer and base.json into ``target`` (a fresh folder); the weights file."""
    target.mkdir(parents=True, exist_ok=False)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    (target / BASE_FILE).write_text(json.dumps({
        "base_candidate": source, "reference": base.reference, "revision": base.revision, "commit": base.commit,
        "gguf_file": base.gguf_file, "note": "the adapter applies to these base weights; load them, then "
        "peft.PeftModel.from_pretrained(base, this folder)"}, indent=1), encoding="utf-8")
    return target / ADAPTER_WEIGHTS


def load_adapter(spec: Any, base: Any, adapter_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(PeftModel in eval mode, tokenizer, the base's load info) from the base and the saved adapter."""
    from peft import PeftModel

    from hf_cost.models.load import load_model

    loaded = load_model(spec.model_copy(update={"task": "text-generation"}), base)
    model = PeftModel.from_pretrained(loaded.model, str(adapter_dir), is_trainable=False)
    model.eval()
    return model, loaded.tokenizer, loaded.info


def linear_module_names(config: Any) -> list[str] | None:
    """Names of every nn.Linear of a causal LM built from ``config`` on the meta device (no memory,
    no weights); None when the architecture cannot be built that way (remote code, say)."""
    try:
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except Exception:  # noqa: BLE001 - unknowable here: PEFT will say at run time
        return None
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def unmatched_targets(targets: list[str], linear_names: list[str]) -> list[str]:
    """Targets that match no Linear the way PEFT matches names: equal, or a '.'-suffix."""
    return [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in linear_names)]
