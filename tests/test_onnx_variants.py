"""onnx and onnx_int8: export parity with torch, int8 size and closeness, ISA choice from
/proc/cpuinfo text, inherited FLOPs, end to end through the CLI, and validate refusals.

Three runs through `hf_cost run`: a 2-layer BERT classifier wide enough (H=128, I=512) for its
ONNX files to be dominated by weights (the H=32 tiny BERT's are ~30% graph overhead), the
headless tiny BERT, and fine_tune -> onnx_int8 -> accuracy + single_stream on the tiny BERT.
References are computed here, independently: torch forwards, hand-counted sizes and FLOPs.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from scenario_helpers import SEQ, by_name, dataset_yaml, easy_csv, fine_tune_yaml, run_cli, suite_yaml

from hf_cost.cli import main
from hf_cost.measure import cpu_flags
from hf_cost.measure.cpu_flags import CpuFlags, choose_isa, parse_cpuinfo, read_cpu_flags, refusal

TEXTS = ["word1 word2 word3 word4", "word7", "word10 word11 word12 word13 word14 word15 word16", "word3 word3"]
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"}
QUICK_STREAM = "    warmup_queries: 1\n    min_duration_s: 0.02\n    min_query_count: 8\n"

# --- ISA choice from hand-written /proc/cpuinfo text -----------------------------------------

X86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 {}\nbogomips\t: 4000\n\nprocessor\t: 1\n"
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 asimddp\n"


def cpu(text: str, machine: str = "x86_64") -> CpuFlags:
    return CpuFlags(machine=machine, flags=parse_cpuinfo(text), readable=True, source="fake cpuinfo")


@pytest.mark.parametrize(
    "flags, isa",
    [
        ("avx avx2 avx512f avx512bw avx512_vnni", "avx512_vnni"),
        ("avx avx2 avx512f avx512bw avx512dq", "avx512"),
        ("avx avx2 fma", "avx2"),
        ("avx2 avx_vnni", "avx2"),  # AVX-VNNI (256-bit) is not AVX512-VNNI
    ],
)
def test_auto_picks_the_best_isa_the_flags_list(flags, isa):
    chosen, why = choose_isa(cpu(X86.format(flags)))
    assert chosen == isa
    assert "fake cpuinfo" in why


def test_auto_on_arm_is_arm64_and_an_old_x86_has_no_isa():
    assert choose_isa(cpu(ARM, "aarch64"))[0] == "arm64"
    chosen, why = choose_isa(cpu(X86.format("sse4_2 avx")))
    assert chosen is None and "avx2" in why


def test_only_the_first_flags_line_is_read():
    text = X86.format("avx2") + "flags\t\t: avx2 avx512f avx512_vnni\n"
    assert parse_cpuinfo(text) == {"fpu", "sse2", "avx2"}


@pytest.mark.parametrize(
    "isa, flags, machine, refused",
    [
        ("avx512_vnni", "avx2", "x86_64", "avx512_vnni"),
        ("avx512", "avx2 avx512_vnni", "x86_64", "avx512f"),  # odd, but vnni alone is not avx512f
        ("avx2", "avx2", "x86_64", None),
        ("avx2", "avx2 avx512f avx512_vnni", "x86_64", None),  # an older ISA runs on a newer CPU
        ("arm64", "avx2", "x86_64", "x86_64"),
        ("avx2", "", "aarch64", "aarch64"),
    ],
)
def test_an_isa_this_cpu_lacks_is_refused(isa, flags, machine, refused):
    reason = refusal(isa, cpu(X86.format(flags), machine))
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_unreadable_cpuinfo_allows_a_named_isa_but_not_auto(tmp_path):
    unknown = read_cpu_flags(tmp_path / "missing", machine="x86_64")
    assert unknown.readable is False and unknown.flags == frozenset()
    assert refusal("avx512_vnni", unknown) is None
    isa, why = choose_isa(unknown)
    assert isa is None and "explicitly" in why


def test_read_cpu_flags_reads_a_file(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(X86.format("avx2 avx512f"), encoding="utf-8")
    flags = read_cpu_flags(path, machine="x86_64")
    assert flags.readable and flags.has("avx512f") and not flags.has("avx512_vnni")
    assert choose_isa(flags)[0] == "avx512"


def test_optimum_knows_bert_and_not_a_made_up_type():
    from hf_cost.steps.onnx import exportable_tasks

    assert {"text-classification", "feature-extraction"} <= set(exportable_tasks("bert"))
    assert exportable_tasks("no-such-architecture") is None


# --- a wider tiny classifier: parity, sizes, files, FLOPs ------------------------------------

HIDDEN, FFN, LAYERS, VOCAB, POS = 128, 512, 2, 200, 64
# Parameters by hand: embeddings 200*128 + 64*128 + 2*128 + LayerNorm 2*128 = 34304;
# per layer Q,K,V,O 4*(128*128+128) = 66048, two LayerNorms 512, FFN 128*512+512 + 512*128+128 =
# 131712 -> 198272, two layers 396544; pooler 128*128+128 = 16512; head 2*128+2 = 258.
PARAMS = 34304 + 396544 + 16512 + 258  # 447618
# Weights int8 dynamic quantization turns into one byte each (MatMul weights, Gather embeddings):
QUANTIZED = (200 + 64 + 2) * 128 + LAYERS * (4 * 128 * 128 + 2 * 128 * 512) + 128 * 128 + 2 * 128  # 443904
GRAPH_OVERHEAD = 150_000  # node protos, names, shape constants: ~40-85 kB observed at H=32


@pytest.fixture(scope="module")
def classifier_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every parameter drawn at random, so no two tensors are equal (the exporter stores equal ones once)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    directory = tmp_path_factory.mktemp("classifier")
    config = BertConfig(
        hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=FFN, vocab_size=VOCAB,
        max_position_embeddings=POS, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1},
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.05 + (1.0 if "LayerNorm.weight" in name else 0.0))
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def classifier_run(classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("onnx-classifier")
    scenarios = f"""
  - {{kind: onnx, name: ox}}
  - {{kind: onnx_int8, name: q8}}
  - kind: single_stream
    candidates: [base, ox, q8]
{QUICK_STREAM}"""
    text = suite_yaml(classifier_dir, scenarios).replace("device: cpu}", "device: cpu, task: sequence-classification}")
    path = tmp / "onnx.yaml"
    path.write_text(text, encoding="utf-8")
    return {"results": run_cli(path, tmp / "out"), "out": tmp / "out"}


def torch_outputs(model_dir: Path, head: bool) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(TEXTS, padding="max_length", max_length=SEQ, truncation=True, return_tensors="pt")
    model = (AutoModelForSequenceClassification if head else AutoModel).from_pretrained(model_dir).eval()
    with torch.no_grad():
        out = model(**batch)
    return batch, out.logits if head else out.last_hidden_state


def ort_outputs(directory: Path, file_name: str, batch: dict[str, Any], head: bool) -> Any:
    from optimum.onnxruntime import ORTModelForFeatureExtraction, ORTModelForSequenceClassification

    cls = ORTModelForSequenceClassification if head else ORTModelForFeatureExtraction
    out = cls.from_pretrained(directory, file_name=file_name)(**batch)
    return out.logits if head else out.last_hidden_state


def test_onnx_fp32_logits_match_torch(classifier_run, classifier_dir):
    batch, expected = torch_outputs(classifier_dir, head=True)
    got = ort_outputs(classifier_run["out"] / "checkpoints" / "ox", "model.onnx", batch, head=True)
    assert (got - expected).abs().max().item() < 1e-4
    assert by_name(classifier_run["results"])["ox"]["metrics"]["max_abs_output_diff_vs_source"] < 1e-4


def test_int8_logits_are_close_but_not_identical(classifier_run, classifier_dir):
    batch, expected = torch_outputs(classifier_dir, head=True)
    got = ort_outputs(classifier_run["out"] / "checkpoints" / "q8", "model_quantized.onnx", batch, head=True)
    diff = (got - expected).abs().max().item()
    assert 1e-6 < diff < 0.1 * expected.abs().max().item() + 0.05
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean().item() >= 0.75
    m = by_name(classifier_run["results"])["q8"]["metrics"]
    assert 1e-6 < m["max_abs_output_diff_vs_source"] < 1.0


def test_file_sizes_match_a_hand_count(classifier_run):
    out, cands = classifier_run["out"], classifier_run["results"]["candidates"]
    fp32 = (out / "checkpoints" / "ox" / "model.onnx").stat().st_size
    int8 = (out / "checkpoints" / "q8" / "model_quantized.onnx").stat().st_size
    assert cands["base"]["parameters"] == cands["ox"]["parameters"] == cands["q8"]["parameters"] == PARAMS
    assert 4 * PARAMS <= fp32 < 4 * PARAMS + GRAPH_OVERHEAD  # 4 bytes a parameter, plus the graph
    # One byte per quantized weight, four per remaining float (biases, LayerNorm), plus the graph:
    assert QUANTIZED + 4 * (PARAMS - QUANTIZED) <= int8 < QUANTIZED + 4 * (PARAMS - QUANTIZED) + GRAPH_OVERHEAD
    assert fp32 / int8 > 2.5
    assert cands["ox"]["size_on_disk_bytes"] == fp32 and cands["q8"]["size_on_disk_bytes"] == int8
    assert cands["ox"]["parameter_bytes"] == 4 * PARAMS
    m = by_name(classifier_run["results"])["q8"]["metrics"]
    assert m["onnx_file_bytes"] == int8 and m["fp32_onnx_file_bytes"] == pytest.approx(fp32, rel=0.01)


def test_candidates_are_described_as_onnx_runtime(classifier_run):
    out, cands = classifier_run["out"], classifier_run["results"]["candidates"]
    for name, file_name in (("ox", "model.onnx"), ("q8", "model_quantized.onnx")):
        info = cands[name]
        assert info["runtime"] == "onnxruntime" and info["device"] == "cpu"
        assert info["origin"] == "variant" and info["parent"] == "base"
        assert info["path"] == str(out / "checkpoints" / name) == info["model"]["path"]
        assert info["model"]["file_name"] == file_name
        assert info["model"]["provider"] == "CPUExecutionProvider"
        assert info["recipe"]["kind"] == ("onnx" if name == "ox" else "onnx_int8")
    assert cands["ox"]["dtype"] == "float32"
    assert cands["q8"]["dtype"].startswith("int8 weights") and "dynamic" in cands["q8"]["dtype"]


def test_int8_graph_runs_its_matmuls_as_integer_ops(classifier_run):
    import onnx

    out = classifier_run["out"] / "checkpoints"
    fp32 = Counter(n.op_type for n in onnx.load(str(out / "ox" / "model.onnx")).graph.node)
    int8 = Counter(n.op_type for n in onnx.load(str(out / "q8" / "model_quantized.onnx")).graph.node)
    assert fp32["MatMul"] > 0 and int8["MatMul"] == int8["Gemm"] == 0
    # Every matmul (linear layers, Q K^T and A V; the pooler and head are Gemm) runs as int8:
    assert int8["MatMulInteger"] == fp32["MatMul"] + fp32["Gemm"] == int8["DynamicQuantizeLinear"]
    info = classifier_run["results"]["candidates"]["q8"]
    assert info["model"]["int8_op_counts"]["MatMulInteger"] == int8["MatMulInteger"]
    assert "MatMulInteger" in info["flops"]["method"]


def test_only_the_candidates_files_are_kept(classifier_run):
    out = classifier_run["out"]
    assert {p.name for p in (out / "checkpoints" / "q8").iterdir()} == {"model_quantized.onnx", "config.json",
                                                                         *TOKENIZER_FILES}
    assert {p.name for p in (out / "checkpoints" / "ox").iterdir()} == {"model.onnx", "config.json", *TOKENIZER_FILES}
    assert {p.name for p in out.iterdir()} == {"results.json", "report.md", "checkpoints", ".hf_cost"}
    assert not [p for p in (out / ".hf_cost").iterdir() if p.name.startswith("staging")]
    config = json.loads((out / "checkpoints" / "q8" / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {"0": "neg", "1": "pos"}


def test_flops_are_inherited_from_the_torch_model(classifier_run, classifier_dir):
    import torch
    from transformers import AutoModelForSequenceClassification

    from hf_cost.measure.flops import count_forward_flops

    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir).eval()
    ones = torch.ones(1, SEQ, dtype=torch.long)
    expected = count_forward_flops(model, {"input_ids": ones, "attention_mask": ones}).total
    cands = classifier_run["results"]["candidates"]
    assert cands["base"]["flops"]["source"] == "measured"
    for name in ("ox", "q8"):
        flops = cands[name]["flops"]
        assert flops["source"] == "inherited" and "inherited" in flops["method"]
        assert flops["measured_per_sample"] == expected == cands["base"]["flops"]["measured_per_sample"]


def test_build_results_record_the_export_and_the_isa(classifier_run):
    import onnx

    scenarios = by_name(classifier_run["results"])
    opset = next(o.version for o in onnx.load(
        str(classifier_run["out"] / "checkpoints" / "ox" / "model.onnx")).opset_import if o.domain == "")
    for name in ("ox", "q8"):
        r = scenarios[name]
        assert r["candidate"] == name and r["validity"] is None
        m = r["metrics"]
        assert m["build_time_s"] >= m["export_time_s"] > 0
        assert m["opset"] == opset and m["provider"] == "CPUExecutionProvider"
        assert len(r["raw"]["max_abs_output_diff_vs_source_per_sample"]) == 8
    q8 = scenarios["q8"]
    expected_isa, _ = choose_isa(read_cpu_flags())
    assert q8["settings"]["isa"] == "auto" and q8["settings"]["isa_used"] == expected_isa
    assert q8["settings"]["cpu_flags_source"] == "/proc/cpuinfo" and q8["settings"]["isa_reason"]
    assert q8["metrics"]["quantize_time_s"] > 0
    streamed = [s["candidate"] for s in classifier_run["results"]["scenarios"] if s["kind"] == "single_stream"]
    assert streamed == ["base", "ox", "q8"]


# --- the headless tiny BERT: feature extraction -----------------------------------------------


@pytest.fixture(scope="module")
def headless_run(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("onnx-headless")
    path = tmp / "fx.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, f"""
  - {{kind: onnx, name: fx}}
  - kind: single_stream
    candidates: [fx]
{QUICK_STREAM}"""), encoding="utf-8")
    return {"results": run_cli(path, tmp / "out"), "out": tmp / "out"}


def test_onnx_hidden_states_match_torch(headless_run, tiny_bert_dir):
    batch, expected = torch_outputs(tiny_bert_dir, head=False)
    got = ort_outputs(headless_run["out"] / "checkpoints" / "fx", "model.onnx", batch, head=False)
    assert got.shape == expected.shape == (len(TEXTS), SEQ, 32)
    assert (got - expected).abs().max().item() < 1e-4


def test_headless_flops_leave_out_the_pooler_the_graph_lacks(headless_run):
    info = headless_run["results"]["candidates"]["fx"]
    assert info["model"]["graph_outputs"] == ["last_hidden_state"]
    # Tiny BERT, S=16, H=32, I=37, 2 layers: per layer 8*16*32^2 + 4*16^2*32 + 4*16*32*37
    # = 131072 + 32768 + 75776 = 239616; no pooler (not in the graph), no head.
    assert info["flops"]["measured_per_sample"] == 2 * 239616
    assert info["flops"]["source"] == "inherited" and "pooler" in info["flops"]["method"]
    assert by_name(headless_run["results"])["fx"]["settings"]["task"] == "feature-extraction"


# --- end to end: fine_tune -> onnx_int8 -> accuracy + single_stream ---------------------------


@pytest.fixture(scope="module")
def fine_tuned_run(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("onnx-e2e")
    data = easy_csv(tmp / "easy.csv", tiny_bert_dir)
    scenarios = fine_tune_yaml(data, max_steps=100) + f"""
  - kind: onnx_int8
    name: q8
    from: ft
  - kind: accuracy
    candidates: [ft, q8]
    dataset: {dataset_yaml(data, "holdout")}
    batch_size: 16
    bootstrap_resamples: 10
  - kind: single_stream
    candidates: [ft, q8]
{QUICK_STREAM}"""
    path = tmp / "e2e.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    return {"results": run_cli(path, tmp / "out"), "out": tmp / "out"}


def test_an_int8_candidate_of_a_fine_tune_is_measured_and_scored(fine_tuned_run):
    results = fine_tuned_run["results"]
    runs = [(s["kind"], s["candidate"]) for s in results["scenarios"] if s["kind"] in ("accuracy", "single_stream")]
    assert runs == [("accuracy", "ft"), ("accuracy", "q8"), ("single_stream", "ft"), ("single_stream", "q8")]
    acc = {s["candidate"]: s for s in results["scenarios"] if s["kind"] == "accuracy"}
    assert acc["q8"]["settings"]["labels"] == ["neg", "pos"]
    assert acc["ft"]["metrics"]["accuracy"]["value"] >= 0.95
    assert abs(acc["q8"]["metrics"]["accuracy"]["value"] - acc["ft"]["metrics"]["accuracy"]["value"]) <= 0.05
    stream = [s for s in results["scenarios"] if s["kind"] == "single_stream" and s["candidate"] == "q8"]
    assert stream[0]["metrics"]["queries"] >= 8


def test_the_int8_candidate_of_a_fine_tune_in_results(fine_tuned_run):
    out, cands = fine_tuned_run["out"], fine_tuned_run["results"]["candidates"]
    q8 = cands["q8"]
    graph = out / "checkpoints" / "q8" / "model_quantized.onnx"
    assert q8["runtime"] == "onnxruntime" and q8["parent"] == "ft" and q8["origin"] == "variant"
    assert q8["path"] == str(out / "checkpoints" / "q8") and q8["size_on_disk_bytes"] == graph.stat().st_size
    assert q8["model"]["source_checkpoint"] == cands["ft"]["path"] == str(out / "checkpoints" / "ft")
    assert q8["parameters"] == cands["ft"]["parameters"]
    assert q8["flops"]["measured_per_sample"] == cands["ft"]["flops"]["measured_per_sample"]
    recipe = q8["recipe"]
    assert (recipe["kind"], recipe["name"], recipe["from"], recipe["isa"], recipe["mode"]) == (
        "onnx_int8", "q8", "ft", "auto", "dynamic")


# --- validate refusals --------------------------------------------------------------------------


def validate(tmp_path: Path, model_dir: Path, scenarios: str, capsys) -> tuple[int, str, Path]:
    path = tmp_path / "check.yaml"
    path.write_text(suite_yaml(model_dir, scenarios), encoding="utf-8")
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err, path


def refused(tmp_path, model_dir, scenarios, capsys, key: str, *fragments: str) -> str:
    code, err, path = validate(tmp_path, model_dir, scenarios, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and str(path) in err and key in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_an_isa_this_cpu_lacks_is_refused_by_validate(tmp_path, tiny_bert_dir, capsys):
    lacking = "avx2" if read_cpu_flags().is_arm else "arm64"
    refused(tmp_path, tiny_bert_dir, f"\n  - {{kind: onnx_int8, isa: {lacking}}}\n", capsys,
            "scenarios[0].isa", lacking)


def test_avx512_vnni_on_an_avx2_cpu_is_refused(tmp_path, tiny_bert_dir, capsys, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text(X86.format("avx avx2 fma"), encoding="utf-8")
    monkeypatch.setattr(cpu_flags, "CPUINFO", fake)
    monkeypatch.setattr(cpu_flags.platform, "machine", lambda: "x86_64")
    refused(tmp_path, tiny_bert_dir, "\n  - {kind: onnx_int8, isa: avx512_vnni}\n", capsys,
            "scenarios[0].isa", "avx512_vnni", "auto would pick avx2")
    code, err, _ = validate(tmp_path, tiny_bert_dir, "\n  - {kind: onnx_int8, isa: auto}\n", capsys)
    assert code == 0, err


def test_an_onnx_candidate_cannot_be_exported_again(tmp_path, tiny_bert_dir, capsys):
    scenarios = "\n  - {kind: onnx, name: ox}\n  - {kind: onnx_int8, name: q8, from: ox}\n"
    refused(tmp_path, tiny_bert_dir, scenarios, capsys, "scenarios[1].from", "'ox'", "onnx")


def test_missing_optimum_is_refused_with_the_install_line(tmp_path, tiny_bert_dir, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("optimum") else real(name, *a))
    refused(tmp_path, tiny_bert_dir, "\n  - {kind: onnx}\n", capsys, "scenarios[0].kind", 'pip install -e ".[onnx]"')


def test_an_architecture_the_exporter_lacks_is_refused(tmp_path, tiny_bert_dir, capsys, monkeypatch):
    import hf_cost.steps.onnx as onnx_variants

    monkeypatch.setattr(onnx_variants, "exportable_tasks", lambda model_type: ("fill-mask",))
    refused(tmp_path, tiny_bert_dir, "\n  - {kind: onnx}\n", capsys, "scenarios[0].kind", "'bert'",
            "feature-extraction")
