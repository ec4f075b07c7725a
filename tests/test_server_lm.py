"""The `server` kind serving a causal LM on MLPerf LoadGen with token latencies.

Without LoadGen running: goodput and LoadGen's per-request TPOT on hand-computed cases, the
token keys of a hand-written detail log and trace, and every bound refusal at validate (one
line, exit 2, nothing written). With real LoadGen runs of the tiny random Llama (a few seconds
each, at a low QPS with reduced settings): the per-request TTFT, TPOT and token counts against
LoadGen's own detail log, goodput recomputed by hand, and an impossible TTFT bound that LoadGen
must call INVALID.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_scenario
from lm_helpers import lm_suite_yaml, save_tiny_llama, tickets_csv

from hf_cost.cli import main
from hf_cost.engines.loadgen_log import figures, read_detail_log, read_trace_samples
from hf_cost.engines.token_figures import per_request_tpot_ms, probe_tokens

needs_loadgen = pytest.mark.skipif(
    __import__("importlib").util.find_spec("mlperf_loadgen") is None, reason='pip install -e ".[loadgen]"'
)

GEN = "generation: {prompt: 'classify {text} now', max_new_tokens: 4, min_new_tokens: 2}"
REDUCED = "min_duration_s: 1, min_query_count: 12, max_batch_size: 4"


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny-llama-server")
    return save_tiny_llama(root / "model"), tickets_csv(root / "tickets.csv")


def _server(settings: str) -> str:
    return f"\n  - {{kind: server, {settings}}}"


# --- hand-computed cases --------------------------------------------------------------------------


def test_tpot_is_loadgens_integer_nanosecond_division() -> None:
    # (10.000001 ms - 1 ms) / (4 - 1) = 9000001 ns // 3 = 3000000 ns: LoadGen truncates
    assert per_request_tpot_ms(10.000001, 1.0, 4) == 3.0
    assert per_request_tpot_ms(7.5, 1.5, 2) == 6.0
    with pytest.raises(ValueError, match="at least 2 output tokens"):
        per_request_tpot_ms(5.0, 1.0, 1)


def test_goodput_counts_requests_within_both_bounds() -> None:
    # bounds TTFT 25 ms, TPOT 10 ms: request 0 meets both; 1 misses TTFT; 2 misses TPOT; 3 sits on both bounds
    t = probe_tokens(ttft_ms=[10.0, 30.0, 20.0, 25.0], tpot_ms=[5.0, 5.0, 12.0, 10.0], output_tokens=[3, 4, 2, 7],
                     completed_qps=6.0, completed_tokens_per_s=24.0, ttft_bound_ms=25.0, tpot_bound_ms=10.0)
    assert (t["goodput_requests"], t["goodput_share"], t["goodput_qps"]) == (2, 0.5, 3.0)
    assert (t["output_tokens"], t["output_tokens_mean"], t["output_tokens_per_s"]) == (16, 4.0, 24.0)
    assert t["ttft_ms"]["percentiles_ms"]["p50"] == 25.0  # sorted [10, 20, 25, 30][int(4 x 0.5)]


# --- LoadGen's token keys, hand-written -------------------------------------------------------------

_LINE = (':::MLLOG {{"key": "{k}", "value": {v}, "time_ms": 1.0, "namespace": "mlperf::logging", '
         '"event_type": "POINT_IN_TIME", "metadata": {{"is_error": false, "is_warning": false}}}}')
_VALUES = {
    "requested_use_token_latencies": "true", "requested_server_ttft_latency": 2000000,
    "requested_server_tpot_latency": 500000, "effective_target_latency_percentile": 0.99,
    "effective_scenario": '"Server"', "result_validity": '"INVALID"', "result_perf_constraints_met": "false",
    "result_min_duration_met": "true", "result_min_queries_met": "true", "early_stopping_met": "false",
    "early_stopping_ttft_result": '""', "early_stopping_tpot_result": '" * Run unsuccessful.\\n * Processed 3 queries."',
    "result_query_count": 3, "result_overlatency_query_count": 3, "result_50.00_percentile_latency_ns": 9000000,
    "result_99.00_percentile_latency_ns": 9500000, "result_first_token_50.00_percentile_latency_ns": 2500000,
    "result_first_token_99.00_percentile_latency_ns": 3000000, "result_time_per_output_token_50.00_percentile_ns":
    400000, "result_time_per_output_token_99.00_percentile_ns": 450000, "result_completed_tokens_per_second": 41.5,
}
_TRACE = """{"traceEvents":[
{"name":"Token_Latency","ph": "C","pid":7,"ts":144.498,"args":{ "issue_delay":312,"issue_to_done":2221146}},
{"name":"Latency","ph": "C","pid":7,"ts":144.498,"args":{ "issue_delay":312,"issue_to_done":6513456}},
{"name":"Sample","cat":"default","ph":"b","pid":7,"id":1,"ts":45072.517,"args":{"sample_seq":1,"query_seq":1,"sample_idx":1,"issue_start_ns":115746,"complete_ns":6698457}},
{"name":"Sample","cat":"default","ph":"b","pid":7,"id":0,"ts":144.498,"args":{"sample_seq":0,"query_seq":0,"sample_idx":5,"issue_start_ns":312,"complete_ns":6513768}},
{"name":"Token_Latency","ph": "C","pid":7,"ts":45072.517,"args":{ "issue_delay":115746,"issue_to_done":2393998}},
"""


def test_the_detail_log_gives_token_percentiles_and_which_bound_was_missed(tmp_path: Path) -> None:
    path = tmp_path / "detail.txt"
    path.write_text("\n".join(_LINE.format(k=k, v=v) for k, v in _VALUES.items()) + "\n")
    f = figures(read_detail_log(path))
    t = f.tokens
    assert (t.ttft_bound_ms, t.tpot_bound_ms, t.completed_tokens_per_s) == (2.0, 0.5, 41.5)
    assert t.ttft_percentiles_ms == {"p50": 2.5, "p99": 3.0} and t.tpot_percentiles_ms == {"p50": 0.4, "p99": 0.45}
    assert f.percentiles_ms == {"p50": 9.0, "p99": 9.5}  # the request latencies, first-token keys left out
    assert f.why[0] == "TTFT bound missed: p99 TTFT 3 ms > 2 ms"  # p99 TPOT 0.45 <= 0.5: not named
    assert "TPOT: * Run unsuccessful. * Processed 3 queries. TTFT: not checked" in f.why[1]


def test_the_trace_pairs_each_first_token_with_its_sample_by_scheduled_time(tmp_path: Path) -> None:
    (tmp_path / "trace.json").write_text(_TRACE)
    a, b = read_trace_samples(tmp_path / "trace.json")
    assert (a.sample_index, a.first_token_ms, a.latency_ms) == (5, 2.221458, 6.513768)  # 312 + 2221146 ns
    assert (b.sample_index, b.first_token_ms) == (1, 2.509744)  # 115746 + 2393998 ns
    (tmp_path / "lost.json").write_text(_TRACE.rsplit("\n", 2)[0] + "\n")  # the second first token missing
    with pytest.raises(ValueError, match="cannot be paired"):
        read_trace_samples(tmp_path / "lost.json")


# --- refused at validate ------------------------------------------------------------------------------


@pytest.mark.parametrize(("steps", "gen", "key", "fragment"), [
    ("target_qps: 2, latency_bound_ms: 100, ttft_bound_ms: 100, tpot_bound_ms: 50", GEN,
     "scenarios[0].latency_bound_ms", "judged by TTFT and TPOT"),
    ("target_qps: 2, tpot_bound_ms: 50", GEN, "scenarios[0].ttft_bound_ms", "required for a causal LM"),
    ("target_qps: 2, ttft_bound_ms: 100", GEN, "scenarios[0].tpot_bound_ms", "required for a causal LM"),
    ("target_qps: 2, ttft_bound_ms: 100, tpot_bound_ms: 50", "generation: {prompt: '{text}', max_new_tokens: 4}",
     "generation.min_new_tokens", "at least 2 new tokens"),
    ("target_qps: 2, ttft_bound_ms: 100, tpot_bound_ms: 0", GEN, "scenarios[0].tpot_bound_ms", "greater than 0"),
])
def test_lm_bounds_are_refused_in_one_line_exit_2_nothing_written(
    lm: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], steps: str, gen: str, key: str,
    fragment: str,
) -> None:
    model, data = lm
    path = write_scenario(tmp_path / "in", lm_suite_yaml(model, data, _server(steps), gen))
    before = sorted(p.name for p in path.parent.iterdir())
    for command in (["validate", str(path)], ["run", str(path), "--output", str(tmp_path / "out"), "--quiet"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error:"), err
        assert key in err and fragment in err, err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in path.parent.iterdir()) == before


@pytest.mark.parametrize(("steps", "key", "fragment"), [
    ("target_qps: 2, latency_bound_ms: 100, ttft_bound_ms: 100", "scenarios[0].ttft_bound_ms", "only a causal LM"),
    ("target_qps: 2, latency_bound_ms: 100, tpot_bound_ms: 10", "scenarios[0].tpot_bound_ms", "only a causal LM"),
    ("target_qps: 2", "scenarios[0].latency_bound_ms", "required for an encoder"),
])
def test_encoder_bounds_are_refused_in_one_line(tiny_bert_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str], steps: str, key: str,
                                                fragment: str) -> None:
    text = f"""
model: {{path: {json.dumps(str(tiny_bert_dir))}, device: cpu}}
inputs: {{kind: synthetic, sequence_length: 16, num_samples: 8}}
scenarios:{_server(steps)}
"""
    assert main(["validate", str(write_scenario(tmp_path, text))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key in err and fragment in err, err


# --- real LoadGen runs ---------------------------------------------------------------------------------


def _run(tmp_path: Path, model: Path, data: Path, settings: str) -> tuple[dict, Path]:
    out = tmp_path / "out"
    path = write_scenario(tmp_path, lm_suite_yaml(model, data, _server(settings), GEN))
    assert main(["run", str(path), "--output", str(out), "--quiet"]) == 0
    (result,) = json.loads((out / "results.json").read_text(encoding="utf-8"))["scenarios"]
    return result, out


def _loadgen_values(detail: Path) -> dict:
    """The detail log's key -> value, read here without hf_cost's parser."""
    lines = [ln for ln in detail.read_text(encoding="utf-8").splitlines() if ln.startswith(":::MLLOG ")]
    return {e["key"]: e["value"] for e in (json.loads(ln[len(":::MLLOG "):]) for ln in lines)}


@needs_loadgen
def test_lm_server_reports_loadgens_token_latencies_and_goodput(lm: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = lm
    res, out = _run(tmp_path, model, data, f"target_qps: 3, ttft_bound_ms: 60000, tpot_bound_ms: 60000, "
                                           f"latency_percentile: 0.5, {REDUCED}")
    m, raw = res["metrics"], res["raw"]
    (probe,) = m["probes"]
    t, n = probe["tokens"], probe["queries"]
    assert n >= 12 and all(len(raw[k]) == n for k in ("latencies_ms", "ttft_ms", "tpot_ms", "output_tokens"))
    for lat, ttft, tpot, k in zip(raw["latencies_ms"], raw["ttft_ms"], raw["tpot_ms"], raw["output_tokens"]):
        assert 0 < ttft <= lat and 2 <= k <= 4
        assert tpot == pytest.approx((lat - ttft) / (k - 1), abs=1e-5)  # LoadGen's TPOT, to the nanosecond
    # the percentiles are LoadGen's own, as its detail log states them
    lg = _loadgen_values(out / probe["log_dir"] / "mlperf_log_detail.txt")
    for p in ("50.00", "90.00", "99.00"):
        key = "p" + p.rstrip("0").rstrip(".")
        assert t["ttft_ms"]["percentiles_ms"][key] == lg[f"result_first_token_{p}_percentile_latency_ns"] / 1e6
        assert t["tpot_ms"]["percentiles_ms"][key] == lg[f"result_time_per_output_token_{p}_percentile_ns"] / 1e6
    assert lg["requested_use_token_latencies"] is True and lg["requested_server_ttft_latency"] == 60_000_000_000
    # goodput by hand from the raw values
    good = sum(1 for a, b in zip(raw["ttft_ms"], raw["tpot_ms"]) if a <= 60000 and b <= 60000)
    assert t["goodput_requests"] == good == n  # 60 s bounds: every request meets both
    assert t["goodput_qps"] == pytest.approx(probe["completed_qps"] * good / n)
    # LoadGen's tokens/s and completed QPS share one duration: tokens/s = QPS x tokens / (n - 1)
    assert t["output_tokens"] == sum(raw["output_tokens"])
    assert t["output_tokens_per_s"] == pytest.approx(probe["completed_qps"] * sum(raw["output_tokens"]) / (n - 1),
                                                     rel=1e-4)
    assert (m["completed_qps"], m["output_tokens_per_s"], m["goodput_qps"]) == (
        probe["completed_qps"], t["output_tokens_per_s"], t["goodput_qps"])
    assert m["latency_bound_ms"] is None and (m["ttft_bound_ms"], m["tpot_bound_ms"]) == (60000, 60000)
    assert probe["overlatency_queries"] is None  # LoadGen counts it against a request bound the LM does not have
    assert res["settings"]["generation"]["min_new_tokens"] == 2
    assert any("TPOT: LoadGen's" in note for note in res["notes"])
    # 60 s bounds at p50: every request is within them, so LoadGen's early stopping passes and the run is VALID
    assert probe["result"] == "VALID", probe["why"]
    from hf_cost.report.results_file import load_results_file

    (loaded,) = load_results_file(out / "results.json").scenarios  # read back as select and cost read it
    rate = loaded.metrics.slo_rate(loaded)
    assert rate.qps == 3 and rate.output_tokens_per_s == t["output_tokens_per_s"]
    assert rate.bounds == "p50 TTFT ≤ 60000 ms, p50 TPOT ≤ 60000 ms"


@needs_loadgen
def test_an_impossible_ttft_bound_is_invalid_with_no_goodput(lm: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = lm
    res, out = _run(tmp_path, model, data, "target_qps: 4, ttft_bound_ms: 0.001, tpot_bound_ms: 60000, "
                                           "min_duration_s: 1, min_query_count: 8, max_batch_size: 4")
    (probe,) = res["metrics"]["probes"]
    raw = res["raw"]
    assert probe["result"] == res["validity"]["result"] == "INVALID"
    assert probe["perf_constraints_met"] is False
    assert any(w.startswith("TTFT bound missed: p99 TTFT") for w in probe["why"]), probe["why"]
    assert min(raw["ttft_ms"]) > 0.001  # no request met the TTFT bound: goodput is nothing
    assert (probe["tokens"]["goodput_requests"], probe["tokens"]["goodput_qps"]) == (0, 0.0)
    # every request's first token came before it completed, and LoadGen's trace had one for each
    samples = read_trace_samples_from(out / probe["log_dir"])
    assert [s.first_token_ms for s in samples] == raw["ttft_ms"]


def read_trace_samples_from(log_dir: Path) -> list:
    """The kept trace is gzipped: unpack it beside and read it with the engine's reader."""
    import gzip

    plain = log_dir.parent / "trace-copy.json"
    plain.write_bytes(gzip.decompress((log_dir / "mlperf_log_trace.json.gz").read_bytes()))
    return read_trace_samples(plain)


@needs_loadgen
def test_find_peak_reports_the_highest_valid_probes_tokens(lm: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = lm
    res, _ = _run(tmp_path, model, data, "target_qps: 4, ttft_bound_ms: 60000, tpot_bound_ms: 60000, "
                                         "latency_percentile: 0.5, min_duration_s: 0.5, min_query_count: 8, "
                                         "max_batch_size: 4, find_peak: true, max_probes: 2")
    m, raw = res["metrics"], res["raw"]
    assert [p["target_qps"] for p in m["probes"]] == [4, 8]  # VALID at 4 (60 s bounds), so doubled once
    valid = [p for p in m["probes"] if p["result"] == "VALID"]
    assert m["peak_qps"] == max(p["target_qps"] for p in valid)
    rep = m["probes"][m["reported_probe"]]
    assert rep["target_qps"] == m["peak_qps"]
    assert (m["output_tokens_per_s"], m["goodput_qps"]) == (rep["tokens"]["output_tokens_per_s"],
                                                            rep["tokens"]["goodput_qps"])
    for j, p in enumerate(m["probes"]):  # each probe's token figures come from its own raw requests
        mine = [k for k, probe in zip(raw["output_tokens"], raw["probe"]) if probe == j]
        assert len(mine) == p["queries"] and p["tokens"]["output_tokens"] == sum(mine)


@needs_loadgen
def test_an_lm_that_raises_mid_run_fails_its_step_without_hanging(lm: tuple[Path, Path], tmp_path: Path) -> None:
    from loadgen_helpers import run_with_failing_forward

    model, data = lm
    path = write_scenario(tmp_path, lm_suite_yaml(model, data, _server(
        "name: breaks, target_qps: 8, ttft_bound_ms: 60000, tpot_bound_ms: 60000, min_duration_s: 0.5, "
        "min_query_count: 8"), GEN))
    out = tmp_path / "out"
    proc = run_with_failing_forward(path, out, 2, "injected failure in generate", method="generate")
    assert proc.returncode == 3, proc.stderr[-3000:]  # the run completed; the step failed
    (e,) = json.loads((out / "results.json").read_text())["scenarios"]
    assert e["status"] == "failed" and e["metrics"] is None
    assert "injected failure in generate" in e["error"] and "completed unserved" in e["error"]
