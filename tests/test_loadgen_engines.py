"""`engine: loadgen` on single_stream and offline, `bucket_by_length`, and the `multi_stream` kind:
MLPerf LoadGen's SingleStream, Offline and MultiStream scenarios driving the candidate.

Without LoadGen running: the config's refusals (`validate`), `check` without LoadGen, the
detail-log figures and per-query latencies on hand-written logs, the bucketing order on
hand-made samples. With real LoadGen runs of the tiny model (0.5 s each): one
`python -m hf_cost run` of six steps on a dataset of very different text lengths, every figure
checked against LoadGen's own logs read here with json (not through hf_cost's parser), and a
candidate that raises mid-run (in a subprocess with a timeout, so a hang fails the test instead
of blocking it).

Lengths: every vocabulary word of the tiny tokenizer is one token, so a text of k words is
[CLS] + k + [SEP] = k + 2 tokens (capped at SEQ).
"""

from __future__ import annotations

import gzip
import itertools
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from loadgen_helpers import run_with_failing_forward
from scenario_helpers import SEQ, word_counts_csv

from hf_cost.cli import main
from hf_cost.engines.loadgen_log import (
    TraceSample,
    figures,
    query_latencies,
    read_detail_log,
)

needs_loadgen = pytest.mark.skipif(
    __import__("importlib").util.find_spec("mlperf_loadgen") is None, reason='pip install -e ".[loadgen]"'
)

# words per text: 1 to 14 words, 3 to 16 tokens; 64 rows, so the 64-sample set holds every row once
WORD_COUNTS = [1, 14, 2, 9, 1, 13, 5, 3, 14, 1, 7, 12, 2, 14, 4, 10] * 4
BS = 4


def synthetic_suite(model_dir: Path, steps: str) -> str:
    return textwrap.dedent(f"""
        name: loadgen-engines-test
        model: {{path: {json.dumps(str(model_dir))}, device: cpu}}
        inputs: {{kind: synthetic, sequence_length: {SEQ}, num_samples: 32}}
        scenarios:
        """) + textwrap.indent(textwrap.dedent(steps).strip(), "  ") + "\n"


def natural_suite(model_dir: Path, data: Path, steps: str) -> str:
    return textwrap.dedent(f"""
        name: loadgen-engines-test
        model: {{path: {json.dumps(str(model_dir))}, device: cpu}}
        inputs: {{dataset: {{path: {json.dumps(str(data))}}}, sequence_length: {SEQ}, num_samples: {len(WORD_COUNTS)}}}
        scenarios:
        """) + textwrap.indent(textwrap.dedent(steps).strip(), "  ") + "\n"


def validate_error(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """`validate` must exit 2 with one error line; that line."""
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# --- refused before anything runs ------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "key", "says"), [
    ("samples_per_query: 0", "samples_per_query", "greater than 0"),
    ("target_percentile: 1.0", "target_percentile", "less than 1"),
    ("target_percentile: 0", "target_percentile", "greater than 0"),
    ("min_duration_s: 2, max_duration_s: 1", "max_duration_s", "less than min_duration_s"),
])
def test_bad_multi_stream_settings_are_refused_in_one_line(setting: str, key: str, says: str, tiny_bert_dir: Path,
                                                           tmp_path: Path, write_scenario: Any,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(tmp_path, synthetic_suite(tiny_bert_dir, f"- {{kind: multi_stream, {setting}}}"))
    line = validate_error(path, capsys)
    assert f"scenarios[0].{key}" in line and says in line


def test_bucket_by_length_is_refused_with_fixed_lengths(tiny_bert_dir: Path, tmp_path: Path, write_scenario: Any,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(tmp_path, synthetic_suite(tiny_bert_dir, "- {kind: offline, bucket_by_length: true}"))
    line = validate_error(path, capsys)
    assert "scenarios[0].bucket_by_length" in line and "natural" in line
    # a dataset read at fixed lengths is refused the same way; at natural lengths it is accepted
    data = word_counts_csv(tmp_path / "t.csv", tiny_bert_dir, WORD_COUNTS)
    fixed = natural_suite(tiny_bert_dir, data, "- {kind: offline, bucket_by_length: true}").replace(
        f"num_samples: {len(WORD_COUNTS)}", f"num_samples: {len(WORD_COUNTS)}, lengths: fixed")
    line = validate_error(write_scenario(tmp_path, fixed, "fixed.yaml"), capsys)
    assert "scenarios[0].bucket_by_length" in line
    ok = write_scenario(tmp_path, natural_suite(tiny_bert_dir, data, "- {kind: offline, bucket_by_length: true}"),
                        "natural.yaml")
    assert main(["validate", str(ok)]) == 0


@pytest.mark.parametrize(("step", "key"), [
    ("{kind: single_stream, engine: loadgen}", "engine"),
    ("{kind: offline, engine: loadgen}", "engine"),
    ("{kind: multi_stream}", "kind"),
])
def test_check_refuses_a_missing_loadgen_in_one_line(step: str, key: str, tiny_bert_dir: Path, tmp_path: Path,
                                                     write_scenario: Any, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import hf_cost.engines.loadgen as engine

    monkeypatch.setattr(engine, "loadgen_available", lambda: False)
    path = write_scenario(tmp_path, synthetic_suite(tiny_bert_dir, f"- {step}"))
    line = validate_error(path, capsys)
    assert f"scenarios[0].{key}" in line and 'pip install -e ".[loadgen]"' in line


def test_the_loop_engine_needs_no_loadgen(tiny_bert_dir: Path, tmp_path: Path, write_scenario: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import hf_cost.engines.loadgen as engine

    monkeypatch.setattr(engine, "loadgen_available", lambda: False)
    path = write_scenario(tmp_path, synthetic_suite(tiny_bert_dir, """
        - {kind: single_stream}
        - {kind: offline, engine: loop}
        """))
    assert main(["validate", str(path)]) == 0


# --- the bucketing order, by hand --------------------------------------------------------------------


def test_bucket_order_sorts_by_token_count_and_keeps_ties_in_order() -> None:
    from hf_cost.steps.offline import bucket_order

    counts = [9, 3, 5, 3, 7]  # sample index -> tokens
    indices = [4, 0, 1, 3, 2, 1, 3]  # tokens 7, 9, 3, 3, 5, 3, 3
    # shortest first; the four 3-token draws (positions 2, 3, 5, 6) keep their order
    assert bucket_order(indices, counts) == [2, 3, 5, 6, 4, 0, 1]
    assert bucket_order([], counts) == []
    assert bucket_order([1, 3, 1], counts) == [0, 1, 2]  # all tied: unchanged


def test_bucketed_loadgen_samples_sort_by_their_index_s_token_count_stably() -> None:
    from types import SimpleNamespace as NS

    from hf_cost.engines.loadgen import bucketed

    counts = [9, 3, 5, 3, 7]
    items = [NS(id=k, index=i) for k, i in enumerate([4, 0, 1, 3, 2, 1, 3])]
    assert [s.id for s in bucketed(items, counts)] == [2, 3, 5, 6, 4, 0, 1]


# --- LoadGen's logs, hand-written ---------------------------------------------------------------------


def mllog(entries: dict[str, Any]) -> str:
    meta = {"is_error": False, "is_warning": False}
    return "".join(":::MLLOG " + json.dumps({"key": k, "value": v, "time_ms": 1.0, "namespace": "mlperf::logging",
                                             "event_type": "POINT_IN_TIME", "metadata": meta}) + "\n"
                   for k, v in entries.items())


SINGLE_STREAM = {
    "loadgen_version": "6.0.17 @ d6147c7eb7", "effective_scenario": "SingleStream",
    "effective_samples_per_query": 1, "effective_target_latency_percentile": 0.9,
    "result_validity": "VALID", "result_min_duration_met": True, "result_min_queries_met": True,
    "early_stopping_met": True,
    "early_stopping_result": " * Processed at least 64 queries (295).\n * Would discard 16 highest latency queries.",
    "result_query_count": 295, "result_qps_with_loadgen_overhead": 586.287,
    "result_qps_without_loadgen_overhead": 589.731, "early_stopping_latency_ss": 3390952,
    "early_stopping_latency_ms": 0, "result_min_latency_ns": 718290, "result_max_latency_ns": 12291691,
    "result_mean_latency_ns": 1695687, "result_50.00_percentile_latency_ns": 1454149,
    "result_90.00_percentile_latency_ns": 2118826, "result_99.00_percentile_latency_ns": 7049307,
}

MULTI_STREAM = {
    "loadgen_version": "6.0.17 @ d6147c7eb7", "effective_scenario": "MultiStream",
    "effective_samples_per_query": 8, "effective_target_latency_percentile": 0.99,
    "result_validity": "VALID", "result_min_duration_met": True, "result_min_queries_met": True,
    "early_stopping_met": True, "early_stopping_result": " * Processed at least 662 queries (700).",
    "result_query_count": 700, "result_qps_with_loadgen_overhead": 301.5,
    "result_qps_without_loadgen_overhead": 310.25, "early_stopping_latency_ss": 0,
    "result_50.00_percentile_per_query_latency_ns": 2462551,
    "result_99.00_percentile_per_query_latency_ns": 10634942,
    "early_stopping_latency_ms": 11000000,  # MultiStream's estimate: nanoseconds despite its name
    "result_50.00_percentile_latency_ns": 2462551, "result_99.00_percentile_latency_ns": 10634942,
}

OFFLINE = {
    "loadgen_version": "6.0.17 @ d6147c7eb7", "effective_scenario": "Offline",
    "effective_samples_per_query": 1214, "result_validity": "VALID", "result_min_duration_met": True,
    "result_min_queries_met": True, "early_stopping_met": True, "early_stopping_result": "",
    "result_query_count": 1, "result_samples_per_second": 1595.64, "result_max_latency_ns": 760822537,
    "result_50.00_percentile_latency_ns": 362141395,
}


def read_figures(tmp_path: Path, entries: dict[str, Any]) -> Any:
    (tmp_path / "detail.txt").write_text(mllog(entries), encoding="utf-8")
    return figures(read_detail_log(tmp_path / "detail.txt"))


def test_single_stream_figures_take_the_estimate_from_early_stopping_latency_ss(tmp_path: Path) -> None:
    f = read_figures(tmp_path, SINGLE_STREAM)
    assert (f.scenario, f.validity, f.why, f.queries, f.samples_per_query) == ("SingleStream", "VALID", [], 295, 1)
    assert f.early_stopping_latency_ms == 3.390952  # early_stopping_latency_ss, not the 0 early_stopping_latency_ms
    assert (f.qps_with_overhead, f.qps_without_overhead) == (586.287, 589.731)
    assert (f.scheduled_qps, f.completed_qps, f.samples_per_s) == (None, None, None)
    assert f.percentiles_ms == {"p50": 1.454149, "p90": 2.118826, "p99": 7.049307}
    assert (f.min_ms, f.max_ms, f.mean_ms) == (0.71829, 12.291691, 1.695687)
    assert f.early_stopping_met is True
    assert f.early_stopping_detail == ("* Processed at least 64 queries (295). "
                                       "* Would discard 16 highest latency queries.")


def test_multi_stream_figures_take_the_estimate_from_early_stopping_latency_ms(tmp_path: Path) -> None:
    f = read_figures(tmp_path, MULTI_STREAM)
    assert (f.scenario, f.validity, f.queries, f.samples_per_query) == ("MultiStream", "VALID", 700, 8)
    assert f.early_stopping_latency_ms == 11.0  # early_stopping_latency_ms (ns), not the 0 _ss
    assert (f.qps_with_overhead, f.qps_without_overhead) == (301.5, 310.25)
    assert (f.scheduled_qps, f.completed_qps, f.samples_per_s) == (None, None, None)
    # the per-query keys are not read as percentiles of their own
    assert f.percentiles_ms == {"p50": 2.462551, "p99": 10.634942}


def test_a_short_multi_stream_run_is_invalid_for_early_stopping(tmp_path: Path) -> None:
    short = dict(MULTI_STREAM, result_validity="INVALID", early_stopping_met=False, result_query_count=151,
                 early_stopping_latency_ms=0, result_invalid_reason="",
                 early_stopping_result=" * Only processed 151 queries.\n * Need to process at least 662 queries "
                                       "for early stopping.")
    f = read_figures(tmp_path, short)
    assert f.validity == "INVALID" and f.early_stopping_met is False
    assert f.early_stopping_latency_ms is None  # LoadGen writes 0 then: no estimate, not a 0 ms one
    single = read_figures(tmp_path, dict(SINGLE_STREAM, early_stopping_met=False, early_stopping_latency_ss=0))
    assert single.early_stopping_latency_ms is None
    assert f.why == [("early stopping not met: * Only processed 151 queries. * Need to process at least 662 "
                      "queries for early stopping.")]


def test_offline_figures_give_samples_per_second_and_no_stream_figures(tmp_path: Path) -> None:
    f = read_figures(tmp_path, OFFLINE)
    assert (f.scenario, f.validity, f.queries, f.samples_per_query) == ("Offline", "VALID", 1, 1214)
    assert f.samples_per_s == 1595.64 and f.max_ms == 760.822537
    assert (f.scheduled_qps, f.completed_qps, f.early_stopping_latency_ms) == (None, None, None)
    assert (f.qps_with_overhead, f.qps_without_overhead) == (None, None)
    assert f.early_stopping_detail == ""


def test_a_log_without_effective_scenario_has_no_estimate(tmp_path: Path) -> None:
    older = {k: v for k, v in SINGLE_STREAM.items() if k != "effective_scenario"}
    f = read_figures(tmp_path, older)
    assert f.scenario is None and f.early_stopping_latency_ms is None and f.queries == 295


def sample(seq: int, query: int, at: float, lat: float) -> TraceSample:
    return TraceSample(sample_seq=seq, sample_index=seq % 5, scheduled_s=at, latency_ms=lat, issue_delay_ms=0.0,
                       query_seq=query)


def test_a_querys_latency_is_its_slowest_sample_in_query_order() -> None:
    samples = [
        sample(4, 2, 0.030, 1.5), sample(5, 2, 0.030, 4.0),  # query 2, given first
        sample(0, 0, 0.001, 2.0), sample(1, 0, 0.001, 3.25),
        sample(3, 1, 0.0125, 0.5), sample(2, 1, 0.012, 0.75),  # query 1: its earliest schedule kept
    ]
    assert query_latencies(samples) == [(0, 0.001, 3.25), (1, 0.012, 0.75), (2, 0.030, 4.0)]
    assert query_latencies([sample(0, 7, 0.5, 9.0)]) == [(7, 0.5, 9.0)]
    assert query_latencies([]) == []


# --- real LoadGen runs --------------------------------------------------------------------------------


def loadgen_detail(log_dir: Path) -> dict[str, Any]:
    """The detail log read independently of hf_cost's parser: key -> value."""
    out = {}
    for line in (log_dir / "mlperf_log_detail.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith(":::MLLOG"):
            entry = json.loads(line[len(":::MLLOG"):])
            out[entry["key"]] = entry["value"]
    return out


def trace_samples(log_dir: Path) -> list[dict[str, Any]]:
    """The args of every Sample begin event of the gzipped trace, in LoadGen's sample_seq order."""
    found = []
    with gzip.open(log_dir / "mlperf_log_trace.json.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            if '"name":"Sample"' in line and '"ph":"b"' in line:
                found.append(json.loads(line.strip().rstrip(","))["args"])
    return sorted(found, key=lambda a: a["sample_seq"])


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * p)]


STEPS = f"""
    - {{kind: single_stream, name: ss, engine: loadgen, min_duration_s: 0.5, min_query_count: 80, warmup_queries: 3}}
    - {{kind: single_stream, name: ss95, engine: loadgen, target_percentile: 0.95, min_duration_s: 0.5,
       min_query_count: 150, warmup_queries: 3}}
    - {{kind: offline, name: lg, engine: loadgen, batch_sizes: [{BS}], min_duration_s: 0.5, min_sample_count: 64,
       warmup_batches: 1}}
    - {{kind: offline, name: lgb, engine: loadgen, bucket_by_length: true, batch_sizes: [{BS}], min_duration_s: 0.5,
       min_sample_count: 64, warmup_batches: 1}}
    - {{kind: offline, name: loop, batch_sizes: [{BS}], min_duration_s: 0.5, min_sample_count: 64, warmup_batches: 1}}
    - {{kind: offline, name: loopb, bucket_by_length: true, batch_sizes: [{BS}], min_duration_s: 0.5,
       min_sample_count: 64, warmup_batches: 1}}
    - {{kind: multi_stream, name: ms, samples_per_query: 4, min_duration_s: 0.5, min_query_count: 40,
       warmup_queries: 2}}
    """


@pytest.fixture(scope="module")
def lg_run(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if __import__("importlib").util.find_spec("mlperf_loadgen") is None:
        pytest.skip('pip install -e ".[loadgen]"')
    from transformers import AutoTokenizer

    from hf_cost.config.schema import DatasetInputs
    from hf_cost.data.performance_set import build_performance_set

    tmp = tmp_path_factory.mktemp("loadgen-engines")
    data = word_counts_csv(tmp / "texts.csv", tiny_bert_dir, WORD_COUNTS)
    path = tmp / "scenario.yaml"
    path.write_text(natural_suite(tiny_bert_dir, data, STEPS), encoding="utf-8")
    out = tmp / "out"
    rc = main(["run", str(path), "--output", str(out), "--quiet"])
    # each perf-set sample's token count, from the same inputs (the QSL index LoadGen's trace names)
    inputs = DatasetInputs(kind="dataset", dataset={"path": str(data)}, sequence_length=SEQ,
                           num_samples=len(WORD_COUNTS))
    pset = build_performance_set(inputs, AutoTokenizer.from_pretrained(str(tiny_bert_dir)), torch.device("cpu"))
    lengths = pset.token_counts()
    assert sorted(lengths) == sorted(min(k + 2, SEQ) for k in WORD_COUNTS)
    return {"rc": rc, "out": out, "results": json.loads((out / "results.json").read_text(encoding="utf-8")),
            "lengths": lengths}


def entry(run: dict[str, Any], name: str) -> dict[str, Any]:
    (e,) = [s for s in run["results"]["scenarios"] if s["name"] == name]
    assert e["status"] == "ok", e.get("error")
    return e


@needs_loadgen
def test_the_run_completed_and_its_manifest_names_every_log_folder(lg_run: dict[str, Any]) -> None:
    assert lg_run["rc"] == 0, [(s["name"], s.get("error")) for s in lg_run["results"]["scenarios"]]
    manifest = json.loads((lg_run["out"] / ".hf_cost" / "manifest.json").read_text(encoding="utf-8"))
    paths = {e["path"] for e in manifest["entries"]}
    assert {"loadgen/ss", "loadgen/ss95", "loadgen/lg", "loadgen/lgb", "loadgen/ms"} <= paths
    files = next(e for e in manifest["entries"] if e["path"] == "loadgen/ss")["files"]
    assert {"base/mlperf_log_detail.txt", "base/mlperf_log_summary.txt", "base/mlperf_log_trace.json.gz"} <= set(files)
    assert not {"loadgen/loop", "loadgen/loopb"} & paths and not (lg_run["out"] / "loadgen" / "loop").exists()


@needs_loadgen
@pytest.mark.parametrize(("name", "target", "at_least"), [("ss", 0.9, 80), ("ss95", 0.95, 150)])
def test_single_stream_on_loadgen_gives_loadgens_latencies_percentiles_and_early_stopping(
        lg_run: dict[str, Any], name: str, target: float, at_least: int) -> None:
    e = entry(lg_run, name)
    assert e["kind"] == "single_stream" and e["settings"]["engine"] == "loadgen"
    assert e["settings"]["loadgen_log_dir"] == f"loadgen/{name}/base"
    log_dir = lg_run["out"] / "loadgen" / name / "base"
    for log in ("mlperf_log_detail.txt", "mlperf_log_summary.txt", "mlperf_log_trace.json.gz"):
        assert (log_dir / log).is_file(), log
    assert not (log_dir / "mlperf_log_trace.json").exists()  # kept gzipped only
    detail, trace = loadgen_detail(log_dir), trace_samples(log_dir)
    m, raw = e["metrics"], e["raw"]
    lat = raw["latencies_ms"]
    n = len(lat)
    assert n == detail["result_query_count"] == m["queries"] == len(trace) >= at_least
    assert detail["effective_scenario"] == "SingleStream"
    assert detail["effective_target_latency_percentile"] == m["target_percentile"] == target
    # the raw latencies are the trace's, in LoadGen's issue order, with its sample indices
    assert lat == [a["complete_ns"] / 1e6 for a in trace]
    assert raw["sample_indices"] == [a["sample_idx"] for a in trace]
    for key, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert nearest_rank(lat, p) == pytest.approx(detail[f"result_{p * 100:.2f}_percentile_latency_ns"] / 1e6,
                                                     abs=1e-6)
        assert m["latency_ms"]["percentiles_ms"][key] == nearest_rank(lat, p)
    assert m["target_latency_ms"] == nearest_rank(lat, target)
    assert e["validity"]["result"] == detail["result_validity"]
    assert e["validity"]["early_stopping_satisfied"] is detail["early_stopping_met"]
    assert e["validity"]["min_duration_satisfied"] is detail["result_min_duration_met"]
    assert e["validity"]["min_queries_satisfied"] is detail["result_min_queries_met"]
    assert (m["qps_with_overhead"], m["qps_without_overhead"]) == (
        detail["result_qps_with_loadgen_overhead"], detail["result_qps_without_loadgen_overhead"])
    # enough queries for LoadGen's early stopping (p90: 64, p95: 130): met, and hf_cost's estimate from the raw
    # latencies is LoadGen's
    assert detail["early_stopping_met"] is True, detail.get("early_stopping_result")
    assert m["early_stopping_latency_ms"] == pytest.approx(detail["early_stopping_latency_ss"] / 1e6, abs=1e-6)
    assert m["early_stopping"]["detail"] == " ".join(detail["early_stopping_result"].split())
    if detail["result_validity"] != "VALID":
        assert e["validity"]["recommendations"], "an INVALID result says why"


@needs_loadgen
def test_offline_on_loadgen_gives_loadgens_throughput_and_batches_of_its_one_query(lg_run: dict[str, Any]) -> None:
    e = entry(lg_run, f"lg[bs={BS}]")
    assert e["kind"] == "offline" and e["settings"]["engine"] == "loadgen"
    assert e["settings"]["loadgen_log_dir"] == f"loadgen/lg/base/bs-{BS}"
    log_dir = lg_run["out"] / "loadgen" / "lg" / "base" / f"bs-{BS}"
    for name in ("mlperf_log_detail.txt", "mlperf_log_summary.txt", "mlperf_log_trace.json.gz"):
        assert (log_dir / name).is_file(), name
    detail, trace = loadgen_detail(log_dir), trace_samples(log_dir)
    m, raw = e["metrics"], e["raw"]
    assert detail["effective_scenario"] == "Offline" and detail["result_query_count"] == 1
    assert m["throughput_samples_per_s"] == detail["result_samples_per_second"]
    assert m["samples"] == len(trace) == detail["effective_samples_per_query"] >= 64
    assert m["duration_s"] == pytest.approx(max(a["complete_ns"] for a in trace) / 1e9)
    assert all(1 <= b <= BS for b in raw["batch_sizes"]) and sum(raw["batch_sizes"]) == m["samples"]
    assert m["batches"] == len(raw["batch_sizes"]) == len(raw["batch_latencies_ms"])
    assert e["validity"]["result"] == detail["result_validity"]
    # unbucketed, the SUT cut LoadGen's query in LoadGen's order: batch k is trace samples [k*BS, (k+1)*BS)
    lengths = [lg_run["lengths"][a["sample_idx"]] for a in trace]
    chunks = [lengths[i:i + BS] for i in range(0, len(lengths), BS)]
    assert raw["batch_real_tokens"] == [sum(c) for c in chunks]
    assert raw["batch_tokens"] == [len(c) * max(c) for c in chunks]


@needs_loadgen
def test_bucket_by_length_on_loadgen_cuts_the_query_sorted_by_length(lg_run: dict[str, Any]) -> None:
    plain, e = entry(lg_run, f"lg[bs={BS}]"), entry(lg_run, f"lgb[bs={BS}]")
    assert e["settings"]["bucket_by_length"] is True and plain["settings"]["bucket_by_length"] is False
    log_dir = lg_run["out"] / "loadgen" / "lgb" / "base" / f"bs-{BS}"
    trace = trace_samples(log_dir)
    raw = e["raw"]
    assert sum(raw["batch_sizes"]) == e["metrics"]["samples"] == len(trace)
    # the issued samples' lengths, sorted, cut into batches of BS: each batch's width and real tokens
    lengths = sorted(lg_run["lengths"][a["sample_idx"]] for a in trace)
    chunks = [lengths[i:i + BS] for i in range(0, len(lengths), BS)]
    assert raw["batch_sizes"] == [len(c) for c in chunks]
    assert raw["batch_real_tokens"] == [sum(c) for c in chunks]
    assert raw["batch_tokens"] == [len(c) * max(c) for c in chunks]
    assert all(max(a) <= min(b) for a, b in itertools.pairwise(chunks))
    # on lengths 3..16 the sort pads far less than LoadGen's own order
    assert e["metrics"]["padded_token_share"] < plain["metrics"]["padded_token_share"]
    assert e["metrics"]["padded_token_share"] == pytest.approx(
        1 - sum(sum(c) for c in chunks) / sum(len(c) * max(c) for c in chunks))
    assert any("bucket_by_length" in note for note in e["notes"])
    assert not any("bucket_by_length" in note for note in plain["notes"])


@needs_loadgen
def test_bucket_by_length_on_the_loop_engine_runs_batches_in_length_order(lg_run: dict[str, Any]) -> None:
    plain, e = entry(lg_run, f"loop[bs={BS}]"), entry(lg_run, f"loopb[bs={BS}]")
    assert e["settings"]["engine"] == plain["settings"]["engine"] == "loop"
    raw = e["raw"]
    widths = [t // b for t, b in zip(raw["batch_tokens"], raw["batch_sizes"])]
    assert all(t == w * b for t, w, b in zip(raw["batch_tokens"], widths, raw["batch_sizes"]))
    # batch k+1's shortest >= batch k's longest: every one of its samples has at least widths[k] tokens
    for k in range(len(widths) - 1):
        assert widths[k] <= widths[k + 1]
        assert raw["batch_real_tokens"][k + 1] >= raw["batch_sizes"][k + 1] * widths[k]
    assert e["metrics"]["padded_token_share"] < plain["metrics"]["padded_token_share"]


@needs_loadgen
def test_multi_stream_gives_loadgens_per_query_latencies_and_its_validity(lg_run: dict[str, Any]) -> None:
    e = entry(lg_run, "ms")
    assert e["kind"] == "multi_stream" and e["settings"]["loadgen_log_dir"] == "loadgen/ms/base"
    log_dir = lg_run["out"] / "loadgen" / "ms" / "base"
    for name in ("mlperf_log_detail.txt", "mlperf_log_summary.txt", "mlperf_log_trace.json.gz"):
        assert (log_dir / name).is_file(), name
    detail, trace = loadgen_detail(log_dir), trace_samples(log_dir)
    m, raw = e["metrics"], e["raw"]
    assert detail["effective_scenario"] == "MultiStream" and detail["effective_samples_per_query"] == 4
    queries = m["queries"]
    assert queries == detail["result_query_count"] == len(raw["latencies_ms"]) >= 40
    assert m["samples_per_query"] == 4
    assert len(raw["sample_indices"]) == queries * 4 == len(trace)
    assert raw["sample_indices"] == [a["sample_idx"] for a in trace]
    # per query: its slowest sample, queries in order
    by_query: dict[int, int] = {}
    for a in trace:
        by_query[a["query_seq"]] = max(by_query.get(a["query_seq"], 0), a["complete_ns"])
    assert len(by_query) == queries
    assert all(sum(a["query_seq"] == q for a in trace) == 4 for q in by_query)
    lat = raw["latencies_ms"]
    assert lat == [by_query[q] / 1e6 for q in sorted(by_query)]
    for key, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert nearest_rank(lat, p) == pytest.approx(
            detail[f"result_{p * 100:.2f}_percentile_per_query_latency_ns"] / 1e6, abs=1e-6)
        assert m["latency_ms"]["percentiles_ms"][key] == nearest_rank(lat, p)
    assert m["target_latency_ms"] == nearest_rank(lat, 0.99)
    assert e["validity"]["result"] == detail["result_validity"]
    assert e["validity"]["early_stopping_satisfied"] is detail["early_stopping_met"]
    assert m["early_stopping_detail"] == " ".join(detail["early_stopping_result"].split())
    # every sample ran in its query's one batch: the padding share from the trace's queries
    lengths: dict[int, list[int]] = {}
    for a in trace:
        lengths.setdefault(a["query_seq"], []).append(lg_run["lengths"][a["sample_idx"]])
    real, run = sum(sum(c) for c in lengths.values()), sum(len(c) * max(c) for c in lengths.values())
    assert m["padded_token_share"] == pytest.approx((run - real) / run)
    if queries < 662:  # too few for LoadGen's p99 early stopping: no estimate, INVALID with LoadGen's reason
        assert detail["early_stopping_met"] is False and m["early_stopping_latency_ms"] is None
        assert e["validity"]["result"] == "INVALID"
        reason = " ".join(detail["early_stopping_result"].split())
        assert "662 queries" in reason and f"processed {queries} queries" in reason
        assert any(reason in r for r in e["validity"]["recommendations"]), e["validity"]["recommendations"]
    else:  # a machine fast enough for 662 queries in 0.5 s: LoadGen's estimate (ns in early_stopping_latency_ms)
        assert detail["early_stopping_met"] is True
        assert m["early_stopping_latency_ms"] == pytest.approx(detail["early_stopping_latency_ms"] / 1e6, abs=1e-6)


@needs_loadgen
def test_the_loader_and_the_report_know_the_new_results(lg_run: dict[str, Any]) -> None:
    from hf_cost.report.results_file import load_results_file
    from hf_cost.steps.multi_stream import MultiStreamMetrics

    run = load_results_file(lg_run["out"] / "results.json")
    (ms,) = [s for s in run.scenarios if s.kind == "multi_stream"]
    written = entry(lg_run, "ms")
    assert isinstance(ms.metrics, MultiStreamMetrics) and ms.metrics.queries == written["metrics"]["queries"]
    assert ms.metrics.inferences() == len(written["raw"]["sample_indices"])
    report = (lg_run["out"] / "report.md").read_text(encoding="utf-8")
    for name in ("ss", "ss95", "ms", f"lg[bs={BS}]", f"lgb[bs={BS}]"):
        assert any(line.startswith(f"| {name} (base)") for line in report.splitlines()), name


@needs_loadgen
def test_a_candidate_that_raises_mid_run_fails_the_step_and_loadgen_does_not_hang(
        tiny_bert_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(synthetic_suite(tiny_bert_dir, """
        - {kind: single_stream, name: ssx, engine: loadgen, min_duration_s: 0.5, min_query_count: 80,
           warmup_queries: 3}
        - {kind: multi_stream, name: msx, samples_per_query: 2, min_duration_s: 0.5, min_query_count: 40,
           warmup_queries: 2}
        """), encoding="utf-8")
    out = tmp_path / "out"
    proc = run_with_failing_forward(path, out, 30, "injected failure in forward (query 30 of the LoadGen test)")
    assert proc.returncode == 3, proc.stderr[-3000:]  # the run completed; a step failed
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for name in ("ssx", "msx"):
        (e,) = [s for s in results["scenarios"] if s["name"] == name]
        assert e["status"] == "failed" and e["metrics"] is None, e
        assert "injected failure in forward (query 30 of the LoadGen test)" in e["error"], e["error"]
        assert "completed unserved" in e["error"]
        assert (out / "loadgen" / name / "base" / "mlperf_log_detail.txt").is_file()  # LoadGen's logs stay
    assert "FAILED" in proc.stderr
