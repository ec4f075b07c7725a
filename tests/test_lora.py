"""LoRA on a causal LM (the lora and lora_merge kinds) on the tiny random Llama of lm_helpers.

The task is learnable by a tiny model in a few dozen steps: a row's label is named by one keyword
(w1 -> praise, w2 -> complaint, w3 -> question) among random filler words. Checked against hand-built
cases: the loss mask of one example, the adapter's parameter count r * (in + out) per adapted Linear,
time to target and its olympic scoring from the raw runs, merged vs unmerged logits, every refusal.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import write_scenario
from lm_helpers import LM_WORDS, lm_suite_yaml, save_tiny_llama

from hf_cost.cli import main

KEYWORDS = {"w1": "praise", "w2": "complaint", "w3": "question"}
GEN = "generation: {prompt: 'classify {text}', max_new_tokens: 3}"


def keyword_csv(path: Path, n: int = 120, seed: int = 0) -> Path:
    """Rows of 2-6 filler words (w10..w79) with one keyword at a random place; the keyword names the label."""
    rng = random.Random(seed)
    keys = list(KEYWORDS)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label", "period"])
        for i in range(n):
            words = [rng.choice(LM_WORDS[10:80]) for _ in range(rng.randint(2, 6))]
            key = keys[i % 3]
            words.insert(rng.randint(0, len(words)), key)
            writer.writerow([" ".join(words), KEYWORDS[key], "2023-H1"])
    return path


def lora_yaml(data: Path, *, name: str = "tuned", extra: str = "", target: float = 0.9, max_steps: int = 120,
              runs: int = 1, modules: str = "[q_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]") -> str:
    spec = f"path: {json.dumps(str(data))}, label_column: label"
    return f"""
  - kind: lora
    name: {name}
    train: {{{spec}, select: train}}
    eval: {{{spec}, select: holdout, max_samples: 24}}
    target: {{metric: accuracy, value: {target}}}
    r: 8
    alpha: 16
    dropout: 0.0
    target_modules: {modules}
    learning_rate: 0.01
    batch_size: 16
    max_steps: {max_steps}
    eval_every_steps: 10
    runs: {runs}
    seed: 0{extra}"""


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny-llama-lora")
    return save_tiny_llama(root / "model"), keyword_csv(root / "keywords.csv")


def _run(tmp_path: Path, text: str) -> dict[str, Any]:
    path = write_scenario(tmp_path, text)
    out = tmp_path / "out"
    assert main(["run", str(path), "--output", str(out), "--quiet"]) == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def trained(lm: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run: lora (3 seeded runs), lora_merge, and accuracy on both candidates (the eval rows)."""
    model, data = lm
    tmp = tmp_path_factory.mktemp("lora-run")
    scenarios = lora_yaml(data, runs=3) + f"""
  - {{kind: lora_merge, name: merged, from: tuned}}
  - {{kind: accuracy, candidates: [tuned, merged], dataset: {{{EVAL.format(data=json.dumps(str(data)))}}},
     batch_size: 8, bootstrap_resamples: 50}}"""
    results = _run(tmp, lm_suite_yaml(model, data, scenarios, GEN))
    return {"out": tmp / "out", "model": model, **{f"{s['kind']}:{s['candidate']}": s for s in results["scenarios"]}}


EVAL = "path: {data}, label_column: label, select: holdout, max_samples: 24"


# --- the examples ----------------------------------------------------------------------------


def test_loss_is_on_the_answer_and_eos_only(lm: tuple[Path, Path]) -> None:
    """A hand-built example: the chat-templated prompt's ids are labelled -100, the label word and EOS
    keep their ids; the model's loss equals cross-entropy computed by hand at the answer positions."""
    import torch
    from lm_helpers import LM_SPECIALS
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_cost.config.generation import GenerationSettings
    from hf_cost.training.lora_data import build_examples

    model_dir, _ = lm
    tok = AutoTokenizer.from_pretrained(model_dir)
    vocab = {t: i for i, t in enumerate(LM_SPECIALS + LM_WORDS)}
    generation = GenerationSettings(prompt="classify {text}")
    got = build_examples(["w1 w12", "w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18"], [0, 1],
                         ["praise", "complaint"], generation, tok, max_length=20)
    # CHAT_TEMPLATE: "<|im_start|> user classify w1 w12 <|im_end|> <|im_start|> assistant ", word by word
    # ('classify' is no word of the tiny vocabulary: <unk>)
    prompt = [vocab.get(w, vocab["<unk>"]) for w in "<|im_start|> user classify w1 w12 <|im_end|> <|im_start|> assistant".split()]
    answer = [vocab["praise"], vocab["</s>"]]
    assert got.input_ids == [prompt + answer]
    assert got.labels == [[-100] * len(prompt) + answer]
    assert got.too_long == 1  # the second row's prompt and answer are 24 tokens, over 20

    batch = got.batch([0], pad_id=vocab["<pad>"], device="cpu")
    module = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        loss = module(**batch).loss.item()
        logits = module(input_ids=batch["input_ids"]).logits[0]
    # the token at position i is predicted from position i - 1: only the answer's two tokens count
    n = len(prompt)
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    expected = -(log_probs[n - 1, answer[0]] + log_probs[n, answer[1]]).item() / 2
    assert loss == pytest.approx(expected, rel=1e-5)


def test_a_batch_is_right_padded_with_padding_ignored() -> None:
    from hf_cost.training.lora_data import LoraExamples

    ex = LoraExamples(input_ids=[[5, 6, 7], [8]], labels=[[-100, 6, 7], [8]])
    b = ex.batch([0, 1], pad_id=0, device="cpu")
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]


def test_trainable_parameters_are_r_times_in_plus_out_per_adapted_linear(lm: tuple[Path, Path]) -> None:
    """Tiny Llama: hidden 32, 4 heads of 8, 2 KV heads: q_proj 32 -> 32, v_proj 32 -> 16; 2 layers."""
    import torch
    from transformers import AutoModelForCausalLM

    from hf_cost.config.lora import LoraStep
    from hf_cost.training.lora_model import adapted_module_count, parameter_counts, with_fresh_adapter

    model_dir, data = lm
    spec = {"path": str(data), "label_column": "label"}
    step = LoraStep.model_validate({"kind": "lora", "train": spec, "eval": spec, "target": {"value": 0.5}, "r": 4,
                                    "target_modules": ["q_proj", "v_proj"]})
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    base_params = sum(p.numel() for p in base.parameters())
    wrapped = with_fresh_adapter(base, step)
    trainable, total, nbytes = parameter_counts(wrapped)
    assert trainable == 2 * (4 * (32 + 32) + 4 * (32 + 16)) == 896
    assert total == base_params + 896 and nbytes == 896 * 4
    assert adapted_module_count(wrapped) == 4


@pytest.mark.parametrize("metric", ["accuracy", "f1_macro"])
def test_evaluation_scores_greedy_answers_like_sklearn(lm: tuple[Path, Path], metric: str) -> None:
    """The per-evaluation quality, recomputed with sklearn from the answers: an answer naming no label
    is a class of its own (never right), macro averages over the classes present."""
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_cost.config.generation import GenerationSettings
    from hf_cost.models.load import prepare_lm_tokenizer
    from hf_cost.training.lora_loop import evaluator

    model_dir, data = lm
    rows = list(csv.DictReader(data.open(encoding="utf-8")))[:30]
    labels = ["praise", "complaint", "question"]
    tok = AutoTokenizer.from_pretrained(model_dir)
    prepare_lm_tokenizer(tok)
    module = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    refs = [labels.index(r["label"]) for r in rows]
    evaluate = evaluator([r["text"] for r in rows], refs, labels, metric,
                         GenerationSettings(prompt="{text}", max_new_tokens=6), batch_size=7, tokenizer=tok)
    got = evaluate(module)
    parsed = [_first_label(a) for a in got.answers]
    assert parsed == got.parsed and 0 < sum(p is not None for p in parsed) < len(parsed)  # a mix: not trivial
    preds = [-1 if p is None else labels.index(p) for p in parsed]
    expected = accuracy_score(refs, preds) if metric == "accuracy" else f1_score(refs, preds, average="macro")
    assert got.value == pytest.approx(expected)
    assert got.unparseable_share == pytest.approx(parsed.count(None) / len(parsed))


# --- training to the target --------------------------------------------------------------------


def test_the_adapter_reaches_the_target_scored_as_mlperf_training(trained: dict[str, Any]) -> None:
    lora = trained["lora:tuned"]
    assert lora["status"] == "ok", lora.get("error")
    m, raw = lora["metrics"], lora["raw"]
    runs = m["runs"]
    assert len(runs) == 3 and all(r["converged"] for r in runs)
    # olympic over 3 runs: drop the fastest and the slowest, the middle one is the score
    times = sorted(r["time_to_target_s"] for r in runs)
    assert m["time_to_target_s"] == pytest.approx(times[1]) and lora["validity"]["result"] == "VALID"
    # each run stopped at its first evaluation at or over the target, and that is in its raw curve
    for run, evals in zip(runs, raw["evaluations"]):
        values = [e["value"] for e in evals]
        assert values[-1] >= 0.9 and all(v < 0.9 for v in values[:-1])
        assert evals[-1]["step"] == run["steps"] and run["steps"] % 10 == 0
        assert run["eval_s"] == pytest.approx(sum(e["eval_s"] for e in evals))
        assert run["train_samples_per_s"] == pytest.approx(run["samples"] / (run["wall_s"] - run["eval_s"]))
        assert run["samples"] == 16 * run["steps"]
    train_s = sum(r["wall_s"] - r["eval_s"] for r in runs)
    assert m["train_samples_per_s"] == pytest.approx(sum(r["samples"] for r in runs) / train_s)
    assert m["train_tokens_per_s"] == pytest.approx(sum(r["tokens"] for r in runs) / train_s)
    # the saved model (the first converged run) scored again from its raw answers, parsed independently
    assert m["saved_run_index"] == 0 and m["saved_quality"] == runs[0]["final_quality"]
    refs = raw["eval_references"]
    parsed = [_first_label(a) for a in raw["saved_answers"]]
    assert parsed == raw["saved_parsed"] and len(refs) == m["eval_examples"] == 24
    assert m["saved_quality"] == pytest.approx(sum(p == r for p, r in zip(parsed, refs)) / len(refs))
    assert m["saved_unparseable_share"] == pytest.approx(sum(p is None for p in parsed) / len(parsed))
    # every Linear of both layers adapted: r (in + out) each, q/o 32x32, v 32->16, gate/up 32->64, down 64->32
    per_layer = 8 * ((32 + 32) + (32 + 16) + (32 + 32) + 2 * (32 + 64) + (64 + 32))
    assert m["trainable_parameters"] == 2 * per_layer == 7424 and m["adapted_modules"] == 12
    assert m["trainable_share"] == pytest.approx(7424 / m["total_parameters"])
    # LoRA's backward computes no weight gradients for the frozen weights: less than 3 x forward
    assert 0 < m["train_flops_per_sample"] < m["train_flops_per_sample_3x_forward_estimate"]


def _first_label(answer: str) -> str | None:
    hits = [(h.start(), h.group(1)) for h in re.finditer(r"\b(praise|complaint|question)\b", answer.lower())]
    return min(hits)[1] if hits else None


def test_the_candidate_is_the_saved_adapter_reloaded_unmerged(trained: dict[str, Any]) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    lora, acc = trained["lora:tuned"], trained["accuracy:tuned"]
    files = trained["out"] / "checkpoints" / "tuned"
    assert {"adapter_config.json", "adapter_model.safetensors", "base.json"} <= {p.name for p in files.iterdir()}
    assert not (files / "config.json").exists()  # an adapter, not a checkpoint of its own
    assert lora["metrics"]["adapter_file_bytes"] == (files / "adapter_model.safetensors").stat().st_size
    assert lora["metrics"]["reload_max_abs_logit_difference"] <= 1e-6
    # the accuracy step measured the candidate from those files: the same answers as the saved model's
    assert acc["raw"]["parsed"] == lora["raw"]["saved_parsed"]
    assert acc["metrics"]["accuracy"]["value"] == pytest.approx(lora["metrics"]["saved_quality"])
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(trained["model"], dtype=torch.float32),
                                      str(files))
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) == 7424


def test_merged_checkpoint_matches_the_adapter(trained: dict[str, Any]) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merge = trained["lora_merge:merged"]
    m = merge["metrics"]
    assert m["max_abs_logit_difference"] <= 1e-5 and m["greedy_token_agreement"] == 1.0
    assert m["max_abs_logit_difference"] == max(merge["raw"]["max_abs_logit_difference_per_prompt"])
    # an independent check: the merged files loaded by transformers alone vs base + adapter by PEFT
    merged = AutoModelForCausalLM.from_pretrained(trained["out"] / "checkpoints" / "merged", dtype=torch.float32)
    assert not any("lora" in k for k in merged.state_dict())
    base = AutoModelForCausalLM.from_pretrained(trained["model"], dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(trained["out"] / "checkpoints" / "tuned")).eval()
    ids = torch.tensor([[4, 10, 20, 30, 40, 7, 5, 4, 11]])
    with torch.no_grad():
        diff = (merged(input_ids=ids).logits - adapted(input_ids=ids).logits).abs().max().item()
    assert diff <= 1e-5
    assert m["parameters"] == sum(p.numel() for p in merged.parameters())
    assert trained["accuracy:merged"]["raw"]["parsed"] == trained["accuracy:tuned"]["raw"]["parsed"]


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case, fragment", [
    ("merge_from_base", "'base' is the scenario file's model, not a lora step"),
    ("merge_from_merge", "built by lora_merge, not a lora step"),
    ("lora_from_lora", "merge it with lora_merge"),
    ("unknown_module", "'qkv_proj' names no Linear module of this llama"),
    ("peft_missing", 'pip install -e ".[lora]"'),
    ("text_pair", "an LM's prompt holds one text"),
    ("rank_typo", "a LoRA rank this large"),
])
def test_bad_lora_steps_are_one_line_exit_2(lm: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch, case: str, fragment: str) -> None:
    model, data = lm
    steps = lora_yaml(data)
    if case == "merge_from_base":
        steps += "\n  - {kind: lora_merge, name: m, from: base}"
    elif case == "merge_from_merge":
        steps += "\n  - {kind: lora_merge, name: m, from: tuned}\n  - {kind: lora_merge, name: m2, from: m}"
    elif case == "lora_from_lora":
        steps += lora_yaml(data, name="again", extra="\n    from: tuned")
    elif case == "unknown_module":
        steps = lora_yaml(data, modules="[q_proj, qkv_proj]")
    elif case == "peft_missing":
        import hf_cost.training.lora_model as lora_model

        monkeypatch.setattr(lora_model, "peft_installed", lambda: False)
    elif case == "text_pair":
        steps = steps.replace("select: train}", "select: train, text_pair_column: period}")
    elif case == "rank_typo":
        steps = steps.replace("r: 8", "r: 100000")
    path = write_scenario(tmp_path / "in", lm_suite_yaml(model, data, steps, GEN))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert fragment in err, err


def test_lora_from_a_merged_lora_validates(lm: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = lm
    steps = lora_yaml(data) + "\n  - {kind: lora_merge, name: m, from: tuned}" + lora_yaml(
        data, name="again", extra="\n    from: m")
    assert main(["validate", str(write_scenario(tmp_path, lm_suite_yaml(model, data, steps, GEN)))]) == 0


def test_lora_refuses_an_encoder(tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = keyword_csv(tmp_path / "k.csv")
    text = f"""
model: {{path: {json.dumps(str(tiny_bert_dir))}}}
inputs: {{kind: synthetic, sequence_length: 16}}
scenarios:{lora_yaml(data)}
"""
    assert main(["validate", str(write_scenario(tmp_path, text))]) == 2
    assert "lora trains causal LMs (model.task: text-generation)" in capsys.readouterr().err


def test_results_read_back_typed(trained: dict[str, Any]) -> None:
    from hf_cost.core.build_metrics import LoraMergeMetrics, LoraMetrics
    from hf_cost.report.results_file import load_results_file

    run = load_results_file(trained["out"] / "results.json")
    by_kind = {s.kind: s.metrics for s in run.scenarios}
    assert isinstance(by_kind["lora"], LoraMetrics) and isinstance(by_kind["lora_merge"], LoraMergeMetrics)
    assert by_kind["lora"].trainable_parameters == 7424
