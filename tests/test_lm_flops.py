"""Tests for hf_cost.measure.lm_flops: causal-LM prefill/decode FLOPs, measured == analytic exactly,
and the KV cache's bytes per token against a real DynamicCache."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, LlamaConfig

from hf_cost.measure.flops import _flop_counter
from hf_cost.measure.lm_flops import (
    COUNTED,
    SUPPORTED_MODEL_TYPES,
    analytic_llama_decode_flops,
    analytic_llama_prefill_flops,
    analytic_request_flops,
    kv_cache_bytes_per_token,
    lm_flops_summary,
    measured_decode_flops,
    measured_prefill_flops,
)

TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    vocab_size=256,
    max_position_embeddings=128,
)

# One tiny config per supported model_type, each with what makes it differ from plain Llama:
# biases and a head_dim that is not hidden/heads (llama), a sliding window shorter than the
# longest KV length (mistral, every layer; qwen2, the second layer only, with its q/k/v biases),
# q/k norms (qwen3).
VARIANTS = {
    "llama": {"attention_bias": True, "mlp_bias": True, "head_dim": 24},
    "mistral": {"sliding_window": 6},
    "qwen2": {"use_sliding_window": True, "sliding_window": 6, "max_window_layers": 1},
    "qwen3": {"head_dim": 16},
}


def tiny_model(model_type: str, attn_implementation: str = "sdpa", **extra: object) -> tuple[object, torch.nn.Module]:
    config = AutoConfig.for_model(model_type, **{**TINY, **extra})
    torch.manual_seed(0)
    return config, AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation).eval()


def prompt(batch: int, length: int) -> torch.Tensor:
    return torch.randint(0, TINY["vocab_size"], (batch, length), generator=torch.Generator().manual_seed(length))


def test_every_supported_type_has_a_variant() -> None:
    assert set(VARIANTS) == set(SUPPORTED_MODEL_TYPES)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("model_type", sorted(VARIANTS))
def test_measured_equals_analytic(model_type: str, attn_implementation: str) -> None:
    config, model = tiny_model(model_type, attn_implementation, **VARIANTS[model_type])
    for batch, length, keep in [(1, 1, 0), (1, 7, 0), (1, 16, 0), (2, 7, 0), (1, 16, 1)]:
        measured = measured_prefill_flops(model, prompt(batch, length), logits_to_keep=keep)
        assert sum(measured.by_operator.values()) == measured.total
        assert measured.total == analytic_llama_prefill_flops(config, length, batch, logits_to_keep=keep), (
            batch, length, keep)
    # kv_len 9 is past the sliding windows (6): those layers attend to 5 cached tokens + 1.
    for batch, kv_len in [(1, 0), (1, 3), (1, 9), (2, 9)]:
        measured = measured_decode_flops(model, kv_len, batch=batch)
        assert measured.total == analytic_llama_decode_flops(config, kv_len, batch), (batch, kv_len)


def test_hand_computed_prefill_and_decode() -> None:
    # hidden 64, 2 layers, 4 heads of head_dim 16, 2 kv heads (k/v width 32), intermediate 128,
    # vocab 256; every matmul 2*m*n*k.
    config, model = tiny_model("llama")
    # Prefill, P = 8 tokens, LM head on all 8 positions:
    q = 2 * 8 * 64 * 64  # 65_536
    k = v = 2 * 8 * 64 * 32  # 32_768 each (GQA: 2 kv heads x 16)
    o = 2 * 8 * 64 * 64  # 65_536
    attention = 2 * 4 * 8 * 8 * 16 + 2 * 4 * 8 * 8 * 16  # Q K^T + A V over 4 query heads = 16_384
    mlp = 3 * (2 * 8 * 64 * 128)  # gate, up, down = 393_216
    per_layer = q + k + v + o + attention + mlp  # 606_208
    lm_head = 2 * 8 * 64 * 256  # 262_144
    rotary = 2 * 8 * 8  # inv_freq (8 x 1) @ positions (1 x 8) = 128
    assert per_layer == 606_208
    prefill = 2 * per_layer + lm_head + rotary
    assert prefill == 1_474_688
    assert analytic_llama_prefill_flops(config, 8) == prefill
    assert measured_prefill_flops(model, prompt(1, 8)).total == prefill
    # generate's prefill: LM head on the last position only.
    assert analytic_llama_prefill_flops(config, 8, logits_to_keep=1) == prefill - lm_head + 2 * 1 * 64 * 256

    # Decode, 1 new token with 8 cached: it attends to 8 + 1 = 9 keys.
    per_layer = 2 * 64 * 64 + 2 * (2 * 64 * 32) + 2 * 64 * 64 + 4 * 4 * 1 * 9 * 16 + 3 * (2 * 64 * 128)
    assert per_layer == 76_032
    decode = 2 * per_layer + 2 * 64 * 256 + 2 * 1 * 8
    assert decode == 184_848
    assert analytic_llama_decode_flops(config, 8) == decode
    assert measured_decode_flops(model, 8).total == decode
    assert analytic_llama_decode_flops(config, 8, batch=3) == 3 * decode


def test_generate_runs_prefill_last_position_then_decode_steps() -> None:
    # What model.generate really runs: a prefill with logits_to_keep=1, then one decode step per
    # further token at growing KV length; left padding changes nothing (padded positions are computed).
    config, model = tiny_model("llama")
    input_ids = prompt(2, 7)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :2] = 0
    counter = _flop_counter()
    with torch.no_grad(), counter:
        out = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=3, min_new_tokens=3,
                             do_sample=False, pad_token_id=0)
    assert out.shape == (2, 10)
    expected = analytic_llama_prefill_flops(config, 7, 2, logits_to_keep=1) + sum(
        analytic_llama_decode_flops(config, 7 + i, 2) for i in range(2)
    )
    assert counter.get_total_flops() == expected


@pytest.mark.parametrize("new_tokens", [1, 4])
def test_a_requests_flops_are_what_generate_counts(new_tokens: int) -> None:
    # one request at batch 1, counted around model.generate itself (FlopCounterMode)
    config, model = tiny_model("qwen2", **VARIANTS["qwen2"])
    counter = _flop_counter()
    with torch.no_grad(), counter:
        model.generate(prompt(1, 5), attention_mask=torch.ones(1, 5, dtype=torch.long), max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    assert analytic_request_flops(config, 5, new_tokens) == counter.get_total_flops()
    with pytest.raises(ValueError, match="new_tokens"):
        analytic_request_flops(config, 5, 0)


def test_tied_embeddings_change_nothing() -> None:
    tied, tied_model = tiny_model("llama", tie_word_embeddings=True)
    untied, untied_model = tiny_model("llama", tie_word_embeddings=False)
    assert tied_model.lm_head.weight is tied_model.model.embed_tokens.weight
    assert analytic_llama_prefill_flops(tied, 9) == analytic_llama_prefill_flops(untied, 9)
    assert measured_prefill_flops(tied_model, prompt(1, 9)).total == measured_prefill_flops(
        untied_model, prompt(1, 9)).total


@pytest.mark.parametrize(("model_type", "extra", "dtype"), [
    ("llama", {}, torch.float32),
    ("llama", {"head_dim": 24}, torch.bfloat16),
    ("qwen2", {}, torch.float32),
])
def test_kv_bytes_per_token_matches_a_real_cache(model_type: str, extra: dict, dtype: torch.dtype) -> None:
    config, model = tiny_model(model_type, **extra)
    model = model.to(dtype)
    tokens = 11
    with torch.no_grad():
        cache = model(input_ids=prompt(1, tokens), use_cache=True).past_key_values
    real = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    dtype_bytes = torch.empty((), dtype=dtype).element_size()
    assert real / tokens == kv_cache_bytes_per_token(config, dtype_bytes)
    head_dim = extra.get("head_dim", 64 // 4)
    assert kv_cache_bytes_per_token(config, dtype_bytes) == 2 * 2 * 2 * head_dim * dtype_bytes


@pytest.mark.parametrize("config", [GPT2Config(), SimpleNamespace(model_type="bert"), SimpleNamespace()])
def test_unsupported_configs_are_refused(config: object) -> None:
    for call in (
        lambda: analytic_llama_prefill_flops(config, 8),
        lambda: analytic_llama_decode_flops(config, 8),
        lambda: kv_cache_bytes_per_token(config, 2),
        lambda: lm_flops_summary(torch.nn.Linear(1, 1), config, [4], [4]),
    ):
        with pytest.raises(ValueError, match="supports Llama-like decoders") as info:
            call()
        assert "\n" not in str(info.value)


def test_bad_sizes_are_refused() -> None:
    config = LlamaConfig(**TINY)
    with pytest.raises(ValueError, match="prompt_len"):
        analytic_llama_prefill_flops(config, 0)
    with pytest.raises(ValueError, match="kv_len"):
        analytic_llama_decode_flops(config, -1)
    with pytest.raises(ValueError, match="logits_to_keep"):
        analytic_llama_prefill_flops(config, 4, logits_to_keep=-1)
    with pytest.raises(ValueError, match="dtype_bytes"):
        kv_cache_bytes_per_token(config, 0)


def test_summary() -> None:
    config, model = tiny_model("llama")
    summary = lm_flops_summary(model, config, [4, 12], [0, 12])
    assert summary["all_agree"] is True
    assert summary["counted"] == COUNTED and "causal mask ignored" in COUNTED
    assert [e["prompt_len"] for e in summary["prefill"]] == [4, 12]
    first = summary["prefill"][0]
    assert first["forward"]["analytic"] == analytic_llama_prefill_flops(config, 4)
    assert first["generate"]["measured"] == analytic_llama_prefill_flops(config, 4, logits_to_keep=1)
    assert summary["decode"][1] == {"kv_len": 12, "measured_per_token": analytic_llama_decode_flops(config, 12),
                                    "analytic_per_token": analytic_llama_decode_flops(config, 12), "agree": True}
    assert summary["kv_cache_bytes_per_token"] == kv_cache_bytes_per_token(config, 4)
    assert summary["kv_dtype"] == "float32"
