"""quanto: optimum-quanto weight quantization, checked against hand-quantized weights, byte
counts worked out by hand for the tiny BERT, the saved safetensors file, FLOPs, `validate`
refusals, and end to end through the CLI (fine_tune -> quanto -> accuracy + single_stream).

The tiny model (conftest): BERT, L=2 layers, H=32, I=37, vocabulary 200, 64 positions; here
with a 2-label head (task: sequence-classification).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from scenario_helpers import SEQ, by_name, dataset_yaml, easy_csv, fine_tune_yaml, run_cli

from hf_cost.cli import main

L, H, I, LABELS = 2, 32, 37, 2
# Linear weights of the tiny classifier: per layer Q, K, V, O (H x H) and FFN up/down (H x I),
# then the pooler (H x H) and the head (LABELS x H).
LINEAR_WEIGHTS = L * (4 * H * H + 2 * H * I) + H * H + LABELS * H  # 2*6464 + 1024 + 64 = 14016
# One float32 scale per output row: per layer 4*H + I + H = 197, pooler H, head LABELS.
LINEAR_ROWS = L * (4 * H + I + H) + H + LABELS  # 394 + 32 + 2 = 428
# 4 bytes per weight -> 1 byte per weight + 4 bytes per row.
BYTES_SAVED = 4 * LINEAR_WEIGHTS - (LINEAR_WEIGHTS + 4 * LINEAR_ROWS)  # 56064 - 15728 = 40336
# Matmul FLOPs of one sample, S = SEQ = 16: L*(8SH^2 + 4S^2H + 4SHI) + pooler 2H^2 + head 2H*LABELS.
FLOPS = L * (8 * SEQ * H * H + 4 * SEQ * SEQ * H + 4 * SEQ * H * I) + 2 * H * H + 2 * H * LABELS  # 481408


def suite_text(model_dir: Path, scenarios: str, task: str = "sequence-classification") -> str:
    return f"""
name: quanto-test
model: {{path: {json.dumps(str(model_dir))}, device: cpu, task: {task}}}
inputs: {{kind: synthetic, sequence_length: {SEQ}, num_samples: 16}}
scenarios:{scenarios}"""


@pytest.fixture(scope="module")
def classifier_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-classifier")
    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert_dir, num_labels=LABELS, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1}
    )
    with torch.no_grad():  # a head large enough for logits well away from 0
        model.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(out)
    return out


def build(tmp: Path, model_dir: Path, weights: str, task: str = "sequence-classification") -> tuple[Any, Any]:
    """Run the builder as the driver does (prepare -> store -> build), output in tmp/out."""
    from hf_cost.models.store import CandidateStore
    from hf_cost.output import RunOutput
    from hf_cost.pipeline import prepare
    from hf_cost.progress import Progress
    from hf_cost.steps.base import BuildContext
    from hf_cost.steps.quanto import QuantoBuilder

    path = tmp / "q.yaml"
    path.write_text(suite_text(model_dir, f"\n  - {{kind: quanto, name: q, weights: {weights}}}\n", task), encoding="utf-8")
    prepared = prepare(path)
    store = CandidateStore(prepared, Progress(enabled=False))
    output = RunOutput.open(tmp / "out")
    ctx = BuildContext(store=store, output=output, progress=Progress(enabled=False), where="scenarios[0]")
    return QuantoBuilder().build(prepared.suite.scenarios[0], ctx), output


@pytest.fixture(scope="module", params=["int8", "float8"])
def built(request, classifier_dir, tmp_path_factory) -> Any:
    tmp = tmp_path_factory.mktemp(f"quanto-{request.param}")
    result, output = build(tmp, classifier_dir, request.param)
    yield SimpleNamespace(built=result, output=output, weights=request.param)
    output.abandon()


def inputs(n: int = 6) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(3)
    return {"input_ids": torch.randint(5, 200, (n, SEQ), generator=g), "attention_mask": torch.ones(n, SEQ, dtype=torch.long)}


def float_model(model_dir: Path) -> Any:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(model_dir).eval()


def hand_quantized(model_dir: Path, weights: str) -> Any:
    """The float model with every Linear weight rounded as int8/float8 per output row, by hand:
    scale = row absmax / qmax (127 for int8, 448 for float8 e4m3), w = scale * q(w / scale)."""
    import torch

    model = float_model(model_dir)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                w = module.weight
                if weights == "int8":
                    scale = w.abs().amax(dim=1, keepdim=True) / 127
                    w.copy_(torch.round(w / scale).clamp(-128, 127) * scale)
                else:
                    scale = w.abs().amax(dim=1, keepdim=True) / 448
                    w.copy_((w / scale).to(torch.float8_e4m3fn).float() * scale)
    return model


def test_outputs_equal_hand_quantized_weights_and_are_close_to_but_not_the_float_ones(built, classifier_dir):
    """An independent reference: the float model with weights rounded by hand gives the same
    logits (float32 rounding apart). Against the float model: each weight moves by at most half
    a quantization step, 1/254 of its row's absmax for int8 and 2^-4 of itself for float8 e4m3
    (3 mantissa bits). To first order the relative errors of the 14 quantized Linear layers add
    at most, giving a bound of 14/254 ~ 5.5% (int8) and 14/16 (float8) of the largest logit;
    observed here: ~0.8% and ~4%."""
    import torch

    x = inputs()
    with torch.no_grad():
        got = built.built.candidate.forward(x)
        ref = hand_quantized(classifier_dir, built.weights)(**x).logits
        fp = float_model(classifier_dir)(**x).logits
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-4), (got - ref).abs().max()
    diff = (got - fp).abs().max().item()
    scale = fp.abs().max().item()
    assert scale > 0.1  # the head is large enough for a relative bound to mean something
    assert 0 < diff <= (14 / 254 if built.weights == "int8" else 14 / 16) * scale


def test_parameter_bytes_fall_by_the_hand_counted_amount(built, classifier_dir):
    fp = float_model(classifier_dir)
    before = sum(p.numel() * 4 for p in fp.parameters())
    m = built.built.result.metrics.model_dump()
    info = built.built.candidate.info
    assert m["parameter_bytes_before"] == before
    # int8 and float8 e4m3 are both one byte a weight; scales float32, one per output row.
    assert before - m["parameter_bytes_after"] == BYTES_SAVED == 40336
    assert info.parameter_bytes == m["parameter_bytes_after"]
    assert info.parameters == sum(p.numel() for p in fp.parameters()) == m["parameters"]
    assert m["quantized_linear_layers"] == L * 6 + 2
    assert m["parameter_bytes_ratio"] == pytest.approx((before - BYTES_SAVED) / before)


def test_saved_file_is_the_reported_size_and_reloads_to_the_same_outputs(built):
    import torch
    from optimum.quanto import requantize
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    files = built.built.files_dir
    assert files == built.output.stage / "checkpoints" / "q"
    weights = files / "quanto_weights.safetensors"
    assert built.built.candidate.info.size_on_disk_bytes == weights.stat().st_size
    assert not (files / "model.safetensors").exists()  # from_pretrained must not half-load it
    # A float32 file of the same tensors would hold at least every parameter at 4 bytes.
    assert weights.stat().st_size < built.built.result.metrics.parameter_bytes_before
    assert built.built.result.metrics.source_size_on_disk_bytes > weights.stat().st_size
    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(files))
    qmap = json.loads((files / "quanto_qmap.json").read_text(encoding="utf-8"))
    requantize(model, load_file(str(weights)), qmap)
    x = inputs()
    with torch.no_grad():
        assert torch.equal(model.eval()(**x).logits, built.built.candidate.forward(x))


def test_flops_are_inherited_from_the_float_source(built):
    import torch

    cand = built.built.candidate
    flops = cand.flops({"input_ids": torch.zeros(1, SEQ, dtype=torch.long)}, None)
    assert flops.source == "inherited" and "quanto::qbytes_mm" in flops.method
    assert flops.measured_per_sample == flops.analytic_per_sample == FLOPS == 481408
    m = built.built.result.metrics.model_dump()
    assert m["flops_source"] == "inherited" and m["flops_per_sample"] == FLOPS
    assert m["flops_counted_on_quantized_per_sample"] < FLOPS  # why it is inherited
    assert cand.flops({"input_ids": torch.zeros(1, SEQ + 1, dtype=torch.long)}, None) is None


def test_result_keeps_the_raw_differences(built):
    r = built.built.result
    assert r.kind == "quanto" and r.name == r.candidate == "q" and r.validity is None
    raw = r.raw["max_abs_logit_difference_per_sample"]
    assert len(raw) == 8 == r.settings["probe_samples"] and r.raw["probe_sample_indices"] == list(range(8))
    assert r.metrics.max_abs_logit_difference == max(raw) > 0
    assert r.metrics.build_time_s >= r.metrics.quantize_s > 0
    assert r.metrics.weights == built.weights and r.settings["labels"] == ["neg", "pos"]
    info = built.built.candidate.info
    assert info.runtime == "torch" and info.origin == "variant"
    assert info.dtype.startswith(f"{built.weights}") and info.dtype.endswith("float32 activations")
    assert built.built.parent == "base" and built.built.recipe["kind"] == "quanto"


def test_a_bare_encoder_is_quantized_with_automodel(tiny_bert_dir, tmp_path):
    result, output = build(tmp_path, tiny_bert_dir, "int8", task="feature-extraction")
    try:
        assert result.candidate.label_names is None
        assert type(result.candidate.module).__name__ == "BertModel"
        assert result.result.metrics.max_abs_hidden_state_difference > 0
    finally:
        output.abandon()


# --- validate refusals ----------------------------------------------------------------------


def _validate_error(path: Path, capsys) -> str:
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err, err
    return err


@pytest.mark.parametrize(
    "scenarios, key, words",
    [
        ("\n  - {kind: onnx, name: o}\n  - {kind: quanto, from: o}\n", "scenarios[1].from", "ONNX"),
        ("\n  - {kind: onnx_int8, name: o}\n  - {kind: quanto, from: o}\n", "scenarios[1].from", "ONNX"),
        ("\n  - {kind: quanto, name: q1}\n  - {kind: quanto, from: q1}\n", "scenarios[1].from", "quanto"),
        ("\n  - {kind: quanto, weights: int2}\n", "scenarios[0].weights", "int4"),
    ],
)
def test_validate_refuses_what_cannot_be_quantized(classifier_dir, tmp_path, capsys, scenarios, key, words):
    path = tmp_path / "bad.yaml"
    path.write_text(suite_text(classifier_dir, scenarios), encoding="utf-8")
    err = _validate_error(path, capsys)
    assert f"{key}:" in err and words in err, err


@pytest.mark.parametrize(
    "patch, key, words",
    [("quanto_installed", "scenarios[0].kind", "pip install optimum-quanto"),
     ("float8_supported", "scenarios[0].weights", "weights: int8")],
)
def test_validate_refuses_a_missing_package_or_float8(classifier_dir, tmp_path, capsys, monkeypatch, patch, key, words):
    from hf_cost.steps import quanto

    monkeypatch.setattr(quanto, patch, lambda: False)
    path = tmp_path / "bad.yaml"
    path.write_text(suite_text(classifier_dir, "\n  - {kind: quanto, weights: float8}\n"), encoding="utf-8")
    err = _validate_error(path, capsys)
    assert f"{key}:" in err and words in err, err


def test_validate_accepts_quanto_from_base_and_from_a_fine_tune(classifier_dir, tmp_path):
    data = easy_csv(tmp_path / "d.csv", classifier_dir)
    scenarios = fine_tune_yaml(data) + "\n  - {kind: quanto, name: q, from: ft, weights: float8}\n  - {kind: quanto, name: q0}\n"
    path = tmp_path / "ok.yaml"
    path.write_text(suite_text(classifier_dir, scenarios), encoding="utf-8")
    assert main(["validate", str(path)]) == 0


# --- end to end -----------------------------------------------------------------------------


def test_fine_tune_then_quanto_then_accuracy_and_single_stream(tiny_bert_dir, tmp_path):
    data = easy_csv(tmp_path / "easy.csv", tiny_bert_dir)
    scenarios = fine_tune_yaml(data) + f"""
  - {{kind: quanto, name: q, from: ft}}
  - kind: accuracy
    name: acc
    candidates: [ft, q]
    dataset: {dataset_yaml(data, "holdout")}
    bootstrap_resamples: 50
  - {{kind: single_stream, name: ss, candidates: [ft, q], warmup_queries: 2, min_duration_s: 0.05, min_query_count: 20}}
"""
    path = tmp_path / "e2e.yaml"
    path.write_text(suite_text(tiny_bert_dir, scenarios, task="feature-extraction"), encoding="utf-8")
    out = tmp_path / "out"
    results = run_cli(path, out)
    rows = [(s["name"], s["candidate"]) for s in results["scenarios"]]
    assert rows == [("ft", "ft"), ("q", "q"), ("acc", "ft"), ("acc", "q"), ("ss", "ft"), ("ss", "q")]
    acc = {s["candidate"]: s["metrics"] for s in results["scenarios"] if s["name"] == "acc"}
    assert acc["ft"]["accuracy"]["value"] >= 0.95
    # int8 weights move the logits by ~1e-2 at most here: the easy holdout is still solved.
    assert abs(acc["q"]["accuracy"]["value"] - acc["ft"]["accuracy"]["value"]) <= 0.05
    ss = {s["candidate"]: s for s in results["scenarios"] if s["name"] == "ss"}
    assert all(s["metrics"] and len(s["raw"]) > 0 for s in ss.values())
    cands = results["candidates"]
    q, ft = cands["q"], cands["ft"]
    assert q["origin"] == "variant" and q["parent"] == "ft" and q["runtime"] == "torch"
    assert q["recipe"] == {"kind": "quanto", "name": "q", "from": "ft", "weights": "int8"}
    assert q["dtype"].startswith("int8 weights (quanto")
    assert q["parameters"] == ft["parameters"]
    assert ft["parameter_bytes"] - q["parameter_bytes"] == BYTES_SAVED
    assert q["flops"]["source"] == "inherited" and q["flops"]["measured_per_sample"] == ft["flops"]["measured_per_sample"]
    saved = out / "checkpoints" / "q" / "quanto_weights.safetensors"
    assert q["path"] == str(out / "checkpoints" / "q") and saved.is_file()
    assert q["size_on_disk_bytes"] == saved.stat().st_size < ft["size_on_disk_bytes"]
    assert by_name(results)["q"]["metrics"]["saved_weights"] == str(saved)
