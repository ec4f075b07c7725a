"""Matmul-class FLOP counts, measured and analytic (peak TFLOP/s and MFU: measure/peak_flops.py).

Measured counts come from ``torch.utils.flop_counter.FlopCounterMode``, which counts
only matmul-class operators (mm, addmm, bmm, baddbmm, convolutions, attention
kernels) at ``2 * m * n * k`` FLOPs per matmul. Element-wise work (softmax, GELU,
LayerNorm, dropout, the loss) is not counted, so the analytic formula below counts
the same thing and the two can be compared exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

__all__ = [
    "FlopCount",
    "count_forward_flops",
    "count_train_step_flops",
    "analytic_encoder_flops",
    "analytic_encoder_terms",
    "flops_over_lengths",
]


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one call on one batch, matmul-class operators only.

    ``by_operator`` maps an aten operator name (``"aten.addmm"``) to its FLOPs;
    its values sum to ``total``.
    """

    total: int
    by_operator: dict[str, int]


# --- custom formulas for attention kernels FlopCounterMode does not know -----------
# FlopCounterMode wraps each custom formula in ``shape_wrapper``: tensors arrive as
# their shapes, in the operator's schema order, and the output as ``out_shape=``.
# The CPU fused kernel's schemas start with the same tensors as the CUDA ones:
#   _scaled_dot_product_flash_attention_for_cpu(query, key, value, dropout_p, ...)
#   _scaled_dot_product_flash_attention_for_cpu_backward(grad_out, query, key, value, ...)
# so torch's own counting functions apply unchanged: forward is two bmm
# (Q K^T and P V) = 4*B*H*Sq*Sk*D; backward is torch's five bmm (scores recomputed,
# then dV, dP, dQ, dK) = 10*B*H*Sq*Sk*D, i.e. 2.5x forward. Matching torch's
# convention keeps CPU and CUDA counts of the same model identical.


def _sdpa_forward_flop(
    query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    """FLOPs of a fused SDPA forward given (B, heads, S, D) shapes; causal masks ignored."""
    return int(sdpa_flop_count(query_shape, key_shape, value_shape))


def _sdpa_backward_flop(
    grad_out_shape: Any,
    query_shape: Any,
    key_shape: Any,
    value_shape: Any,
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """FLOPs of a fused SDPA backward, using torch's ``sdpa_backward_flop_count``."""
    return int(sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape))


_aten = torch.ops.aten
_CUSTOM_MAPPING: dict[Any, Any] = {
    _aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_forward_flop,
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward_flop,
    # Backends plugged in through PrivateUse1/XPU use the "overrideable" pair.
    _aten._scaled_dot_product_fused_attention_overrideable: _sdpa_forward_flop,
    _aten._scaled_dot_product_fused_attention_overrideable_backward: _sdpa_backward_flop,
}


def _flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=_CUSTOM_MAPPING)


def _result(counter: FlopCounterMode) -> FlopCount:
    by_operator = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return FlopCount(total=int(counter.get_total_flops()), by_operator=by_operator)


def count_forward_flops(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> FlopCount:
    """Count the FLOPs of one forward of ``model(**inputs)`` under ``torch.no_grad()``.

    The model's train/eval mode is left as the caller set it.
    """
    counter = _flop_counter()
    with torch.no_grad(), counter:
        model(**inputs)
    return _result(counter)


def count_train_step_flops(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> FlopCount:
    """Count the FLOPs of forward plus ``loss.backward()`` (no optimizer step).

    ``inputs`` must make the model return a ``.loss`` (for example by containing
    ``"labels"``). Parameters are not changed; gradients are cleared afterwards with
    ``model.zero_grad(set_to_none=True)``, so any gradients held before the call are
    dropped too. The train/eval mode is left as the caller set it.
    """
    counter = _flop_counter()
    try:
        with torch.enable_grad(), counter:
            outputs = model(**inputs)
            loss = getattr(outputs, "loss", None)
            if loss is None:
                raise ValueError(
                    "count_train_step_flops: the model output has no .loss; "
                    f"pass labels in inputs (got keys {sorted(inputs)})"
                )
            loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
    return _result(counter)


def analytic_encoder_flops(
    config: Any,
    sequence_length: int,
    batch_size: int = 1,
    *,
    with_pooler: bool,
    num_labels: int | None = None,
) -> int:
    """Matmul FLOPs (``2*m*n*k`` per matmul) of a BERT-family encoder forward.

    Per layer, with S = sequence_length, H = hidden_size, I = intermediate_size:
    ``8*S*H^2`` (Q, K, V, O projections) + ``4*S^2*H`` (Q K^T and A V) + ``4*S*H*I``
    (FFN up and down). Times ``num_hidden_layers``, plus ``2*H*H`` for the pooler
    (first token only) if ``with_pooler``, plus ``2*H*num_labels`` for a
    classification head if ``num_labels``; all times ``batch_size``. Embedding
    lookups are gathers, not matmuls, and count nothing.

    Raises ValueError when the config lacks hidden_size, num_hidden_layers or
    intermediate_size (not an encoder of this family) or a size is not positive.
    """
    terms = analytic_encoder_terms(config, with_pooler=with_pooler, num_labels=num_labels)
    if sequence_length <= 0 or batch_size <= 0:
        raise ValueError(
            f"sequence_length and batch_size must be positive, got {sequence_length} and {batch_size}"
        )
    return batch_size * terms.at(sequence_length)


def analytic_encoder_terms(config: Any, *, with_pooler: bool, num_labels: int | None = None) -> Any:
    """`analytic_encoder_flops` of one sample as a polynomial of its length S, a
    core.results.AnalyticTerms: ``4*L*H * S^2 + L*(8H^2 + 4HI) * S + (pooler + head)``.

    Raises ValueError as `analytic_encoder_flops` does.
    """
    from hf_cost.core.candidate_info import AnalyticTerms

    needed = ("hidden_size", "num_hidden_layers", "intermediate_size")
    missing = [name for name in needed if not isinstance(getattr(config, name, None), int)]
    if missing:
        model_type = getattr(config, "model_type", type(config).__name__)
        raise ValueError(
            f"analytic_encoder_flops needs a BERT-family encoder config; {model_type!r} config "
            f"lacks {', '.join(missing)}"
        )
    if num_labels is not None and num_labels <= 0:
        raise ValueError(f"num_labels must be positive, got {num_labels}")
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    constant = (2 * h * h if with_pooler else 0) + (2 * h * num_labels if num_labels else 0)
    return AnalyticTerms(quadratic=4 * layers * h, linear=layers * (8 * h * h + 4 * h * i), constant=constant)


def torch_flops_info(
    module: torch.nn.Module, sample: dict[str, torch.Tensor], config: Any, *, with_pooler: bool,
    num_labels: int | None,
) -> Any:
    """FLOPs of one sample, measured (FlopCounterMode) and, for encoders, analytic, side by side."""
    from hf_cost.core.candidate_info import FlopsInfo

    measured = count_forward_flops(module, sample)
    seq = int(next(iter(sample.values())).shape[-1])
    try:
        terms = analytic_encoder_terms(config, with_pooler=with_pooler, num_labels=num_labels)
        analytic = analytic_encoder_flops(config, seq, 1, with_pooler=with_pooler, num_labels=num_labels)
    except ValueError:
        terms, analytic = None, None
    return FlopsInfo(
        sequence_length=seq,
        batch_size=1,
        measured_per_sample=measured.total,
        analytic_per_sample=analytic,
        relative_difference=abs(measured.total - analytic) / analytic if analytic else None,
        by_operator=measured.by_operator,
        source="measured",
        method=(
            "torch.utils.flop_counter.FlopCounterMode over one forward (matmuls and attention, "
            "CPU SDPA mapped); analytic = L*(8SH^2 + 4S^2H + 4SHI) + pooler + head"
        ),
        analytic_terms=terms,
    )


# The analytic formula stands for the counts at every length when it is this close to them at
# every length counted; otherwise every length in the set is counted.
ANALYTIC_TOLERANCE = 1e-3


def flops_over_lengths(
    count: Callable[[int], Any], lengths: Sequence[int], probe: Sequence[int]
) -> tuple[Any, list[int] | None]:
    """FLOPs per sample over a performance set whose samples run at their own lengths.

    ``count(i)``: the FlopsInfo of sample ``i`` alone (a batch of one at its own length), or None
    where the candidate cannot count it; ``lengths``: each sample's length; ``probe``: the lengths
    to count at (min, median, max), the first one giving ``measured_per_sample``. A candidate that
    counts none of them (its FLOPs were settled on sample 0 at build time) is counted on sample 0.

    Per-length FLOPs come from the analytic formula when it agrees with every count (within
    ANALYTIC_TOLERANCE), else from counting every length in the set. Returns the FlopsInfo (with
    ``mean_per_sample``, ``per_length``, ``measured_at_lengths``) and each sample's FLOPs in set
    order; (None, None) when nothing could be counted; per-sample FLOPs None when a length could
    not be counted.
    """
    from hf_cost.core.candidate_info import FlopsAtLength

    first_at: dict[int, int] = {}
    samples: dict[int, int] = {}
    for i, length in enumerate(lengths):
        first_at.setdefault(length, i)
        samples[length] = samples.get(length, 0) + 1
    counted: dict[int, Any] = {}
    for length in dict.fromkeys(probe):
        info = count(first_at[length])
        if info is not None:
            counted[length] = info
    if not counted:
        info = count(0)
        if info is None:
            return None, None
        counted[lengths[0]] = info
    main = next(iter(counted.values()))
    terms = main.analytic_terms
    at_lengths = [
        FlopsAtLength(
            sequence_length=length, samples=samples[length], measured_per_sample=info.measured_per_sample,
            analytic_per_sample=info.analytic_per_sample, relative_difference=info.relative_difference,
        )
        for length, info in sorted(counted.items())
    ]
    analytic = terms is not None and all(
        abs(terms.at(a.sequence_length) - a.measured_per_sample) <= ANALYTIC_TOLERANCE * terms.at(a.sequence_length)
        for a in at_lengths
    )
    if analytic:
        per_length: dict[int, int] | None = {length: terms.at(length) for length in sorted(first_at)}
        how = (f"FLOPs of every length from the analytic formula, which agrees with the counts at lengths "
               f"{', '.join(str(a.sequence_length) for a in at_lengths)} within {ANALYTIC_TOLERANCE:.1%}")
    else:
        per_length = {length: info.measured_per_sample for length, info in counted.items()}
        for length in sorted(first_at):
            if length not in per_length:
                info = count(first_at[length])
                if info is None:
                    per_length = None
                    break
                per_length[length] = info.measured_per_sample
        how = ("FLOPs of every length counted (no analytic formula within "
               f"{ANALYTIC_TOLERANCE:.1%} of the counts)" if per_length is not None else
               "no mean: not every length could be counted")
    per_sample = [per_length[length] for length in lengths] if per_length is not None else None
    info = main.model_copy(update={
        "mean_per_sample": sum(per_sample) / len(per_sample) if per_sample else None,
        "per_sample_from": ("analytic" if analytic else "measured") if per_length is not None else None,
        "per_length": {str(k): v for k, v in sorted(per_length.items())} if per_length is not None else None,
        "measured_at_lengths": at_lengths,
        "method": (f"{main.method}; natural lengths: measured_per_sample at length {main.sequence_length} "
                   + ("(the median)" if probe and main.sequence_length == probe[0] else
                      "(not the median: this candidate counts only the sample its FLOPs were settled on, sample 0)"
                      if main.sequence_length == lengths[0] and len(counted) == 1 else
                      "(not the median: this candidate could not count it)")
                   + f", counted at {len(at_lengths)} length(s); {how}; mean_per_sample over the "
                   f"{len(lengths)} samples, each at its own length"),
    })
    return info, per_sample
