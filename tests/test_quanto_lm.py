"""quanto on causal LMs (tiny random Llama, tests/lm_helpers.py): int8 and int4 weights checked
against hand-quantized weights and hand-counted bytes, the head left float, FLOPs inherited where
the counter cannot see quanto's matmuls, the saved file, generation through the CLI
(single_stream, perplexity), and validate refusals.

The tiny Llama: L=2 layers, hidden H=32, intermediate I=64, 4 query heads and 2 KV heads of 8
dimensions (so k_proj and v_proj have 16 rows), vocabulary V=92, untied head.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import write_scenario
from lm_helpers import lm_suite_yaml, save_tiny_llama, tickets_csv

from hf_cost.cli import main

L, H, KV, V = 2, 32, 16, 92
GEN = "generation: {prompt: 'classify {text} now', max_new_tokens: 4}"


def linear_shapes(intermediate: int) -> list[tuple[int, int]]:
    """(rows, cols) of every quantized Linear weight: per layer q, k, v, o, gate, up, down."""
    layer = [(H, H), (KV, H), (KV, H), (H, H), (intermediate, H), (intermediate, H), (H, intermediate)]
    return layer * L


def float_bytes(intermediate: int) -> int:
    """float32 bytes of the whole model: the Linears, embeddings and head (V x H each), norms."""
    linear = sum(r * c for r, c in linear_shapes(intermediate))
    return 4 * (linear + 2 * V * H + (2 * L + 1) * H)


def quantized_bytes(intermediate: int, weights: str) -> int:
    """Hand count: the float parts (embeddings, head, norms) at 4 bytes; each Linear's data at 1 byte
    (int8) or half a byte (int4) a weight; int8: a float32 scale per row; int4: a float32 scale and
    shift per row, or per group of 128 inputs when a row has more than 128 (quanto's rule)."""
    total = 4 * (2 * V * H + (2 * L + 1) * H)
    for rows, cols in linear_shapes(intermediate):
        if weights == "int8":
            total += rows * cols + 4 * rows
        else:
            groups = cols // 128 if cols > 128 else 1
            total += rows * cols // 2 + 8 * rows * groups
    return total


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny-llama-quanto")
    return save_tiny_llama(root / "model"), tickets_csv(root / "tickets.csv", n=24)


@pytest.fixture(scope="module")
def wide_lm(lm: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with I=256, so down_proj's rows have 256 inputs: int4 groups of 128."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("wide-llama")
    config = LlamaConfig.from_pretrained(lm[0])
    config.intermediate_size = 256
    torch.manual_seed(2)
    LlamaForCausalLM(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(lm[0]).save_pretrained(out)
    return out


def build(tmp: Path, model_dir: Path, data: Path, weights: str) -> tuple[Any, Any]:
    """Run the builder as the driver does (prepare -> store -> build), output in tmp/out."""
    from hf_cost.models.store import CandidateStore
    from hf_cost.output import RunOutput
    from hf_cost.pipeline import prepare
    from hf_cost.progress import Progress
    from hf_cost.steps.base import BuildContext
    from hf_cost.steps.quanto import QuantoBuilder

    path = write_scenario(tmp, lm_suite_yaml(model_dir, data, f"\n  - {{kind: quanto, name: q, weights: {weights}}}", GEN))
    prepared = prepare(path)
    store = CandidateStore(prepared, Progress(enabled=False))
    output = RunOutput.open(tmp / "out")
    ctx = BuildContext(store=store, output=output, progress=Progress(enabled=False), where="scenarios[0]")
    return QuantoBuilder().build(prepared.suite.scenarios[0], ctx), output


@pytest.fixture(scope="module", params=["int8", "int4"])
def built(request, lm, wide_lm, tmp_path_factory) -> Any:
    tmp = tmp_path_factory.mktemp(f"quanto-lm-{request.param}")
    result, output = build(tmp, wide_lm, lm[1], request.param)
    yield SimpleNamespace(built=result, output=output, weights=request.param)
    output.abandon()


def hand_quantized(model_dir: Path, weights: str) -> Any:
    """The float Llama with every Linear weight but the head rounded by hand, per row (int4: per
    group of 128 inputs when a row has more): int8 symmetric, s = absmax / 127, w = s round(w / s);
    int4 affine (quanto's MaxOptimizer), s = (max - min) / 15, w = s clamp(round((w - min) / s), 0, 15) + min."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        for name, module in model.named_modules():
            if not isinstance(module, torch.nn.Linear) or name == "lm_head":
                continue
            w = module.weight
            if weights == "int8":
                s = w.abs().amax(dim=1, keepdim=True) / 127
                w.copy_(torch.round(w / s).clamp(-128, 127) * s)
                continue
            g = w.reshape(-1, 128) if w.shape[1] > 128 else w
            lo, hi = g.amin(dim=1, keepdim=True), g.amax(dim=1, keepdim=True)
            s = (hi - lo) / 15
            w.copy_((torch.round((g - lo) / s).clamp(0, 15) * s + lo).reshape(w.shape))
    return model


def prompts() -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(5)
    ids = torch.randint(6, V, (4, 11), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_logits_equal_hand_quantized_weights_and_the_head_stays_float(built, wide_lm):
    import torch
    from transformers import AutoModelForCausalLM

    x = prompts()
    got = built.built.candidate.forward(x)
    with torch.no_grad():
        ref = hand_quantized(wide_lm, built.weights)(**x).logits
        fp = AutoModelForCausalLM.from_pretrained(wide_lm, dtype=torch.float32).eval()(**x).logits
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-4), (got - ref).abs().max()
    assert (got - fp).abs().max().item() > 0  # the weights really were rounded
    head = built.built.candidate.module.lm_head.weight
    assert type(head) is torch.nn.Parameter and head.dtype == torch.float32
    m = built.built.result.metrics
    assert m.excluded_modules == ["lm_head"] and m.quantized_linear_layers == 7 * L


def test_parameter_bytes_are_the_hand_count(built):
    m = built.built.result.metrics
    assert m.parameter_bytes_before == float_bytes(256) == 4 * (2 * 27648 + 2 * 2944 + 160)
    expected = {"int8": 4 * 6048 + 2 * (27648 + 4 * 640),  # 6048 float params; 640 rows a layer
                "int4": 4 * 6048 + 2 * (27648 // 2 + 8 * 608 + 8 * 32 * 2)}[built.weights]  # down_proj: 2 groups a row
    assert m.parameter_bytes_after == quantized_bytes(256, built.weights) == expected
    assert built.built.candidate.info.parameter_bytes == expected
    assert m.parameters == sum(r * c for r, c in linear_shapes(256)) + 6048


def test_result_keeps_raw_first_token_differences_and_greedy_agreement(built):
    r = built.built.result
    raw = r.raw["max_abs_first_token_logit_difference_per_sample"]
    agrees = r.raw["top1_agrees_per_sample"]
    assert len(raw) == len(agrees) == r.settings["probe_samples"] == 8
    assert r.metrics.max_abs_first_token_logit_difference == max(raw) > 0
    assert r.metrics.top1_agreement == sum(agrees) / 8
    assert r.metrics.max_abs_logit_difference is None and r.metrics.flops_per_sample is None
    cand = built.built.candidate
    assert cand.generates and cand.label_names is None
    assert cand.info.dtype.startswith(f"{built.weights} weights") and "lm_head float32" in cand.info.dtype


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def e2e(lm: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    model, data = lm
    tmp = tmp_path_factory.mktemp("quanto-lm-e2e")
    steps = f"""
  - {{kind: quanto, name: q8, weights: int8}}
  - {{kind: quanto, name: q4, weights: int4}}
  - {{kind: single_stream, candidates: [base, q8, q4], min_duration_s: 0.1, min_query_count: 6, warmup_queries: 1}}
  - {{kind: perplexity, candidates: [q4], dataset: {{path: {json.dumps(str(data))}, max_samples: 6}}, batch_size: 3}}"""
    path = write_scenario(tmp, lm_suite_yaml(model, data, steps, GEN))
    out = tmp / "out"
    assert main(["run", str(path), "--output", str(out), "--quiet"]) == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8")), out


def test_quantized_lms_generate_and_score_through_the_cli(e2e):
    res, _ = e2e
    rows = [(s["name"], s["candidate"], s["status"]) for s in res["scenarios"]]
    assert rows == [("q8", "q8", "ok"), ("q4", "q4", "ok"), ("single_stream", "base", "ok"),
                    ("single_stream", "q8", "ok"), ("single_stream", "q4", "ok"), ("perplexity", "q4", "ok")]
    for s in res["scenarios"][3:5]:
        assert s["metrics"]["queries"] >= 6 and all(1 <= k <= 4 for k in s["raw"]["output_tokens"])
    ppl = res["scenarios"][5]["metrics"]["perplexity"]["value"]
    assert 1.0 < ppl < 10 * V  # a random model: near the vocabulary size, finite
    q8 = res["candidates"]["q8"]
    assert q8["origin"] == "variant" and q8["parent"] == "base" and q8["recipe"]["weights"] == "int8"
    assert q8["parameter_bytes"] == quantized_bytes(64, "int8") == 4 * 6048 + 2 * (9216 + 4 * 256)
    assert res["candidates"]["q4"]["parameter_bytes"] == quantized_bytes(64, "int4") == 4 * 6048 + 2 * (4608 + 8 * 256)
    assert res["candidates"]["base"]["parameter_bytes"] == float_bytes(64)


def test_lm_flops_are_inherited_when_the_counter_misses_quantos_matmuls(e2e):
    """int8 runs quanto::qbytes_mm, which FlopCounterMode does not see: the base's counts are kept,
    and they equal the analytic formula. int4 in float32 dequantizes, then runs a matmul it sees."""
    from transformers import AutoConfig

    from hf_cost.measure.lm_flops import analytic_llama_prefill_flops

    res, _ = e2e
    base, q8, q4 = (res["candidates"][n]["lm_flops"] for n in ("base", "q8", "q4"))
    assert base["all_agree"] and q8["source"] == "inherited" and q8["inherited_from"] == "base"
    assert q8["prefill"] == base["prefill"] and q8["decode"] == base["decode"]
    p = base["prefill"][0]["prompt_len"]
    config = AutoConfig.from_pretrained(res["candidates"]["base"]["model"]["path"])
    analytic = analytic_llama_prefill_flops(config, p, logits_to_keep=1)
    assert q8["prefill"][0]["generate"]["measured"] == analytic
    assert q8["counted_on_quantized"]["prefill"][0]["generate"]["measured"] < analytic  # why it is inherited
    assert q4["source"] == "measured" and q4["all_agree"] and q4["prefill"][0]["generate"]["measured"] == analytic
    m8 = next(s for s in res["scenarios"] if s["name"] == "q8")["metrics"]
    assert m8["flops_source"] == "inherited" and m8["lm_prefill_flops"] == analytic
    assert m8["lm_prefill_flops_counted_on_quantized"] < analytic


def test_saved_weights_reload_to_the_hand_quantized_model(e2e, lm):
    import torch
    from optimum.quanto import requantize
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    res, out = e2e
    files = out / "checkpoints" / "q8"
    weights = files / "quanto_weights.safetensors"
    assert res["candidates"]["q8"]["size_on_disk_bytes"] == weights.stat().st_size
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(files))
    requantize(model, load_file(str(weights)), json.loads((files / "quanto_qmap.json").read_text(encoding="utf-8")))
    x = prompts()
    with torch.no_grad():
        got, ref = model.eval()(**x).logits, hand_quantized(lm[0], "int8")(**x).logits
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-4)


# --- validate refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("steps, key, words", [
    ("\n  - {kind: quanto, name: q1}\n  - {kind: quanto, from: q1}", "scenarios[1].from", "quanto"),
    ("\n  - {kind: quanto, weights: int2}", "scenarios[0].weights", "int4"),
])
def test_validate_refuses_in_one_line(lm, tmp_path, capsys, steps, key, words):
    path = write_scenario(tmp_path, lm_suite_yaml(lm[0], lm[1], steps, GEN))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and f"{key}:" in err and words in err, err
