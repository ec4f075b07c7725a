"""onnx_optimized: ORT graph optimization (Optimum's ORTOptimizer, O1-O3) as its own candidates.

One run through `hf_cost run` builds a 2-layer BERT classifier's plain export (onnx) and its O1,
O2 and O3 rewrites, then measures O2 by single_stream and compare. References are independent of
hf_cost: operator counts read from the .onnx files with `onnx`, logits from the torch model (and,
for O3, from a torch copy whose GELU is the tanh approximation FastGelu computes), ORT outputs
from Optimum's ORTModel loaded here. A tiny Llama checks the decoder-with-past graph; validate
refusals are checked for O4 and for a model type the optimizer does not know.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import write_scenario
from lm_helpers import lm_suite_yaml, save_tiny_llama, tickets_csv
from scenario_helpers import SEQ, by_name, run_cli, suite_yaml

from hf_cost.cli import main

TEXTS = ["word1 word2 word3 word4", "word7", "word10 word11 word12 word13 word14 word15 word16", "word3 word3"]
LAYERS = 2
QUICK = "warmup_queries: 1, min_duration_s: 0.02, min_query_count: 8"
# fp32 logits of magnitude ~1 from graphs that compute the same function in another order (fused
# attention, fused bias + GELU): differences are rounding, a few ulps (1.2e-7) times the sums'
# lengths (H=64, I=128) and depth, far below 1e-4; a real fusion error (a wrong mask, a dropped
# bias) moves logits by 1e-2 or more.
SAME_FUNCTION = 1e-4


@pytest.fixture(scope="module")
def classifier_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights drawn at 0.2 scale so activations reach GELU's curved part (|x| ~ 1), where the
    tanh approximation differs from erf GELU; from_config's 0.02 would hide that."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    directory = tmp_path_factory.mktemp("opt-classifier")
    config = BertConfig(hidden_size=64, num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=128,
                        vocab_size=200, max_position_embeddings=64, num_labels=2, hidden_act="gelu")
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if "LayerNorm.weight" in name else 0.0))
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def opt_run(classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("onnx-optimized")
    scenarios = f"""
  - {{kind: onnx, name: ox}}
  - {{kind: onnx_optimized, name: o1, level: O1}}
  - {{kind: onnx_optimized, name: o2}}
  - {{kind: onnx_optimized, name: o3, level: O3}}
  - {{kind: single_stream, candidates: [o2], {QUICK}}}
  - {{kind: compare, candidates: [ox, o2], rounds: 2, round_duration_s: 0.1, warmup_queries: 1}}"""
    text = suite_yaml(classifier_dir, scenarios).replace("device: cpu}", "device: cpu, task: sequence-classification}")
    path = tmp / "opt.yaml"
    path.write_text(text, encoding="utf-8")
    results = run_cli(path, tmp / "out")
    return {"results": results, "out": tmp / "out", "by": by_name(results)}


def ops(run: dict[str, Any], name: str) -> Counter[str]:
    import onnx

    file_name = "model.onnx" if name == "ox" else "model_optimized.onnx"
    return Counter(n.op_type for n in onnx.load(str(run["out"] / "checkpoints" / name / file_name)).graph.node)


def torch_logits(model_dir: Path, hidden_act: str | None = None) -> tuple[Any, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(TEXTS, padding="max_length", max_length=SEQ, truncation=True, return_tensors="pt")
    config = AutoConfig.from_pretrained(model_dir)
    if hidden_act is not None:
        config.hidden_act = hidden_act
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, config=config).eval()
    with torch.no_grad():
        return batch, model(**batch).logits


def ort_logits(run: dict[str, Any], name: str, batch: dict[str, Any]) -> Any:
    from optimum.onnxruntime import ORTModelForSequenceClassification

    directory = run["out"] / "checkpoints" / name
    return ORTModelForSequenceClassification.from_pretrained(directory, file_name="model_optimized.onnx")(**batch).logits


def test_o2_fuses_attention_layernorm_and_gelu_the_export_lacks(opt_run):
    export, o2 = ops(opt_run, "ox"), ops(opt_run, "o2")
    fused = {"Attention", "SkipLayerNormalization", "BiasGelu"}
    assert not fused & set(export)
    # One Attention and one BiasGelu per layer; two residual LayerNorms per layer become SkipLayerNorm:
    assert (o2["Attention"], o2["BiasGelu"], o2["SkipLayerNormalization"]) == (LAYERS, LAYERS, 2 * LAYERS)
    assert o2["Erf"] == 0 and export["Erf"] == LAYERS and o2["Softmax"] == 0
    assert sum(o2.values()) < sum(export.values()) / 3
    m = opt_run["by"]["o2"]["metrics"]
    assert m["op_counts_before"] == dict(export) and m["op_counts_after"] == dict(o2)
    assert m["fused_op_counts"] == {op: n for op, n in o2.items() if op not in export}
    assert (m["nodes_before"], m["nodes_after"]) == (sum(export.values()), sum(o2.values()))


def test_o1_folds_constants_but_fuses_nothing(opt_run):
    """O1 (ORT basic level, transformers fusions off) folds Constant nodes into initializers and adds no
    new operator type on this stack (optimum 2.1, onnxruntime 1.32)."""
    export, o1 = ops(opt_run, "ox"), ops(opt_run, "o1")
    assert export["Constant"] > 0 and o1["Constant"] == o1["Identity"] == 0
    assert set(o1) <= set(export) and sum(o1.values()) < sum(export.values())
    assert opt_run["by"]["o1"]["metrics"]["fused_op_counts"] == {}


def test_o3_approximates_gelu_with_fastgelu(opt_run):
    o3 = ops(opt_run, "o3")
    assert o3["FastGelu"] == LAYERS and o3["BiasGelu"] == 0 and o3["Erf"] == 0
    assert opt_run["by"]["o3"]["settings"]["optimization_config"]["enable_gelu_approximation"] is True
    assert opt_run["by"]["o2"]["settings"]["optimization_config"]["enable_gelu_approximation"] is False


def test_o1_and_o2_compute_the_torch_models_logits(opt_run, classifier_dir):
    batch, expected = torch_logits(classifier_dir)
    assert expected.abs().max().item() > 0.1  # logits large enough for the tolerance to mean something
    for name in ("o1", "o2"):
        assert (ort_logits(opt_run, name, batch) - expected).abs().max().item() < SAME_FUNCTION, name
        m = opt_run["by"][name]["metrics"]
        assert m["max_abs_output_diff_vs_source"] < SAME_FUNCTION
        assert len(opt_run["by"][name]["raw"]["max_abs_output_diff_vs_source_per_sample"]) == 8


def test_o3_computes_the_tanh_gelu_model_not_the_erf_one(opt_run, classifier_dir):
    """FastGelu is 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))), transformers' gelu_pytorch_tanh: O3
    matches a torch copy using it to rounding, and differs from the erf GELU source by more."""
    batch, erf = torch_logits(classifier_dir)
    _, tanh = torch_logits(classifier_dir, hidden_act="gelu_pytorch_tanh")
    got = ort_logits(opt_run, "o3", batch)
    approximation = (tanh - erf).abs().max().item()  # 8e-4 here: the weights make it visible
    assert approximation > SAME_FUNCTION
    assert (got - tanh).abs().max().item() < min(SAME_FUNCTION, approximation / 10)
    assert (got - erf).abs().max().item() > approximation / 2
    probe = opt_run["by"]["o3"]["metrics"]["max_abs_output_diff_vs_source"]  # on the run's own inputs
    assert probe > SAME_FUNCTION and probe > 100 * opt_run["by"]["o2"]["metrics"]["max_abs_output_diff_vs_source"]
    assert any("GELU approximation" in note for note in opt_run["by"]["o3"]["notes"])


def test_the_candidate_keeps_only_its_files_and_says_what_it_is(opt_run):
    out = opt_run["out"]
    files = {p.name for p in (out / "checkpoints" / "o2").iterdir()}
    assert "model_optimized.onnx" in files and "config.json" in files and "ort_config.json" not in files
    assert not [f for f in files if f.endswith(".onnx") and f != "model_optimized.onnx"]
    assert not [p for p in (out / ".hf_cost").iterdir() if p.name.startswith("staging")]
    info = opt_run["results"]["candidates"]["o2"]
    assert info["runtime"] == "onnxruntime" and info["model"]["file_name"] == "model_optimized.onnx"
    assert info["recipe"] == {"kind": "onnx_optimized", "name": "o2", "from": "base", "level": "O2"}
    o2 = opt_run["by"]["o2"]
    assert o2["settings"]["optimized_file"] == "model_optimized.onnx"
    graph = out / "checkpoints" / "o2" / "model_optimized.onnx"
    m = o2["metrics"]
    assert m["onnx_file_bytes"] == graph.stat().st_size == info["size_on_disk_bytes"]
    export = (out / "checkpoints" / "ox" / "model.onnx").stat().st_size
    assert m["fp32_onnx_file_bytes"] == pytest.approx(export, rel=0.01)  # a second export of the same model
    assert m["file_bytes_ratio_vs_fp32_onnx"] == pytest.approx(m["onnx_file_bytes"] / m["fp32_onnx_file_bytes"])
    assert m["build_time_s"] >= m["export_time_s"] + m["optimize_time_s"]


def test_the_optimized_candidate_is_measured(opt_run):
    scenarios = opt_run["results"]["scenarios"]
    stream = [s for s in scenarios if s["kind"] == "single_stream"]
    assert [s["candidate"] for s in stream] == ["o2"] and stream[0]["metrics"]["queries"] >= 8
    compared = {s["candidate"]: s for s in scenarios if s["kind"] == "compare"}
    speedup = compared["o2"]["metrics"]["speedup_vs_reference"]
    assert compared["o2"]["metrics"]["reference"] == "ox" and speedup["rounds"] == 2
    assert speedup["ci_low"] <= speedup["ratio_geomean"] <= speedup["ci_high"]


# --- a causal LM: the decoder with past key/values -----------------------------------------------


def test_a_llama_decoder_with_past_is_optimized_and_generates_the_same_tokens(tmp_path):
    import onnx

    model, data = save_tiny_llama(tmp_path / "model"), tickets_csv(tmp_path / "tickets.csv", n=12)
    steps = """
  - {kind: onnx_optimized, name: o2}
  - {kind: single_stream, candidates: [o2], min_duration_s: 0.05, min_query_count: 4, warmup_queries: 1}"""
    gen = "generation: {prompt: 'classify {text} now', max_new_tokens: 4}"
    path = write_scenario(tmp_path, lm_suite_yaml(model, data, steps, gen))
    assert main(["run", str(path), "--output", str(tmp_path / "out"), "--quiet"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    o2 = by_name(results)["o2"]
    graph = onnx.load(str(tmp_path / "out" / "checkpoints" / "o2" / "model_optimized.onnx")).graph
    found = Counter(n.op_type for n in graph.node)
    assert found["SkipSimplifiedLayerNormalization"] > 0  # RMSNorm + residual fused
    assert any(i.name.startswith("past_key_values") for i in graph.input)
    assert o2["metrics"]["next_token_agreement_vs_source"] == 1.0
    assert o2["metrics"]["max_abs_output_diff_vs_source"] < SAME_FUNCTION
    stream = [s for s in results["scenarios"] if s["kind"] == "single_stream"]
    assert stream[0]["candidate"] == "o2" and stream[0]["metrics"]["queries"] >= 4


# --- validate refusals ----------------------------------------------------------------------------


def refused(tmp_path: Path, model_dir: Path, scenarios: str, capsys, key: str, *fragments: str) -> str:
    path = tmp_path / "check.yaml"
    path.write_text(suite_yaml(model_dir, scenarios), encoding="utf-8")
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and str(path) in err and key in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_o4_is_refused_on_a_cpu_run(tmp_path, tiny_bert_dir, capsys):
    refused(tmp_path, tiny_bert_dir, "\n  - {kind: onnx_optimized, level: O4}\n", capsys, "scenarios[0].level",
            "O4", "GPU")


def test_an_unknown_level_is_refused(tmp_path, tiny_bert_dir, capsys):
    refused(tmp_path, tiny_bert_dir, "\n  - {kind: onnx_optimized, level: O5}\n", capsys, "level", "O3")


def test_a_model_type_the_optimizer_lacks_is_refused_with_the_list(tmp_path, tiny_bert_dir, capsys):
    """SqueezeBERT: Optimum's exporter supports it, its ORTConfigManager does not."""
    from transformers import AutoTokenizer, SqueezeBertConfig, SqueezeBertForSequenceClassification

    directory = tmp_path / "squeeze"
    config = SqueezeBertConfig(vocab_size=200, hidden_size=32, embedding_size=32, num_hidden_layers=1,
                               num_attention_heads=4, intermediate_size=64, max_position_embeddings=64, num_labels=2)
    SqueezeBertForSequenceClassification(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(directory)
    err = refused(tmp_path, directory, "\n  - {kind: onnx_optimized}\n", capsys, "scenarios[0].kind",
                  "'squeezebert'", "bert", "distilbert", "llama")
    path = tmp_path / "ok.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, "\n  - {kind: onnx_optimized, level: O3}\n"), encoding="utf-8")
    assert main(["validate", str(path)]) == 0, err + capsys.readouterr().err


def test_an_onnx_candidate_is_not_optimized_again(tmp_path, tiny_bert_dir, capsys):
    """The optimizer starts from a torch checkpoint (it re-exports), never from an ONNX candidate."""
    scenarios = "\n  - {kind: onnx, name: ox}\n  - {kind: onnx_optimized, name: o2, from: ox}\n"
    refused(tmp_path, tiny_bert_dir, scenarios, capsys, "scenarios[1].from", "'ox'")
