"""onnx_int8's accuracy_aware block (models/int8_tuning.py): nodes kept float until the paired
accuracy change's CI low end meets the bound, checked against graphs quantized and run here.

The model is a tiny random BERT classifier (H=32, 2 layers) with one planted outlier weight in each
layer's FFN output matmul (10x the tensor's largest): per-tensor int8 then rounds the rest of that
weight to a few levels, so those two nodes hurt most. The rows' labels are the fp32 model's own
predictions (torch), so accuracy(fp32) = 1 and, with min_delta_points 0.0, the CI low end of
accuracy(int8) - accuracy(fp32) is >= 0 exactly when the int8 graph predicts every row as fp32
does (every paired difference is then 0; one flipped row is a -1 the bootstrap can draw alone).
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from lm_helpers import lm_suite_yaml, refused_everywhere, save_tiny_llama, tickets_csv
from scenario_helpers import SEQ, by_name, run_cli, suite_yaml

from hf_cost.cli import main

PLANTED = ["/bert/encoder/layer.0/output/dense/MatMul", "/bert/encoder/layer.1/output/dense/MatMul"]
ROWS = 120
# Quantizable nodes by hand: per layer Q, K, V, Q.K^T, A.V, attention output, FFN in and out (8
# MatMuls); pooler and classifier Gemms (ORT's dynamic quantizer makes each a MatMul
# "<gemm>_MatMul"); the word, position and token-type embedding Gathers.
QUANTIZABLE = 2 * 8 + 2 + 3
QUICK = "resamples: 200, speed_rounds: 2, speed_queries: 3, ranking_samples: 8"


@pytest.fixture(scope="module")
def planted(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The planted classifier, its fp32 ONNX export (made here), and rows labelled by its torch predictions."""
    import torch
    from optimum.exporters.onnx import main_export
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tmp = tmp_path_factory.mktemp("planted")
    model_dir = tmp / "model"
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                        vocab_size=200, max_position_embeddings=64, num_labels=2,
                        id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.3 + (1.0 if "LayerNorm.weight" in name else 0.0))
        for layer in model.bert.encoder.layer:
            weight = layer.output.dense.weight
            weight[0, 0] = 10 * weight.abs().max()
    model.save_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    tokenizer.save_pretrained(model_dir)
    rng = random.Random(0)
    texts = [" ".join(f"word{rng.randrange(195)}" for _ in range(rng.randint(2, 12))) for _ in range(ROWS)]
    batch = tokenizer(texts, padding="max_length", max_length=SEQ, truncation=True, return_tensors="pt")
    with torch.no_grad():
        labels = model(**batch).logits.argmax(-1).tolist()
    assert 0 < sum(labels) < ROWS  # both classes predicted
    data = tmp / "rows.csv"
    with data.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([t, config.id2label[y]] for t, y in zip(texts, labels))
    main_export(model_name_or_path=str(model_dir), output=tmp / "fp32", task="text-classification",
                do_validation=False, no_post_process=True, library_name="transformers")
    inputs = {k: v.numpy() for k, v in batch.items()}
    return {"dir": model_dir, "data": data, "labels": labels, "inputs": inputs, "fp32": tmp / "fp32", "tmp": tmp}


def aware(data: Path, extra: str) -> str:
    return f"{{data: {{path: {json.dumps(str(data))}, label_column: label}}, {QUICK}, {extra}}}"


@pytest.fixture(scope="module")
def tuned_run(planted: dict[str, Any]) -> dict[str, Any]:
    """One run, three steps: a strict bound (nodes must go float), one met at once, one capped at 1 node."""
    data = planted["data"]
    scenarios = f"""
  - kind: onnx_int8
    name: strict
    accuracy_aware: {aware(data, f"min_delta_points: 0.0, max_float_nodes: {QUANTIZABLE}")}
  - kind: onnx_int8
    name: easy
    accuracy_aware: {aware(data, "min_delta_points: -100.0")}
  - kind: onnx_int8
    name: capped
    accuracy_aware: {aware(data, "min_delta_points: 0.0, max_float_nodes: 1")}
"""
    text = suite_yaml(planted["dir"], scenarios).replace("device: cpu}", "device: cpu, task: sequence-classification}")
    path = planted["tmp"] / "tuned.yaml"
    path.write_text(text, encoding="utf-8")
    out = planted["tmp"] / "out"
    # a user's files in the output folder, one named like the build's scratch folders
    (out / ".strict-tuning-mine").mkdir(parents=True)
    (out / ".strict-tuning-mine" / "keep.txt").write_text("mine\n", encoding="utf-8")
    (out / "notes.txt").write_text("my notes\n", encoding="utf-8")
    return {"results": by_name(run_cli(path, out)), "out": out}


def quantized_here(planted: dict[str, Any], excluded: list[str], name: str) -> Path:
    """The fp32 export quantized by Optimum's ORTQuantizer directly, ``excluded`` kept float."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    from hf_cost.measure.cpu_flags import choose_isa, read_cpu_flags

    cfg = getattr(AutoQuantizationConfig, choose_isa(read_cpu_flags())[0])(is_static=False, per_channel=False)
    cfg.nodes_to_exclude = list(excluded)
    out = planted["tmp"] / name
    ORTQuantizer.from_pretrained(planted["fp32"], file_name="model.onnx").quantize(save_dir=out,
                                                                                   quantization_config=cfg)
    return out / "model_quantized.onnx"


def predictions(path: Path, inputs: dict[str, Any]) -> list[int]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    # One row a run, as the step scores by default: dynamic int8 scales activations over the batch.
    return [int(session.run(None, {k: inputs[k][i:i + 1] for k in names})[0].argmax(-1)[0]) for i in range(ROWS)]


def flipped(path: Path, planted: dict[str, Any]) -> int:
    return sum(p != y for p, y in zip(predictions(path, planted["inputs"]), planted["labels"]))


def one_step(model_dir: Path, data: Path, head: bool = True) -> str:
    """A scenario with one onnx_int8 step whose accuracy_aware block reads ``data``."""
    text = suite_yaml(model_dir, f"\n  - {{kind: onnx_int8, accuracy_aware: {aware(data, 'min_delta_points: -1')}}}\n")
    return text.replace("device: cpu}", "device: cpu, task: sequence-classification}") if head else text


def op_nodes(path: Path) -> list[Any]:
    import onnx

    return list(onnx.load(str(path)).graph.node)


def test_a_strict_bound_keeps_nodes_float_until_every_row_agrees(tuned_run, planted):
    r = tuned_run["results"]["strict"]
    t, trials = r["metrics"]["accuracy_aware"], r["raw"]["accuracy_aware_trials"]
    assert [x["bound_met"] for x in trials] == [False] * (len(trials) - 1) + [True]
    assert t["bound_met"] and t["tuning_trials"] == len(trials) and t["kept_trial"] == len(trials) - 1
    float_nodes = t["float_nodes"]
    assert float_nodes == trials[-1]["float_nodes"] and len(float_nodes) == len(trials) - 1
    assert [x["float_nodes"] for x in trials] == [float_nodes[:k] for k in range(len(trials))]  # one more each time
    # Independently: Optimum's quantizer with those nodes excluded predicts every row as fp32 does,
    # and with one node fewer (and with none) it does not.
    assert flipped(quantized_here(planted, float_nodes, "k"), planted) == 0
    assert flipped(quantized_here(planted, float_nodes[:-1], "k-1"), planted) > 0
    assert flipped(quantized_here(planted, [], "k0"), planted) > 0
    # Each trial's change is minus its flipped rows over n (labels are the fp32 predictions):
    for x in trials:
        flips = sum(p != y for p, y in zip(x["predictions"], planted["labels"]))
        assert x["delta"]["value"] == pytest.approx(-flips / ROWS) and x["delta"]["n"] == ROWS
        assert (x["delta"]["ci_low"] >= 0) == (flips == 0)
    assert t["fp32_accuracy"] == 1.0 and t["accuracy"] == 1.0 and t["rows"] == ROWS
    assert t["delta_points"] == t["delta_ci_low_points"] == t["delta_ci_high_points"] == 0.0
    full_flips = flipped(quantized_here(planted, [], "k0b"), planted)
    assert t["full_int8_delta_points"] == pytest.approx(-100 * full_flips / ROWS)


def test_float_nodes_are_real_nodes_and_stay_float_in_the_candidate(tuned_run, planted):
    r = tuned_run["results"]["strict"]
    float_nodes = r["metrics"]["accuracy_aware"]["float_nodes"]
    fp32 = op_nodes(planted["fp32"] / "model.onnx")
    names = {n.name for n in fp32 if n.op_type in ("MatMul", "Gather")} | {f"{n.name}_MatMul" for n in fp32
                                                                           if n.op_type == "Gemm"}
    assert set(float_nodes) <= names
    graph = op_nodes(tuned_run["out"] / "checkpoints" / "strict" / "model_quantized.onnx")
    by_name_ = {n.name: n.op_type for n in graph}
    assert all(by_name_.get(name) in ("MatMul", "Gather") for name in float_nodes)
    matmuls_in_fp32 = sum(n.op_type in ("MatMul", "Gemm") for n in fp32)
    float_matmuls = sum(by_name_[name] == "MatMul" for name in float_nodes)
    ops = Counter(n.op_type for n in graph)
    assert ops["MatMulInteger"] == matmuls_in_fp32 - float_matmuls
    assert ops["MatMul"] == float_matmuls
    # The planted nodes, quantized alone, change the logits most:
    ranking = r["raw"]["accuracy_aware_ranking"]
    assert len(ranking) == QUANTIZABLE == r["metrics"]["accuracy_aware"]["quantizable_nodes"]
    assert {x["node"] for x in ranking[:2]} == set(PLANTED)
    changes = [x["mean_abs_logit_change"] for x in ranking]
    assert changes == sorted(changes, reverse=True) and float_nodes == [x["node"] for x in ranking[:len(float_nodes)]]


def test_what_the_float_nodes_cost_in_speed_is_recomputable(tuned_run):
    r = tuned_run["results"]["strict"]
    t, rounds = r["metrics"]["accuracy_aware"], r["raw"]["accuracy_aware_speed_rounds"]
    assert t["speed_rounds"] == len(rounds) == 2 and t["speed_queries_per_round"] == 3
    assert [x["order"] for x in rounds] == [["full_int8", "tuned"], ["tuned", "full_int8"]]  # ABBA
    per_round = []
    for x in rounds:
        assert len(x["full_int8_latencies_ms"]) == len(x["tuned_latencies_ms"]) == 3
        middle = {name: sorted(x[f"{name}_latencies_ms"])[1] for name in ("full_int8", "tuned")}  # p50 of 3
        assert x["full_int8_p50_ms"] == middle["full_int8"] and x["tuned_p50_ms"] == middle["tuned"]
        per_round.append(middle["full_int8"] / middle["tuned"])
    assert t["speedup_vs_full_int8"] == pytest.approx(math.sqrt(per_round[0] * per_round[1]))
    assert t["speedup_ci_low"] <= t["speedup_vs_full_int8"] <= t["speedup_ci_high"]
    assert any("accuracy-aware int8 on 120 rows" in n and "speed vs the fully int8 graph" in n for n in r["notes"])


def test_a_bound_met_at_once_keeps_every_node_int8(tuned_run):
    r = tuned_run["results"]["easy"]
    t, raw = r["metrics"]["accuracy_aware"], r["raw"]
    assert t["float_nodes"] == [] and t["bound_met"] and t["tuning_trials"] == 1 and t["ranked_nodes"] == 0
    assert raw["accuracy_aware_ranking"] == [] and "accuracy_aware_speed_rounds" not in raw
    assert t["speedup_vs_full_int8"] is None and len(raw["accuracy_aware_trials"]) == 1
    ops = Counter(n.op_type for n in op_nodes(tuned_run["out"] / "checkpoints" / "easy" / "model_quantized.onnx"))
    assert ops["MatMulInteger"] == 2 * 8 + 2 and ops["MatMul"] == 0


def test_a_bound_not_met_keeps_the_trial_with_the_best_ci_low_end(tuned_run, planted):
    r = tuned_run["results"]["capped"]
    t, trials = r["metrics"]["accuracy_aware"], r["raw"]["accuracy_aware_trials"]
    assert not t["bound_met"] and len(trials) == 2 and not any(x["bound_met"] for x in trials)
    lows = [x["delta"]["ci_low"] for x in trials]
    kept = t["kept_trial"]
    assert lows[kept] == max(lows) and kept == min(i for i, v in enumerate(lows) if v == max(lows))
    assert t["float_nodes"] == trials[kept]["float_nodes"]
    assert any("NOT met" in n for n in r["notes"])
    report = (tuned_run["out"] / "report.md").read_text(encoding="utf-8")
    row = next(line for line in report.splitlines() if line.startswith("| capped |"))
    assert "accuracy-aware" in row and "bound >= 0 NOT met" in row
    graph = op_nodes(tuned_run["out"] / "checkpoints" / "capped" / "model_quantized.onnx")
    assert Counter(n.op_type for n in graph)["MatMul"] == len(t["float_nodes"])


def test_the_nodes_ranked_are_those_the_quantizer_takes_by_name(planted):
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    from hf_cost.models.int8_tuning import quantizable_nodes

    graph = planted["fp32"] / "model.onnx"
    gemms = ["/bert/pooler/dense/Gemm", "/classifier/Gemm"]
    embeddings = [f"/bert/embeddings/{e}_embeddings/Gather" for e in ("word", "token_type", "position")]
    dynamic = quantizable_nodes(graph, AutoQuantizationConfig.avx2(is_static=False).operators_to_quantize, False)
    assert len(dynamic) == QUANTIZABLE and set(PLANTED) <= set(dynamic)
    assert {g + "_MatMul" for g in gemms} | set(embeddings) <= set(dynamic)  # ORT's dynamic Gemm -> MatMul rewrite
    static = quantizable_nodes(graph, AutoQuantizationConfig.avx2(is_static=True).operators_to_quantize, True)
    assert set(static) == (set(dynamic) - {g + "_MatMul" for g in gemms}) | set(gemms)  # static keeps Gemm
    assert quantizable_nodes(graph, ["MatMul"], False) == [n for n in dynamic if n not in embeddings]


# --- refusals --------------------------------------------------------------------------------


def validate_err(tmp_path: Path, text: str, capsys) -> tuple[int, str]:
    path = tmp_path / "check.yaml"
    path.write_text(text, encoding="utf-8")
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("block, key, fragment", [
    ("{data: {path: DATA}, min_delta_points: -1.0}", "scenarios[0].accuracy_aware.data", "label_column"),
    ("{data: {path: DATA, label_column: label}, min_delta_points: 1.0}", "min_delta_points", "less than or equal"),
    ("{data: {path: DATA, label_column: label}, min_delta_points: -1, max_float_nodes: 0}", "max_float_nodes", "0"),
])
def test_settings_that_cannot_work_are_refused(tmp_path, planted, capsys, block, key, fragment):
    block = block.replace("DATA", json.dumps(str(planted["data"])))
    text = suite_yaml(planted["dir"], f"\n  - {{kind: onnx_int8, accuracy_aware: {block}}}\n")
    code, err = validate_err(tmp_path, text.replace("device: cpu}", "device: cpu, task: sequence-classification}"),
                             capsys)
    assert code == 2 and err.count("\n") == 1 and key in err and fragment in err, err


def test_a_source_without_a_head_is_refused(tmp_path, tiny_bert_dir, planted, capsys):
    code, err = validate_err(tmp_path, one_step(tiny_bert_dir, planted["data"], head=False), capsys)
    assert code == 2 and err.count("\n") == 1 and "scenarios[0].accuracy_aware" in err and "head" in err, err


def test_labels_the_source_does_not_know_are_refused(tmp_path, planted, capsys):
    data = tmp_path / "other.csv"
    data.write_text("text,label\nword1 word2,spam\nword3,ham\n", encoding="utf-8")
    code, err = validate_err(tmp_path, one_step(planted["dir"], data), capsys)
    assert code == 2 and err.count("\n") == 1 and "scenarios[0].accuracy_aware.data" in err, err


def test_a_causal_lm_is_refused(tmp_path, capsys):
    model = save_tiny_llama(tmp_path / "llama")
    data = tickets_csv(tmp_path / "tickets.csv")
    block = f"{{data: {{path: {json.dumps(str(data))}, label_column: label}}, min_delta_points: -1}}"
    text = lm_suite_yaml(model, data, f"\n  - {{kind: onnx_int8, accuracy_aware: {block}}}\n")
    refused_everywhere(text, tmp_path, capsys, "causal LM")


def test_scratch_folders_are_removed_and_the_users_files_kept(tuned_run):
    """The export and every tuning trial are written into folders the build made inside the run's
    staging and removes; what the user had in the output folder stays as it was."""
    out = tuned_run["out"]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "my notes\n"
    assert (out / ".strict-tuning-mine" / "keep.txt").read_text(encoding="utf-8") == "mine\n"
    leftovers = [p.name for p in out.rglob("*") if "-tuning-" in p.name or "-fp32-" in p.name]
    assert leftovers == [".strict-tuning-mine"], leftovers
    assert sorted(p.name for p in (out / "checkpoints" / "strict").iterdir() if p.suffix == ".onnx") == [
        "model_quantized.onnx"]
