"""A pre-flight estimate of activation memory per batch size, so a batch that cannot fit is
refused before any work instead of ending in an allocator traceback.

Estimates for a transformer encoder (hidden H, intermediate I, heads a, layers L) at
batch b and sequence s, with e bytes per element:

- inference keeps about one layer's activations alive at a time:
  ``b·s·(I + 6H)·e + 2·b·a·s²·e`` (FFN and projections, attention scores and probabilities);
- training keeps every layer's activations for the backward pass. Korthikanti et al. 2022
  ("Reducing Activation Recomputation in Large Transformer Models", eq. 1) give
  ``s·b·H·(34 + 5·a·s/H)`` bytes per layer at 16-bit; it is scaled by e/2 here.

They are estimates, used only to refuse what is clearly impossible: a batch is refused
when the estimate exceeds the memory available.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class EncoderShape:
    hidden: int
    intermediate: int
    heads: int
    layers: int

    @classmethod
    def from_config(cls, config: Any) -> EncoderShape | None:
        try:
            hidden = int(config.hidden_size)
            return cls(
                hidden=hidden,
                intermediate=int(getattr(config, "intermediate_size", 4 * hidden)),
                heads=int(config.num_attention_heads),
                layers=int(config.num_hidden_layers),
            )
        except (AttributeError, TypeError, ValueError):
            return None


def inference_activation_bytes(shape: EncoderShape, batch: int, seq: int, elem_bytes: int) -> int:
    per_token = shape.intermediate + 6 * shape.hidden
    return batch * seq * per_token * elem_bytes + 2 * batch * shape.heads * seq * seq * elem_bytes


def training_activation_bytes(shape: EncoderShape, batch: int, seq: int, elem_bytes: int) -> int:
    per_layer_16bit = seq * batch * shape.hidden * (34 + 5 * shape.heads * seq / shape.hidden)
    return int(shape.layers * per_layer_16bit * elem_bytes / 2)


def available_bytes(device: str) -> tuple[int, str]:
    """Memory free for this run now, and what it is (host RAM or the GPU's free memory)."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            index = int(device.split(":")[1]) if ":" in device else 0
            free, _total = torch.cuda.mem_get_info(index)
            return int(free), f"free on cuda:{index}"
    import psutil

    return int(psutil.virtual_memory().available), "available host memory"


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.0f} KiB"


_ELEM_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def check_batch_sizes(suite: Any, config: Any) -> None:
    """Refuse, naming the key, any batch size whose estimate exceeds the memory available."""
    from hf_cost.errors import ConfigError

    shape = EncoderShape.from_config(config)
    if shape is None:
        return
    dtype = suite.model.dtype if suite.model.dtype != "auto" else str(getattr(config, "torch_dtype", "float32"))
    elem = _ELEM_BYTES.get(dtype.removeprefix("torch."), 4)
    free, what = available_bytes(suite.model.device)
    default_seq = suite.inputs.sequence_length
    for i, sc in enumerate(suite.scenarios):
        seq = getattr(sc, "sequence_length", None) or default_seq
        checks = [(key, b, (training_activation_bytes if trains else inference_activation_bytes)(shape, b, seq, elem))
                  for key, b, trains in sc.activation_batches()]
        for key, batch, need in checks:
            if need > free:
                raise ConfigError(
                    f"batch size {batch} at sequence length {seq} needs about {format_bytes(need)} of "
                    f"activations (estimate), more than the {format_bytes(free)} of {what}; lower it",
                    where=f"scenarios[{i}].{key}",
                )
