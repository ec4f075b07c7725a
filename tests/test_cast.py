"""cast: a bfloat16 / float16 copy of a torch candidate, saved as a checkpoint and loaded in that
dtype whatever model.dtype says. On the tiny Llama (tests/lm_helpers.py) and the tiny BERT
(conftest), through the CLI: bytes halved, the saved weights equal ``.to(dtype)`` of the float
ones, the candidate runs (and holds its KV cache) in the new dtype, a quanto step can start from
it, and validate refuses what cannot work with one line, exit 2.

The tiny Llama's float32 parameters: 2 layers of Linears (9,216 weights each), embeddings and an
untied head (92 x 32 each) and 5 RMSNorms of 32: 24,480 parameters, 97,920 bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_scenario
from lm_helpers import lm_suite_yaml, save_tiny_llama, tickets_csv

from hf_cost.cli import main

LLAMA_PARAMETERS = 2 * 9216 + 2 * 92 * 32 + 5 * 32  # 24,480
GEN = "generation: {prompt: 'classify {text} now', max_new_tokens: 3}"
SS = "{kind: single_stream, candidates: [base, %s], min_duration_s: 0.1, min_query_count: 6, warmup_queries: 1}"


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny-llama-cast")
    return save_tiny_llama(root / "model"), tickets_csv(root / "tickets.csv", n=24)


def _run(tmp: Path, text: str) -> tuple[dict, Path]:
    path = write_scenario(tmp, text)
    out = tmp / "out"
    assert main(["run", str(path), "--output", str(out), "--quiet"]) == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8")), out


@pytest.fixture(scope="module")
def lm_run(lm: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    steps = f"""
  - {{kind: cast, name: bf16, dtype: bfloat16}}
  - {{kind: cast, name: fp16, dtype: float16}}
  - {{kind: quanto, name: q8bf, from: bf16, weights: int8}}
  - {SS % "bf16, fp16, q8bf"}"""
    return _run(tmp_path_factory.mktemp("cast-lm"), lm_suite_yaml(lm[0], lm[1], steps, GEN))


def _step(res: dict, name: str) -> dict:
    return next(s for s in res["scenarios"] if s["name"] == name)


def test_cast_halves_the_parameter_bytes(lm_run):
    res, _ = lm_run
    for name in ("bf16", "fp16"):
        m = _step(res, name)["metrics"]
        assert m["parameters"] == LLAMA_PARAMETERS
        assert m["parameter_bytes_before"] == 4 * LLAMA_PARAMETERS == 97920
        assert m["parameter_bytes_after"] == 2 * LLAMA_PARAMETERS == 48960 and m["parameter_bytes_ratio"] == 0.5
        assert m["source_dtype"] == "float32" and m["dtype"] == {"bf16": "bfloat16", "fp16": "float16"}[name]
        # safetensors holds every tensor at 2 bytes, plus its JSON header
        assert 48960 < m["size_on_disk_bytes"] < m["source_size_on_disk_bytes"]


def test_saved_weights_are_the_float_weights_cast(lm_run, lm):
    import torch
    from transformers import AutoModelForCausalLM

    res, out = lm_run
    source = AutoModelForCausalLM.from_pretrained(lm[0], dtype=torch.float32).state_dict()
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        saved = out / "checkpoints" / name
        assert json.loads((saved / "config.json").read_text(encoding="utf-8"))["dtype"] == str(dtype)[6:]
        reloaded = AutoModelForCausalLM.from_pretrained(saved, dtype="auto").state_dict()
        assert reloaded.keys() == source.keys()
        assert all(v.dtype == dtype and torch.equal(v, source[k].to(dtype)) for k, v in reloaded.items())
        assert _step(res, name)["metrics"]["saved_checkpoint"] == str(saved)


def test_the_candidate_runs_in_its_dtype_whatever_model_dtype_says(lm_run):
    """model.dtype is float32 (the default); the cast candidates still load and run in 16 bits: their
    parameters take half the bytes and the KV cache 2 bytes per value, not 4 (2 x layers x KV heads
    x head_dim x bytes = 2 x 2 x 2 x 8 x bytes per token)."""
    res, _ = lm_run
    base = res["candidates"]["base"]
    assert base["dtype"] == "float32" and base["lm_flops"]["kv_cache_bytes_per_token"] == 64 * 4
    for name, dtype in (("bf16", "bfloat16"), ("fp16", "float16")):
        c = res["candidates"][name]
        assert c["dtype"] == dtype and c["parameter_bytes"] == 48960 and c["parent"] == "base"
        assert c["lm_flops"]["kv_dtype"] == dtype and c["lm_flops"]["kv_cache_bytes_per_token"] == 64 * 2
        assert c["lm_flops"]["prefill"] == base["lm_flops"]["prefill"]  # the same matmuls
        ss = next(s for s in res["scenarios"] if s["name"] == "single_stream" and s["candidate"] == name)
        assert ss["status"] == "ok" and ss["metrics"]["queries"] >= 6


def test_the_comparison_keeps_its_raw_samples(lm_run):
    res, _ = lm_run
    for name in ("bf16", "fp16"):
        r = _step(res, name)
        m, raw = r["metrics"], r["raw"]
        assert m["output_compared"] == "first_token_logit" and m["probe_samples"] == 8
        assert m["max_abs_output_difference"] == max(raw["max_abs_output_difference_per_sample"]) > 0
        assert m["top1_agreement"] == sum(raw["top1_agrees_per_sample"]) / 8
    # bfloat16 keeps 8 significand bits, float16 11: the bfloat16 copy moves the logits more
    assert _step(res, "bf16")["metrics"]["max_abs_output_difference"] > _step(res, "fp16")["metrics"][
        "max_abs_output_difference"]


def test_quanto_starts_from_the_cast_copy_in_its_dtype(lm_run):
    res, _ = lm_run
    m = _step(res, "q8bf")["metrics"]
    assert m["activations_dtype"] == "bfloat16" and m["parameter_bytes_before"] == 48960
    # int8 data + a bfloat16 scale per row for the 14 Linears; embeddings, head and norms stay bfloat16
    assert m["parameter_bytes_after"] == 2 * (2 * 92 * 32 + 5 * 32) + 2 * (9216 + 2 * 256)
    assert res["candidates"]["q8bf"]["parent"] == "bf16"


def test_a_bare_encoder_is_cast_and_reloaded_without_a_head(tiny_bert_dir, tmp_path):
    text = f"""
model: {{path: {json.dumps(str(tiny_bert_dir))}, device: cpu}}
inputs: {{kind: synthetic, sequence_length: 16, num_samples: 16}}
scenarios:
  - {{kind: cast, name: f16, dtype: float16}}
  - {SS % "f16"}
"""
    res, _ = _run(tmp_path, text)
    m = _step(res, "f16")["metrics"]
    assert m["output_compared"] == "hidden_state" and m["top1_agreement"] is None
    assert m["parameter_bytes_after"] * 2 == m["parameter_bytes_before"]
    c = res["candidates"]["f16"]
    assert c["dtype"] == "float16" and c["model"]["model_class"] == "BertModel"  # no random head added
    assert c["parameter_bytes"] == m["parameter_bytes_after"]
    assert next(s for s in res["scenarios"] if s["candidate"] == "f16" and s["name"] == "single_stream")["status"] == "ok"


# --- validate refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("steps, key, words", [
    ("\n  - {kind: quanto, name: q}\n  - {kind: cast, from: q, dtype: bfloat16}", "scenarios[1].from", "quanto"),
    ("\n  - {kind: cast, dtype: float32}", "scenarios[0].dtype", "bfloat16"),
    ("\n  - {kind: cast}", "scenarios[0].dtype", "required"),
])
def test_validate_refuses_in_one_line(lm, tmp_path, capsys, steps, key, words):
    path = write_scenario(tmp_path, lm_suite_yaml(lm[0], lm[1], steps, GEN))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and f"{key}:" in err and words in err, err


def test_float16_is_refused_where_the_cpu_has_no_float16_matmul(lm, tmp_path, capsys, monkeypatch):
    from hf_cost.steps import cast

    assert cast.float16_runs_on_cpu()  # this machine: torch 2.13 has one
    monkeypatch.setattr(cast, "float16_runs_on_cpu", lambda: False)
    path = write_scenario(tmp_path, lm_suite_yaml(lm[0], lm[1], "\n  - {kind: cast, dtype: float16}", GEN))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scenarios[0].dtype:" in err and "use dtype: bfloat16" in err, err
    ok = write_scenario(tmp_path, lm_suite_yaml(lm[0], lm[1], "\n  - {kind: cast, dtype: bfloat16}", GEN), "ok.yaml")
    assert main(["validate", str(ok)]) == 0
