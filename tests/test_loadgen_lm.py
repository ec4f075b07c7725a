"""A causal LM's single_stream and offline steps on MLPerf LoadGen (engine: loadgen) with token latencies.

Without LoadGen running: the trace's first-token events and the detail log's token keys of
SingleStream and Offline, hand-written. With real LoadGen runs of a tiny random Llama whose EOS
row is boosted (so answers end after 2 to 6 tokens, differently per prompt, and a wrong pairing
of token counts to requests would show): per request TTFT <= latency and TPOT recomputed by hand,
our percentiles against numpy and against LoadGen's own detail log, validity as LoadGen states
it, and offline token counts against LoadGen's tokens/s and a direct greedy ``generate`` of the
same batches. The refusals of one-token answers are in test_lm.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_scenario
from lm_helpers import lm_suite_yaml, save_tiny_llama, tickets_csv

from hf_cost.cli import main
from hf_cost.engines.loadgen_log import figures, read_detail_log, read_trace_samples

needs_loadgen = pytest.mark.skipif(
    __import__("importlib").util.find_spec("mlperf_loadgen") is None, reason='pip install -e ".[loadgen]"'
)

GEN = "generation: {prompt: 'classify {text} now', max_new_tokens: 6, min_new_tokens: 2}"
SS = ("\n  - {kind: single_stream, engine: loadgen, min_duration_s: 0.5, min_query_count: 16, warmup_queries: 2, "
      "target_percentile: 0.5}")
OFFLINE = ("\n  - {kind: offline, engine: loadgen, batch_sizes: [3], min_duration_s: 0.3, min_sample_count: 9, "
           "warmup_batches: 1, bucket_by_length: true}")


def approx(value: float) -> object:
    """The same ns figure in ms or s: equal up to float rounding of the unit change (1e-12 relative)."""
    return pytest.approx(value, rel=1e-12, abs=1e-12)


def _eos_prone_llama(directory: Path) -> Path:
    """The tiny Llama with a large random EOS row in its LM head: greedy answers end at EOS after
    a prompt-dependent number of tokens instead of always running to max_new_tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    save_tiny_llama(directory, pad_token=True)
    model = AutoModelForCausalLM.from_pretrained(directory)
    with torch.no_grad():
        eos = model.config.eos_token_id
        boost = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1)) * 3
        model.lm_head.weight[eos] = boost
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny-llama-loadgen")
    return _eos_prone_llama(root / "model"), tickets_csv(root / "tickets.csv")


@pytest.fixture(scope="module")
def runs(lm: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One CLI run of both steps on LoadGen (a few seconds), logs kept in the output folder."""
    model, data = lm
    tmp = tmp_path_factory.mktemp("lm-loadgen-run")
    path = write_scenario(tmp / "in", lm_suite_yaml(model, data, SS + OFFLINE, GEN))
    out = tmp / "out"
    assert main(["run", str(path), "--output", str(out), "--quiet"]) == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8")), out


def _log_values(folder: Path) -> dict:
    return read_detail_log(folder / "mlperf_log_detail.txt").values


# --- LoadGen's token keys and trace events outside Server, hand-written -------------------------------

_TRACE = """{"traceEvents":[
{"name":"Token","cat":"default","ph":"b","pid":7,"id":0,"ts":200.289,"args":{"sample_seq":0,"query_seq":0,"sample_idx":7,"issue_start_ns":0,"complete_ns":2226164}},
{"name":"Token","cat":"default","ph":"e", "pid":7,"id":0,"ts":2426.453},
{"name":"Sample","cat":"default","ph":"b","pid":7,"id":0,"ts":200.289,"args":{"sample_seq":0,"query_seq":0,"sample_idx":7,"issue_start_ns":0,"complete_ns":5393592}},
{"name":"Sample","cat":"default","ph":"e", "pid":7,"id":0,"ts":5593.881},
{"name":"Sample","cat":"default","ph":"b","pid":7,"id":1,"ts":5619.421,"args":{"sample_seq":1,"query_seq":1,"sample_idx":1,"issue_start_ns":0,"complete_ns":4000000}},
{"name":"Token","cat":"default","ph":"b","pid":7,"id":1,"ts":5619.421,"args":{"sample_seq":1,"query_seq":1,"sample_idx":1,"issue_start_ns":0,"complete_ns":1500000}},
"""


def test_single_stream_trace_pairs_first_tokens_by_sample_seq(tmp_path: Path) -> None:
    path = tmp_path / "mlperf_log_trace.json"
    path.write_text(_TRACE, encoding="utf-8")
    a, b = read_trace_samples(path)
    assert (a.sample_index, a.latency_ms, a.first_token_ms) == (7, 5.393592, 2.226164)
    assert (b.sample_index, b.latency_ms, b.first_token_ms) == (1, 4.0, 1.5)  # its Token event came after


def test_single_stream_and_offline_token_keys_carry_no_server_bounds() -> None:
    from hf_cost.engines.loadgen_log import DetailLog

    common = {"requested_use_token_latencies": True, "result_query_count": 40, "result_min_duration_met": True,
              "result_min_queries_met": True}
    single = figures(DetailLog({
        **common, "effective_scenario": "SingleStream", "result_validity": "VALID", "early_stopping_met": True,
        "requested_server_ttft_latency": 100000000, "requested_server_tpot_latency": 100000000,
        "result_first_token_50.00_percentile_latency_ns": 2500000, "result_time_per_output_token_50.00_percentile_ns":
        400000, "early_stopping_latency_ss": 2600000, "early_stopping_latency_ms": 0,
        "result_first_token_mean_latency_ns": 2400000, "result_time_to_output_token_mean": 410000}))
    t = single.tokens
    assert (t.ttft_bound_ms, t.tpot_bound_ms) == (None, None)  # LoadGen's defaults, bounding nothing outside Server
    assert (t.ttft_percentiles_ms, t.tpot_percentiles_ms) == ({"p50": 2.5}, {"p50": 0.4})
    assert (t.ttft_early_stopping_ms, t.ttft_mean_ms, t.tpot_mean_ms) == (2.6, 2.4, 0.41)
    assert single.early_stopping_latency_ms is None  # LoadGen's estimate there is TTFT's, not the request latency's
    offline = figures(DetailLog({**common, "effective_scenario": "Offline", "result_validity": "INVALID",
                                 "result_min_duration_met": False, "result_tokens_per_second": 1252.43}))
    assert offline.tokens.tokens_per_s == 1252.43 and offline.tokens.ttft_bound_ms is None
    assert offline.why == ["min duration not met (None ms)"]


# --- real LoadGen runs -------------------------------------------------------------------------------


@needs_loadgen
def test_single_stream_lm_on_loadgen_reports_loadgens_token_latencies(runs: tuple[dict, Path]) -> None:
    import numpy as np

    res, out = runs
    ss = next(s for s in res["scenarios"] if s["kind"] == "single_stream")
    raw, m, tok = ss["raw"], ss["metrics"], ss["metrics"]["tokens"]
    lg = _log_values(out / ss["settings"]["loadgen_log_dir"])
    n = m["queries"]
    assert n == lg["result_query_count"] >= 16
    assert all(len(raw[k]) == n for k in ("latencies_ms", "ttft_ms", "tpot_ms", "output_tokens", "prompt_tokens"))
    # validity is LoadGen's (its early stopping on TPOT and TTFT), whatever it says
    assert ss["validity"]["result"] == lg["result_validity"]
    assert ss["validity"]["early_stopping_satisfied"] == lg["early_stopping_met"]
    assert lg["requested_use_token_latencies"] is True
    # each request: its first token before its completion; TPOT = (latency - TTFT) / (tokens - 1), by hand
    assert all(2 <= k <= 6 for k in raw["output_tokens"]) and len(set(raw["output_tokens"])) > 1
    for lat, ttft, tpot, k in zip(raw["latencies_ms"], raw["ttft_ms"], raw["tpot_ms"], raw["output_tokens"]):
        assert 0 < ttft <= lat
        assert tpot == pytest.approx((lat - ttft) / (k - 1), abs=1e-6)  # LoadGen truncates to whole ns
    # our figures from the raw lists: numpy as the reference ...
    for key, values in (("ttft_ms", raw["ttft_ms"]), ("tpot_ms", raw["tpot_ms"])):
        assert tok[key]["percentiles_ms"]["p50"] == np.percentile(values, 50, method="higher")
        assert tok[key]["mean_ms"] == pytest.approx(np.mean(values))
        assert (tok[key]["min_ms"], tok[key]["max_ms"]) == (np.min(values), np.max(values))
    assert tok["output_tokens"]["total"] == sum(raw["output_tokens"])
    # ... and LoadGen's own detail log, computed in C++ from what it recorded, percentile by percentile
    for p in ("50.00", "90.00", "95.00", "97.00", "99.00", "99.90"):
        key = "p" + p.rstrip("0").rstrip(".")
        ttft_ns = lg[f"result_first_token_{p}_percentile_latency_ns"]
        tpot_ns = lg[f"result_time_per_output_token_{p}_percentile_ns"]
        assert tok["ttft_ms"]["percentiles_ms"][key] == approx(ttft_ns / 1e6)
        assert tok["tpot_ms"]["percentiles_ms"][key] == approx(tpot_ns / 1e6)
    assert tok["ttft_ms"]["min_ms"] == approx(lg["result_first_token_min_latency_ns"] / 1e6)
    assert tok["tpot_ms"]["max_ms"] == approx(lg["result_time_to_output_token_max"] / 1e6)
    assert m["latency_ms"]["percentiles_ms"]["p50"] == approx(lg["result_50.00_percentile_latency_ns"] / 1e6)
    # LoadGen's token count: its tokens/s over the issue span x that span (its qps figure's (n - 1) / span)
    tokens = lg["result_token_throughput_with_loadgen_overhead"] * (n - 1) / lg["result_qps_with_loadgen_overhead"]
    assert tokens == pytest.approx(sum(raw["output_tokens"]), rel=1e-4)
    # result_token_throughput is tokens / the sum of latencies, divided in ns by LoadGen 6.0.17 (tokens per ns)
    assert lg["result_token_throughput"] * 1e9 == pytest.approx(tok["output_tokens_per_s"], rel=1e-4)
    if lg["early_stopping_met"]:  # LoadGen's last early-stopping estimate is TTFT's (TPOT is checked first)
        assert tok["ttft_early_stopping_ms"] == approx(lg["early_stopping_latency_ss"] / 1e6)
    # MFU still works: each request's analytic FLOPs over the sum of LoadGen's latencies
    assert len(raw["request_flops"]) == n
    achieved = sum(raw["request_flops"]) / (sum(raw["latencies_ms"]) / 1e3)
    assert m["achieved_gflops_per_s"] == pytest.approx(achieved / 1e9)


@needs_loadgen
def test_offline_lm_on_loadgen_counts_every_token_as_loadgen_does(runs: tuple[dict, Path]) -> None:
    res, out = runs
    off = next(s for s in res["scenarios"] if s["kind"] == "offline")
    raw, m = off["raw"], off["metrics"]
    lg = _log_values(out / off["settings"]["loadgen_log_dir"])
    assert off["validity"]["result"] == lg["result_validity"] and lg["requested_use_token_latencies"] is True
    per_sample = raw["sample_output_tokens"]
    assert len(per_sample) == m["samples"] == sum(raw["batch_sizes"])
    assert [len(b) for b in raw["batch_sample_indices"]] == raw["batch_sizes"]
    assert sum(per_sample) == m["output_tokens"] == sum(raw["batch_output_tokens"])
    assert all(2 <= k <= 6 for k in per_sample)
    # LoadGen's figure, from the n_tokens it was given: tokens / its longest sample latency
    assert m["output_tokens_per_s"] == lg["result_tokens_per_second"]
    assert lg["result_tokens_per_second"] * lg["result_max_latency_ns"] / 1e9 == pytest.approx(m["output_tokens"],
                                                                                              rel=1e-4)
    assert m["duration_s"] == approx(lg["result_max_latency_ns"] / 1e9)
    prompts = sum(raw["batch_real_tokens"])
    assert m["total_tokens_per_s"] == pytest.approx((m["output_tokens"] + prompts) / m["duration_s"])


@needs_loadgen
def test_offline_engine_generates_what_a_direct_generate_of_its_batches_gives(lm: tuple[Path, Path],
                                                                             tmp_path: Path) -> None:
    """The engine's batches, each generated again directly (greedy: deterministic): the same new
    tokens, and the n_tokens LoadGen was given per sample are those answers' lengths, in its order."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_cost.config.schema import load_suite
    from hf_cost.data.performance_set import build_performance_set
    from hf_cost.engines.loadgen import TestPlan
    from hf_cost.engines.token_stream import run_token_offline, run_token_stream
    from hf_cost.models.lm_candidate import GenerativeCandidate

    model_dir, data = lm
    suite = load_suite(write_scenario(tmp_path, lm_suite_yaml(model_dir, data, OFFLINE, GEN)))
    tok = AutoTokenizer.from_pretrained(model_dir)
    cand = GenerativeCandidate("tiny", AutoModelForCausalLM.from_pretrained(model_dir).eval(), tok, suite.generation)
    pset = build_performance_set(suite.inputs, tok, "cpu", suite.generation)
    run = run_token_offline(cand, pset, TestPlan("Offline", 0.1, 10, expected_qps=1.0, token_latencies=True), 4, None)
    assert len(run.samples) == len(run.output_tokens) >= 10 and len(run.batches) == len(run.generated)
    assert run.figures.tokens.tokens_per_s * max(s.latency_ms for s in run.samples) / 1e3 == pytest.approx(
        sum(run.output_tokens), rel=1e-4)
    answers = []
    for (indices, _, _), got in zip(run.batches, run.generated):
        direct = cand.generate(pset.batch(torch.tensor(indices)))
        assert got.new_tokens == direct.new_tokens
        answers += direct.output_tokens
    assert answers == run.output_tokens  # no bucketing: the batches cut LoadGen's order as it came
    # SingleStream: each request's n_tokens is its own prompt's answer length
    stream = run_token_stream(cand, pset, TestPlan("SingleStream", 0.1, 8, latency_percentile=0.5,
                                                   expected_latency_ms=50.0, token_latencies=True), None)
    assert [cand.generate(pset.one(s.sample_index)).output_tokens[0] for s in stream.samples] == stream.output_tokens
    assert all(s.first_token_ms is not None and s.first_token_ms <= s.latency_ms for s in stream.samples)


@needs_loadgen
def test_an_lm_that_raises_mid_run_fails_its_steps_without_hanging(lm: tuple[Path, Path], tmp_path: Path) -> None:
    """In each LoadGen test the 2nd generate raises: every later sample is completed unserved (with
    a first token in SingleStream, which LoadGen reads before a completion), LoadGen ends, and
    both steps fail (one subprocess for both: the count restarts with each LoadGen test)."""
    from loadgen_helpers import run_with_failing_forward

    model, data = lm
    path = write_scenario(tmp_path, lm_suite_yaml(model, data, SS + OFFLINE, GEN))
    out = tmp_path / "out"
    proc = run_with_failing_forward(path, out, 2, "injected failure in generate", method="generate")
    assert proc.returncode == 3, proc.stderr[-3000:]  # the run completed; the steps failed
    entries = json.loads((out / "results.json").read_text())["scenarios"]
    assert [e["kind"] for e in entries] == ["single_stream", "offline"]
    for e in entries:
        assert e["status"] == "failed" and e["metrics"] is None
        assert "injected failure in generate" in e["error"] and "completed unserved" in e["error"]
