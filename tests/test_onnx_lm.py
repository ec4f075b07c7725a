"""onnx and onnx_int8 for causal LMs: the tiny random Llama (tests/lm_helpers.py) exported with its
KV cache (`text-generation-with-past`) and quantized to dynamic int8, through the CLI.

One run builds both and measures them (single_stream, accuracy, perplexity) beside the torch
base. References are computed here, independently: the torch model's own greedy `generate`, its
perplexity from the same run, file sizes and graph inputs read with `onnx`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_scenario
from lm_helpers import lm_suite_yaml, save_tiny_llama, tickets_csv

from hf_cost.cli import main

NEW_TOKENS = 5
GEN = f"generation: {{prompt: 'classify {{text}} now', max_new_tokens: {NEW_TOKENS}}}"
PROMPTS = ["w1 w2 w3", "w4 w5 w6 w7 w8 w9 w10 w11", "w12", "praise w13 w14 w15 w16"]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("onnx-lm")
    model, data = save_tiny_llama(root / "model"), tickets_csv(root / "tickets.csv", n=24)
    ds = json.dumps(str(data))
    steps = f"""
  - {{kind: onnx, name: ox}}
  - {{kind: onnx_int8, name: q8}}
  - {{kind: single_stream, candidates: [ox, q8], min_duration_s: 0.05, min_query_count: 6, warmup_queries: 1}}
  - {{kind: accuracy, candidates: [base, ox, q8], dataset: {{path: {ds}, label_column: label}}, batch_size: 8,
      bootstrap_resamples: 10}}
  - {{kind: perplexity, candidates: [base, ox], dataset: {{path: {ds}, max_samples: 12}}, batch_size: 5,
      bootstrap_resamples: 10}}"""
    path = write_scenario(root, lm_suite_yaml(model, data, steps, GEN))
    out = root / "out"
    assert main(["run", str(path), "--output", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return {"model": model, "out": out, "results": results,
            "by": {(s["kind"], s["candidate"]): s for s in results["scenarios"]}}


def _torch_greedy(model_dir: Path, texts: list[str]) -> list[list[int]]:
    """The torch model's own greedy answers, one prompt at a time, cut after EOS by hand."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    answers = []
    for text in texts:
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=8, pad_token_id=tok.eos_token_id)
        row = out[0, ids.shape[-1]:].tolist()
        answers.append(row[: row.index(tok.eos_token_id) + 1] if tok.eos_token_id in row else row)
    return answers


def _onnx_candidate(directory: Path, file_name: str) -> Any:
    from transformers import AutoTokenizer

    from hf_cost.config.generation import GenerationSettings
    from hf_cost.models.load import prepare_lm_tokenizer
    from hf_cost.models.onnx_lm_candidate import OnnxLmCandidate, load_ort_lm

    tok = AutoTokenizer.from_pretrained(directory)
    prepare_lm_tokenizer(tok)
    return OnnxLmCandidate("ox", load_ort_lm(directory, file_name), tok, GenerationSettings(max_new_tokens=8),
                           info=None, source=None, int8=False)


def test_fp32_graph_answers_greedily_as_the_torch_model(lm_run: dict[str, Any]) -> None:
    import torch

    cand = _onnx_candidate(lm_run["out"] / "checkpoints" / "ox", "model.onnx")
    expected = _torch_greedy(lm_run["model"], PROMPTS)
    for text, want in zip(PROMPTS, expected):
        ids = torch.tensor([cand.tokenizer(text, add_special_tokens=False)["input_ids"]])
        got = cand.generate({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        assert got.new_tokens == [want]
        # one streamer time per decoding step, increasing, the last one before the call ended
        steps = got.step_times_s
        assert len(steps) >= len(want) and steps == sorted(steps) and 0 < steps[-1] <= got.total_s
    assert any(len(w) > 1 for w in expected)  # a real continuation, not only EOS


def test_both_graphs_keep_the_kv_cache_and_int8_is_smaller(lm_run: dict[str, Any]) -> None:
    import onnx

    ckpt = lm_run["out"] / "checkpoints"
    fp32, int8 = ckpt / "ox" / "model.onnx", ckpt / "q8" / "model_quantized.onnx"
    assert fp32.is_file() and int8.is_file() and int8.stat().st_size < fp32.stat().st_size
    for path in (fp32, int8):
        graph = onnx.load(str(path)).graph
        inputs, outputs = {i.name for i in graph.input}, {o.name for o in graph.output}
        # 2 layers: each one's past key and value in, present key and value out
        assert {f"past_key_values.{n}.{kv}" for n in (0, 1) for kv in ("key", "value")} <= inputs
        assert {f"present.{n}.{kv}" for n in (0, 1) for kv in ("key", "value")} <= outputs
    ops = [n.op_type for n in onnx.load(str(int8)).graph.node]
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops
    cands = lm_run["results"]["candidates"]
    assert cands["ox"]["size_on_disk_bytes"] == fp32.stat().st_size
    assert cands["q8"]["size_on_disk_bytes"] == int8.stat().st_size
    assert cands["ox"]["runtime"] == cands["q8"]["runtime"] == "onnxruntime"
    assert cands["ox"]["parameters"] == cands["base"]["parameters"] == cands["q8"]["parameters"]
    q8 = lm_run["by"][("onnx_int8", "q8")]["metrics"]
    assert q8["fp32_onnx_file_bytes"] == pytest.approx(fp32.stat().st_size, rel=0.01)


def test_build_results_report_fidelity_to_the_torch_model(lm_run: dict[str, Any]) -> None:
    ox, q8 = lm_run["by"][("onnx", "ox")], lm_run["by"][("onnx_int8", "q8")]
    assert ox["settings"]["task"] == q8["settings"]["task"] == "text-generation-with-past"
    for r in (ox, q8):
        m, per_prompt = r["metrics"], r["raw"]["max_abs_output_diff_vs_source_per_sample"]
        assert len(per_prompt) == 8 and m["max_abs_output_diff_vs_source"] == max(per_prompt)
        assert m["next_tokens_compared"] == 8 * NEW_TOKENS  # 8 prompts, max_new_tokens positions each
        assert m["build_time_s"] >= m["export_time_s"] > 0
    assert ox["metrics"]["max_abs_output_diff_vs_source"] < 1e-4
    assert ox["metrics"]["next_token_agreement_vs_source"] == 1.0
    assert 0 < q8["metrics"]["max_abs_output_diff_vs_source"] < 1.0
    assert 0 <= q8["metrics"]["next_token_agreement_vs_source"] <= 1
    assert q8["metrics"]["quantize_time_s"] > 0


def test_single_stream_and_accuracy_run_on_both_graphs(lm_run: dict[str, Any]) -> None:
    by = lm_run["by"]
    for name in ("ox", "q8"):
        ss = by[("single_stream", name)]
        assert ss["status"] == "ok", ss.get("error")
        raw = ss["raw"]
        assert ss["metrics"]["queries"] >= 6 and all(1 <= k <= NEW_TOKENS for k in raw["output_tokens"])
        assert all(0 < t <= lat for t, lat in zip(raw["ttft_ms"], raw["latencies_ms"]))
        assert by[("accuracy", name)]["status"] == "ok"
    # fp32 ONNX answers every prompt as the torch model does, so its answers and score are the base's
    base, ox = by[("accuracy", "base")], by[("accuracy", "ox")]
    assert ox["raw"]["answers"] == base["raw"]["answers"]
    assert ox["metrics"]["accuracy"]["value"] == base["metrics"]["accuracy"]["value"]
    assert len(by[("accuracy", "q8")]["raw"]["answers"]) == len(base["raw"]["answers"])


def test_fp32_graph_perplexity_equals_the_torch_models(lm_run: dict[str, Any]) -> None:
    base, ox = lm_run["by"][("perplexity", "base")], lm_run["by"][("perplexity", "ox")]
    assert ox["raw"]["token_counts"] == base["raw"]["token_counts"]
    assert ox["raw"]["nll_sums"] == pytest.approx(base["raw"]["nll_sums"], rel=1e-5)
    assert ox["metrics"]["perplexity"]["value"] == pytest.approx(base["metrics"]["perplexity"]["value"], rel=1e-5)


def test_lm_flops_are_inherited_from_the_torch_model(lm_run: dict[str, Any]) -> None:
    cands = lm_run["results"]["candidates"]
    base = cands["base"]["lm_flops"]
    for name in ("ox", "q8"):
        flops = cands[name]["lm_flops"]
        assert flops["source"] == "inherited" and "inherited" in flops["inherited_how"]
        assert flops["prefill"] == base["prefill"] and flops["decode"] == base["decode"]
    assert "MatMulInteger" in cands["q8"]["lm_flops"]["inherited_how"]


def test_an_lm_architecture_the_exporter_lacks_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import hf_cost.steps.onnx as onnx_variants

    model, data = save_tiny_llama(tmp_path / "m"), tickets_csv(tmp_path / "t.csv", n=6)
    monkeypatch.setattr(onnx_variants, "exportable_tasks", lambda model_type: ("feature-extraction",
                                                                                 "text-generation"))
    path = write_scenario(tmp_path, lm_suite_yaml(model, data, "\n  - {kind: onnx_int8}", GEN))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scenarios[0].kind" in err, err
    assert "'llama'" in err and "text-generation-with-past" in err, err


# --- a GGUF source: saved de-quantised as a plain checkpoint, then exported ----------------------


def _permute_for_gguf(w: Any, heads: int) -> Any:
    """llama.cpp's q/k row order (transformers undoes it when it reads a Llama GGUF)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(path: Path) -> Any:
    """A complete 2-layer Llama GGUF (F32 tensors, an SPM-style vocabulary with every word's prefixes
    so BPE merges can be built, the chat template); returns the torch model its tensors came from."""
    gguf = pytest.importorskip("gguf")
    import numpy as np
    import torch
    from lm_helpers import CHAT_TEMPLATE, LM_SPECIALS, LM_WORDS
    from transformers import LlamaConfig, LlamaForCausalLM

    pieces = [("▁" + w)[:i] for w in LM_WORDS for i in range(1, len(w) + 2)]
    chars = sorted({c for w in LM_WORDS for c in "▁" + w})
    tokens = LM_SPECIALS + list(dict.fromkeys(chars + pieces))
    c = LlamaConfig(vocab_size=len(tokens), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(0)
    model = LlamaForCausalLM(c).eval()
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_freq_base(c.rope_theta)
    w.add_vocab_size(c.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types([2 if i == 1 else 3 if i < len(LM_SPECIALS) else 1 for i in range(len(tokens))])
    w.add_bos_token_id(2)
    w.add_eos_token_id(3)
    w.add_unk_token_id(1)
    w.add_chat_template(CHAT_TEMPLATE)
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    names = {"attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "attn_norm": "input_layernorm",
             "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj"}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_q.weight", _permute_for_gguf(sd[p + "self_attn.q_proj.weight"], 4))
        w.add_tensor(f"blk.{i}.attn_k.weight", _permute_for_gguf(sd[p + "self_attn.k_proj.weight"], 2))
        for short, long in names.items():
            w.add_tensor(f"blk.{i}.{short}.weight", np.ascontiguousarray(sd[p + long + ".weight"]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model


def test_a_gguf_source_is_exported_through_a_plain_copy(tmp_path: Path) -> None:
    import torch

    gguf_dir = tmp_path / "gguf"
    gguf_dir.mkdir()
    model = write_llama_gguf(gguf_dir / "tiny.gguf")
    data = tickets_csv(tmp_path / "t.csv", n=8)
    ds = json.dumps(str(data))
    steps = f"""
  - {{kind: onnx, name: ox}}
  - {{kind: accuracy, candidates: [base, ox], dataset: {{path: {ds}, label_column: label}}, batch_size: 8,
      bootstrap_resamples: 10}}"""
    text = lm_suite_yaml(gguf_dir, data, steps, GEN).replace("task: text-generation",
                                                              "gguf_file: tiny.gguf, task: text-generation")
    out = tmp_path / "out"
    assert main(["run", str(write_scenario(tmp_path, text)), "--output", str(out), "--quiet"]) == 0
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    by = {(s["kind"], s["candidate"]): s for s in res["scenarios"]}
    build = by[("onnx", "ox")]
    assert build["status"] == "ok", build.get("error")
    assert build["metrics"]["next_token_agreement_vs_source"] == 1.0
    assert by[("accuracy", "ox")]["raw"]["answers"] == by[("accuracy", "base")]["raw"]["answers"]
    # the graph holds the GGUF's tensors: its embedding table is the torch model's
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(out / "checkpoints" / "ox" / "model.onnx")).graph
    tables = [numpy_helper.to_array(t) for t in graph.initializer if tuple(t.dims) == (model.config.vocab_size, 32)]
    assert any(torch.equal(torch.from_numpy(t.copy()), model.model.embed_tokens.weight) for t in tables)
    info = res["candidates"]["ox"]
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["model"]["weights_note"].startswith("exported from weights loaded to float32 from the GGUF file "
                                                    "tiny.gguf")
    # the plain copy lived in staging and is gone
    assert not [p for p in out.rglob("*plain*")]
