"""The `drift` kind on causal LMs, through the CLI: perplexity per period (no labels needed) with
its decay, and accuracy by generation per period where the dataset has labels.

Figures are checked against values recomputed here from results.json's raw NLL sums, against the
`perplexity` kind on the same rows, and against closed forms on a Llama made to predict one fixed
next-token distribution (tests/drift_helpers.save_constant_llama), where every period's
perplexity, ratio and slope, and every answer, are known before the run.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import write_scenario
from drift_helpers import save_constant_llama
from lm_helpers import lm_suite_yaml, save_tiny_llama, tickets_csv
from scenario_helpers import run_cli

from hf_cost.cli import main

PERIODS = ("2023-H1", "2023-H2", "2024-H1")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def q(path: Path) -> str:
    return json.dumps(str(path))


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("drift-llama")
    return save_tiny_llama(root / "model"), tickets_csv(root / "tickets.csv", n=45, periods=PERIODS)


def test_label_free_perplexity_per_period_recomputes_and_matches_the_perplexity_kind(
    lm: tuple[Path, Path], tmp_path: Path
) -> None:
    model, data = lm
    steps = f"""
  - {{kind: drift, name: lm-drift, dataset: {{path: {q(data)}}}, period_column: period, batch_size: 4,
      bootstrap_resamples: 300}}
  - {{kind: perplexity, name: h2, dataset: {{path: {q(data)}, where: {{period: '2023-H2'}}}}, batch_size: 3,
      bootstrap_resamples: 300}}"""
    res = run_cli(write_scenario(tmp_path, lm_suite_yaml(model, data, steps)), tmp_path / "out")
    drift, ppl = res["scenarios"]
    m, raw = drift["metrics"], drift["raw"]
    assert m["decay"] is None and m["training_window"] == ["2023-H1"]  # no labels: no accuracy decay
    assert [p["period"] for p in m["periods"]] == list(PERIODS) and all(p["accuracy"] is None for p in m["periods"])
    # per period: exp(sum NLL / sum tokens) over that period's rows, from the raw values
    nll, tok = np.array(raw["nll_sums"]), np.array(raw["token_counts"])
    period_of = np.array(raw["periods"])
    logppl = {}
    for p in m["periods"]:
        mask = period_of == p["period"]
        assert p["n"] == mask.sum() == 15
        logppl[p["period"]] = nll[mask].sum() / tok[mask].sum()
        assert p["perplexity"]["value"] == pytest.approx(math.exp(logppl[p["period"]]), rel=1e-9)
        assert p["perplexity"]["tokens"] == tok[mask].sum()
        assert p["perplexity"]["ci_low"] < p["perplexity"]["value"] < p["perplexity"]["ci_high"]
    # the perplexity kind on the same rows gives the same figure (and the same bootstrap interval)
    h2 = next(p["perplexity"] for p in m["periods"] if p["period"] == "2023-H2")
    pm = ppl["metrics"]
    assert h2["value"] == pytest.approx(pm["perplexity"]["value"], rel=1e-6)
    assert (h2["documents"], h2["tokens"]) == (pm["documents"], pm["tokens"])
    assert h2["ci_low"] == pytest.approx(pm["perplexity"]["ci_low"], rel=1e-5)
    assert h2["ci_high"] == pytest.approx(pm["perplexity"]["ci_high"], rel=1e-5)
    # decay on log-perplexity: ratios to the first period and the least-squares slope (numpy's polyfit)
    d = m["lm"]["perplexity_decay"]
    ref = logppl["2023-H1"]
    for row in d["periods"]:
        assert row["mean_nll_per_token"]["value"] == pytest.approx(logppl[row["period"]], rel=1e-9)
        assert row["ratio_to_reference"]["value"] == pytest.approx(math.exp(logppl[row["period"]] - ref), rel=1e-9)
        r = row["ratio_to_reference"]
        assert r["ci_low"] <= r["value"] <= r["ci_high"]
    assert d["periods"][0]["ratio_to_reference"]["value"] == pytest.approx(1.0)
    slope = np.polyfit([0.0, 1.0, 2.0], [logppl[p] for p in PERIODS], 1)[0]
    assert d["slope"]["value"] == pytest.approx(slope, rel=1e-9, abs=1e-12)
    assert d["slope"]["ols_ci_low"] <= d["slope"]["value"] <= d["slope"]["ols_ci_high"]
    assert d["reference"]["perplexity"]["value"] == pytest.approx(math.exp(ref), rel=1e-9)
    out = tmp_path / "out"
    assert (out / "plots" / "drift-lm-drift.png").read_bytes().startswith(PNG_MAGIC)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "perplexity [95% CI]" in report and "Log-perplexity slope" in report


def _constant_case(path: Path) -> Path:
    """8 rows per period: 2023-H1 texts of boosted words only, every label praise; 2023-H2 texts of
    two boosted and two plain words, labels praise/complaint alternating; 2024-H1 plain words only,
    labels complaint/question."""
    rows = []
    for i in range(8):
        rows.append((f"w{i} w{i + 1} w{(i + 2) % 10}", "praise", "2023-H1"))
        rows.append((f"w{i} w{40 + i} w{(i + 3) % 10} w{50 + i}", ("praise", "complaint")[i % 2], "2023-H2"))
        rows.append((f"w{40 + i} w{60 + i} w{70 + i}", ("complaint", "question")[i % 2], "2024-H1"))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label", "period"])
        writer.writerows(rows)
    return path


def test_harder_periods_raise_perplexity_and_answers_decay_as_computed_by_hand(tmp_path: Path) -> None:
    boosts = {"praise": 5.0, **{f"w{i}": 4.0 for i in range(10)}}
    model = save_constant_llama(tmp_path / "constant", boosts)
    data = _constant_case(tmp_path / "dated.csv")
    steps = f"""
  - {{kind: drift, name: d, dataset: {{path: {q(data)}, label_column: label}}, period_column: period,
      bootstrap_resamples: 200, batch_size: 8}}"""
    gen = "generation: {prompt: 'label {text}', max_new_tokens: 3}"
    res = run_cli(write_scenario(tmp_path, lm_suite_yaml(model, data, steps, gen)), tmp_path / "out")
    (drift,) = res["scenarios"]
    m, raw = drift["metrics"], drift["raw"]
    vocab = 6 + 86  # lm_helpers: LM_SPECIALS + LM_WORDS
    log_z = math.log(math.exp(5.0) + 10 * math.exp(4.0) + (vocab - 11))
    # a boosted word costs log Z - 4 nats, any other log Z: per-token NLL log Z - 4, log Z - 2, log Z
    expected = {"2023-H1": log_z - 4, "2023-H2": log_z - 2, "2024-H1": log_z}
    for p in m["periods"]:
        assert p["perplexity"]["value"] == pytest.approx(math.exp(expected[p["period"]]), rel=1e-5)
    d = m["lm"]["perplexity_decay"]
    ratios = [row["ratio_to_reference"] for row in d["periods"]]
    for r, want in zip(ratios, (1.0, math.exp(2), math.exp(4))):
        # every document of a period has the same per-token NLL, so the bootstrap cannot move the ratio
        assert [r["ci_low"], r["value"], r["ci_high"]] == pytest.approx([want] * 3, rel=1e-5)
    assert d["first_significant_rise"] == "2023-H2"
    assert d["slope"]["value"] == pytest.approx(2.0, rel=1e-5)  # nats per token per half-year, rising
    assert [d["slope"]["ci_low"], d["slope"]["ci_high"]] == pytest.approx([2.0, 2.0], rel=1e-5)
    assert [c["value"] for c in d["changes"]] == pytest.approx([2.0, 2.0], rel=1e-5)
    # greedy decoding always says "praise": accuracy 1, 1/2, 0 per period, nothing unparseable
    assert all(a.split() == ["praise"] * 3 for a in raw["answers"])
    assert [p["accuracy"]["value"] for p in m["periods"]] == [1.0, 0.5, 0.0]
    assert all(p["answers"]["unparseable"] == 0 for p in m["periods"])
    assert [p["answers"]["exact_match"]["value"] for p in m["periods"]] == [1.0, 0.5, 0.0]
    decay = m["decay"]
    assert decay["drop"]["value"] == pytest.approx(1.0 - (0.5 + 0.0) / 2)  # reference - later average
    assert decay["slope"]["value"] == pytest.approx(-0.5)
    assert m["lm"]["answers"]["exact_match"]["value"] == pytest.approx(12 / 24)
    labels = drift["settings"]["labels"]
    assert [labels[i] for i in raw["predictions"]] == ["praise"] * 24
    assert m["label_distribution_reference"] == {"complaint": 0, "praise": 8, "question": 0}


@pytest.mark.parametrize("extra, dataset_extra, fragment, key", [
    (", sequence_length: 32", "", "not read for a causal LM", "sequence_length"),
    (", horizon: 2", "", "Eval-Stream", "horizon"),
    (", answers: {regex: 'x(.*)'}", "", "answers are scored against dataset.label_column", "answers"),
    (", max_length: 999", "", "max_position_embeddings (256)", "max_length"),
    (", training_window: ['2030-H1']", "", "is not a period", "training_window"),
    (", answers: {regex: 'Answer: \\\\w+'}", ", label_column: label", "capturing group", "answers"),
    ("", ", text_pair_column: text", "one text per row", "text_pair_column"),
])
def test_lm_drift_refusals_name_the_key(lm: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        extra: str, dataset_extra: str, fragment: str, key: str) -> None:
    model, data = lm
    steps = f"\n  - {{kind: drift, dataset: {{path: {q(data)}{dataset_extra}}}, period_column: period{extra}}}"
    path = write_scenario(tmp_path, lm_suite_yaml(model, data, steps))
    for command in (["validate", str(path)], ["run", str(path), "--output", str(tmp_path / "out"), "--quiet"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error:"), err
        assert fragment in err and key in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, dataset_extra, fragment", [
    (", max_length: 64", ", label_column: label", "only a causal LM's drift reads it"),
    (", answers: {regex: 'x(.*)'}", ", label_column: label", "only a causal LM's drift reads it"),
    ("", "", "dataset.label_column is required to score each period"),
])
def test_classifier_drift_refuses_lm_settings_and_still_needs_labels(
    tiny_bert_dir: Path, lm: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    extra: str, dataset_extra: str, fragment: str,
) -> None:
    _, data = lm
    text = (f"model: {{path: {q(tiny_bert_dir)}, device: cpu}}\ninputs: {{kind: synthetic, sequence_length: 16}}\n"
            f"scenarios:\n  - {{kind: drift, dataset: {{path: {q(data)}{dataset_extra}}}, period_column: period, "
            f"training_window: ['2023-H1']{extra}}}")
    assert main(["validate", str(write_scenario(tmp_path, text))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err


def test_perplexity_decay_pools_the_reference_by_tokens_by_hand() -> None:
    from hf_cost.drift.lm_decay import perplexity_decay

    # period A: two documents of 1 and 3 tokens, NLL 2 and 6 nats (2 nats/token each);
    # B: one of 2 tokens, 8 nats (4/token); C: one of 4 tokens, 20 nats (5/token). Reference: A and B pooled.
    out = perplexity_decay([[2.0, 6.0], [8.0], [20.0]], [[1, 3], [2], [4]], ["A", "B", "C"], [0, 1, 3],
                           [True, True, False], n_resamples=50, seed=1)
    ref = (2 + 6 + 8) / (1 + 3 + 2)  # 16 nats over 6 tokens
    assert out["reference"]["mean_nll_per_token"]["value"] == pytest.approx(ref)
    assert out["reference"]["perplexity"]["value"] == pytest.approx(math.exp(ref))
    assert (out["reference"]["documents"], out["reference"]["tokens"]) == (3, 6)
    ratios = [p["ratio_to_reference"]["value"] for p in out["periods"]]
    assert ratios == pytest.approx([math.exp(2 - ref), math.exp(4 - ref), math.exp(5 - ref)])
    # every document has its period's per-token NLL, so no resample moves a period's value
    assert all(p["mean_nll_per_token"]["ci_low"] == pytest.approx(p["mean_nll_per_token"]["ci_high"])
               for p in out["periods"])
    assert out["first_significant_rise"] == "C"
    assert [c["value"] for c in out["changes"]] == pytest.approx([2.0, 1.0])
    # OLS of (0, 2), (1, 4), (3, 5): slope = Sxy / Sxx with x mean 4/3, y mean 11/3
    xs, ys = [0, 1, 3], [2, 4, 5]
    sxy = sum((x - 4 / 3) * (y - 11 / 3) for x, y in zip(xs, ys))
    sxx = sum((x - 4 / 3) ** 2 for x in xs)
    assert out["slope"]["value"] == pytest.approx(sxy / sxx)
    assert out["slope"]["unit"] == "nats per token per period position"


def test_perplexity_decay_bootstrap_interval_covers_a_noisy_period_and_refuses_bad_input() -> None:
    from hf_cost.drift.lm_decay import perplexity_decay

    rng = np.random.default_rng(0)
    tokens = rng.integers(5, 30, size=200)
    nll = tokens * rng.normal(3.0, 0.5, size=200)  # per-token NLL varies around 3 nats by document
    out = perplexity_decay([nll[:100], nll[100:]], [tokens[:100], tokens[100:]], ["A", "B"], [0, 1],
                           [True, False], n_resamples=400, seed=0)
    b = out["periods"][1]["mean_nll_per_token"]
    assert b["value"] == pytest.approx(nll[100:].sum() / tokens[100:].sum())
    # the token-weighted ratio's standard error by the delta method: sd of (nll_i - L t_i) / (sqrt(n) mean t)
    resid = nll[100:] - b["value"] * tokens[100:]
    se = resid.std(ddof=1) / math.sqrt(100) / tokens[100:].mean()
    assert (b["ci_high"] - b["ci_low"]) / (2 * 1.96 * se) == pytest.approx(1.0, abs=0.2)
    assert out["slope"]["ols_ci_low"] is None  # two periods: no scatter around the line
    with pytest.raises(ValueError, match="no reference period"):
        perplexity_decay([[1.0]], [[1]], ["A"], [0], [False])
    with pytest.raises(ValueError, match="at least one token"):
        perplexity_decay([[1.0], [2.0]], [[1], [0]], ["A", "B"], [0, 1], [True, False])
    with pytest.raises(ValueError, match="distinct"):
        perplexity_decay([[1.0], [2.0]], [[1], [1]], ["A", "B"], [0, 0], [True, False])
