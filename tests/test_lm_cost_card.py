"""A causal LM's cost per 1M output tokens, its selection metrics and the card's generation
section, each checked against figures recomputed by hand from the run's raw samples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import write_scenario
from lm_helpers import lm_suite_yaml, save_tiny_llama, tickets_csv

from hf_cost.cli import main

PRICE = 3.6  # EUR/h: 1e6 / rate / 3600 x 3.6 = 1000 / rate
STEPS = """
  - {kind: single_stream, min_duration_s: 0.3, min_query_count: 16, warmup_queries: 2}
  - {kind: offline, batch_sizes: [1, 4], min_duration_s: 0.3, min_sample_count: 8, warmup_batches: 1}
  - kind: accuracy
    dataset: {path: DATA, label_column: label, max_samples: 24}
    batch_size: 8
  - kind: perplexity
    dataset: {path: DATA, max_samples: 20}
    batch_size: 8"""
GEN = "generation: {prompt: 'classify {text} now', max_new_tokens: 4}\nhardware: {price_per_hour: 3.6, currency: EUR}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("lm-cost")
    model, data = save_tiny_llama(root / "model"), tickets_csv(root / "tickets.csv")
    text = lm_suite_yaml(model, data, STEPS.replace("DATA", json.dumps(str(data))), GEN)
    out = root / "out"
    assert main(["run", str(write_scenario(root, text)), "--output", str(out), "--quiet"]) == 0
    return {"out": out, "results": json.loads((out / "results.json").read_text(encoding="utf-8")), "root": root}


def _steps(res: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for s in res["scenarios"]:
        out.setdefault(s["kind"], []).append(s)
    return out


def test_cost_per_million_output_tokens_from_the_raw_samples(run: dict) -> None:
    res = run["results"]
    steps = _steps(res)
    (row,) = res["costs"]["rows"]
    # one stream: new tokens over the sum of request latencies, from the raw per-request values
    ss = steps["single_stream"][0]["raw"]
    stream_rate = sum(ss["output_tokens"]) / (sum(ss["latencies_ms"]) / 1e3)
    assert row["per_million_output_tokens_single_stream"]["value"] == pytest.approx(1000 / stream_rate)
    # offline: the batch size with the most new tokens per second, each from its raw batches
    rates = [sum(s["raw"]["batch_output_tokens"]) / s["metrics"]["duration_s"] for s in steps["offline"]]
    assert row["per_million_output_tokens_at_throughput"]["value"] == pytest.approx(1000 / max(rates), rel=1e-6)
    assert "output tokens/s" in row["per_million_output_tokens_at_throughput"]["derived_from"]
    # a request is the inference: per 1M requests at the best offline requests/s
    reqs = max(s["metrics"]["throughput_samples_per_s"] for s in steps["offline"])
    assert row["per_million_at_throughput"]["value"] == pytest.approx(1000 / reqs)
    assert row["per_million_output_tokens_at_slo"] is None  # no server step in this run
    report = (run["out"] / "report.md").read_text(encoding="utf-8")
    assert "per 1M output tokens, at the offline token rate" in report


def test_single_stream_mfu_from_each_requests_flops(run: dict) -> None:
    ss = _steps(run["results"])["single_stream"][0]
    raw, m = ss["raw"], ss["metrics"]
    assert len(raw["request_flops"]) == len(raw["latencies_ms"])
    # FLOPs grow with the answer: a request of k new tokens costs more than one of k - 1 at the same prompt
    by = {(p, k): f for p, k, f in zip(raw["prompt_tokens"], raw["output_tokens"], raw["request_flops"])}
    assert all(f > by[(p, k - 1)] for (p, k), f in by.items() if (p, k - 1) in by)
    achieved = sum(raw["request_flops"]) / (sum(raw["latencies_ms"]) / 1e3) / 1e9
    assert m["achieved_gflops_per_s"] == pytest.approx(achieved)
    peak = run["results"]["peak_tflops"]
    assert (m["mfu"] is None) == (peak is None)
    if peak is not None:
        assert m["mfu"] == pytest.approx(achieved / (peak * 1e3))


def test_selection_metrics_bootstrap_the_token_latencies(run: dict) -> None:
    from hf_cost.report.results_file import load_results_file
    from hf_cost.select.from_results import candidate_metrics

    m = candidate_metrics(load_results_file(run["out"] / "results.json"))["base"]
    raw = _steps(run["results"])["single_stream"][0]["raw"]
    ttft = sorted(raw["ttft_ms"])
    tpot = sorted(x for x in raw["tpot_ms"] if x is not None)
    assert m["ttft_p50_ms"].value == ttft[int(len(ttft) * 0.5)]  # LoadGen's sorted[int(n p)]
    assert m["ttft_p90_ms"].value == ttft[int(len(ttft) * 0.9)]
    assert m["ttft_p90_ms"].ci_low <= m["ttft_p90_ms"].value <= m["ttft_p90_ms"].ci_high
    if tpot:
        assert m["tpot_p50_ms"].value == tpot[int(len(tpot) * 0.5)]
    ppl = _steps(run["results"])["perplexity"][0]
    by_hand = math.exp(sum(ppl["raw"]["nll_sums"]) / sum(ppl["raw"]["token_counts"]))
    assert m["perplexity"].value == pytest.approx(by_hand, rel=1e-9)
    assert m["perplexity"].ci_low <= by_hand <= m["perplexity"].ci_high
    offline = _steps(run["results"])["offline"]
    assert m["output_tokens_per_s"].value == pytest.approx(max(s["metrics"]["output_tokens_per_s"] for s in offline))
    assert m["cost_per_million_output_tokens"].value == pytest.approx(1000 / m["output_tokens_per_s"].value)


def test_select_constrains_on_ttft_and_ranks_by_perplexity(run: dict, capsys: pytest.CaptureFixture[str]) -> None:
    spec = run["root"] / "constraints.yaml"
    results = run["out"] / "results.json"
    spec.write_text("constraints: [{metric: ttft_p90_ms, max: 1.0e+9}]\n"
                    "objectives: [{metric: perplexity, direction: min}, "
                    "{metric: cost_per_million_output_tokens, direction: min}]\n", encoding="utf-8")
    assert main(["select", str(results), "--constraints", str(spec)]) == 0
    assert "recommended: base" in capsys.readouterr().out
    spec.write_text("constraints: [{metric: ttft_p90_ms, max: 1.0e-6}]\n"
                    "objectives: [{metric: perplexity, direction: min}]\n", encoding="utf-8")
    assert main(["select", str(results), "--constraints", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "recommended: base" not in out and "ttft_p90_ms" in out


def test_card_generation_section_holds_the_runs_figures(run: dict) -> None:
    from hf_cost.cards.from_results import card_sections
    from hf_cost.report.results_file import load_results_file

    sections = card_sections(load_results_file(run["out"] / "results.json"))
    gen = sections["generation"]
    steps = _steps(run["results"])
    raw = steps["single_stream"][0]["raw"]
    ttft = sorted(raw["ttft_ms"])
    n = len(ttft)
    assert f"{ttft[n // 2]:.1f} / {ttft[int(n * 0.9)]:.1f} ms (n={n}, " in gen
    assert f"{np.mean(raw['output_tokens']):.1f}" in gen
    ppl = steps["perplexity"][0]["metrics"]["perplexity"]
    assert f"{ppl['value']:.3g} [{ppl['ci_low']:.3g}, {ppl['ci_high']:.3g}]" in gen
    answers = steps["accuracy"][0]["metrics"]["answers"]
    assert f"{answers['unparseable_share']:.0%}" in gen
    assert "greedy, at most 4 new tokens" in gen
    lm = run["results"]["candidates"]["base"]["lm_flops"]
    assert f"{lm['kv_cache_bytes_per_token']:,}" in gen
    # a hand check of the KV figure: 2 (K, V) x layers x KV heads x head dim x 4 bytes (float32)
    assert lm["kv_cache_bytes_per_token"] == 2 * 2 * 2 * (32 // 4) * 4
    assert "per 1M output tokens" in sections["cost"]


def test_the_shipped_lm_vs_encoder_selection_spec_loads() -> None:
    from hf_cost.config.selection import load_selection_spec, spec_metrics, unknown_metric

    spec = load_selection_spec(Path(__file__).parents[1] / "scenarios" / "selection" / "tickets-lm-vs-encoder.yaml")
    names = {name for _, name in spec_metrics(spec)}
    assert "accuracy:drift:2025-H1" in names and "cost_per_million" in names
    assert all(unknown_metric(n, cells=["drift:2025-H1"]) is None for n in names)
