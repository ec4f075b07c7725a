"""The fixed inputs a variant (quanto, cast) is compared with its source on, and the comparison.

Inputs: the first ``PROBE_SAMPLES`` samples of the run's performance set (fixed by its seed), built
with the source's tokenizer: an encoder's inputs, or a causal LM's prompts (the generation block's
template and chat template, left-padded).

Outputs compared, per sample:
- a classifier: its logits; a bare encoder: its last hidden state;
- a causal LM: the logits of the first new token, i.e. the last prompt position of a no-cache
  forward with ``position_ids`` built from the attention mask as ``generate`` builds them, so they
  are the logits ``generate``'s first step picks its token from.

The figures: the largest |difference| of each sample (the result keeps them raw), and where the
outputs are scores over classes or tokens, whether the argmax agrees (a classifier's predicted
label; an LM's greedy next token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROBE_SAMPLES = 8  # fixed inputs the variant's outputs are compared on


@dataclass
class Probe:
    batch: dict[str, Any]  # the probe samples, on the device
    indices: list[int]  # their rows in the performance set
    output: str  # what is compared: "logit" | "hidden_state" | "first_token_logit"
    perf: Any  # the performance set they come from


@dataclass
class Comparison:
    max_abs_difference_per_sample: list[float]
    top1_agrees_per_sample: list[bool] | None  # None: no scores to take an argmax of (hidden states)

    @property
    def max_abs_difference(self) -> float:
        return max(self.max_abs_difference_per_sample)

    def raw_agreement(self) -> dict[str, list[bool]]:
        """The per-sample agreement as a result's raw entry (none for hidden states)."""
        agrees = self.top1_agrees_per_sample
        return {} if agrees is None else {"top1_agrees_per_sample": agrees}

    @property
    def top1_agreement(self) -> float | None:
        agrees = self.top1_agrees_per_sample
        return None if agrees is None else sum(agrees) / len(agrees)


def probe(suite: Any, tokenizer: Any, device: Any, *, generative: bool, has_head: bool) -> Probe:
    """The first PROBE_SAMPLES samples of the run's performance set, tokenised by ``tokenizer``."""
    import torch

    from hf_cost.data.performance_set import build_performance_set

    perf = build_performance_set(suite.inputs, tokenizer, device, suite.generation if generative else None)
    idx = torch.arange(min(PROBE_SAMPLES, perf.num_samples), device=device)
    output = "first_token_logit" if generative else ("logit" if has_head else "hidden_state")
    return Probe(batch=perf.batch(idx), indices=idx.tolist(), output=output, perf=perf)


def outputs(module: Any, p: Probe) -> Any:
    """What ``module`` gives on the probe, as float32, one row per sample."""
    import torch

    with torch.inference_mode():
        if p.output == "first_token_logit":
            mask = p.batch["attention_mask"]
            positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)  # as generate builds them
            out = module(input_ids=p.batch["input_ids"], attention_mask=mask, position_ids=positions,
                         use_cache=False, logits_to_keep=1).logits[:, -1, :]
        else:
            result = module(**p.batch)
            out = result.logits if p.output == "logit" else result.last_hidden_state
    return out.float()


def compare(before: Any, after: Any, output: str) -> Comparison:
    """Per sample: max |after - before| and, for scores (logits), whether their argmax agrees."""
    diffs = (after - before).abs().flatten(1).amax(dim=1).tolist()
    agrees = None if output == "hidden_state" else (after.argmax(-1) == before.argmax(-1)).tolist()
    return Comparison(max_abs_difference_per_sample=diffs, top1_agrees_per_sample=agrees)


def stored_bytes(module: Any) -> int:
    """Bytes of ``module``'s parameters as stored: a tensor subclass (a quanto weight) counts its inner
    tensors (data, scales, shifts), not its logical float size; a tied weight counts once."""
    return sum(_tensor_bytes(p) for p in module.parameters())


def _tensor_bytes(t: Any) -> int:
    flatten = getattr(t, "__tensor_flatten__", None)
    if flatten is None:
        return t.numel() * t.element_size()
    names, _ = flatten()
    return sum(_tensor_bytes(getattr(t, n)) for n in names)
