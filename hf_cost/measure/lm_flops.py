"""FLOPs and KV-cache size of decoder-only causal LMs (Llama family), measured and analytic.

Measured counts reuse measure/flops.py's ``FlopCounterMode`` set-up (its CPU SDPA mapping
included); the analytic formulas below count the same matmul-class operators, so the two agree
exactly (tests/test_lm_flops.py checks it for every supported ``model_type``, eager and SDPA).

Conventions (transformers 4.57):

- Attention is counted the way ``FlopCounterMode`` counts SDPA: ``4*B*Hq*Sq*Sk*D`` (Q K^T and
  the weighted sum over values), the causal (or sliding-window) mask ignored: masked-out scores
  are computed by the kernels counted, and the eager path's matmuls count the same. With GQA the
  count uses the query heads ``Hq`` (K and V are broadcast to them).
- Prefill (no cache): ``Sq = Sk = P``. Decode (one new token, ``kv_len`` cached tokens):
  ``Sq = 1`` and ``Sk = kv_len + 1``, because the cache is updated with the new token's key
  and value before attention, so the token attends to itself. A sliding-window layer (Mistral
  ``sliding_window``, Qwen2 ``use_sliding_window``) keeps ``window - 1`` tokens in a
  DynamicCache, so its decode ``Sk = min(kv_len, window - 1) + 1``.
- LM head: ``model(input_ids)`` computes logits on all ``P`` positions (``logits_to_keep=0``,
  transformers' default); ``model.generate`` passes ``logits_to_keep=1``, so its prefill
  computes logits on the last position only. Both are available through ``logits_to_keep``.
  A decode step has one position either way.
- Rotary embeddings: every forward computes ``inv_freq @ position_ids`` (an outer product
  counted as a bmm, ``2*B*S*R`` FLOPs with ``R = ceil(rotary_dim / 2)``), once per forward, not
  per layer. The measured functions pass ``position_ids`` of shape ``(B, S)`` as ``generate``
  does; a bare ``model(input_ids)`` builds them with batch 1, so for ``B > 1`` it counts
  ``2*S*R`` instead (a negligible term).
- Biases (``attention_bias``, ``mlp_bias``, Qwen2's q/k/v biases) turn ``mm`` into ``addmm``
  with the same count; tied embeddings change nothing; embedding lookups, norms, activations,
  softmax and the residual adds are not matmuls and count nothing.
"""

from __future__ import annotations

from typing import Any

import torch

from hf_cost.measure.flops import FlopCount, _flop_counter, _result

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "COUNTED",
    "analytic_llama_prefill_flops",
    "analytic_llama_decode_flops",
    "measured_prefill_flops",
    "measured_decode_flops",
    "kv_cache_bytes_per_token",
    "lm_flops_summary",
]

# model_type values whose decoder layer has exactly Llama's matmuls (q/k/v/o projections,
# gated MLP of three linears, untied-or-tied LM head, rotary embeddings), each verified against
# a tiny random model in tests/test_lm_flops.py. Qwen3's extra q/k RMSNorms are not matmuls.
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")

COUNTED = (
    "matmul-class ops only, FlopCounterMode (2*m*n*k per matmul); attention counted as SDPA's "
    "4·B·H·Sq·Sk·D with H the query heads, causal mask ignored (prefill Sk = P; decode Sk = kv_len + 1, "
    "the new token attends to itself); LM head on all P positions in prefill (model(input_ids), "
    "logits_to_keep=0) and on the last position only in generate's prefill (logits_to_keep=1), "
    "1 position per decode step; rotary inv_freq @ position_ids included (2·B·S·ceil(rotary_dim/2)); "
    "norms, activations, softmax, embeddings not counted"
)


def _shape(config: Any) -> dict[str, int]:
    """The sizes the formulas need, read from a supported config; ValueError (one line) otherwise."""
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"lm_flops supports Llama-like decoders ({', '.join(SUPPORTED_MODEL_TYPES)}); "
            f"got model_type {model_type!r}"
        )
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rotary_dim = int(head_dim * getattr(config, "partial_rotary_factor", 1.0))
    return {
        "hidden": config.hidden_size,
        "intermediate": config.intermediate_size,
        "layers": config.num_hidden_layers,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "vocab": config.vocab_size,
        "rotary": (rotary_dim + 1) // 2,  # len(torch.arange(0, rotary_dim, 2)), the inv_freq length
    }


def _layer_windows(config: Any) -> list[int | None]:
    """Each layer's sliding window in a DynamicCache (None: full attention), as transformers
    4.57's ``DynamicCache(config=...)`` decides it."""
    window = getattr(config, "sliding_window", None) or getattr(config, "attention_chunk_size", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is None:
        layer_types = ["sliding_attention" if window is not None else "full_attention"] * config.num_hidden_layers
    return [window if kind in ("sliding_attention", "chunked_attention") else None for kind in layer_types]


def _positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _forward_flops(s: dict[str, int], batch: int, new: int, keys: list[int], logits: int) -> int:
    """Matmul FLOPs of one forward over ``new`` tokens per sequence, layer i attending to
    ``keys[i]`` keys, logits on ``logits`` positions."""
    h, d = s["hidden"], s["head_dim"]
    q_width, kv_width = s["heads"] * d, s["kv_heads"] * d
    projections = 2 * new * h * (q_width + 2 * kv_width) + 2 * new * q_width * h  # q, k, v; o
    mlp = 3 * 2 * new * h * s["intermediate"]  # gate, up, down
    attention = sum(4 * s["heads"] * new * sk * d for sk in keys)  # Q K^T and A V
    lm_head = 2 * logits * h * s["vocab"]
    rotary = 2 * new * s["rotary"]  # inv_freq (R x 1) @ position_ids (1 x S)
    return batch * (len(keys) * (projections + mlp) + attention + lm_head + rotary)


def analytic_llama_prefill_flops(config: Any, prompt_len: int, batch: int = 1, *, logits_to_keep: int = 0) -> int:
    """Matmul FLOPs of one forward over a ``prompt_len``-token prompt with no cache.

    Per layer, with P = prompt_len, H = hidden_size, D = head_dim, Hq / Hkv = attention / key-value
    heads, I = intermediate_size: ``2PH(Hq*D) + 2*2PH(Hkv*D) + 2P(Hq*D)H`` (q, k, v, o) +
    ``4*Hq*P*P*D`` (attention, causal mask ignored) + ``6PHI`` (gate, up, down); plus the LM head
    ``2*K*H*vocab`` on K positions and the rotary outer product ``2*P*ceil(rotary_dim/2)``; all
    times ``batch``. ``logits_to_keep`` is transformers' argument: 0 (the default, what
    ``model(input_ids)`` runs) keeps all P positions; ``model.generate``'s prefill passes 1.

    Raises ValueError for an unsupported model_type or a non-positive size.
    """
    s = _shape(config)
    _positive(prompt_len=prompt_len, batch=batch)
    if not isinstance(logits_to_keep, int) or logits_to_keep < 0:
        raise ValueError(f"logits_to_keep must be an int >= 0, got {logits_to_keep!r}")
    logits = prompt_len if logits_to_keep == 0 else min(logits_to_keep, prompt_len)
    return _forward_flops(s, batch, prompt_len, [prompt_len] * s["layers"], logits)


def analytic_llama_decode_flops(config: Any, kv_len: int, batch: int = 1) -> int:
    """Matmul FLOPs of one decode step: 1 new token per sequence, ``kv_len`` tokens already cached.

    As `analytic_llama_prefill_flops` with P = 1, except attention: the new token's key and value
    join the cache before attention, so ``Sk = kv_len + 1`` (``min(kv_len, window - 1) + 1`` on a
    sliding-window layer, which a DynamicCache keeps ``window - 1`` tokens deep). LM head on the
    one new position.

    Raises ValueError for an unsupported model_type, ``kv_len < 0`` or ``batch <= 0``.
    """
    s = _shape(config)
    _positive(batch=batch)
    if not isinstance(kv_len, int) or kv_len < 0:
        raise ValueError(f"kv_len must be an int >= 0, got {kv_len!r}")
    keys = [(kv_len if window is None else min(kv_len, window - 1)) + 1 for window in _layer_windows(config)]
    return _forward_flops(s, batch, 1, keys, 1)


def kv_cache_bytes_per_token(config: Any, dtype_bytes: int) -> int:
    """Bytes a full-attention KV cache grows by per token (and per sequence):
    ``2 (k and v) * num_hidden_layers * num_key_value_heads * head_dim * dtype_bytes``.

    A sliding-window layer stops growing once it holds ``window - 1`` tokens; this figure is
    the growth below that. Raises ValueError for an unsupported model_type or ``dtype_bytes <= 0``.
    """
    s = _shape(config)
    _positive(dtype_bytes=dtype_bytes)
    return 2 * s["layers"] * s["kv_heads"] * s["head_dim"] * dtype_bytes


def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    # What generate's prepare_inputs_for_generation builds from the mask (padding gets 1).
    position_ids = attention_mask.long().cumsum(-1) - 1
    return position_ids.masked_fill(attention_mask == 0, 1)


def measured_prefill_flops(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    logits_to_keep: int = 0,
) -> FlopCount:
    """Count one no-cache forward of ``model`` over ``input_ids`` (B, P) with FlopCounterMode.

    ``position_ids`` are built from the mask as ``generate`` builds them; ``use_cache=False``.
    ``logits_to_keep`` as in `analytic_llama_prefill_flops` (0: all positions; 1: generate's
    prefill). Padding does not change the count (padded positions are computed too).
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    counter = _flop_counter()
    with torch.no_grad(), counter:
        model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=_position_ids(attention_mask),
            use_cache=False,
            logits_to_keep=logits_to_keep,
        )
    return _result(counter)


def analytic_request_flops(config: Any, prompt_len: int, new_tokens: int) -> int:
    """Matmul FLOPs of one greedy request at batch 1, as ``generate`` runs it: the prefill of
    ``prompt_len`` tokens with the LM head on the last position (it yields the first new token),
    then one decode step per later token, the j-th of them (j = 0..new_tokens-2) over
    ``prompt_len + j`` cached tokens."""
    if not isinstance(new_tokens, int) or new_tokens < 1:
        raise ValueError(f"new_tokens must be an int >= 1, got {new_tokens!r}")
    total = analytic_llama_prefill_flops(config, prompt_len, logits_to_keep=1)
    return total + sum(analytic_llama_decode_flops(config, prompt_len + j) for j in range(new_tokens - 1))


def measured_decode_flops(model: torch.nn.Module, kv_len: int, *, batch: int = 1, seed: int = 0) -> FlopCount:
    """Count one decode step of ``model``: ``kv_len`` random tokens are prefilled into a
    DynamicCache outside the counter (``use_cache=True``), then one new token per sequence is
    run against that cache under FlopCounterMode.
    """
    if not isinstance(kv_len, int) or kv_len < 0:
        raise ValueError(f"kv_len must be an int >= 0, got {kv_len!r}")
    _positive(batch=batch)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (batch, kv_len + 1), generator=generator).to(device)
    mask = torch.ones_like(ids)
    cache = None
    with torch.no_grad():
        if kv_len:
            cache = model(
                input_ids=ids[:, :kv_len],
                attention_mask=mask[:, :kv_len],
                position_ids=_position_ids(mask[:, :kv_len]),
                use_cache=True,
                logits_to_keep=1,
            ).past_key_values
        counter = _flop_counter()
        with counter:
            model(
                input_ids=ids[:, kv_len:],
                attention_mask=mask,
                position_ids=_position_ids(mask)[:, kv_len:],
                past_key_values=cache,
                use_cache=True,
                cache_position=torch.tensor([kv_len], device=device),
            )
    return _result(counter)


def lm_flops_summary(model: torch.nn.Module, config: Any, prompt_lens: list[int], kv_lens: list[int]) -> dict[str, Any]:
    """Measured and analytic FLOPs of ``model`` (batch 1) side by side.

    ``prefill``: per prompt length, the model forward (LM head on all positions) and generate's
    prefill (last position only), each measured, analytic and whether they agree exactly;
    ``decode``: per KV length, the FLOPs of one decode step (= per generated token);
    ``all_agree``; ``kv_cache_bytes_per_token`` at the model's parameter dtype; ``counted``.
    Raises ValueError for an unsupported config (before anything runs).
    """
    _shape(config)
    dtype = next(model.parameters()).dtype
    dtype_bytes = torch.empty((), dtype=dtype).element_size()
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    prefill = []
    for p in prompt_lens:
        ids = torch.randint(0, config.vocab_size, (1, p), generator=generator).to(device)
        entry: dict[str, Any] = {"prompt_len": p}
        for key, keep in (("forward", 0), ("generate", 1)):
            measured = measured_prefill_flops(model, ids, torch.ones_like(ids), logits_to_keep=keep).total
            analytic = analytic_llama_prefill_flops(config, p, logits_to_keep=keep)
            entry[key] = {"measured": measured, "analytic": analytic, "agree": measured == analytic}
        prefill.append(entry)
    decode = []
    for k in kv_lens:
        measured = measured_decode_flops(model, k).total
        analytic = analytic_llama_decode_flops(config, k)
        decode.append({"kv_len": k, "measured_per_token": measured, "analytic_per_token": analytic,
                       "agree": measured == analytic})
    agree = all(e[key]["agree"] for e in prefill for key in ("forward", "generate")) and all(
        e["agree"] for e in decode
    )
    return {
        "model_type": config.model_type,
        "prefill": prefill,
        "decode": decode,
        "all_agree": agree,
        "kv_cache_bytes_per_token": kv_cache_bytes_per_token(config, dtype_bytes),
        "kv_dtype": str(dtype).removeprefix("torch."),
        "counted": COUNTED,
    }
