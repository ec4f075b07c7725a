"""The `free_text` kind: a causal LM's answers scored against reference texts with ROUGE (rouge-score)
or chrF (sacrebleu). The bundled modules against hand-computed cases and the packages' public APIs,
the bootstrap intervals against sacrebleu's own bootstrap, paired differences, one run end to end
through `python -m hf_cost` on a tiny random Llama, and every refusal (one line, exit 2, nothing
written)."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_scenario
from lm_helpers import LM_WORDS, lm_suite_yaml, refused_everywhere, save_tiny_llama

from hf_cost.cli import main
from hf_cost.quality.metric_loader import load_metric
from hf_cost.quality.text_scores import paired_text_difference, score_texts

REPO = Path(__file__).resolve().parents[1]
WORDS = LM_WORDS[:80]


def f_measure(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def varied_pairs(count: int, seed: int) -> tuple[list[str], list[str]]:
    """(hypotheses, references): shared and changed words, punctuation, case, accents, an empty one."""
    rng = random.Random(seed)
    vocab = ["the", "cat", "sat", "on", "mat", "Dog", "runs", "fast", "über", "café", "naïve", "42", "x-ray",
             "hello,", "world!", "a", "b", "C", "déjà", "vu", "zebra", "quartz", "Jump", "lazy", "fox"]
    hyps, refs = [], []
    for i in range(count):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 12))]
        hyp = [w if rng.random() < 0.6 else rng.choice(vocab) for w in ref]
        if rng.random() < 0.3:
            hyp = hyp[: rng.randint(1, len(hyp))] + [rng.choice(vocab) for _ in range(rng.randint(0, 4))]
        hyps.append("" if i == 3 else " ".join(hyp))
        refs.append(" ".join(ref))
    return hyps, refs


# --- 1. the bundled modules -------------------------------------------------------------------


def test_rouge_module_hand_computed() -> None:
    # "the cat sat" against "the cat sat on the mat", counted by hand:
    # unigrams: 3 of the prediction's 3 match (P = 1), 3 of the reference's 6 (R = 1/2)
    # bigrams: "the cat", "cat sat" both match (P = 2/2); the reference has 5 bigrams (R = 2/5)
    # LCS: "the cat sat", 3 tokens: P = 3/3, R = 3/6
    rouge1, rouge2, rouge_l = f_measure(1, 1 / 2), f_measure(1, 2 / 5), f_measure(1, 1 / 2)
    assert (rouge1, rouge2, rouge_l) == pytest.approx((2 / 3, 4 / 7, 2 / 3), rel=1e-15)
    out = load_metric("rouge").compute(predictions=["the cat sat", "", "the dog"],
                                       references=["the cat sat on the mat", "the cat", "a cat"])
    # an empty prediction scores 0; "the dog" against "a cat" shares nothing: 0
    assert out["per_document"]["rouge1"] == pytest.approx([2 / 3, 0.0, 0.0], rel=1e-12)
    assert out["per_document"]["rouge2"] == pytest.approx([4 / 7, 0.0, 0.0], rel=1e-12)
    assert out["per_document"]["rougeL"] == pytest.approx([2 / 3, 0.0, 0.0], rel=1e-12)
    assert out["rouge1"] == pytest.approx((2 / 3) / 3, rel=1e-12)  # the corpus figure: mean over documents
    assert out["rouge2"] == pytest.approx((4 / 7) / 3, rel=1e-12)


def test_chrf_module_equals_sacrebleu_public_api() -> None:
    import sacrebleu

    hyps, refs = varied_pairs(40, seed=1)
    chrf = load_metric("chrf")
    got = chrf.compute(predictions=hyps, references=refs)
    assert got["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, rel=1e-12)
    assert 0 < got["chrf"] < 100 and len(got["statistics"]) == 40
    plus = chrf.compute(predictions=hyps, references=refs, word_order=2)
    assert plus["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs], word_order=2).score, rel=1e-12)
    assert plus["chrf"] != got["chrf"]
    low = chrf.compute(predictions=hyps, references=refs, lowercase=True)
    lowered = sacrebleu.corpus_chrf([h.lower() for h in hyps], [[r.lower() for r in refs]]).score
    assert low["chrf"] == pytest.approx(lowered, rel=1e-12)
    assert chrf.compute(predictions=refs, references=refs)["chrf"] == pytest.approx(100.0, rel=1e-12)
    assert chrf.compute(predictions=refs, references=refs, word_order=2)["chrf"] == pytest.approx(100.0, rel=1e-12)


# --- 2. score_texts: values and intervals ---------------------------------------------------------


def test_rouge_scores_are_means_of_rouge_score_per_document() -> None:
    from rouge_score import rouge_scorer

    hyps, refs = varied_pairs(30, seed=2)
    got = score_texts("rouge", hyps, refs, {}, n_resamples=300, seed=3)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    direct = [scorer.score(r, h) for h, r in zip(hyps, refs)]
    assert got["headline"] == "rougeL" and set(got["scores"]) == {"rouge1", "rouge2", "rougeL"}
    for t in ("rouge1", "rouge2", "rougeL"):
        per_doc = got["per_document"][t]
        assert per_doc == pytest.approx([d[t].fmeasure for d in direct], rel=1e-12)
        s = got["scores"][t]
        assert s["value"] == pytest.approx(sum(per_doc) / len(per_doc), rel=1e-12)
        assert s["ci_low"] <= s["value"] <= s["ci_high"] and s["ci_low"] < s["ci_high"]
        assert s["n"] == 30 and s["scale"] == 1.0 and s["ci_level"] == 0.95


def test_documents_scoring_the_same_give_a_zero_width_interval() -> None:
    # every document is "x y z" against "x y z q r s" with its own words: rouge1 = rougeL = 2/3, rouge2 = 4/7
    hyps = [f"{WORDS[i]} {WORDS[i + 1]} {WORDS[i + 2]}" for i in range(0, 60, 6)]
    refs = [f"{h} {WORDS[i + 3]} {WORDS[i + 4]} {WORDS[i + 5]}" for h, i in zip(hyps, range(0, 60, 6))]
    got = score_texts("rouge", hyps, refs, {}, n_resamples=200)["scores"]
    for t, v in (("rouge1", 2 / 3), ("rouge2", 4 / 7), ("rougeL", 2 / 3)):
        assert (got[t]["value"], got[t]["ci_low"], got[t]["ci_high"]) == pytest.approx((v, v, v), rel=1e-12)
    same = score_texts("chrf", refs, refs, {"word_order": 2}, n_resamples=200)
    s = same["scores"]["chrf++"]
    assert same["headline"] == "chrf++"
    assert (s["value"], s["ci_low"], s["ci_high"]) == pytest.approx((100.0, 100.0, 100.0), rel=1e-12)


def test_chrf_interval_agrees_with_sacrebleus_own_bootstrap() -> None:
    from sacrebleu.metrics import CHRF

    hyps, refs = varied_pairs(60, seed=4)
    got = score_texts("chrf", hyps, refs, {}, n_resamples=1000, seed=5)
    s = got["scores"]["chrf"]
    theirs = CHRF().corpus_score(hyps, [refs], n_bootstrap=1000)
    assert s["value"] == pytest.approx(theirs.score, rel=1e-12)
    assert s["ci_low"] <= s["value"] <= s["ci_high"]
    half_width = (s["ci_high"] - s["ci_low"]) / 2
    assert half_width > 0 and half_width == pytest.approx(theirs._ci, rel=0.35)  # two bootstraps, other seeds


# --- 3. paired differences --------------------------------------------------------------------


def _raw(metric: str, predictions: list[str], references: list[str], options: dict) -> dict:
    out = score_texts(metric, predictions, references, options, n_resamples=10)
    return {"per_document": out["per_document"]} if metric == "rouge" else {"statistics": out["statistics"]}


def test_paired_difference_of_a_candidate_with_itself_is_zero() -> None:
    hyps, refs = varied_pairs(25, seed=6)
    for metric in ("rouge", "chrf"):
        raw = _raw(metric, hyps, refs, {})
        d = paired_text_difference(metric, raw, raw, {}, n_resamples=300)
        assert (d["value"], d["ci_low"], d["ci_high"]) == (0.0, 0.0, 0.0)
        assert d["n"] == 25


def test_paired_difference_when_b_is_better_on_every_document() -> None:
    import sacrebleu

    rng = random.Random(7)
    refs = [" ".join(rng.sample(WORDS, 6)) for _ in range(30)]
    worse = [" ".join(r.split()[:2] + ["praise"]) for r in refs]  # 2 of 6 reference words
    better = [" ".join(r.split()[:4] + ["praise"]) for r in refs]  # 4 of 6
    a, b = _raw("rouge", worse, refs, {}), _raw("rouge", better, refs, {})
    assert all(y > x for x, y in zip(a["per_document"]["rougeL"], b["per_document"]["rougeL"]))
    d = paired_text_difference("rouge", a, b, {}, n_resamples=500, seed=1)
    rouge = load_metric("rouge")
    expected = (rouge.compute(predictions=better, references=refs)["rougeL"]
                - rouge.compute(predictions=worse, references=refs)["rougeL"])
    assert d["score"] == "rougeL" and d["value"] == pytest.approx(expected, rel=1e-12)
    assert 0 < d["ci_low"] <= d["value"] <= d["ci_high"]
    # chrF: the corpus scores' difference, from sacrebleu's public API
    for options, kwargs in (({}, {}), ({"word_order": 2}, {"word_order": 2})):
        ca, cb = _raw("chrf", worse, refs, options), _raw("chrf", better, refs, options)
        d = paired_text_difference("chrf", ca, cb, options, n_resamples=300, seed=2)
        expected = (sacrebleu.corpus_chrf(better, [refs], **kwargs).score
                    - sacrebleu.corpus_chrf(worse, [refs], **kwargs).score)
        assert d["value"] == pytest.approx(expected, rel=1e-12) and expected > 0
        assert d["ci_low"] <= d["value"] <= d["ci_high"] and d["ci_low"] > 0
    with pytest.raises(ValueError, match="same documents"):
        paired_text_difference("rouge", a, _raw("rouge", better[:29], refs[:29], {}), {}, n_resamples=10)
    with pytest.raises(ValueError, match="same documents"):
        paired_text_difference("chrf", ca, _raw("chrf", better[:29], refs[:29], {}), {}, n_resamples=10)


# --- 4. end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny Llama and 30 rows of text with a `summary` reference: 4 empty, 1 blank."""
    root = tmp_path_factory.mktemp("free-text")
    rng = random.Random(1)
    path = root / "texts.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "summary"])
        for i in range(30):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 8))]
            summary = "" if i % 8 == 0 else "   " if i == 13 else " ".join(words[:2])
            writer.writerow([" ".join(words), summary])
    return save_tiny_llama(root / "model"), path


def test_decoding_applies_a_steps_settings_and_puts_the_scenarios_back(lm: tuple[Path, Path]) -> None:
    """A free_text step sets its own settings on entry, so a leak would show only in a later step of
    another kind (which decodes with cand.generation as it stands): seen here directly."""
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
    scenario = GenerationSettings(prompt="{text}", max_new_tokens=7)
    cand = GenerativeCandidate("lm", module, tok, scenario)
    step = GenerationSettings(prompt="Summarise: {text}", max_new_tokens=2)
    texts = ["w1 w2 w3", "w4 w5 w6 w7 w8", "w9"]
    with cand.decoding(step):
        assert cand.generation is step
        _, inside, _ = generate_answers(cand, texts, step, batch_size=3)
    assert cand.generation is scenario
    _, after, _ = generate_answers(cand, texts, scenario, batch_size=3)
    assert max(inside) <= 2 < max(after) <= 7  # the random model does not stop by itself
    with pytest.raises(RuntimeError), cand.decoding(step):
        raise RuntimeError("a failing step")
    assert cand.generation is scenario
    assert generate_answers(cand, texts, scenario, batch_size=3)[1] == after


def _step(data: Path, extra: str = "") -> str:
    return (f"\n  - kind: free_text\n    candidates: [base, half]\n    dataset: {{path: {json.dumps(str(data))}}}"
            f"\n    reference_column: summary\n    bootstrap_resamples: 200{extra}")


def _table_cell(report: str, header: str, row_start: str) -> str:
    lines = report.splitlines()
    head = next(i for i, line in enumerate(lines) if header in line and line.startswith("|"))
    column = [c.strip() for c in lines[head].strip("|").split("|")].index(header)
    row = next(line for line in lines[head + 2:] if line.startswith(row_start))
    return [c.strip() for c in row.strip("|").split("|")][column]


def test_free_text_end_to_end_on_a_tiny_llama(lm: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import sacrebleu
    from rouge_score import rouge_scorer

    from hf_cost.report.results_file import load_results_file

    model, data = lm
    steps = ("\n  - {kind: cast, name: half, dtype: bfloat16}"
             + _step(data, "\n    name: chrf_short\n    metric: chrf\n    prompt: 'Summarise: {text}'"
                           "\n    max_new_tokens: 3")
             + _step(data, "\n    name: rouge_default"))
    path = write_scenario(tmp_path, lm_suite_yaml(model, data, steps,
                                                  "generation: {prompt: 'Answer: {text}', max_new_tokens: 7}"))
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "hf_cost", "run", str(path), "--output", str(out), "--quiet"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))

    rows = list(csv.DictReader(data.open(encoding="utf-8")))
    references = [r["summary"] for r in rows if r["summary"].strip()]
    assert len(references) == 25  # rows 0, 8, 16, 24 empty, row 13 blank
    by = {(s["name"], s["candidate"]): s for s in res["scenarios"] if s["kind"] == "free_text"}
    assert set(by) == {(n, c) for n in ("chrf_short", "rouge_default") for c in ("base", "half")}
    assert all(s["status"] == "ok" for s in by.values())
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    for (name, _), s in by.items():
        m, raw = s["metrics"], s["raw"]
        assert m["n"] == len(references) and m["dropped_rows"] == {"summary": len(rows) - len(references)}
        assert raw["references"] == references and len(raw["answers"]) == len(references)
        limit = 3 if name == "chrf_short" else 7
        assert s["settings"]["generation"]["max_new_tokens"] == limit
        assert all(1 <= k <= limit for k in raw["new_tokens"])
        assert m["answers_at_max_new_tokens"] == sum(k == limit for k in raw["new_tokens"])
        assert m["new_tokens_mean"] == pytest.approx(sum(raw["new_tokens"]) / len(raw["new_tokens"]))
        assert m["empty_answers"] == sum(not a for a in raw["answers"])
        if name == "chrf_short":
            assert m["prompt"] == "Summarise: {text}" and m["headline"] == "chrf"
            expected = sacrebleu.corpus_chrf(raw["answers"], [raw["references"]]).score
            assert m["scores"]["chrf"]["value"] == pytest.approx(expected, rel=1e-12)
            assert len(raw["statistics"]) == len(references)
        else:
            # the step before had max_new_tokens 3 and its own prompt: this one has the generation block's
            assert m["prompt"] == "Answer: {text}" and m["headline"] == "rougeL"
            assert max(raw["new_tokens"]) > 3  # the random model does not stop by itself
            direct = [scorer.score(r, a) for a, r in zip(raw["answers"], raw["references"])]
            for t in ("rouge1", "rouge2", "rougeL"):
                assert raw[t] == pytest.approx([d[t].fmeasure for d in direct], rel=1e-12)
                assert m["scores"][t]["value"] == pytest.approx(sum(raw[t]) / len(raw[t]), rel=1e-12)
        head = m["scores"][m["headline"]]
        assert head["ci_low"] <= head["value"] <= head["ci_high"]

    report = (out / "report.md").read_text(encoding="utf-8")
    half = _table_cell(report, "free text (Δ vs ref)", "| half")
    base = _table_cell(report, "free text (Δ vs ref)", "| base")
    assert half.count("Δ") == 2 and "chrf_short: chrf" in half and "rouge_default: rougeL" in half
    assert "chrf_short: chrf" in base and "Δ" not in base

    # the comparison's Δ: half's corpus score - base's on the same rows (sacrebleu / rouge_score above)
    (half_row,) = [r for r in res["comparison"]["rows"] if r["candidate"] == "half"]
    for cell in half_row["text_quality"]:
        mine, ref = (by[(cell["scenario"], c)]["metrics"] for c in ("half", "base"))
        delta, score = cell["delta_vs_reference"], cell["score"]
        assert delta["value"] == pytest.approx(mine["scores"][score]["value"] - ref["scores"][score]["value"],
                                               abs=1e-9)
        assert delta["ci_low"] <= delta["value"] <= delta["ci_high"] and delta["n"] == len(references)

    results = out / "results.json"
    assert len(load_results_file(results).scenarios) == len(res["scenarios"])
    broken = json.loads(results.read_text(encoding="utf-8"))
    entry = next(s for s in broken["scenarios"] if s["name"] == "rouge_default")
    del entry["raw"]["rouge1"]
    bad = tmp_path / "broken" / "results.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(broken), encoding="utf-8")
    capsys.readouterr()
    assert main(["select", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and "raw.rouge1" in err, err


# --- 5. refusals at validate --------------------------------------------------------------------

REFUSALS = [
    ("encoder", "set model.task: text-generation"),
    ("no_reference_column", "'nope'"),
    ("label_column", "dataset.label_column"),
    ("stemmer_with_chrf", "use_stemmer: a rouge setting"),
    ("word_order_with_rouge", "word_order: a chrf setting"),
    ("prompt_without_text", "placeholder '{text}' exactly once"),
    ("max_below_min_new_tokens", "min_new_tokens (5) is more than max_new_tokens (2)"),
    ("every_reference_empty", "all 3 rows have an empty cell (summary 3)"),
    ("package_missing", "needs the sacrebleu package"),
]


@pytest.mark.parametrize(("case", "fragment"), REFUSALS, ids=[c for c, _ in REFUSALS])
def test_bad_free_text_settings_are_one_line_exit_2_nothing_written(
    lm: tuple[Path, Path], tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, case: str, fragment: str,
) -> None:
    model, data = lm
    ds = json.dumps(str(data))
    step, gen, text = "", "", None

    def free_text(extra: str, dataset: str = ds) -> str:
        return f"\n  - {{kind: free_text, dataset: {{path: {dataset}}}, reference_column: summary{extra}}}"

    if case == "encoder":
        text = (f"model: {{path: {json.dumps(str(tiny_bert_dir))}}}\ninputs: {{kind: synthetic, sequence_length: 16}}"
                f"\nscenarios:{free_text('')}")
    elif case == "no_reference_column":
        step = free_text("").replace("reference_column: summary", "reference_column: nope")
    elif case == "label_column":
        step = f"\n  - {{kind: free_text, dataset: {{path: {ds}, label_column: summary}}, reference_column: summary}}"
    elif case == "stemmer_with_chrf":
        step = free_text(", metric: chrf, use_stemmer: true")
    elif case == "word_order_with_rouge":
        step = free_text(", word_order: 2")
    elif case == "prompt_without_text":
        step = free_text(", prompt: 'Summarise this'")
    elif case == "max_below_min_new_tokens":
        gen, step = "generation: {prompt: '{text}', min_new_tokens: 5}", free_text(", max_new_tokens: 2")
    elif case == "every_reference_empty":
        empty = tmp_path / "empty.csv"
        empty.write_text("text,summary\nw1 w2,\nw3 w4,  \nw5 w6,\n", encoding="utf-8")
        step = free_text("", json.dumps(str(empty)))
    elif case == "package_missing":
        import importlib.util

        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a, **k: None if name == "sacrebleu" else real(name, *a, **k))
        step = free_text(", metric: chrf")
    text = text or lm_suite_yaml(model, data, step, gen)
    refused_everywhere(text, tmp_path, capsys, fragment)
