"""Causal LMs as candidates (model.task: text-generation) on a tiny random Llama: prompts, token
latencies, offline generation, zero-shot accuracy by generation, and every refusal (one line,
exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_scenario
from lm_helpers import lm_suite_yaml, refused_everywhere, save_tiny_llama, tickets_csv

from hf_cost.cli import main

SS = "\n  - {kind: single_stream, min_duration_s: 0.3, min_query_count: 12, warmup_queries: 2}"
OFFLINE = "\n  - {kind: offline, batch_sizes: [1, 4], min_duration_s: 0.3, min_sample_count: 8, warmup_batches: 1}"
GEN = "generation: {prompt: 'classify {text} now', max_new_tokens: 5}"


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny-llama")
    return save_tiny_llama(root / "model"), tickets_csv(root / "tickets.csv")


def _run(tmp_path: Path, text: str) -> dict:
    path = write_scenario(tmp_path, text)
    out = tmp_path / "out"
    assert main(["run", str(path), "--output", str(out), "--quiet"]) == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_single_stream_reports_token_latencies_recomputable_from_raw(lm: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = lm
    res = _run(tmp_path, lm_suite_yaml(model, data, SS, GEN))
    (ss,) = res["scenarios"]
    raw, tok = ss["raw"], ss["metrics"]["tokens"]
    n = ss["metrics"]["queries"]
    assert n >= 12 and all(len(raw[k]) == n for k in ("ttft_ms", "tpot_ms", "output_tokens", "prompt_tokens"))
    # a request's parts: the first token comes before the request ends, and TTFT + (k-1) TPOT = its last token
    for lat, ttft, tpot, k in zip(raw["latencies_ms"], raw["ttft_ms"], raw["tpot_ms"], raw["output_tokens"]):
        assert 0 < ttft <= lat and 1 <= k <= 5
        if k >= 2:
            assert ttft + (k - 1) * tpot <= lat + 1e-6
    ordered = sorted(raw["ttft_ms"])
    assert tok["ttft_ms"]["percentiles_ms"]["p50"] == ordered[n // 2]  # LoadGen's sorted[int(n p)]
    assert tok["output_tokens"]["total"] == sum(raw["output_tokens"])
    assert tok["output_tokens_per_s"] == pytest.approx(sum(raw["output_tokens"]) / (sum(raw["latencies_ms"]) / 1e3))
    # the prompt lengths are the performance set's: the prompt template in the chat template, tokenised
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    import csv

    texts = [r["text"] for r in csv.DictReader(data.open(encoding="utf-8"))]
    chat = [tokenizer.apply_chat_template([{"role": "user", "content": f"classify {t} now"}], tokenize=False,
                                          add_generation_prompt=True) for t in texts]
    lengths = {len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in chat}
    assert set(raw["prompt_tokens"]) <= lengths
    assert ss["settings"]["generation"]["max_new_tokens"] == 5


def test_offline_generation_counts_output_tokens_and_padding(lm: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = lm
    res = _run(tmp_path, lm_suite_yaml(model, data, OFFLINE,
                                       "generation: {prompt: '{text}', max_new_tokens: 4, min_new_tokens: 4}"))
    bs1, bs4 = res["scenarios"]
    for s in (bs1, bs4):
        m, raw = s["metrics"], s["raw"]
        assert sum(raw["batch_output_tokens"]) == m["output_tokens"] == 4 * m["samples"]  # min = max = 4
        assert m["output_tokens_per_s"] == pytest.approx(m["output_tokens"] / m["duration_s"])
        assert m["total_tokens_per_s"] == pytest.approx(
            (m["output_tokens"] + sum(raw["batch_real_tokens"])) / m["duration_s"])
        assert m["decode_padded_share"] == 0.0  # every row decodes exactly 4 tokens
    assert bs1["metrics"]["padded_token_share"] == 0.0  # a batch of one is never padded
    assert bs4["metrics"]["padded_token_share"] > 0.0  # 3-12 word tickets, left-padded to the longest


def test_batched_generation_matches_one_at_a_time(lm: tuple[Path, Path]) -> None:
    """Left padding with an attention mask must not change a greedy answer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_cost.config.generation import GenerationSettings
    from hf_cost.models.lm_candidate import GenerativeCandidate
    from hf_cost.models.load import prepare_lm_tokenizer
    from hf_cost.quality.lm_answers import generate_answers

    model_dir, _ = lm
    tok = AutoTokenizer.from_pretrained(model_dir)
    prepare_lm_tokenizer(tok)
    module = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    cand = GenerativeCandidate("lm", module, tok, GenerationSettings(max_new_tokens=6))
    texts = ["w1 w2 w3", "w4 w5 w6 w7 w8 w9 w10 w11", "w12", "w13 w14 w15 w16"]
    one, n_one, p_one = generate_answers(cand, texts, cand.generation, batch_size=1)
    four, n_four, p_four = generate_answers(cand, texts, cand.generation, batch_size=4)
    assert one == four and n_one == n_four and p_one == p_four
    assert len(set(p_one)) > 1  # the batch of four really was padded


def test_accuracy_by_generation_parses_scores_and_keeps_answers(lm: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = lm
    step = f"\n  - {{kind: accuracy, dataset: {{path: {json.dumps(str(data))}, label_column: label}}, batch_size: 8}}"
    res = _run(tmp_path, lm_suite_yaml(model, data, step, GEN))
    (acc,) = res["scenarios"]
    raw, m = acc["raw"], acc["metrics"]
    labels = acc["settings"]["labels"]
    assert sorted(labels) == ["complaint", "praise", "question"]
    # recompute from the raw answers with an independent rule: the leftmost label word
    import re

    def first_label(answer: str) -> str | None:
        hits = [(mm.start(), mm.group(1)) for mm in re.finditer(r"\b(praise|complaint|question)\b", answer.lower())]
        return min(hits)[1] if hits else None

    parsed = [first_label(a) for a in raw["answers"]]
    assert parsed == raw["parsed"]
    refs = [labels[i] for i in raw["references"]]
    right = sum(p == r for p, r in zip(parsed, refs))
    assert m["accuracy"]["value"] == pytest.approx(right / len(refs))
    assert m["answers"]["exact_match"]["value"] == pytest.approx(right / len(refs))
    assert m["answers"]["unparseable"] == sum(p is None for p in parsed)
    assert m["answers"]["exact_match"]["ci_low"] <= m["answers"]["exact_match"]["value"] <= \
        m["answers"]["exact_match"]["ci_high"]
    assert "(no answer)" not in m["per_class"]


@pytest.mark.parametrize("case, fragment", [
    ("no_placeholder", "placeholder '{text}' exactly once"),
    ("two_placeholders", "placeholder '{text}' exactly once"),
    ("unknown_placeholder", "unknown placeholder"),
    ("greedy_with_temperature", "only act when sampling"),
    ("min_over_max", "min_new_tokens (9) is more than max_new_tokens (4)"),
    ("zero_new_tokens", "max_new_tokens"),
    ("generation_for_encoder", "only a causal LM generates"),
    ("synthetic_inputs", "needs dataset inputs"),
    ("kind_without_lm_support", "does not run causal LMs yet"),
    ("loadgen_single_stream_one_token_answers", "generation.min_new_tokens: a causal LM on LoadGen's SingleStream"),
    ("loadgen_offline_one_token_answers", "generation.min_new_tokens: a causal LM on LoadGen's Offline needs"),
    ("regex_matching_no_label", "parses none of the 3 labels"),
    ("regex_without_group", "capturing group"),
    ("no_chat_template", "no chat template"),
])
def test_bad_lm_settings_are_one_line_exit_2_nothing_written(
    lm: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, fragment: str
) -> None:
    model, data = lm
    ds = json.dumps(str(data))
    acc = "\n  - {{kind: accuracy, dataset: {{path: {ds}, label_column: label}}, answers: {{regex: '{rx}'}}}}"
    gen, steps, text = GEN, SS, None
    if case == "no_placeholder":
        gen = "generation: {prompt: 'classify this'}"
    elif case == "two_placeholders":
        gen = "generation: {prompt: '{text} and {text}'}"
    elif case == "unknown_placeholder":
        gen = "generation: {prompt: '{text} for {user}'}"
    elif case == "greedy_with_temperature":
        gen = "generation: {prompt: '{text}', temperature: 0.7}"
    elif case == "min_over_max":
        gen = "generation: {prompt: '{text}', max_new_tokens: 4, min_new_tokens: 9}"
    elif case == "zero_new_tokens":
        gen = "generation: {prompt: '{text}', max_new_tokens: 0}"
    elif case == "generation_for_encoder":
        text = lm_suite_yaml(model, data, SS, GEN).replace("task: text-generation", "task: feature-extraction")
    elif case == "synthetic_inputs":
        text = lm_suite_yaml(model, data, SS, GEN).replace(
            f"inputs: {{kind: dataset, dataset: {{path: {ds}}}, sequence_length: 64, num_samples: 16}}",
            "inputs: {kind: synthetic}")
    elif case == "kind_without_lm_support":
        steps = "\n  - {kind: multi_stream}"
    elif case == "loadgen_single_stream_one_token_answers":  # without min_new_tokens an answer may be 1 token
        steps = "\n  - {kind: single_stream, engine: loadgen}"
    elif case == "loadgen_offline_one_token_answers":
        steps = "\n  - {kind: offline, engine: loadgen}"
    elif case == "regex_matching_no_label":
        steps = acc.format(ds=ds, rx="(yes|no)")
    elif case == "regex_without_group":
        steps = acc.format(ds=ds, rx="Answer: \\\\w+")
    elif case == "no_chat_template":
        model = save_tiny_llama(tmp_path / "plain", chat_template=False)
    text = text or lm_suite_yaml(model, data, steps, gen)
    refused_everywhere(text, tmp_path, capsys, fragment)


def test_perplexity_step_matches_transformers_loss(lm: tuple[Path, Path], tmp_path: Path) -> None:
    import csv
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, data = lm
    step = f"\n  - {{kind: perplexity, dataset: {{path: {json.dumps(str(data))}, max_samples: 12}}, batch_size: 5}}"
    res = _run(tmp_path, lm_suite_yaml(model_dir, data, step, GEN))
    (ppl,) = res["scenarios"]
    raw, m = ppl["raw"], ppl["metrics"]
    assert m["perplexity"]["value"] == pytest.approx(math.exp(sum(raw["nll_sums"]) / sum(raw["token_counts"])))
    assert m["perplexity"]["ci_low"] <= m["perplexity"]["value"] <= m["perplexity"]["ci_high"]
    # the reference: transformers' own shifted cross-entropy on each document alone, BOS first
    tok = AutoTokenizer.from_pretrained(model_dir)
    module = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    texts = sorted(r["text"] for r in csv.DictReader(data.open(encoding="utf-8")))
    expected = []
    for text in texts:
        ids = tok(text)["input_ids"]
        ids = ids if ids[0] == tok.bos_token_id else [tok.bos_token_id, *ids]
        with torch.no_grad():
            loss = module(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
        expected.append((loss * (len(ids) - 1), len(ids) - 1))
    got = list(zip(raw["nll_sums"], raw["token_counts"]))
    assert len(got) == 12  # the 12 rows sampled, each scored as if alone (float32 loss vs float64 sums)
    assert all(any(c == ec and n == pytest.approx(en, rel=1e-5) for en, ec in expected) for n, c in got)


def test_perplexity_needs_a_causal_lm(tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tickets_csv(tmp_path / "t.csv")
    text = f"""
model: {{path: {json.dumps(str(tiny_bert_dir))}}}
inputs: {{kind: synthetic, sequence_length: 16}}
scenarios:
  - {{kind: perplexity, dataset: {{path: {json.dumps(str(data))}}}}}
"""
    assert main(["validate", str(write_scenario(tmp_path, text))]) == 2
    assert "set model.task: text-generation" in capsys.readouterr().err
