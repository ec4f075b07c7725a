"""Distillation beyond the KD loss (issue 19): the hidden-state and attention alignment losses and
the no-label rows of kd_loss on hand-computed tensors, TinyBERT's uniform layer map, Tang et al.'s
augmentation, the loss hook on rows without a hard label, an end-to-end tiny-BERT distill with
alignment, augmentation, unlabelled rows and train_to_budget, and `validate` refusals."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_VOCAB_SIZE
from scenario_helpers import SEQ, by_name, dataset_yaml, easy_csv, run_cli, suite_yaml
from test_distill import _refused, tiny_config, tiny_teacher

from hf_cost.cli import main

L = math.log
ZS = [[L(0.25), L(0.5), L(0.25)], [L(0.5), L(0.25), L(0.25)]]  # log-probabilities: softmax at T=1 gives them
ZT = [[L(0.5), L(0.25), L(0.25)], [L(1 / 3), L(1 / 3), L(1 / 3)]]
# KL(p_t || p_s) per row, by hand: row 1 = 0.5 ln 2 + 0.25 ln 0.5 = 0.25 ln 2; row 2 = (5/3) ln 2 - ln 3.
KL_ROWS = [0.25 * L(2), (5 / 3) * L(2) - L(3)]


def _t(x: Any) -> Any:
    import torch

    return torch.tensor(x, dtype=torch.float32)


# --- kd_loss with rows that have no hard label --------------------------------------------


def test_rows_labelled_no_label_get_no_cross_entropy():
    import torch

    from hf_cost.training.kd_loss import NO_LABEL, kd_loss

    kl = sum(KL_ROWS) / 2  # the KL term averages over every row, labelled or not
    only_soft = kd_loss(_t(ZS), _t(ZT), torch.tensor([NO_LABEL, NO_LABEL]), alpha=0.3, temperature=1.0)
    assert float(only_soft) == pytest.approx(0.7 * kl, rel=1e-6)
    # one labelled row (class 0, p_s = 0.25): CE = ln 4 over that row alone
    mixed = kd_loss(_t(ZS), _t(ZT), torch.tensor([0, NO_LABEL]), alpha=0.3, temperature=1.0)
    assert float(mixed) == pytest.approx(0.3 * L(4) + 0.7 * kl, rel=1e-6)
    # the second row's label (class 1, p_s = 0.25) joins the mean: CE = ln 4 again
    both = kd_loss(_t(ZS), _t(ZT), torch.tensor([0, 1]), alpha=0.3, temperature=1.0)
    assert float(both) == pytest.approx(0.3 * L(4) + 0.7 * kl, rel=1e-6)
    # alpha = 1 and no label at all: nothing to learn from, and no NaN
    assert float(kd_loss(_t(ZS), _t(ZT), torch.tensor([NO_LABEL, NO_LABEL]), alpha=1.0, temperature=2.0)) == 0.0


# --- hidden-state MSE ---------------------------------------------------------------------


def test_hidden_mse_matches_the_hand_computed_case():
    import torch

    from hf_cost.training.kd_loss import hidden_mse

    # batch 1, 2 tokens (the second is padding), width 2; teacher: embeddings + 2 layers, student: + 1 layer
    s_emb, s_l0 = _t([[[1.0, 2.0], [9.0, 9.0]]]), _t([[[0.0, 0.0], [5.0, 5.0]]])
    t_emb, t_l0, t_l1 = _t([[[1.0, 0.0], [0.0, 0.0]]]), _t([[[7.0, 7.0], [7.0, 7.0]]]), _t([[[3.0, -1.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 0]])
    # layer_map [1]: student layer 0 imitates teacher layer 1 (hidden_states index 2).
    # embeddings: ((1-1)^2 + (2-0)^2) / 2 = 2; layer: ((0-3)^2 + (0+1)^2) / 2 = 5; mean of the pairs = 3.5
    assert float(hidden_mse((s_emb, s_l0), (t_emb, t_l0, t_l1), [1], mask)) == pytest.approx(3.5)
    # layer_map [0]: the layer pair is ((0-7)^2 + (0-7)^2) / 2 = 49 -> (2 + 49) / 2
    assert float(hidden_mse((s_emb, s_l0), (t_emb, t_l0, t_l1), [0], mask)) == pytest.approx(25.5)
    # both tokens real: embeddings (0 + 4 + 81 + 81) / 4 = 41.5; layer [1]: (9 + 1 + 25 + 25) / 4 = 15
    assert float(hidden_mse((s_emb, s_l0), (t_emb, t_l0, t_l1), [1], torch.ones(1, 2))) == pytest.approx(28.25)


def test_hidden_mse_refuses_widths_that_differ():
    from hf_cost.training.kd_loss import hidden_mse

    with pytest.raises(ValueError, match="differ"):
        hidden_mse((_t([[[1.0, 2.0]]]),) * 2, (_t([[[1.0, 2.0, 3.0]]]),) * 2, [0], _t([[1.0]]))


# --- attention KL -------------------------------------------------------------------------


def test_attention_kl_matches_the_hand_computed_case():
    import torch

    from hf_cost.training.kd_loss import attention_kl

    # batch 1, 1 head, 2 tokens: attention rows are distributions over the 2 keys
    student = _t([[[[0.5, 0.5], [0.25, 0.75]]]])
    teacher = _t([[[[0.75, 0.25], [0.5, 0.5]]]])
    row0 = 0.75 * L(0.75 / 0.5) + 0.25 * L(0.25 / 0.5)
    row1 = 0.5 * L(0.5 / 0.25) + 0.5 * L(0.5 / 0.75)
    both = attention_kl([student], [teacher], [0], torch.ones(1, 2))
    assert float(both) == pytest.approx((row0 + row1) / 2, rel=1e-6)
    # the second token is padding: only the first query row counts
    assert float(attention_kl([student], [teacher], [0], torch.tensor([[1, 0]]))) == pytest.approx(row0, rel=1e-6)
    # a padding key has probability 0 in the teacher: it adds 0 (0 log 0), not NaN
    zero_key = _t([[[[1.0, 0.0], [1.0, 0.0]]]])
    assert float(attention_kl([student], [zero_key], [0], torch.ones(1, 2))) == pytest.approx(
        (L(1 / 0.5) + L(1 / 0.25)) / 2, rel=1e-6)
    # layer_map [1] picks the teacher's second layer; two heads average
    two_heads_s = torch.cat([student, teacher], dim=1)
    two_heads_t = torch.cat([teacher, teacher], dim=1)
    value = attention_kl([two_heads_s], [two_heads_s, two_heads_t], [1], torch.ones(1, 2))
    assert float(value) == pytest.approx((row0 + row1) / 4, rel=1e-6)


# --- layer maps ---------------------------------------------------------------------------


def test_tinybert_uniform_layer_map_and_its_errors():
    from hf_cost.training.student import layer_map_error, uniform_layer_map

    assert uniform_layer_map(6, 3) == [1, 3, 5]
    assert uniform_layer_map(4, 2) == [1, 3]
    assert uniform_layer_map(12, 4) == [2, 5, 8, 11]
    assert uniform_layer_map(6, 4) == [0, 2, 3, 5]
    assert uniform_layer_map(3, 3) == [0, 1, 2]
    assert layer_map_error([1, 3], 2, 4) is None
    assert "2 teacher layer(s) for 3 student layer(s)" in layer_map_error([1, 3], 3, 4)
    assert "layer 4 is out of range" in layer_map_error([1, 4], 2, 4)


# --- augmentation -------------------------------------------------------------------------


def test_augmentation_masks_words_and_keeps_ngrams_as_tang_et_al():
    from hf_cost.training.augment import augment_text, augment_texts

    text = "a b c d e f g h"
    rng = random.Random(0)
    assert augment_text(text, rng, "[MASK]", 0.0, 0.0) == text
    assert augment_text(text, rng, "[MASK]", 0.999999, 0.0) == " ".join(["[MASK]"] * 8)
    words = text.split()
    for _ in range(50):
        kept = augment_text(text, rng, "[MASK]", 0.0, 1.0).split()
        assert 1 <= len(kept) <= 5
        start = words.index(kept[0])
        assert words[start:start + len(kept)] == kept  # a contiguous n-gram
    # masking alone: about mask_prob of the words, over many
    masked = " ".join(augment_texts([text] * 500, 1, "[MASK]", 0.1, 0.0, seed=3)).split()
    assert 0.08 < masked.count("[MASK]") / len(masked) < 0.12
    # copies per row, in row order, and seeded
    out = augment_texts(["x y", "u v"], 2, "[MASK]", 0.0, 0.0, seed=1)
    assert out == ["x y", "x y", "u v", "u v"]
    assert augment_texts([text] * 5, 1, "[MASK]", 0.3, 0.3, 7) == augment_texts([text] * 5, 1, "[MASK]", 0.3, 0.3, 7)


def test_soft_label_rows_are_appended_with_no_label(tiny_bert_dir):
    import torch
    from transformers import AutoTokenizer

    from hf_cost.training.augment import with_soft_label_rows
    from hf_cost.training.kd_loss import NO_LABEL
    from hf_cost.training.loop import TrainData

    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    texts = ["a b", "c d e"]
    base = dict(tok(texts, padding="max_length", truncation=True, max_length=SEQ, return_tensors="pt"))
    data = TrainData(base, torch.tensor([0, 1]), None, [], tok)  # type: ignore[arg-type]
    more = with_soft_label_rows(data, ["c d e"], SEQ)
    assert more.labels.tolist() == [0, 1, NO_LABEL]
    for key, value in more.tensors.items():
        assert value.shape == (3, SEQ) and torch.equal(value[2], base[key][1]), key


# --- the loss hook ------------------------------------------------------------------------


def test_the_hook_gives_unlabelled_rows_only_the_kd_and_alignment_losses():
    """A batch of rows labelled NO_LABEL: the hook's loss equals (1 - alpha) T^2 KL computed here
    by hand from the two models' logits (float64), plus the hidden term when asked for."""
    import torch
    from accelerate import Accelerator

    from hf_cost.training.kd_loss import NO_LABEL
    from hf_cost.training.student import build_student
    from hf_cost.training.teacher import Alignment, kd_hook

    teacher = tiny_teacher(4)
    teacher.requires_grad_(False)
    student = build_student(teacher, [0, 2]).eval()
    with torch.no_grad():  # a random head gives near-equal logits: make the two disagree clearly
        teacher.classifier.weight.mul_(30.0)
    torch.manual_seed(1)
    ids = torch.randint(5, TINY_VOCAB_SIZE, (3, SEQ))
    mask = torch.ones_like(ids)
    mask[1, SEQ - 4:] = 0
    inputs, labels = {"input_ids": ids, "attention_mask": mask}, torch.full((3,), NO_LABEL)
    alpha, t = 0.5, 2.0
    with torch.no_grad():
        zs = student(**inputs).logits.double() / t
        zt = teacher(**inputs).logits.double() / t
    p_t = torch.softmax(zt, -1)
    kl = float((p_t * (torch.log(p_t) - torch.log_softmax(zs, -1))).sum(-1).mean())
    hook = kd_hook(teacher, alpha, t, Accelerator(cpu=True))
    assert float(hook(student, inputs, labels).detach()) == pytest.approx((1 - alpha) * t * t * kl, rel=1e-4)
    # alpha = 1: only CE would be left, and these rows have none
    assert float(kd_hook(teacher, 1.0, t, Accelerator(cpu=True))(student, inputs, labels).detach()) == 0.0
    # hidden alignment: + weight x the masked MSE of embeddings and layer 1 -> 1, 3 -> 3 (layer_map [1, 3])
    with torch.no_grad():
        hs = student(**inputs, output_hidden_states=True).hidden_states
        ht = teacher(**inputs, output_hidden_states=True).hidden_states
    m = mask.double().unsqueeze(-1)
    pairs = [(hs[0], ht[0]), (hs[1], ht[2]), (hs[2], ht[4])]
    mse = sum(float((((a.double() - b.double()) ** 2) * m).sum() / (m.sum() * a.shape[-1])) for a, b in pairs) / 3
    aligned = kd_hook(teacher, alpha, t, Accelerator(cpu=True), Alignment(0.7, 0.0, [1, 3]))
    assert float(aligned(student, inputs, labels).detach()) == pytest.approx(
        (1 - alpha) * t * t * kl + 0.7 * mse, rel=1e-4)


def test_a_student_with_every_layer_has_no_alignment_loss():
    """Student = teacher (eager attention, every layer, identity map): hidden and attention terms are 0."""
    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForSequenceClassification

    from hf_cost.training.student import build_student
    from hf_cost.training.teacher import Alignment, kd_hook

    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_config(
        tiny_config(2, num_labels=2), attn_implementation="eager").eval()
    student = build_student(teacher, [0, 1], attention_probs_dropout_prob=0.0).eval()
    assert student.config.attention_probs_dropout_prob == 0.0 and student.config._attn_implementation == "eager"
    ids = torch.randint(5, TINY_VOCAB_SIZE, (2, SEQ))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    hook = kd_hook(teacher, 0.0, 2.0, Accelerator(cpu=True), Alignment(1.0, 1.0, [0, 1]))
    assert float(hook(student, inputs, torch.tensor([0, 1])).detach()) == pytest.approx(0.0, abs=1e-6)
    moved = kd_hook(teacher, 0.0, 2.0, Accelerator(cpu=True), Alignment(0.0, 1.0, [1, 0]))
    assert float(moved(student, inputs, torch.tensor([0, 1])).detach()) > 1e-4  # layers swapped: they differ


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 4-layer tiny BERT classifier (2 labels) with the shared tiny tokenizer (conftest)."""
    base = tmp_path_factory.mktemp("teacher")
    for f in tiny_bert_dir.iterdir():
        if not f.name.startswith("model") and f.name != "config.json":
            (base / f.name).write_bytes(f.read_bytes())
    teacher = tiny_teacher(4)
    teacher.config.id2label, teacher.config.label2id = {0: "neg", 1: "pos"}, {"neg": 0, "pos": 1}
    teacher.save_pretrained(base)
    return base


def distill_yaml(data: Path, extra: str, name: str = "student") -> str:
    return f"""
  - kind: distill
    name: {name}
    from: base
    student_layers: [0, 2]
    train: {dataset_yaml(data, "train")}
    eval: {dataset_yaml(data, "holdout")}{extra}
"""


def classifier_suite(model_dir: Path, scenarios: str) -> str:
    return suite_yaml(model_dir, scenarios).replace("device: cpu}", "device: cpu, task: sequence-classification}")


def test_distill_with_alignment_augmentation_unlabelled_rows_to_the_budget(tmp_path, teacher_dir, tiny_bert_dir):
    data = easy_csv(tmp_path / "easy.csv", tiny_bert_dir, n=60)
    texts = tmp_path / "texts.csv"
    with texts.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["text"], *[[r["text"]] for r in csv.DictReader(data.open(encoding="utf-8"))][:25]])
    extra = f"""
    target: {{metric: accuracy, value: 0.01}}
    train_to_budget: true
    hidden_weight: 1.0
    attention_weight: 0.5
    augment: {{copies: 1, mask_prob: 0.2, ngram_prob: 0.5, seed: 3}}
    unlabelled: {{path: {json.dumps(str(texts))}}}
    sequence_length: {SEQ}
    batch_size: 8
    learning_rate: 1.0e-3
    max_steps: 9
    eval_every_steps: 3"""
    path = tmp_path / "distill.yaml"
    path.write_text(classifier_suite(teacher_dir, distill_yaml(data, extra)), encoding="utf-8")
    d = by_name(run_cli(path, tmp_path / "out"))["student"]
    m = d["metrics"]
    [run] = m["runs"]
    # the target (accuracy >= 0.01) is met at the first evaluation, and training went on to max_steps
    assert run["converged"] and run["steps"] == 9
    assert run["stop_reason"].startswith("target reached at step 3, trained on to the budget (max_steps")
    assert [p[0] for p in d["raw"]["quality_curves"][0]] == [3, 6, 9]
    assert m["time_to_target_s"] == run["time_to_target_s"] < run["wall_s"]
    assert m["saved_step"] == 9 and d["validity"]["result"] == "VALID"
    assert m["train_to_budget"] is True and m["hidden_weight"] == 1.0 and m["attention_weight"] == 0.5
    assert m["layer_map"] == [1, 3]  # TinyBERT's uniform map for 2 of 4 layers
    labelled = 48  # the seeded 80 % train split of 60 rows
    assert (m["labelled_rows"], m["augmented_rows"], m["unlabelled_rows"]) == (labelled, labelled, 25)
    assert run["samples"] == 9 * 8  # batches drawn from all 121 rows
    notes = " ".join(d["notes"])
    assert "eager attention" in notes and "never CE" in notes and "first evaluation that met it" in notes
    assert all(math.isfinite(p[2]) for p in d["raw"]["loss_curves"][0])
    saved = json.loads((Path(m["saved_checkpoint"]) / "config.json").read_text(encoding="utf-8"))
    assert saved["num_hidden_layers"] == 2


# --- validate refusals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, key, words",
    [
        ("\n    hidden_weight: 1.0\n    layer_map: [1, 3, 3]", "scenarios[0].layer_map", ["3 teacher layer(s)",
                                                                            "2 student layer(s)"]),
        ("\n    hidden_weight: 1.0\n    layer_map: [1, 4]", "scenarios[0].layer_map", ["layer 4", "out of range"]),
        ("\n    layer_map: [1, 3]", "scenarios[0].layer_map", ["hidden_weight or attention_weight"]),
        ("\n    attention_weight: -1", "scenarios[0].attention_weight", ["greater than or equal to 0"]),
        ("\n    augment: {copies: 1, mask_prob: 1.0}", "scenarios[0].augment.mask_prob", ["less than 1"]),
        ("\n    unlabelled: {path: missing.csv}", "scenarios[0].unlabelled.path", ["no data file", "missing.csv"]),
    ],
)
def test_validate_refuses_bad_alignment_and_soft_label_settings(
    tmp_path, teacher_dir, tiny_bert_dir, monkeypatch, capsys, extra, key, words
):
    data = easy_csv(tmp_path / "d.csv", tiny_bert_dir, n=40)
    path = tmp_path / "bad.yaml"
    extra = "\n    target: {metric: accuracy, value: 0.9}" + extra
    path.write_text(classifier_suite(teacher_dir, distill_yaml(data, extra)), encoding="utf-8")
    _refused(monkeypatch, capsys, path, key, *words)


def test_validate_accepts_the_new_settings(tmp_path, teacher_dir, tiny_bert_dir, capsys):
    data = easy_csv(tmp_path / "d.csv", tiny_bert_dir, n=40)
    extra = ("\n    target: {metric: accuracy, value: 0.9}\n    train_to_budget: true\n    hidden_weight: 1.0"
             "\n    attention_weight: 1.0\n    layer_map: [0, 3]\n    augment: {copies: 2}")
    path = tmp_path / "ok.yaml"
    path.write_text(classifier_suite(teacher_dir, distill_yaml(data, extra)), encoding="utf-8")
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
