"""The `server` kind: MLPerf LoadGen's Server scenario through the dynamic batcher.

Without LoadGen running: the config's refusals, `check` without LoadGen, the detail-log and
trace parsers on small hand-written logs, the find_peak search on a fake probe. With real
LoadGen runs of the tiny model (0.5 s each): one `python -m hf_cost run` with a single probe
and a find_peak search, and a candidate that raises mid-run (in a subprocess with a timeout,
so a hang fails the test instead of blocking it).
"""

from __future__ import annotations

import gzip
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from loadgen_helpers import run_with_failing_forward
from scenario_helpers import SEQ

from hf_cost.cli import main
from hf_cost.engines.loadgen_log import figures, read_detail_log, read_trace_samples
from hf_cost.engines.peak import find_peak
from hf_cost.measure.latency import percentile
from hf_cost.steps.server import usable_cores

needs_loadgen = pytest.mark.skipif(
    __import__("importlib").util.find_spec("mlperf_loadgen") is None, reason='pip install -e ".[loadgen]"'
)


def suite(model_dir: Path, steps: str) -> str:
    return textwrap.dedent(f"""
        name: server-test
        model: {{path: {json.dumps(str(model_dir))}, device: cpu}}
        inputs: {{kind: synthetic, sequence_length: {SEQ}, num_samples: 32}}
        scenarios:
        """) + textwrap.indent(textwrap.dedent(steps).strip(), "  ") + "\n"


# --- refused before anything runs ------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "key", "says"), [
    ("target_qps: 0, latency_bound_ms: 10", "target_qps", "greater than 0"),
    ("target_qps: -5, latency_bound_ms: 10", "target_qps", "greater than 0"),
    ("target_qps: 10, latency_bound_ms: 0", "latency_bound_ms", "greater than 0"),
    ("target_qps: 10, latency_bound_ms: 10, latency_percentile: 1.0", "latency_percentile", "less than 1"),
    ("target_qps: 10, latency_bound_ms: 10, latency_percentile: 0", "latency_percentile", "greater than 0"),
    ("target_qps: 10, latency_bound_ms: 10, workers: 100000", "workers", "usable cores"),
    ("target_qps: 10, latency_bound_ms: 10, max_probes: 1000", "max_probes", "less than or equal"),
    ("target_qps: 10, latency_bound_ms: 10, max_queue_delay_ms: -1", "max_queue_delay_ms", "greater than or equal"),
    ("target_qps: 10, latency_bound_ms: 10, min_target_qps: 0", "min_target_qps", "greater than 0"),
    ("target_qps: 10, latency_bound_ms: 10, min_target_qps: 20", "min_target_qps", "above target_qps"),
])
def test_bad_numbers_are_refused_by_the_config(setting: str, key: str, says: str, tiny_bert_dir: Path,
                                               tmp_path: Path, write_scenario: Any,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(tmp_path, suite(tiny_bert_dir, f"- {{kind: server, {setting}}}"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"scenarios[0].{key}" in err and says in err


def test_check_refuses_a_missing_loadgen_in_one_line(tiny_bert_dir: Path, tmp_path: Path, write_scenario: Any,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import hf_cost.engines.loadgen as engine

    monkeypatch.setattr(engine, "loadgen_available", lambda: False)
    path = write_scenario(tmp_path, suite(tiny_bert_dir, "- {kind: server, target_qps: 10, latency_bound_ms: 10}"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "scenarios[0].kind" in err and 'pip install -e ".[loadgen]"' in err


# --- LoadGen's logs, hand-written ---------------------------------------------------------------------

DETAIL = """\
:::MLLOG {"key": "loadgen_version", "value": "6.0.17 @ d6147c7eb7", "time_ms": 0.01, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "effective_target_latency_percentile", "value": 0.99, "time_ms": 0.04, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "effective_min_duration_ms", "value": 500, "time_ms": 0.04, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "generic_message", "value": "Starting performance mode", "time_ms": 0.05, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "error_invalid_config", "value": "a made-up error", "time_ms": 0.06, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": true, "is_warning": false}}
:::MLLOG {"key": "warning_generic_message", "value": "a made-up warning", "time_ms": 0.06, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": true}}
:::MLLOG {"key": "result_validity", "value": "INVALID", "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_perf_constraints_met", "value": false, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_min_duration_met", "value": true, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_min_queries_met", "value": true, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "early_stopping_met", "value": false, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_invalid_reason", "value": "Reduce target QPS to improve latency. ", "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "early_stopping_result", "value": " * Run unsuccessful.\\n * Processed 54 queries.\\n * Would need to run at least 405 more queries", "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_query_count", "value": 54, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_overlatency_query_count", "value": 3, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_scheduled_samples_per_sec", "value": 101.495, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_completed_samples_per_sec", "value": 101.223, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_mean_latency_ns", "value": 1486885, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_50.00_percentile_latency_ns", "value": 1340499, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_99.00_percentile_latency_ns", "value": 3562070, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
:::MLLOG {"key": "result_99.90_percentile_latency_ns", "value": 3600000, "time_ms": 530.1, "namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": false}}
not a log line
"""

TRACE = """\
{"traceEvents":[
{"name":"LogDetail","ph":"X","pid":7,"tid":7,"ts":10490.478,"dur":20.302,"args":{"key":""loadgen_version""}},
{"name":"Sample","cat":"default","ph":"b","pid":7,"id":1,"ts":2500.5,"args":{"sample_seq":1,"query_seq":1,"sample_idx":3,"issue_start_ns":900,"complete_ns":2000000}},
{"name":"Sample","cat":"default","ph":"e", "pid":7,"id":1,"ts":4500.5},
{"name":"Sample","cat":"default","ph":"b","pid":7,"id":0,"ts":180.0,"args":{"sample_seq":0,"query_seq":0,"sample_idx":27,"issue_start_ns":834,"complete_ns":1154624}},
{"name":"Latency","ph": "C","pid":7,"ts":180.0,"args":{ "issue_delay":834,"issue_to_done":1153790}},
"""


def test_the_detail_log_gives_the_result_figures_and_why_it_is_invalid(tmp_path: Path) -> None:
    (tmp_path / "detail.txt").write_text(DETAIL)
    f = figures(read_detail_log(tmp_path / "detail.txt"))
    assert f.validity == "INVALID" and f.version == "6.0.17 @ d6147c7eb7"
    assert (f.queries, f.overlatency_queries, f.scheduled_qps, f.completed_qps) == (54, 3, 101.495, 101.223)
    assert f.percentiles_ms == {"p50": 1.340499, "p99": 3.56207, "p99.9": 3.6}
    assert f.mean_ms == 1.486885 and f.min_ms is None
    assert (f.perf_constraints_met, f.min_duration_met, f.min_queries_met, f.early_stopping_met) == (
        False, True, True, False)
    assert f.early_stopping_detail == "* Run unsuccessful. * Processed 54 queries. * Would need to run at least 405 more queries"
    assert f.why == [
        "latency bound missed at p99 (3 of 54 queries over the bound)",
        "early stopping not met: * Run unsuccessful. * Processed 54 queries. * Would need to run at least 405 more queries",
        "Reduce target QPS to improve latency. ",
        "LoadGen error: error_invalid_config: a made-up error",
    ]
    assert f.warnings == ["warning_generic_message: a made-up warning"]


def test_a_valid_run_has_no_reasons(tmp_path: Path) -> None:
    valid = DETAIL.replace('"INVALID"', '"VALID"').replace('"result_perf_constraints_met", "value": false',
                                                           '"result_perf_constraints_met", "value": true')
    (tmp_path / "detail.txt").write_text(valid)
    f = figures(read_detail_log(tmp_path / "detail.txt"))
    assert f.validity == "VALID" and f.why == [] and f.perf_constraints_met is True


def test_the_trace_gives_each_samples_latency_from_its_scheduled_time_in_issue_order(tmp_path: Path) -> None:
    (tmp_path / "trace.json").write_text(TRACE)  # not valid JSON as a whole, as LoadGen writes it
    samples = read_trace_samples(tmp_path / "trace.json")
    assert [(s.sample_seq, s.sample_index, s.scheduled_s, s.latency_ms, s.issue_delay_ms) for s in samples] == [
        (0, 27, 180.0e-6, 1.154624, 0.000834), (1, 3, 2500.5e-6, 2.0, 0.0009)]


# --- the find_peak search, on a fake probe ------------------------------------------------------------


def test_find_peak_doubles_then_bisects_within_its_probe_budget() -> None:
    s = find_peak(lambda q: q <= 137, start=10, max_probes=20)
    assert [q for q, _ in s.probed] == [10, 20, 40, 80, 160, 120, 140, 130, 135]
    assert s.peak == 135 and s.bracket == (135, 140) and "within 5%" in s.stopped
    capped = find_peak(lambda q: q <= 137, start=10, max_probes=4)
    assert len(capped.probed) == 4 and capped.peak == 80 and "budget (4 probes)" in capped.stopped


def test_find_peak_halves_when_the_start_is_already_invalid() -> None:
    s = find_peak(lambda q: q <= 137, start=1000, max_probes=5)
    assert [q for q, _ in s.probed] == [1000, 500, 250, 125, 187.5] and s.peak == 125
    none = find_peak(lambda q: False, start=10, max_probes=3)
    assert none.peak is None and len(none.probed) == 3
    ceiling = find_peak(lambda q: True, start=10, max_probes=30, ceiling=100)
    assert ceiling.peak == 80 and "ceiling" in ceiling.stopped
    floored = find_peak(lambda q: q <= 5, start=100, max_probes=10, floor=20)
    assert [q for q, _ in floored.probed] == [100, 50, 25] and floored.peak is None
    assert floored.stopped == "halving again would go below the floor of 20"
    above = find_peak(lambda q: q <= 30, start=100, max_probes=10, floor=20)  # the floor only stops halving
    assert [q for q, _ in above.probed][:3] == [100, 50, 25] and above.peak is not None and above.peak >= 25


# --- real LoadGen runs --------------------------------------------------------------------------------


def loadgen_detail(log_dir: Path) -> dict[str, Any]:
    """The detail log read independently of hf_cost's parser: key -> value."""
    out = {}
    for line in (log_dir / "mlperf_log_detail.txt").read_text().splitlines():
        if line.startswith(":::MLLOG"):
            entry = json.loads(line[len(":::MLLOG"):])
            out[entry["key"]] = entry["value"]
    return out


@pytest.fixture(scope="module")
def server_run(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("server")
    path = tmp / "scenario.yaml"
    path.write_text(suite(tiny_bert_dir, """
        - {kind: server, name: one, target_qps: 100, latency_bound_ms: 100, latency_percentile: 0.9,
           min_duration_s: 0.5, min_query_count: 10, max_batch_size: 4, max_queue_delay_ms: 1, workers: WORKERS}
        - {kind: server, name: peak, target_qps: 100, latency_bound_ms: 50, latency_percentile: 0.9,
           min_duration_s: 0.5, min_query_count: 10, find_peak: true, max_probes: 3}
        """).replace("WORKERS", str(min(2, usable_cores()))))
    out = tmp / "out"
    rc = main(["run", str(path), "--output", str(out), "--quiet"])
    return {"rc": rc, "out": out, "results": json.loads((out / "results.json").read_text())}


def entry(run: dict[str, Any], name: str) -> dict[str, Any]:
    (e,) = [s for s in run["results"]["scenarios"] if s["name"] == name]
    return e


@needs_loadgen
def test_a_server_run_writes_loadgens_figures_raw_latencies_and_logs(server_run: dict[str, Any]) -> None:
    assert server_run["rc"] in (0, 3)  # 3 would be a failed step: shown below
    e = entry(server_run, "one")
    assert (e["kind"], e["status"], e["candidate"]) == ("server", "ok", "base"), e.get("error")
    m = e["metrics"]
    (p,) = m["probes"]
    lat = e["raw"]["latencies_ms"]
    assert m["queries"] == p["queries"] == len(lat) == len(e["raw"]["queue_ms"]) > 0
    assert set(e["raw"]["probe"]) == {0}
    log_dir = server_run["out"] / p["log_dir"]
    assert p["log_dir"] == "loadgen/one/base/probe-1-qps-100"
    for name in ("mlperf_log_detail.txt", "mlperf_log_summary.txt", "mlperf_log_trace.json.gz"):
        assert (log_dir / name).is_file()
    detail = loadgen_detail(log_dir)
    ordered = sorted(lat)
    for key, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):  # raw == LoadGen's own percentiles
        assert p["latency_ms"]["percentiles_ms"][key] == percentile(ordered, q)
        assert percentile(ordered, q) == pytest.approx(detail[f"result_{q * 100:.2f}_percentile_latency_ns"] / 1e6)
    assert p["target_latency_ms"] == percentile(ordered, 0.9)
    assert (p["result"], p["scheduled_qps"], p["completed_qps"]) == (
        detail["result_validity"], detail["result_scheduled_samples_per_sec"], detail["result_completed_samples_per_sec"])
    assert e["validity"]["result"] == p["result"] and e["validity"]["reduced_settings"] is True
    assert sum(p["batch_size_histogram"].values()) == p["batches"]
    assert sum(int(b) * n for b, n in p["batch_size_histogram"].items()) == p["queries"]
    assert max(int(b) for b in p["batch_size_histogram"]) <= 4 and all(b <= 4 for b in e["raw"]["batch_size"])
    assert all(q >= 0 for q in e["raw"]["queue_ms"]) and set(e["raw"]["worker"]) <= {0, 1}
    assert m["workers"] == min(2, usable_cores()) and m["torch_threads_per_worker"] >= 1
    with gzip.open(log_dir / "mlperf_log_trace.json.gz", "rt") as fh:
        assert sum('"name":"Sample"' in line and '"ph":"b"' in line for line in fh) == len(lat)
    manifest = json.loads((server_run["out"] / ".hf_cost" / "manifest.json").read_text())
    assert "loadgen/one" in json.dumps(manifest)


@needs_loadgen
def test_find_peak_probes_within_its_budget_and_reports_the_highest_valid(server_run: dict[str, Any]) -> None:
    e = entry(server_run, "peak")
    assert e["status"] == "ok", e.get("error")
    m = e["metrics"]
    probes = m["probes"]
    assert 1 <= len(probes) <= 3 and m["search"] == "find_peak" and m["max_probes"] == 3
    assert probes[0]["target_qps"] == 100
    valid = [p["target_qps"] for p in probes if p["result"] == "VALID"]
    assert m["peak_qps"] == (max(valid) if valid else None)
    assert len(e["raw"]["latencies_ms"]) == m["queries"] == sum(p["queries"] for p in probes)
    for j, p in enumerate(probes):
        assert e["raw"]["probe"].count(j) == p["queries"]
        assert (server_run["out"] / p["log_dir"] / "mlperf_log_detail.txt").is_file()
    assert any(f"find_peak: {len(probes)} LoadGen runs (at most 3)" in n for n in e["notes"])


@needs_loadgen
def test_the_rows_and_the_loader_know_the_server_kind(server_run: dict[str, Any]) -> None:
    from hf_cost.report.results_file import load_results_file
    from hf_cost.steps.server import ServerMetrics

    report = (server_run["out"] / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| one (base)"))
    assert "100 QPS: p90" in row and "bound 100 ms" in row
    peak = next(line for line in report.splitlines() if line.startswith("| peak (base)"))
    assert "probes" in peak and ("peak " in peak or "no VALID QPS" in peak)
    run = load_results_file(server_run["out"] / "results.json")
    assert all(isinstance(s.metrics, ServerMetrics) for s in run.scenarios if s.kind == "server")


@needs_loadgen
def test_the_cost_at_the_latency_bound_and_selection_read_the_real_runs_peak(server_run: dict[str, Any]) -> None:
    """The slo_rate hook on LoadGen's own results: the highest VALID target over both server steps,
    priced at 3.6 EUR/h (1e6 / QPS / 3600 x 3.6 = 1000 / QPS EUR per 1M), and selection's metrics."""
    from types import SimpleNamespace as NS

    from hf_cost.config.cost import Budget, Pricing, Workload
    from hf_cost.report.cost import build_costs
    from hf_cost.report.results_file import load_results_file
    from hf_cost.select.from_results import candidate_metrics

    run = load_results_file(server_run["out"] / "results.json")
    valid = {s.name: max((p.target_qps for p in s.metrics.probes if p.result == "VALID"), default=None)
             for s in run.scenarios if s.kind == "server" and s.ok}
    assert valid["peak"] == entry(server_run, "peak")["metrics"]["peak_qps"]
    best = max((q for q in valid.values() if q), default=None)
    suite = NS(hardware=Pricing(price_per_hour=3.6, currency="EUR"), workload=Workload(), budget=Budget())
    costs = build_costs(suite, run.scenarios, run.candidates)
    fig = costs.rows[0].per_million_at_slo
    run.costs = costs
    metrics = candidate_metrics(run)["base"]
    if best is None:  # this machine kept neither VALID: no figure, no metric
        assert fig is None and "server_peak_qps" not in metrics and "cost_per_million_at_slo" not in metrics
        return
    assert fig.value == pytest.approx(1000 / best) and "LoadGen VALID" in fig.derived_from
    assert metrics["server_peak_qps"].value == best
    assert metrics["cost_per_million_at_slo"].value == pytest.approx(1000 / best)


@needs_loadgen
def test_a_candidate_that_raises_mid_run_fails_the_step_and_loadgen_does_not_hang(
        tiny_bert_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(suite(tiny_bert_dir, """
        - {kind: server, name: breaks, target_qps: 100, latency_bound_ms: 100, min_duration_s: 0.5,
           min_query_count: 10}
        """))
    out = tmp_path / "out"
    proc = run_with_failing_forward(path, out, 6, "injected failure in forward")
    assert proc.returncode == 3, proc.stderr[-3000:]  # the run completed; a step failed
    e = entry({"results": json.loads((out / "results.json").read_text())}, "breaks")
    assert e["status"] == "failed" and e["metrics"] is None
    assert "injected failure in forward" in e["error"] and "completed unserved" in e["error"]
    assert "FAILED" in proc.stderr
    assert (out / "loadgen" / "breaks" / "base" / "probe-1-qps-100" / "mlperf_log_detail.txt").is_file()


def test_a_batcher_larger_than_the_memory_estimate_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """validate checks the batcher's max_batch_size like any batch size (measure/memory_estimate.py):
    with 64 MiB free, a batch of 4096 BERT-base sequences of 128 tokens is refused at its key."""
    from types import SimpleNamespace as NS

    from hf_cost.config.schema import suite_model
    from hf_cost.errors import ConfigError
    from hf_cost.measure import memory_estimate

    suite = suite_model().model_validate({
        "model": {"path": "/x", "device": "cpu"},
        "scenarios": [{"kind": "server", "target_qps": 10, "latency_bound_ms": 100, "max_batch_size": 4096}],
    })
    config = NS(model_type="bert", num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
                intermediate_size=3072, vocab_size=30522, torch_dtype="float32")
    monkeypatch.setattr(memory_estimate, "available_bytes", lambda device: (64 * 2**20, "free memory"))
    with pytest.raises(ConfigError) as refused:
        memory_estimate.check_batch_sizes(suite, config)
    assert refused.value.where == "scenarios[0].max_batch_size" and "batch size 4096" in str(refused.value)
    monkeypatch.setattr(memory_estimate, "available_bytes", lambda device: (2**40, "free memory"))
    memory_estimate.check_batch_sizes(suite, config)  # fits in 1 TiB


def test_a_log_folder_that_exists_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """run_server removes the trace it compressed: only in a folder it made, never in one it found."""
    from hf_cost.engines.loadgen import TestPlan
    from hf_cost.engines.loadgen_server import Batching, run_server

    found = tmp_path / "probe-1-qps-10"
    found.mkdir()
    mine = found / "mlperf_log_trace.json"
    mine.write_text("the user's file", encoding="utf-8")
    settings = TestPlan.server(10.0, 100.0, 0.9, 0.5, 10)
    with pytest.raises(FileExistsError):
        run_server(object(), object(), settings, Batching(1, 0.0, 1), found)
    assert mine.read_text(encoding="utf-8") == "the user's file" and sorted(found.iterdir()) == [mine]


def test_a_user_folder_where_the_logs_would_go_stops_the_run_in_one_line(
        tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(suite(tiny_bert_dir, """
        - {kind: server, name: one, target_qps: 50, latency_bound_ms: 100, min_duration_s: 0.5}
        """))
    user = tmp_path / "out" / "loadgen" / "one" / "notes.txt"
    user.parent.mkdir(parents=True)
    user.write_text("mine", encoding="utf-8")
    assert main(["run", str(path), "--output", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "loadgen/one" in err[0], err
    assert user.read_text(encoding="utf-8") == "mine" and not (tmp_path / "out" / "results.json").exists()
