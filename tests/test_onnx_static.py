"""onnx_int8 mode: static: calibrated int8 through Optimum's ORTQuantizer.

Two runs through `hf_cost run` on a random 2-layer BERT classifier (H=64): fixed lengths
(synthetic inputs) with minmax, percentile and entropy steps, and natural
lengths (dataset inputs) with minmax. Checked independently of our code: operator counts read
with `onnx`, logits of the torch source, and the minmax range of the embeddings' output recomputed
by the torch model over the same calibration rows, tokenized and padded here.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from scenario_helpers import SEQ, by_name, run_cli, suite_yaml

from hf_cost.cli import main

WORDS = [f"word{i}" for i in range(150)]
CALIBRATION_ROWS = 24
# MatMul nodes of the exported 2-layer BERT, by hand: per layer Q, K, V, attention output, FFN in and
# out (6 linear layers) plus Q K^T and A V; the pooler and the head export as Gemm.
FP32_MATMULS = 2 * (6 + 2)


@pytest.fixture(scope="module")
def classifier_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random classifier whose parameters all differ (no tensor the exporter would store once)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    directory = tmp_path_factory.mktemp("static-classifier")
    config = BertConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=200,
        max_position_embeddings=64, num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2},
    )
    torch.manual_seed(1)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "LayerNorm.weight" in name else 0.0))
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(directory)
    return directory


def texts_csv(path: Path, n: int) -> Path:
    """Rows of 2-19 words (4-21 tokens: some are truncated at SEQ=16), no label column."""
    rows = [" ".join(WORDS[(7 * i + 3 * j) % len(WORDS)] for j in range(2 + (i * 5) % 18)) for i in range(n)]
    lines = ["text", *rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def calibration_yaml(data: Path, **extra: Any) -> str:
    more = "".join(f", {k}: {v}" for k, v in extra.items())
    return f"{{mode: static, calibration: {{path: {json.dumps(str(data))}}}, calibration_samples: 100{more}}}"


@pytest.fixture(scope="module")
def fixed_run(classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("static-fixed")
    data = texts_csv(tmp / "calibration.csv", CALIBRATION_ROWS)
    scenarios = f"""
  - {{kind: onnx_int8, name: mm, {calibration_yaml(data)[1:-1]}}}
  - {{kind: onnx_int8, name: pc, {calibration_yaml(data, calibration_method="percentile", percentile=99.9)[1:-1]}}}
  - {{kind: onnx_int8, name: en, {calibration_yaml(data, calibration_method="entropy")[1:-1]}}}
  - kind: single_stream
    candidates: [mm]
    warmup_queries: 1
    min_duration_s: 0.02
    min_query_count: 8
"""
    text = suite_yaml(classifier_dir, scenarios).replace("device: cpu}", "device: cpu, task: sequence-classification}")
    path = tmp / "static.yaml"
    path.write_text(text, encoding="utf-8")
    return {"results": run_cli(path, tmp / "out"), "out": tmp / "out", "data": data}


@pytest.fixture(scope="module")
def natural_run(classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("static-natural")
    data = texts_csv(tmp / "calibration.csv", CALIBRATION_ROWS)
    text = f"""
name: static-natural
model: {{path: {json.dumps(str(classifier_dir))}, device: cpu, task: sequence-classification}}
inputs: {{kind: dataset, dataset: {{path: {json.dumps(str(data))}}}, sequence_length: {SEQ}, num_samples: 16}}
scenarios:
  - {{kind: onnx_int8, name: mm, {calibration_yaml(data)[1:-1]}}}
"""
    path = tmp / "natural.yaml"
    path.write_text(text, encoding="utf-8")
    return {"results": run_cli(path, tmp / "out"), "out": tmp / "out", "data": data}


def op_counts(path: Path) -> Counter[str]:
    import onnx

    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def matmuls_fed_by_dequantize(path: Path) -> tuple[int, int]:
    """(MatMul nodes whose every input comes from a DequantizeLinear, MatMul nodes)."""
    import onnx

    graph = onnx.load(str(path)).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    matmuls = [n for n in graph.node if n.op_type == "MatMul"]
    return sum(all(i in dq for i in n.input) for n in matmuls), len(matmuls)


def torch_logits_and_embeddings(model_dir: Path, texts: list[str], natural: bool) -> tuple[Any, list[Any]]:
    """The source's logits on ``texts`` padded to SEQ, and the embeddings' output (hidden_states[0])
    of each text as the calibration saw it (natural: unpadded, one at a time; fixed: padded to SEQ)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        padded = tokenizer(texts, padding="max_length", max_length=SEQ, truncation=True, return_tensors="pt")
        out = model(**padded, output_hidden_states=True)
        if not natural:
            return out.logits, [out.hidden_states[0]]
        singles = [model(**tokenizer([t], truncation=True, max_length=SEQ, return_tensors="pt"),
                         output_hidden_states=True).hidden_states[0] for t in texts]
    return out.logits, singles


def int8_logits(directory: Path, texts: list[str]) -> Any:
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    batch = AutoTokenizer.from_pretrained(directory)(texts, padding="max_length", max_length=SEQ, truncation=True,
                                                     return_tensors="pt")
    model = ORTModelForSequenceClassification.from_pretrained(directory, file_name="model_quantized.onnx")
    return model(**batch).logits


def embeddings_range(result: dict[str, Any]) -> dict[str, Any]:
    """The calibrated range of the embeddings' LayerNorm output, the first layer's input activation."""
    found = [r for r in result["raw"]["calibration_ranges"]
             if "embeddings/LayerNorm" in r["tensor"] and r["tensor"].endswith("output_0")]
    assert len(found) == 1, [r["tensor"] for r in result["raw"]["calibration_ranges"]]
    return found[0]


def calibration_texts(data: Path) -> list[str]:
    return data.read_text(encoding="utf-8").splitlines()[1:]


# --- the graphs --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mm", "pc", "en"])
def test_static_graphs_are_qdq_with_every_matmul_quantized(fixed_run, name):
    out = fixed_run["out"] / "checkpoints"
    int8 = op_counts(out / name / "model_quantized.onnx")
    assert int8["QuantizeLinear"] > 0 and int8["DequantizeLinear"] > int8["QuantizeLinear"] // 2
    assert int8["DynamicQuantizeLinear"] == int8["MatMulInteger"] == 0  # not dynamic
    fed, matmuls = matmuls_fed_by_dequantize(out / name / "model_quantized.onnx")
    assert matmuls == FP32_MATMULS and fed == matmuls  # every MatMul reads int8 activations and weights
    q = by_name(fixed_run["results"])[name]
    counts = q["settings"]["quantized_node_counts"]
    assert counts["MatMul"] == matmuls and "Add" not in counts  # an Add after a MatMul only reads its output
    assert set(counts) <= set(q["settings"]["quantization_config"]["operators_to_quantize"])
    assert q["settings"]["quantization_config"]["format"] == "QDQ"


def test_the_static_candidate_is_described_as_such(fixed_run):
    int8 = op_counts(fixed_run["out"] / "checkpoints" / "mm" / "model_quantized.onnx")
    cand = fixed_run["results"]["candidates"]["mm"]
    assert cand["model"]["int8_op_counts"]["QuantizeLinear"] == int8["QuantizeLinear"]
    assert "static" in cand["dtype"] and "QDQ" in cand["flops"]["method"]
    assert cand["model"]["calibration"]["method"] == "minmax"


def test_the_attention_mask_path_stays_float(fixed_run):
    """The additive mask (0 / float32 lowest) feeds no QuantizeLinear: its Where is not quantized."""
    import onnx

    graph = onnx.load(str(fixed_run["out"] / "checkpoints" / "mm" / "model_quantized.onnx")).graph
    wheres = [n for n in graph.node if n.op_type == "Where"]
    quantized_inputs = {n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    assert wheres and not any(o in quantized_inputs for n in wheres for o in n.output)
    left = by_name(fixed_run["results"])["mm"]["settings"]["op_types_left_float"]
    assert "Where" in left and "attention-mask" in left["Where"]


@pytest.mark.parametrize("name", ["mm", "pc", "en"])
def test_static_logits_stay_close_to_the_source(fixed_run, classifier_dir, name):
    """Tolerance: 8-bit activations carry a rounding error of up to range/510 per element; through
    ~10 quantized ops of 2 layers that stays within a few percent of the logits' spread. 10% of
    the spread is a bound a broken graph (wrong ranges, a lost mask) exceeds by far."""
    texts = calibration_texts(fixed_run["data"])[:12]
    expected, _ = torch_logits_and_embeddings(classifier_dir, texts, natural=False)
    got = int8_logits(fixed_run["out"] / "checkpoints" / name, texts)
    spread = (expected.max() - expected.min()).item()
    diff = (got - expected).abs().max().item()
    assert 1e-6 < diff < 0.1 * spread, (diff, spread)
    recorded = by_name(fixed_run["results"])[name]["metrics"]["max_abs_output_diff_vs_source"]
    assert 1e-6 < recorded < 0.1 * spread


# --- the calibration record --------------------------------------------------------------------


def test_minmax_range_equals_numpy_min_max_of_the_torch_embeddings(fixed_run, classifier_dir):
    texts = calibration_texts(fixed_run["data"])
    _, hidden = torch_logits_and_embeddings(classifier_dir, texts, natural=False)
    recorded = embeddings_range(by_name(fixed_run["results"])["mm"])
    values = hidden[0].numpy()
    assert recorded["low"] == pytest.approx(float(values.min()), abs=1e-5)
    assert recorded["high"] == pytest.approx(float(values.max()), abs=1e-5)


def test_natural_lengths_calibrate_each_row_unpadded(natural_run, classifier_dir):
    import numpy as np

    texts = calibration_texts(natural_run["data"])
    _, hidden = torch_logits_and_embeddings(classifier_dir, texts, natural=True)
    values = np.concatenate([h.numpy().reshape(-1) for h in hidden])
    result = by_name(natural_run["results"])["mm"]
    recorded = embeddings_range(result)
    assert recorded["low"] == pytest.approx(float(values.min()), abs=1e-5)
    assert recorded["high"] == pytest.approx(float(values.max()), abs=1e-5)
    c = result["settings"]["calibration"]
    assert (c["lengths"], c["batch_size"], c["rows"]) == ("natural", 1, CALIBRATION_ROWS)


def test_histogram_ranges_sit_inside_the_minmax_ones(fixed_run):
    """percentile 99.9 and entropy clip the tails: every range lies within the min..max seen."""
    scenarios = by_name(fixed_run["results"])
    minmax = {r["tensor"]: r for r in scenarios["mm"]["raw"]["calibration_ranges"]}
    for name in ("pc", "en"):
        ranges = scenarios[name]["raw"]["calibration_ranges"]
        assert {r["tensor"] for r in ranges} == set(minmax)
        for r in ranges:
            m = minmax[r["tensor"]]
            assert m["low"] - 1e-6 <= r["low"] <= r["high"] <= m["high"] + 1e-6, (name, r, m)
        assert any(r["high"] < minmax[r["tensor"]]["high"] - 1e-6 for r in ranges)  # something was clipped


def test_the_calibration_is_recorded(fixed_run):
    scenarios = by_name(fixed_run["results"])
    for name, method in (("mm", "minmax"), ("pc", "percentile"), ("en", "entropy")):
        r = scenarios[name]
        c = r["settings"]["calibration"]
        assert (c["method"], c["rows"], c["rows_available"]) == (method, CALIBRATION_ROWS, CALIBRATION_ROWS)
        assert (c["lengths"], c["sequence_length"], c["batch_size"]) == ("fixed", SEQ, 8)
        assert "calibration.csv" in c["dataset"]
        assert (r["settings"]["mode"], r["settings"]["per_channel"]) == ("static", False)
        assert r["settings"]["quantization_config"]["per_channel"] is False
        m = r["metrics"]
        assert m["calibration_rows"] == CALIBRATION_ROWS and m["calibration_time_s"] > 0
        assert m["build_time_s"] > m["calibration_time_s"] + m["quantize_time_s"]
        assert any("calibrated with" in note for note in r["notes"])
    assert scenarios["pc"]["settings"]["calibration"]["percentile"] == 99.9
    assert "percentile" not in scenarios["mm"]["settings"]["calibration"]


def test_calibration_samples_draws_a_seeded_subset(tmp_path):
    from hf_cost.config.base import DatasetSpec
    from hf_cost.models.onnx_calibration import calibration_rows

    data = texts_csv(tmp_path / "c.csv", 40)
    spec = DatasetSpec(path=str(data), seed=3)
    rows = calibration_rows(spec, 10, "scenarios[0].calibration")
    again = calibration_rows(spec, 10, "scenarios[0].calibration")
    every = calibration_texts(data)
    assert rows.texts == again.texts and len(rows.texts) == 10 and rows.available == 40
    assert [every.index(t) for t in rows.texts] == sorted(every.index(t) for t in rows.texts)  # file order
    assert rows.texts != calibration_rows(DatasetSpec(path=str(data), seed=4), 10, "x").texts
    assert rows.description.startswith("10 of 40 rows of c.csv (seed 3)")


# --- validate refusals -------------------------------------------------------------------------


def refused(tmp_path: Path, text: str, capsys, key: str, fragment: str) -> None:
    path = tmp_path / "check.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and key in err and fragment in err, err


@pytest.mark.parametrize("step, key, fragment", [
    ("{kind: onnx_int8, mode: static}", "scenarios[0].calibration", "needs a calibration dataset"),
    ("{kind: onnx_int8, calibration_method: entropy}", "scenarios[0].calibration_method", "only static"),
    ("{kind: onnx_int8, percentile: 99.9}", "scenarios[0].percentile", "only static"),
    ("CAL_MINMAX_PERCENTILE", "scenarios[0].percentile", "only calibration_method: percentile"),
    ("CAL_NO_COLUMN", "scenarios[0].calibration", "no_such_column"),
])
def test_static_settings_are_refused_at_validate(tmp_path, tiny_bert_dir, capsys, step, key, fragment):
    data = texts_csv(tmp_path / "c.csv", 4)
    step = step.replace("CAL_MINMAX_PERCENTILE", "{kind: onnx_int8, " + calibration_yaml(data, percentile=99.9)[1:])
    step = step.replace("CAL_NO_COLUMN", "{kind: onnx_int8, mode: static, calibration: "
                        f"{{path: {json.dumps(str(data))}, text_column: no_such_column}}}}")
    refused(tmp_path, suite_yaml(tiny_bert_dir, f"\n  - {step}\n"), capsys, key, fragment)


def test_a_static_scenario_validates(tmp_path, tiny_bert_dir, capsys):
    data = texts_csv(tmp_path / "c.csv", 4)
    path = tmp_path / "ok.yaml"
    step = "{kind: onnx_int8, " + calibration_yaml(data, calibration_method="percentile", percentile=99.99)[1:]
    path.write_text(suite_yaml(tiny_bert_dir, f"\n  - {step}\n"), encoding="utf-8")
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_static_int8_of_a_causal_lm_is_refused(tmp_path, capsys):
    from lm_helpers import lm_suite_yaml, save_tiny_llama, tickets_csv

    model = save_tiny_llama(tmp_path / "llama", pad_token=True)
    data = tickets_csv(tmp_path / "t.csv", n=6)
    step = "{kind: onnx_int8, " + calibration_yaml(data)[1:]
    refused(tmp_path, lm_suite_yaml(model, data, f"\n  - {step}\n"), capsys, "scenarios[0].mode",
            "past key/value")
