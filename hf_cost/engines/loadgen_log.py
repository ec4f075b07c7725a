"""Reading what LoadGen wrote: its result figures from ``mlperf_log_detail.txt`` and each
sample's latency from ``mlperf_log_trace.json``.

The detail log is one JSON object per ``:::MLLOG`` line (``key``, ``value``, ``metadata`` with
``is_error`` / ``is_warning``). The summary text says the same for people; it is not parsed.

The detail log holds no per-query latencies. The trace (``LogSettings.enable_trace``, LoadGen's
default) holds one ``Sample`` begin event per sample, at the time LoadGen *scheduled* it, with
``complete_ns``: from that scheduled time to the sample's ``QuerySamplesComplete``. Those are
the latencies LoadGen's percentiles are computed from (checked: sorted[int(n * p)] of them
equals its ``result_*_percentile_latency_ns``). The trace as a whole is not valid JSON (LoadGen
writes some ``args`` with doubled quotes), so only the Sample lines are read, one at a time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_cost.core.format import percentile_key
from hf_cost.safe_files import read_regular_text

DETAIL_LOG = "mlperf_log_detail.txt"
SUMMARY_LOG = "mlperf_log_summary.txt"
TRACE_LOG = "mlperf_log_trace.json"
MAX_DETAIL_BYTES = 16 * 2**20
_MARK = ":::MLLOG"


@dataclass(frozen=True)
class DetailLog:
    values: dict[str, Any]  # key -> value (the last one logged)
    errors: list[str] = field(default_factory=list)  # '<key>: <value>' of entries flagged is_error
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadGenFigures:
    """One LoadGen run's result, as its detail log states it."""

    validity: str  # LoadGen's result_validity: VALID or INVALID
    why: list[str]  # each reason it is INVALID (empty when VALID)
    queries: int
    scheduled_qps: float | None  # Server: result_scheduled_samples_per_sec
    completed_qps: float | None  # Server: result_completed_samples_per_sec
    overlatency_queries: int | None
    perf_constraints_met: bool | None  # the latency bound held at the target percentile
    min_duration_met: bool | None
    min_queries_met: bool | None
    early_stopping_met: bool | None
    early_stopping_detail: str
    percentiles_ms: dict[str, float]  # 'p50', 'p90', 'p95', 'p97', 'p99', 'p99.9'
    mean_ms: float | None
    min_ms: float | None
    max_ms: float | None
    errors: list[str]
    warnings: list[str]
    version: str | None  # loadgen_version, e.g. '6.0.17 @ d6147c7eb7'
    scenario: str | None = None  # effective_scenario
    samples_per_s: float | None = None  # Offline: result_samples_per_second
    qps_with_overhead: float | None = None  # Single/MultiStream: result_qps_with_loadgen_overhead
    qps_without_overhead: float | None = None  # Single/MultiStream: result_qps_without_loadgen_overhead
    early_stopping_latency_ms: float | None = None  # Single/MultiStream: LoadGen's early-stopping estimate
    samples_per_query: int | None = None  # effective_samples_per_query


@dataclass(frozen=True)
class TraceSample:
    sample_seq: int  # LoadGen's sequence number: issue order
    sample_index: int  # the QSL sample it asked for
    scheduled_s: float  # when LoadGen scheduled it, from the start of its test
    latency_ms: float  # scheduled -> QuerySamplesComplete (LoadGen's complete_ns)
    issue_delay_ms: float  # scheduled -> LoadGen's call of issue_queries (its issue_start_ns)
    query_seq: int = 0  # the query it belongs to (MultiStream: N samples per query; Offline: one query)


def read_detail_log(path: Path) -> DetailLog:
    text = read_regular_text(path, what="LoadGen's detail log", limit=MAX_DETAIL_BYTES)
    values: dict[str, Any] = {}
    errors: list[str] = []
    warnings: list[str] = []
    for line in text.splitlines():
        if not line.startswith(_MARK):
            continue
        entry = json.loads(line[len(_MARK):])
        key, value, meta = entry.get("key"), entry.get("value"), entry.get("metadata") or {}
        values[key] = value
        if meta.get("is_error"):
            errors.append(f"{key}: {value}")
        elif meta.get("is_warning"):
            warnings.append(f"{key}: {value}")
    return DetailLog(values, errors, warnings)


def figures(log: DetailLog) -> LoadGenFigures:
    """The result figures of one run (raises KeyError when LoadGen wrote no result)."""
    v = log.values
    percentiles: dict[str, float] = {}
    for key, value in v.items():
        if key.startswith("result_") and key.endswith("_percentile_latency_ns"):
            p = float(key[len("result_"):-len("_percentile_latency_ns")]) / 100
            percentiles[percentile_key(p)] = value / 1e6
    detail = " ".join(str(v.get("early_stopping_result", "")).split())
    flags = {k: v.get(k) for k in ("result_perf_constraints_met", "result_min_duration_met",
                                   "result_min_queries_met", "early_stopping_met")}
    why = []
    if flags["result_perf_constraints_met"] is False:
        over = v.get("result_overlatency_query_count")
        why.append(f"latency bound missed at {percentile_key(v.get('effective_target_latency_percentile', 0))}"
                   + (f" ({over} of {v.get('result_query_count')} queries over the bound)" if over is not None else ""))
    if flags["result_min_duration_met"] is False:
        why.append(f"min duration not met ({v.get('effective_min_duration_ms')} ms)")
    if flags["result_min_queries_met"] is False:
        why.append(f"min query count not met ({v.get('effective_min_query_count')})")
    if flags["early_stopping_met"] is False:
        why.append(f"early stopping not met: {detail}")
    if v.get("result_invalid_reason"):
        why.append(str(v["result_invalid_reason"]))
    why += [f"LoadGen error: {e}" for e in log.errors]
    validity = v["result_validity"]
    return LoadGenFigures(
        validity=validity, why=why if validity != "VALID" else [],
        queries=int(v["result_query_count"]),
        scheduled_qps=_float(v.get("result_scheduled_samples_per_sec")),
        completed_qps=_float(v.get("result_completed_samples_per_sec")),
        overlatency_queries=v.get("result_overlatency_query_count"),
        perf_constraints_met=flags["result_perf_constraints_met"],
        min_duration_met=flags["result_min_duration_met"],
        min_queries_met=flags["result_min_queries_met"],
        early_stopping_met=flags["early_stopping_met"],
        early_stopping_detail=detail,
        percentiles_ms=percentiles,
        mean_ms=_ms(v.get("result_mean_latency_ns")),
        min_ms=_ms(v.get("result_min_latency_ns")),
        max_ms=_ms(v.get("result_max_latency_ns")),
        errors=log.errors, warnings=log.warnings, version=v.get("loadgen_version"),
        scenario=v.get("effective_scenario"), samples_per_s=_float(v.get("result_samples_per_second")),
        qps_with_overhead=_float(v.get("result_qps_with_loadgen_overhead")),
        qps_without_overhead=_float(v.get("result_qps_without_loadgen_overhead")),
        # SingleStream's estimate is early_stopping_latency_ss, MultiStream's early_stopping_latency_ms (ns
        # both); each scenario also writes the other key as 0, and both are 0 when early stopping failed
        early_stopping_latency_ms=_ms({"SingleStream": v.get("early_stopping_latency_ss"),
                                       "MultiStream": v.get("early_stopping_latency_ms")}.get(
                                           v.get("effective_scenario"))) if flags["early_stopping_met"] else None,
        samples_per_query=v.get("effective_samples_per_query"),
    )


def read_trace_samples(path: Path) -> list[TraceSample]:
    """Every sample of the trace, in LoadGen's issue order (its sample_seq)."""
    samples = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith('{"name":"Sample"') or '"ph":"b"' not in line:
                continue
            event = json.loads(line.rstrip().rstrip(","))
            a = event["args"]
            samples.append(TraceSample(int(a["sample_seq"]), int(a["sample_idx"]), float(event["ts"]) / 1e6,
                                       int(a["complete_ns"]) / 1e6, int(a["issue_start_ns"]) / 1e6,
                                       int(a.get("query_seq", 0))))
    samples.sort(key=lambda s: s.sample_seq)
    return samples


def _ms(ns: Any) -> float | None:
    return None if ns is None else ns / 1e6


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def query_latencies(samples: list[TraceSample]) -> list[tuple[int, float, float]]:
    """(query_seq, scheduled_s, latency_ms) per query, in issue order: a query's latency is its
    last sample's (LoadGen's MultiStream per-query latency)."""
    by_query: dict[int, tuple[float, float]] = {}
    for s in samples:
        at, lat = by_query.get(s.query_seq, (s.scheduled_s, 0.0))
        by_query[s.query_seq] = (min(at, s.scheduled_s), max(lat, s.latency_ms))
    return [(q, at, lat) for q, (at, lat) in sorted(by_query.items())]
