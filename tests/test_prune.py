"""prune: head/neuron importance (Michel et al. 2019), structured pruning of the tiny BERT,
the saved checkpoint, a recovery fine-tune from it through the CLI, and validate's refusals.

Tiny BERT (conftest): 2 layers x 4 heads, hidden H = 32, head dim d = 8, intermediate I = 37.
Hand counts used below:
- a pruned head removes its Q, K, V rows (3 * (H*d + d) = 792) and its O columns (d*H = 256):
  1048 parameters;
- a pruned FFN neuron removes a row of intermediate.dense (H + 1 = 33) and a column of
  output.dense (H = 32): 65 parameters;
- an encoder layer has 4*(32*32 + 32) + 64 + (32*37 + 37) + (37*32 + 32) + 64 = 6789
  parameters, the encoder 13578.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from scenario_helpers import SEQ, by_name, dataset_yaml, easy_csv, fine_tune_yaml, run_cli, suite_yaml

from hf_cost.cli import main
from hf_cost.config.schema import DatasetSpec, ModelSpec, load_suite
from hf_cost.models.resolve import resolve_checkpoint
from hf_cost.progress import Progress
from hf_cost.steps.prune import PRUNABLE, PruneBuilder, heads_to_prune, neurons_to_prune
from hf_cost.training import importance as imp

LABELS = ["neg", "pos"]


def save_tiny_classifier(directory: Path, tiny_bert_dir: Path, seed: int = 0) -> Path:
    """The tiny BERT with a 2-label head (random weights), its tokenizer next to it."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_bert_dir, num_labels=2, id2label=dict(enumerate(LABELS)),
                                        label2id={n: i for i, n in enumerate(LABELS)},
                                        initializer_range=0.2)  # logits well away from 0
    torch.manual_seed(seed)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(directory)
    for f in tiny_bert_dir.iterdir():
        if f.name.startswith(("vocab", "tokenizer", "special")):
            shutil.copy(f, directory / f.name)
    return directory


def load(directory: Path, attn: str = "eager") -> Any:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(directory, attn_implementation=attn).eval()


def random_batches(n_batches: int = 3, batch: int = 4, seed: int = 1) -> list[tuple[dict, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(5, 200, (batch, SEQ), generator=g)
        out.append(({"input_ids": ids, "attention_mask": torch.ones_like(ids)},
                    torch.randint(0, 2, (batch,), generator=g)))
    return out


@pytest.fixture(scope="module")
def classifier_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny-cls"), tiny_bert_dir)


# --- importance -----------------------------------------------------------------------------


def test_per_layer_normalisation_matches_a_hand_computed_vector():
    out = imp.normalise_per_layer([torch.tensor([3.0, 4.0]), torch.tensor([0.0, 5.0, 12.0])])
    assert out[0].tolist() == pytest.approx([0.6, 0.8])
    assert out[1].tolist() == pytest.approx([0.0, 5 / 13, 12 / 13])
    assert imp.normalise_per_layer([torch.zeros(3)])[0].tolist() == [0.0, 0.0, 0.0]  # no 0/0


def test_head_gates_give_the_gradients_of_transformers_head_mask(classifier_dir):
    """Reference: transformers' own head_mask= on eager attention, |dL/dmask| summed over batches."""
    batches = random_batches()
    model = load(classifier_dir, "eager")
    mask = torch.ones(2, 4, requires_grad=True)
    reference = torch.zeros(2, 4)
    for inputs, labels in batches:
        model(**inputs, labels=labels, head_mask=mask).loss.backward()
        reference += mask.grad.abs()
        mask.grad = None
    for attn in ("eager", "sdpa"):
        got = imp.compute_importance(load(classifier_dir, attn), batches)
        assert torch.tensor(got.heads_unnormalised) == pytest.approx(reference, rel=1e-4, abs=1e-9)
        assert got.n_samples == 12 and got.n_batches == 3
    assert reference.min() > 0  # every head matters a little: the comparison is not 0 == 0


def test_a_head_whose_values_are_zero_has_zero_importance_and_is_pruned_first(classifier_dir):
    model = load(classifier_dir)
    value = model.bert.encoder.layer[1].attention.self.value
    with torch.no_grad():  # head 2 of layer 1 (d = 8): its value rows 16..23
        value.weight[16:24] = 0.0
        value.bias[16:24] = 0.0
    got = imp.compute_importance(model, random_batches())
    assert got.heads[1][2] == 0.0 and got.heads_unnormalised[1][2] == 0.0
    assert min(min(row) for row in got.heads) == 0.0
    assert all(s > 0 for i, row in enumerate(got.heads) for j, s in enumerate(row) if (i, j) != (1, 2))
    assert imp.select_heads(got.heads, 1) == {1: [2]}


def test_a_dead_ffn_neuron_has_zero_importance_and_is_pruned_first(classifier_dir):
    model = load(classifier_dir)
    dense = model.bert.encoder.layer[0].intermediate.dense
    with torch.no_grad():  # GELU(0) = 0: neuron 5 of layer 0 never fires
        dense.weight[5] = 0.0
        dense.bias[5] = 0.0
    got = imp.compute_importance(model, random_batches())
    assert got.neurons[0][5] == 0.0
    assert sum(1 for s in got.neurons[0] if s == 0.0) == 1 and min(got.neurons[1]) > 0
    assert imp.select_neurons(got.neurons, 1)[0] == [5]


def test_importance_leaves_the_model_as_it_was(classifier_dir):
    model = load(classifier_dir)
    x = random_batches(1)[0][0]
    before = model(**x).logits
    imp.compute_importance(model, random_batches())
    assert torch.equal(model(**x).logits, before)
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(not h for m in model.modules() for h in (m._forward_hooks, m._forward_pre_hooks))


def test_head_selection_keeps_one_head_in_each_layer():
    scores = [[0.1, 0.2, 0.3, 0.4], [0.01, 0.02, 0.03, 0.04]]
    # the 4 lowest are all of layer 1; its last head stays, so layer 0's lowest goes instead
    assert imp.select_heads(scores, 4) == {0: [0], 1: [0, 1, 2]}
    assert imp.select_heads(scores, 2) == {1: [0, 1]}
    assert imp.select_neurons([[0.5, 0.1, 0.3], [0.2, 0.2, 0.1]], 2) == [[1, 2], [0, 2]]
    with pytest.raises(ValueError):
        imp.select_heads(scores, 7)


# --- the builder on the tiny classifier ---------------------------------------------------------


def build_prune(source_dir: Path, data: Path, out: Path, **settings: Any) -> Any:
    """PruneBuilder.build with a stand-in store and output (the CLI tests below use the real ones)."""
    from hf_cost.config.building import PruneStep

    step = PruneStep(kind="prune", name="pr", data=DatasetSpec(path=str(data), label_column="label", select="train"),
                     **settings)
    store = SimpleNamespace(
        checkpoint_of=lambda name: resolve_checkpoint(ModelSpec(path=str(source_dir), device="cpu")),
        spec=ModelSpec(path=str(source_dir), device="cpu"),
        suite=SimpleNamespace(inputs=SimpleNamespace(sequence_length=SEQ)),
    )
    output = SimpleNamespace(path_in_stage=lambda rel: out / rel, final_path=lambda p: p)
    ctx = SimpleNamespace(store=store, output=output, progress=Progress(enabled=False), where="scenarios[0]")
    return PruneBuilder().build(step, ctx), step


@pytest.fixture(scope="module")
def pruned(classifier_dir: Path, tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("pruned")
    data = easy_csv(tmp / "easy.csv", tiny_bert_dir, n=40)
    built, step = build_prune(classifier_dir, data, tmp / "stage", heads_fraction=0.5, ffn_fraction=0.5)
    return {"built": built, "step": step, "data": data, "tmp": tmp}


def test_half_the_heads_and_neurons_go_with_the_hand_counted_parameters(pruned):
    m = pruned["built"].result.metrics.model_dump()
    assert m["heads_total"] == 8 and m["heads_pruned_count"] == 4
    assert sum(len(h) for h in m["heads_pruned"]) == 4
    assert all(n >= 1 for n in m["heads_per_layer_after"]) and sum(m["heads_per_layer_after"]) == 4
    assert m["ffn_neurons_pruned_per_layer"] == 19  # 0.5 x 37 = 18.5, rounded half up
    assert m["intermediate_size_before"] == 37 and m["intermediate_size_after"] == 18
    assert m["parameters_before"] - m["parameters_after"] == 4 * 1048 + 2 * 19 * 65  # 6662
    assert m["encoder_parameters_before"] == 13578
    assert m["sparsity"] == pytest.approx(6662 / 13578)


def test_pruning_lowers_the_measured_flops_by_the_hand_counted_matmuls(pruned):
    m = pruned["built"].result.metrics.model_dump()
    assert m["flops_sequence_length"] == SEQ == 16
    assert m["flops_per_sample_after"] < m["flops_per_sample_before"]
    # per head: Q, K, V 3*2*S*H*d + O 2*S*d*H + scores and context 2*2*S*S*d = 40960 at S = 16;
    # per FFN neuron: 2*2*S*H = 2048
    drop = 4 * (3 * 2 * 16 * 32 * 8 + 2 * 16 * 8 * 32 + 2 * 2 * 16 * 16 * 8) + 2 * 19 * 2 * 2 * 16 * 32
    assert m["flops_per_sample_before"] - m["flops_per_sample_after"] == drop == 241664


def test_the_result_keeps_the_importance_scores_and_says_how(pruned):
    built = pruned["built"]
    r = built.result
    assert built.name == "pr" and built.parent == "base" and built.origin == "variant"
    assert built.recipe["kind"] == "prune" and built.recipe["from"] == "base"
    assert r.kind == "prune" and r.validity is None and r.metrics.build_time_s > 0
    assert r.metrics.importance_samples == 32  # easy_csv(n=40), select: train (80%)
    assert [len(row) for row in r.raw["head_importance"]] == [4, 4]
    assert [len(row) for row in r.raw["neuron_importance"]] == [37, 37]
    assert r.raw["head_ids"] == [[0, 1, 2, 3], [0, 1, 2, 3]]
    # the pruned heads are the lowest-scoring ones (under the one-per-layer floor)
    assert imp.select_heads(r.raw["head_importance"], 4) == {
        i: h for i, h in enumerate(r.metrics.heads_pruned) if h}
    assert any("Michel" in n for n in r.notes)


def test_the_saved_checkpoint_reloads_pruned_with_the_same_logits(pruned, classifier_dir):
    """Prune the same classifier in memory with the same data; the builder's saved checkpoint
    must give back its shapes (config.pruned_heads) and logits."""
    from transformers import AutoTokenizer

    from hf_cost.data.labelled import load_labelled

    saved = pruned["built"].checkpoint_dir
    assert saved == pruned["tmp"] / "stage" / "checkpoints" / "pr"
    config = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    m = pruned["built"].result.metrics.model_dump()
    assert config["intermediate_size"] == 18
    assert {int(k): sorted(v) for k, v in config["pruned_heads"].items()} == {
        i: h for i, h in enumerate(m["heads_pruned"]) if h}

    model = load(classifier_dir, "sdpa")
    tok = AutoTokenizer.from_pretrained(classifier_dir)
    data = load_labelled(pruned["step"].data, "data", LABELS)
    enc = data.tokenize(tok, SEQ)
    y = torch.tensor(data.labels)
    batches = [({k: v[i:i + 16] for k, v in enc.items()}, y[i:i + 16]) for i in range(0, len(y), 16)]
    scores = imp.compute_importance(model, batches)
    model.prune_heads(imp.select_heads(scores.heads, 4))
    imp.prune_ffn(model, imp.select_neurons(scores.neurons, 19))

    reloaded = load(saved, "sdpa")
    layers = imp.encoder_layers(reloaded)
    assert [imp.heads_in(layer) for layer in layers] == m["heads_per_layer_after"]
    assert [layer.intermediate.dense.weight.shape for layer in layers] == [torch.Size([18, 32])] * 2
    assert [layer.output.dense.weight.shape for layer in layers] == [torch.Size([32, 18])] * 2
    x = {k: v[:8] for k, v in enc.items()}
    with torch.no_grad():
        want = model(**x).logits
        assert want.abs().min() > 1e-2
        assert torch.allclose(reloaded(**x).logits, want, rtol=1e-5, atol=1e-7)
        assert (load(classifier_dir)(**x).logits - want).abs().max() > 1e-2  # pruning changed them


def test_heads_only_leaves_the_ffn_alone(pruned, classifier_dir):
    built, _ = build_prune(classifier_dir, pruned["data"], pruned["tmp"] / "heads-only", heads_fraction=0.25)
    m = built.result.metrics.model_dump()
    assert m["heads_pruned_count"] == 2 and m["ffn_neurons_pruned_per_layer"] == 0
    assert m["intermediate_size_after"] == 37
    assert m["parameters_before"] - m["parameters_after"] == 2 * 1048


def test_pruning_an_already_pruned_model_counts_its_remaining_heads(pruned):
    """From the 4-head result: 0.5 of its 4 heads = 2, but only 2 can go (one per layer stays)."""
    first = pruned["built"].checkpoint_dir
    built, _ = build_prune(first, pruned["data"], pruned["tmp"] / "again", heads_fraction=0.5, ffn_fraction=0.5)
    m = built.result.metrics.model_dump()
    assert m["heads_total"] == 4 and m["heads_pruned_count"] == 2 and m["heads_per_layer_after"] == [1, 1]
    assert m["ffn_neurons_pruned_per_layer"] == 9  # 0.5 x 18
    first_pruned = pruned["built"].result.metrics.heads_pruned
    config = json.loads((built.checkpoint_dir / "config.json").read_text(encoding="utf-8"))
    heads = {int(k): set(v) for k, v in config["pruned_heads"].items()}
    assert all(set(first_pruned[i]) <= heads.get(i, set()) for i in range(2))  # original numbering
    assert sum(len(v) for v in heads.values()) == 6
    assert [imp.heads_in(layer) for layer in imp.encoder_layers(load(built.checkpoint_dir))] == [1, 1]


@pytest.mark.parametrize("model_type", PRUNABLE)
def test_each_listed_architecture_prunes(model_type):
    """Every family in PRUNABLE has the BERT layout the gates and the FFN slicing rely on."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.for_model(model_type, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=37, vocab_size=200, num_labels=2, embedding_size=32)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    got = imp.compute_importance(model, random_batches(1, batch=2))
    model.prune_heads(imp.select_heads(got.heads, 4))
    imp.prune_ffn(model, imp.select_neurons(got.neurons, 19))
    assert [imp.heads_in(layer) for layer in imp.encoder_layers(model)] in ([1, 3], [2, 2], [3, 1])
    model(**random_batches(1, batch=2)[0][0])  # still runs


# --- end to end: fine_tune -> prune -> recovery fine_tune -> measured -----------------------------


@pytest.fixture(scope="module")
def chain(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("prune-chain")
    data = easy_csv(tmp / "easy.csv", tiny_bert_dir, n=100)
    scenarios = fine_tune_yaml(data) + f"""
  - kind: prune
    name: pr
    from: ft
    data: {dataset_yaml(data, "train")}
    heads_fraction: 0.5
    ffn_fraction: 0.5
    batch_size: 16
""" + fine_tune_yaml(data, name="rec", target=0.5, max_steps=2, eval_every=1, extra="\n    from: pr") + f"""
  - kind: accuracy
    dataset: {dataset_yaml(data, "holdout")}
    batch_size: 16
    bootstrap_resamples: 10
  - kind: single_stream
    warmup_queries: 1
    min_duration_s: 0.02
    min_query_count: 8
"""
    path = tmp / "chain.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    return {"results": run_cli(path, tmp / "out"), "out": tmp / "out"}


def test_the_chain_builds_and_measures_every_candidate(chain):
    results = chain["results"]
    assert [(s["name"], s["candidate"]) for s in results["scenarios"]] == [
        ("ft", "ft"), ("pr", "pr"), ("rec", "rec"),
        ("accuracy", "ft"), ("accuracy", "pr"), ("accuracy", "rec"),
        ("single_stream", "base"), ("single_stream", "ft"), ("single_stream", "pr"), ("single_stream", "rec"),
    ]
    assert all(s["status"] == "ok" for s in results["scenarios"])
    pr = by_name(results)["pr"]
    assert Path(pr["metrics"]["saved_checkpoint"]) == chain["out"] / "checkpoints" / "pr"
    assert (chain["out"] / "checkpoints" / "pr" / "config.json").is_file()
    info = results["candidates"]["pr"]
    assert info["origin"] == "variant" and info["parent"] == "ft" and info["recipe"]["kind"] == "prune"
    assert info["parameters"] == pr["metrics"]["parameters_after"]
    # the store counts the loaded candidate's FLOPs on its own sample: the same as the builder's
    assert info["flops"]["measured_per_sample"] == pr["metrics"]["flops_per_sample_after"]
    assert results["candidates"]["ft"]["flops"]["measured_per_sample"] == pr["metrics"]["flops_per_sample_before"]


def test_the_recovery_fine_tune_starts_from_the_pruned_checkpoint(chain):
    results = chain["results"]
    pr, rec = results["candidates"]["pr"], results["candidates"]["rec"]
    assert rec["parent"] == "pr" and rec["recipe"]["from"] == "pr"
    assert rec["parameters"] == pr["parameters"]  # the pruned shapes, not a fresh full model
    assert rec["flops"]["measured_per_sample"] == pr["flops"]["measured_per_sample"]
    config = json.loads((chain["out"] / "checkpoints" / "rec" / "config.json").read_text(encoding="utf-8"))
    assert config["intermediate_size"] == 18 and sum(len(v) for v in config["pruned_heads"].values()) == 4
    accuracy = {s["candidate"]: s for s in results["scenarios"] if s["kind"] == "accuracy"}
    assert accuracy["ft"]["metrics"]["accuracy"]["value"] >= 0.95
    assert all(accuracy[c]["metrics"]["n"] == 20 for c in ("ft", "pr", "rec"))


@pytest.mark.parametrize("total, layers", [(8, 2), (37, 1), (144, 12), (3072, 12), (444, 12)])
def test_the_fractions_a_refusal_suggests_do_what_it_says(total, layers):
    import re

    from hf_cost.errors import UserError

    with pytest.raises(UserError) as low:
        heads_to_prune(0.2 / total, total, layers, "s")
    least, one = map(float, re.search(r"at least ([0-9.]+) \(([0-9.]+) prunes exactly one", str(low.value)).groups())
    assert heads_to_prune(least, total, layers, "s") == 1 == heads_to_prune(one, total, layers, "s")
    with pytest.raises(UserError) as high:
        heads_to_prune(0.999, total, layers, "s")
    most = float(re.search(r"use at most ([0-9.]+)", str(high.value)).group(1))
    assert heads_to_prune(most, total, layers, "s") == total - layers
    with pytest.raises(UserError) as low:
        neurons_to_prune(0.2 / total, total, "s")
    assert neurons_to_prune(float(re.search(r"at least ([0-9.]+)", str(low.value)).group(1)), total, "s") == 1
    with pytest.raises(UserError) as high:
        neurons_to_prune(0.9999, total, "s")
    most = float(re.search(r"at most ([0-9.]+)", str(high.value)).group(1))
    assert neurons_to_prune(most, total, "s") == total - 1


# --- validate refusals --------------------------------------------------------------------------


def validate_refuses(tmp_path: Path, model_dir: Path, scenarios: str, key: str, capsys: Any,
                     task: str | None = None, *fragments: str) -> str:
    text = suite_yaml(model_dir, scenarios)
    if task:
        text = text.replace("device: cpu}", f"device: cpu, task: {task}}}")
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    load_suite(path)  # the file itself is fine: check() refuses it
    capsys.readouterr()
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ") and str(path) in lines[0] and key in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def prune_yaml(data: Path, source: str = "ft", extra: str = "heads_fraction: 0.5") -> str:
    return f"""
  - kind: prune
    name: pr
    from: {source}
    data: {dataset_yaml(data, "train")}
    {extra}
"""


def test_validate_refuses_pruning_a_bare_encoder(tmp_path, tiny_bert_dir, capsys):
    data = easy_csv(tmp_path / "d.csv", tiny_bert_dir, n=20)
    validate_refuses(tmp_path, tiny_bert_dir, prune_yaml(data, "base"), "scenarios[0].from", capsys, None,
                     "classification head")


@pytest.mark.parametrize("extra, key, fragment", [
    ("heads_fraction: 0.05", "scenarios[1].heads_fraction", "rounds to 0 heads"),  # 0.4 of a head
    ("heads_fraction: 0.9", "scenarios[1].heads_fraction", "at most 6 can go"),  # 7 of 8, 2 layers
    ("ffn_fraction: 0.01", "scenarios[1].ffn_fraction", "rounds to 0"),  # 0.37 of a neuron
    ("ffn_fraction: 0.99", "scenarios[1].ffn_fraction", "all 37"),
])
def test_validate_refuses_a_fraction_that_prunes_nothing_or_too_much(tmp_path, tiny_bert_dir, capsys,
                                                                     extra, key, fragment):
    data = easy_csv(tmp_path / "d.csv", tiny_bert_dir, n=20)
    validate_refuses(tmp_path, tiny_bert_dir, fine_tune_yaml(data) + prune_yaml(data, extra=extra), key,
                     capsys, None, fragment)


def test_validate_refuses_what_a_pruned_ancestor_makes_impossible(tmp_path, tiny_bert_dir, capsys):
    """pr leaves 4 heads; a second prune of 0.75 of those (3) would empty a layer."""
    data = easy_csv(tmp_path / "d.csv", tiny_bert_dir, n=20)
    second = prune_yaml(data, "pr", "heads_fraction: 0.75").replace("name: pr\n", "name: pr2\n")
    validate_refuses(tmp_path, tiny_bert_dir, fine_tune_yaml(data) + prune_yaml(data) + second,
                     "scenarios[2].heads_fraction", capsys, None, "prunes 3 of 4 heads")


def test_validate_refuses_pruning_an_onnx_candidate(tmp_path, tiny_bert_dir, capsys):
    data = easy_csv(tmp_path / "d.csv", tiny_bert_dir, n=20)
    onnx = "\n  - kind: onnx\n    name: ox\n    from: ft\n"
    validate_refuses(tmp_path, tiny_bert_dir, fine_tune_yaml(data) + onnx + prune_yaml(data, "ox"),
                     "scenarios[2].from", capsys, None, "onnx")


def test_validate_refuses_an_architecture_without_prune_heads(tmp_path, tiny_bert_dir, capsys):
    """A tiny DeBERTa-v2 classifier (its _prune_heads raises NotImplementedError), BERT tokenizer."""
    from transformers import AutoModelForSequenceClassification, DebertaV2Config

    model_dir = tmp_path / "deberta"
    config = DebertaV2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                             vocab_size=200, max_position_embeddings=64, num_labels=2,
                             id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    AutoModelForSequenceClassification.from_config(config).save_pretrained(model_dir)
    for f in tiny_bert_dir.iterdir():
        if f.name.startswith(("vocab", "tokenizer", "special")):
            shutil.copy(f, model_dir / f.name)
    data = easy_csv(tmp_path / "d.csv", tiny_bert_dir, n=20)
    validate_refuses(tmp_path, model_dir, prune_yaml(data, "base"), "scenarios[0].from", capsys,
                     "sequence-classification", "deberta-v2")


def test_validate_refuses_importance_data_with_a_label_the_model_lacks(tmp_path, tiny_bert_dir, capsys):
    data = easy_csv(tmp_path / "d.csv", tiny_bert_dir, n=20)
    odd = tmp_path / "odd.csv"
    odd.write_text("text,label\n" + "".join(f"word{i} word{i + 1},{'maybe' if i % 3 else 'pos'}\n"
                                            for i in range(12)), encoding="utf-8")
    line = validate_refuses(tmp_path, tiny_bert_dir, fine_tune_yaml(data) + prune_yaml(odd), "scenarios[1].data",
                            capsys, None, "maybe")
    assert "neg" in line and "pos" in line  # the model's labels are named
