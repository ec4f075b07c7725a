"""Distillation: the KD loss on hand-computed cases, the student made from its teacher's layers,
a distill step end to end through the CLI (a 4-layer tiny teacher fine-tuned first, then a
2-layer student measured by accuracy and single_stream), and `validate` refusals.

Hand-computed shapes of the tiny BERT (H=32, I=37, V=200, P=64 positions, 2 labels) at S=16:
- parameters: embeddings V*H + P*H + 2*H (token types) + 2*H (LayerNorm) = 6400+2048+64+64 = 8576;
  a layer 4*(H*H+H) + 2*H + (H*I+I) + (I*H+H) + 2*H = 4224+64+1221+1216+64 = 6789;
  pooler H*H+H = 1056; classifier 2*H+2 = 66.
  4 layers: 8576 + 4*6789 + 1056 + 66 = 36854; 2 layers: 23276.
- forward matmul FLOPs per layer 8*S*H^2 + 4*S^2*H + 4*S*H*I = 131072 + 32768 + 75776 = 239616;
  pooler 2*H*H = 2048, head 2*H*2 = 128. 4 layers: 960640; 2 layers: 481408.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_MAX_POSITIONS, TINY_VOCAB_SIZE, tiny_vocab
from scenario_helpers import (
    SEQ,
    by_name,
    dataset_yaml,
    easy_csv,
    fine_tune_yaml,
    run_cli,
    suite_yaml,
)

from hf_cost.cli import main

TEACHER_PARAMS, STUDENT_PARAMS = 36854, 23276
TEACHER_FLOPS, STUDENT_FLOPS = 960640, 481408


def tiny_config(layers: int, **extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=37,
                      vocab_size=TINY_VOCAB_SIZE, max_position_embeddings=TINY_MAX_POSITIONS, **extra)


def tiny_teacher(layers: int = 4) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(tiny_config(layers, num_labels=2)).eval()


@pytest.fixture(scope="module")
def tiny_bert4_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random bare 4-layer tiny BERT with the shared tiny tokenizer."""
    import torch
    from transformers import AutoModel, BertTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-bert4")
    (directory / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(directory)
    torch.manual_seed(0)
    AutoModel.from_config(tiny_config(4)).save_pretrained(directory)
    return directory


# --- the KD loss ----------------------------------------------------------------------------


def _kd(zs: list[list[float]], zt: list[list[float]], y: list[int], alpha: float, t: float) -> float:
    import torch

    from hf_cost.training.kd_loss import kd_loss

    return float(kd_loss(torch.tensor(zs), torch.tensor(zt), torch.tensor(y), alpha=alpha, temperature=t))


L = math.log
# Logits that are log-probabilities: at T=1 the softmaxes are these probabilities.
ZS = [[L(0.25), L(0.5), L(0.25)], [L(0.5), L(0.25), L(0.25)]]
ZT = [[L(0.5), L(0.25), L(0.25)], [L(1 / 3), L(1 / 3), L(1 / 3)]]
Y = [0, 1]
# CE: -ln 0.25 for both samples -> mean 2 ln 2.
CE = 2 * math.log(2)
# KL(p_t || p_s): sample 1 = 0.5 ln(0.5/0.25) + 0.25 ln(0.25/0.5) + 0 = 0.25 ln 2;
# sample 2 = (1/3)(ln(1/3 / 0.5) + 2 ln(1/3 / 0.25)) = (5/3) ln 2 - ln 3.
KL = (0.25 * math.log(2) + (5 / 3) * math.log(2) - math.log(3)) / 2


def test_kd_loss_matches_the_hand_computed_case_at_temperature_1():
    assert KL == pytest.approx((0.1733 + 0.0566) / 2, abs=1e-4)  # the two samples' KL, by hand
    assert _kd(ZS, ZT, Y, alpha=0.3, t=1.0) == pytest.approx(0.3 * CE + 0.7 * KL, rel=1e-6)


def test_kd_loss_at_temperature_2_scales_the_softened_kl_by_t_squared():
    def softmax(z: list[float], t: float) -> list[float]:
        e = [math.exp(v / t) for v in z]
        return [v / sum(e) for v in e]

    t = 2.0
    kl = sum(
        sum(pt * math.log(pt / ps) for pt, ps in zip(softmax(zt, t), softmax(zs, t)))
        for zs, zt in zip(ZS, ZT)
    ) / 2
    assert _kd(ZS, ZT, Y, alpha=0.25, t=t) == pytest.approx(0.25 * CE + 0.75 * 4 * kl, rel=1e-6)


def test_kd_loss_limits():
    # alpha = 1: plain cross-entropy, whatever the teacher says.
    assert _kd(ZS, ZT, Y, alpha=1.0, t=3.0) == pytest.approx(CE, rel=1e-6)
    # identical logits: the KL term is 0, at any temperature.
    assert _kd(ZS, ZS, Y, alpha=0.0, t=2.0) == pytest.approx(0.0, abs=1e-7)
    assert _kd(ZS, ZS, Y, alpha=0.4, t=5.0) == pytest.approx(0.4 * CE, rel=1e-6)


# --- the student ----------------------------------------------------------------------------


def test_default_student_layers_are_every_other_one():
    from hf_cost.training.student import default_layers

    assert default_layers(6) == [0, 2, 4]
    assert default_layers(4) == [0, 2]
    assert default_layers(1) == [0]
    assert default_layers(12) == [0, 2, 4, 6, 8, 10]


def test_the_student_copies_the_chosen_layers_embeddings_and_head():
    import torch

    from hf_cost.training.student import build_student, parameter_count

    teacher = tiny_teacher(4)
    student = build_student(teacher, [1, 3])
    assert type(student) is type(teacher) and student.config.num_hidden_layers == 2
    assert teacher.config.num_hidden_layers == 4  # the teacher's config is not touched
    t_layers, s_layers = teacher.bert.encoder.layer, student.bert.encoder.layer
    assert len(s_layers) == 2
    for j, i in enumerate([1, 3]):
        t_state, s_state = t_layers[i].state_dict(), s_layers[j].state_dict()
        assert t_state.keys() == s_state.keys()
        for key in t_state:
            assert torch.equal(t_state[key], s_state[key]), (j, key)
    for a, b in [(teacher.bert.embeddings, student.bert.embeddings), (teacher.bert.pooler, student.bert.pooler),
                 (teacher.classifier, student.classifier)]:
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb), ka
    # Layers the student did not take differ from those it took (random init): the copy is real.
    assert not torch.equal(t_layers[0].output.dense.weight, s_layers[0].output.dense.weight)
    assert parameter_count(teacher) == TEACHER_PARAMS
    assert parameter_count(student) == STUDENT_PARAMS
    # The student owns its weights.
    with torch.no_grad():
        student.classifier.weight.zero_()
    assert teacher.classifier.weight.abs().sum() > 0


def test_a_student_with_every_layer_computes_what_the_teacher_computes():
    import torch

    from hf_cost.training.student import build_student

    teacher = tiny_teacher(4)
    student = build_student(teacher, [0, 1, 2, 3]).eval()
    ids = torch.randint(5, TINY_VOCAB_SIZE, (3, SEQ))
    with torch.no_grad():
        assert torch.allclose(student(input_ids=ids).logits, teacher(input_ids=ids).logits, atol=1e-6)


def test_a_pruned_teachers_heads_stay_pruned_in_the_copied_layers(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from hf_cost.training.student import build_student

    teacher = tiny_teacher(4)
    teacher.prune_heads({1: [0], 2: [1, 2]})
    student = build_student(teacher, [0, 2])
    assert {int(k): sorted(v) for k, v in student.config.pruned_heads.items()} == {1: [1, 2]}
    q = student.bert.encoder.layer[1].attention.self.query.weight
    assert q.shape == (16, 32) and torch.equal(q, teacher.bert.encoder.layer[2].attention.self.query.weight)
    student.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert torch.equal(again.bert.encoder.layer[1].attention.self.query.weight, q)


def test_layer_lists_and_layouts_that_cannot_make_a_student():
    from transformers import DistilBertConfig

    from hf_cost.training.student import build_student, layers_error, layout_error

    assert layers_error([0, 2], 4) is None
    assert "out of range" in layers_error([0, 4], 4)
    assert "twice" in layers_error([1, 1], 4)
    assert layout_error(tiny_config(2)) is None
    assert "encoder.layer" in layout_error(DistilBertConfig(n_layers=2, dim=32, hidden_dim=37, n_heads=4))
    with pytest.raises(ValueError, match="out of range"):
        build_student(tiny_teacher(2), [0, 2])


def test_the_loss_hook_runs_the_frozen_teacher_on_the_same_batch():
    """A student with all the teacher's layers has the teacher's logits, so the KD term is 0:
    with alpha = 0 the hook's loss is 0; with alpha = 1 it is the student's own CE loss. The
    teacher gets no gradient."""
    import torch
    from accelerate import Accelerator

    from hf_cost.training.student import build_student
    from hf_cost.training.teacher import kd_hook

    teacher = tiny_teacher(4)
    teacher.requires_grad_(False)
    student = build_student(teacher, [0, 1, 2, 3]).eval()
    ids = torch.randint(5, TINY_VOCAB_SIZE, (4, SEQ))
    inputs, labels = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, torch.tensor([0, 1, 1, 0])
    accelerator = Accelerator(cpu=True)
    zero = kd_hook(teacher, 0.0, 2.0, accelerator)(student, inputs, labels)
    assert float(zero.detach()) == pytest.approx(0.0, abs=1e-6)
    ce = kd_hook(teacher, 1.0, 2.0, accelerator)(student, inputs, labels)
    assert float(ce.detach()) == pytest.approx(float(student(**inputs, labels=labels).loss.detach()), rel=1e-6)
    half = kd_hook(teacher, 0.5, 2.0, accelerator)(build_student(teacher, [0, 2]).eval(), inputs, labels)
    half.backward()
    assert float(half.detach()) > 0 and all(p.grad is None for p in teacher.parameters())


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def distilled_run(tiny_bert4_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("distill")
    data = easy_csv(tmp / "easy.csv", tiny_bert4_dir)
    scenarios = fine_tune_yaml(data, name="teacher") + f"""
  - kind: distill
    name: student
    from: teacher
    student_layers: [0, 2]
    alpha: 0.5
    temperature: 2.0
    train: {dataset_yaml(data, "train")}
    eval: {dataset_yaml(data, "holdout")}
    target: {{metric: accuracy, value: 0.9}}
    sequence_length: {SEQ}
    batch_size: 8
    learning_rate: 1.0e-3
    max_steps: 60
    eval_every_steps: 5
  - kind: accuracy
    name: acc
    candidates: [teacher, student]
    dataset: {dataset_yaml(data, "holdout")}
    bootstrap_resamples: 20
  - kind: single_stream
    name: ss
    candidates: [teacher, student]
    warmup_queries: 1
    min_duration_s: 0.02
    min_query_count: 8
"""
    path = tmp / "distill.yaml"
    path.write_text(suite_yaml(tiny_bert4_dir, scenarios), encoding="utf-8")
    return {"results": run_cli(path, tmp / "out"), "out": tmp / "out"}


def test_distill_trains_the_student_to_its_target(distilled_run):
    d = by_name(distilled_run["results"])["student"]
    m = d["metrics"]
    assert d["kind"] == "distill" and d["candidate"] == "student"
    assert m["converged"] is True and d["validity"]["result"] == "VALID"
    [run] = m["runs"]
    assert run["stop_reason"] == "target reached" and run["final_quality"] >= 0.9
    assert m["student_layers"] == [0, 2] and m["teacher_layers"] == 4
    assert m["alpha"] == 0.5 and m["temperature"] == 2.0
    assert m["build_time_s"] >= m["time_to_target_s"] > 0
    assert d["settings"]["labels"] == ["neg", "pos"] and d["settings"]["from"] == "teacher"
    curve = d["raw"]["loss_curves"][0]
    assert [p[0] for p in curve] == list(range(1, run["steps"] + 1))
    assert all(p[2] >= 0 for p in curve)


def test_distill_reports_parameters_and_flops_with_the_teacher_forward(distilled_run):
    m = by_name(distilled_run["results"])["student"]["metrics"]
    assert m["teacher_parameters"] == TEACHER_PARAMS and m["student_parameters"] == STUDENT_PARAMS
    assert m["teacher_forward_flops_per_sample"] == TEACHER_FLOPS
    assert m["student_forward_flops_per_sample"] == STUDENT_FLOPS
    # The training step's FLOPs include the teacher's forward on top of the student's own step.
    assert m["train_flops_per_sample"] == m["student_train_step_flops_per_sample"] + TEACHER_FLOPS
    assert m["train_flops_per_sample"] > m["student_train_step_flops_per_sample"]
    assert 2.5 * STUDENT_FLOPS <= m["student_train_step_flops_per_sample"] <= 3.5 * STUDENT_FLOPS
    assert m["train_flops_per_sample_3x_forward_estimate"] == 3 * STUDENT_FLOPS + TEACHER_FLOPS


def test_the_student_is_measured_smaller_and_cheaper_than_its_teacher(distilled_run):
    results = distilled_run["results"]
    cands = results["candidates"]
    teacher, student = cands["teacher"], cands["student"]
    assert student["origin"] == "variant" and student["parent"] == "teacher"
    assert student["recipe"]["kind"] == "distill" and student["recipe"]["student_layers"] == [0, 2]
    assert student["model"]["model_class"] == "BertForSequenceClassification"
    assert student["parameters"] == STUDENT_PARAMS < teacher["parameters"] == TEACHER_PARAMS
    ts, ss = teacher["flops"]["measured_per_sample"], student["flops"]["measured_per_sample"]
    assert (ts, ss) == (TEACHER_FLOPS, STUDENT_FLOPS)
    assert ss / ts == pytest.approx(481408 / 960640)  # ~0.501: half the layers, same pooler and head
    scenarios = by_name(results)
    acc = [s for s in results["scenarios"] if s["kind"] == "accuracy"]
    assert sorted(s["candidate"] for s in acc) == ["student", "teacher"]
    for s in acc:
        assert s["metrics"]["accuracy"]["value"] >= 0.9
    stream = [s for s in results["scenarios"] if s["kind"] == "single_stream"]
    assert sorted(s["candidate"] for s in stream) == ["student", "teacher"]
    assert all(s["metrics"]["queries"] >= 8 for s in stream)
    assert scenarios["student"]["metrics"]["saved_checkpoint"] == student["path"]


def test_the_student_checkpoint_is_saved_in_staging_with_its_tokenizer(distilled_run):
    out = distilled_run["out"]
    saved = Path(by_name(distilled_run["results"])["student"]["metrics"]["saved_checkpoint"])
    assert saved == out / "checkpoints" / "student" and saved.is_dir()
    config = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    assert config["num_hidden_layers"] == 2 and config["id2label"] == {"0": "neg", "1": "pos"}
    assert (saved / "vocab.txt").is_file() or (saved / "tokenizer.json").is_file()


# --- validate refusals ----------------------------------------------------------------------


def distill_yaml(data: Path, *, source: str, layers: str | None = "[0, 2]", name: str = "student") -> str:
    layer_line = f"\n    student_layers: {layers}" if layers is not None else ""
    return f"""
  - kind: distill
    name: {name}
    from: {source}{layer_line}
    train: {dataset_yaml(data, "train")}
    eval: {dataset_yaml(data, "holdout")}
    target: {{metric: accuracy, value: 0.9}}
"""


def _refused(monkeypatch: pytest.MonkeyPatch, capsys: Any, path: Path, key: str, *words: str) -> None:
    from hf_cost.models import load

    monkeypatch.setattr(load, "load_model", lambda *a, **k: pytest.fail("weights loaded"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: {key}: "), err
    for word in words:
        assert word in err, err


@pytest.mark.parametrize(
    "case, key, words",
    [
        ("bare-teacher", "scenarios[0].from", ["'base'", "classification head"]),
        ("out-of-range", "scenarios[1].student_layers", ["layer 4", "out of range", "4 layer(s)"]),
        ("repeated", "scenarios[1].student_layers", ["twice"]),
        ("from-a-student", "scenarios[2].student_layers", ["'student'", "layer 2", "2 layer(s)"]),
        ("from-onnx", "scenarios[2].from", ["'exported'", "onnx", "not a transformers checkpoint"]),
    ],
)
def test_validate_refuses_what_cannot_be_distilled(tmp_path, tiny_bert4_dir, monkeypatch, capsys, case, key, words):
    data = easy_csv(tmp_path / "d.csv", tiny_bert4_dir, n=40)
    scenarios = {
        "bare-teacher": distill_yaml(data, source="base"),
        "out-of-range": fine_tune_yaml(data, name="teacher") + distill_yaml(data, source="teacher", layers="[0, 4]"),
        "repeated": fine_tune_yaml(data, name="teacher") + distill_yaml(data, source="teacher", layers="[0, 0]"),
        # the 4-layer teacher -> a student of its layers [0, 2] (2 layers): its layer 2 does not exist
        "from-a-student": fine_tune_yaml(data, name="teacher") + distill_yaml(data, source="teacher")
        + distill_yaml(data, source="student", layers="[0, 2]", name="student2"),
        "from-onnx": fine_tune_yaml(data, name="teacher") + "\n  - {kind: onnx, name: exported, from: teacher}\n"
        + distill_yaml(data, source="exported"),
    }[case]
    path = tmp_path / "bad.yaml"
    path.write_text(suite_yaml(tiny_bert4_dir, scenarios), encoding="utf-8")
    _refused(monkeypatch, capsys, path, key, *words)


def test_validate_accepts_a_student_of_a_student_with_the_default_layers(tmp_path, tiny_bert4_dir, capsys):
    data = easy_csv(tmp_path / "d.csv", tiny_bert4_dir, n=40)
    scenarios = (fine_tune_yaml(data, name="teacher") + distill_yaml(data, source="teacher")
                 + distill_yaml(data, source="student", layers=None, name="student2"))
    path = tmp_path / "ok.yaml"
    path.write_text(suite_yaml(tiny_bert4_dir, scenarios), encoding="utf-8")
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_validate_refuses_an_architecture_without_encoder_layers(tmp_path, tiny_bert4_dir, monkeypatch, capsys):
    """A DistilBERT classifier keeps its layers in transformer.layer: refused before weights load."""
    from transformers import AutoModelForSequenceClassification, DistilBertConfig

    model_dir = tmp_path / "distilbert"
    config = DistilBertConfig(n_layers=2, dim=32, hidden_dim=37, n_heads=4, vocab_size=TINY_VOCAB_SIZE,
                              max_position_embeddings=TINY_MAX_POSITIONS, id2label={0: "neg", 1: "pos"})
    AutoModelForSequenceClassification.from_config(config).save_pretrained(model_dir)
    for f in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if (tiny_bert4_dir / f).is_file():
            (model_dir / f).write_bytes((tiny_bert4_dir / f).read_bytes())
    data = easy_csv(tmp_path / "d.csv", tiny_bert4_dir, n=40)
    suite = suite_yaml(model_dir, distill_yaml(data, source="base", layers="[0]")).replace(
        "device: cpu}", "device: cpu, task: sequence-classification}"
    )
    path = tmp_path / "bad.yaml"
    path.write_text(suite, encoding="utf-8")
    _refused(monkeypatch, capsys, path, "scenarios[0].student_layers", "encoder.layer", "BERT-family")


# --- two processes --------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_each_run_the_teacher_and_train_the_student(tmp_path, tiny_bert4_dir):
    """Under `accelerate launch`, every process loads the teacher and trains the student on its
    share of each batch. The teacher is the base (a 4-layer classifier); a teacher built earlier
    in the same file: tests/test_distributed_chains.py."""
    from launch_helpers import launch_failure, launch_run

    base = tmp_path / "teacher"
    for f in tiny_bert4_dir.iterdir():
        if not f.name.startswith("model") and f.name != "config.json":
            (base / f.name).parent.mkdir(exist_ok=True)
            (base / f.name).write_bytes(f.read_bytes())
    teacher = tiny_teacher(4)
    teacher.config.id2label, teacher.config.label2id = {0: "neg", 1: "pos"}, {"neg": 0, "pos": 1}
    teacher.save_pretrained(base)
    data = easy_csv(tmp_path / "easy.csv", tiny_bert4_dir)
    scenarios = distill_yaml(data, source="base") + f"""
    max_steps: 10
    eval_every_steps: 5
    batch_size: 8
    sequence_length: {SEQ}
  - kind: accuracy
    candidates: [student]
    dataset: {dataset_yaml(data, "holdout")}
    bootstrap_resamples: 10
"""
    scenario = tmp_path / "ddp.yaml"
    suite = suite_yaml(base, scenarios).replace("device: cpu}", "device: cpu, task: sequence-classification}")
    scenario.write_text(suite, encoding="utf-8")
    out = tmp_path / "out"
    proc = launch_run(scenario, out)
    assert proc.returncode == 0, launch_failure(proc)
    results = by_name(json.loads((out / "results.json").read_text(encoding="utf-8")))
    d = results["student"]
    assert d["settings"]["num_processes"] == 2
    [run] = d["metrics"]["runs"]
    assert run["steps"] == 10 and run["samples"] == 2 * run["steps"] * 8  # both processes' batches count
    assert d["metrics"]["student_parameters"] == STUDENT_PARAMS
    assert d["metrics"]["teacher_parameters"] == TEACHER_PARAMS
    assert Path(d["metrics"]["saved_checkpoint"]).is_dir()
    assert results["accuracy"]["candidate"] == "student"
