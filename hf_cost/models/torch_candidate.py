"""A candidate run by PyTorch: a transformers model in eval mode on one device."""

from __future__ import annotations

from typing import Any

from hf_cost.config.lineage import label_names
from hf_cost.core.candidate import Candidate


def head_labels(module: Any) -> list[str] | None:
    """A classifier's label names in id order; None for a bare encoder (no head)."""
    if getattr(module, "base_model", module) is module:
        return None
    config = module.config
    return label_names(config)


class TorchCandidate(Candidate):
    runtime = "torch"

    def __init__(self, name: str, module: Any, tokenizer: Any, info: Any = None):
        self.name = name
        self.module = module  # builders (fine-tune, distill, prune) work on it; runners never do
        self.tokenizer = tokenizer
        self.device = next(module.parameters()).device
        self.label_names = head_labels(module)
        self.info = info

    def forward(self, batch: dict[str, Any]) -> Any:
        import torch

        with torch.inference_mode():
            out = self.module(**batch)
        logits = getattr(out, "logits", None)
        return logits if logits is not None else out.last_hidden_state

    def synchronize(self) -> None:
        if self.is_cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def flops(self, sample: dict[str, Any], config: Any) -> Any:
        from hf_cost.measure.flops import torch_flops_info

        module = self.module
        return torch_flops_info(
            module,
            sample,
            config,
            with_pooler=getattr(getattr(module, "base_model", module), "pooler", None) is not None,
            num_labels=len(self.label_names) if self.label_names is not None else None,
        )


class AutocastCandidate(TorchCandidate):
    """A float32 model whose every forward runs under ``torch.autocast(device type, dtype)``: the
    weights stay float32 in memory; autocast casts the inputs of matmul-class ops (linear, matmul,
    baddbmm, SDPA) to ``dtype`` on the fly and keeps precision-sensitive ops (softmax, layer norm,
    losses) in float32, as torch's autocast op lists say. Not a checkpoint: nothing is saved in a
    new dtype. FLOPs are the float32 model's (the same matmuls, run in ``dtype``)."""

    def __init__(self, name: str, module: Any, tokenizer: Any, dtype: str, info: Any = None):
        super().__init__(name, module, tokenizer, info)
        self.autocast_dtype = dtype

    def forward(self, batch: dict[str, Any]) -> Any:
        import torch

        with torch.autocast(device_type=self.device.type, dtype=getattr(torch, self.autocast_dtype)):
            return super().forward(batch)

    def flops(self, sample: dict[str, Any], config: Any) -> Any:
        # counted on the float32 module outside autocast: the same matmuls, whatever dtype they run in
        return super().flops(sample, config if config is not None else self.module.config)
