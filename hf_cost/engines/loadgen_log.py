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

With token latencies (a causal LM in Server, ``use_token_latencies``), LoadGen traces each
``FirstTokenComplete`` as a ``Token_Latency`` counter event at the query's *scheduled* time, with
``issue_delay`` + ``issue_to_done`` = scheduled to first token (its TTFT, the value it sorts for
``result_first_token_*``). The event names no sample, so it is paired with the Sample event of
the same scheduled time (one sample per query in Server); two queries scheduled at the same
nanosecond could not be told apart, and are refused. In SingleStream (and MultiStream) LoadGen
traces it instead as a ``Token`` begin event naming its ``sample_seq``, with ``complete_ns`` =
scheduled to first token (loadgen.cc, TokenComplete); Offline has no first tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
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
class TokenFigures:
    """A run with token latencies (use_token_latencies: a causal LM), as its detail log states it.
    Server, SingleStream and MultiStream state first-token and TPOT figures; Offline only its
    tokens per second (no first tokens there)."""

    ttft_bound_ms: float | None  # Server: requested_server_ttft_latency (other scenarios bound nothing)
    tpot_bound_ms: float | None  # Server: requested_server_tpot_latency
    ttft_percentiles_ms: dict[str, float]  # result_first_token_<p>_percentile_latency_ns
    tpot_percentiles_ms: dict[str, float]  # result_time_per_output_token_<p>_percentile_ns
    completed_tokens_per_s: float | None  # result_completed_tokens_per_second: tokens / (start -> last done)
    early_stopping_ttft: str  # early_stopping_ttft_result
    early_stopping_tpot: str  # early_stopping_tpot_result
    tokens_per_s: float | None = None  # Offline: result_tokens_per_second = tokens / the longest sample latency
    # SingleStream: early_stopping_latency_ss. LoadGen runs early stopping on TPOT, then (when that
    # passed) on TTFT, each writing the same field: so the TTFT's estimate, when early stopping was met
    ttft_early_stopping_ms: float | None = None
    ttft_mean_ms: float | None = None  # result_first_token_mean_latency_ns (integer ns)
    tpot_mean_ms: float | None = None  # result_time_to_output_token_mean (integer ns)


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
    tokens: TokenFigures | None = None  # Server with token latencies (a causal LM)


@dataclass(frozen=True)
class TraceSample:
    sample_seq: int  # LoadGen's sequence number: issue order
    sample_index: int  # the QSL sample it asked for
    scheduled_s: float  # when LoadGen scheduled it, from the start of its test
    latency_ms: float  # scheduled -> QuerySamplesComplete (LoadGen's complete_ns)
    issue_delay_ms: float  # scheduled -> LoadGen's call of issue_queries (its issue_start_ns)
    query_seq: int = 0  # the query it belongs to (MultiStream: N samples per query; Offline: one query)
    first_token_ms: float | None = None  # with token latencies (not Offline): scheduled -> FirstTokenComplete


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
        if (key.startswith("result_") and key.endswith("_percentile_latency_ns")
                and not key.startswith("result_first_token_")):
            p = float(key[len("result_"):-len("_percentile_latency_ns")]) / 100
            percentiles[percentile_key(p)] = value / 1e6
    tokens = token_figures(v)
    detail = " ".join(str(v.get("early_stopping_result", "")).split()) if tokens is None else (
        # LoadGen checks TPOT first and TTFT only when TPOT passed: an empty result was not checked
        f"TPOT: {tokens.early_stopping_tpot or 'not checked'} TTFT: {tokens.early_stopping_ttft or 'not checked'}")
    flags = {k: v.get(k) for k in ("result_perf_constraints_met", "result_min_duration_met",
                                   "result_min_queries_met", "early_stopping_met")}
    why = []
    if flags["result_perf_constraints_met"] is False and tokens is not None:
        pk = percentile_key(v.get("effective_target_latency_percentile", 0))
        for what, got, bound in (("TTFT", tokens.ttft_percentiles_ms, tokens.ttft_bound_ms),
                                 ("TPOT", tokens.tpot_percentiles_ms, tokens.tpot_bound_ms)):
            if got.get(pk) is not None and got[pk] > bound:
                why.append(f"{what} bound missed: {pk} {what} {got[pk]:g} ms > {bound:g} ms")
    elif flags["result_perf_constraints_met"] is False:
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
        # both); each scenario also writes the other key as 0, and both are 0 when early stopping failed. With
        # token latencies the estimate is not the request latency's (token_figures says whose it is)
        early_stopping_latency_ms=_ms({"SingleStream": v.get("early_stopping_latency_ss"),
                                       "MultiStream": v.get("early_stopping_latency_ms")}.get(
                                           v.get("effective_scenario")))
        if flags["early_stopping_met"] and tokens is None else None,
        samples_per_query=v.get("effective_samples_per_query"),
        tokens=tokens,
    )


def token_figures(v: dict[str, Any]) -> TokenFigures | None:
    """The token-latency figures of a detail log's values; None when the run had none."""
    if not v.get("requested_use_token_latencies"):
        return None
    ttft, tpot = {}, {}
    for key, value in v.items():
        if key.startswith("result_first_token_") and key.endswith("_percentile_latency_ns"):
            ttft[percentile_key(float(key[len("result_first_token_"):-len("_percentile_latency_ns")]) / 100)] = value / 1e6
        elif key.startswith("result_time_per_output_token_") and key.endswith("_percentile_ns"):
            p = float(key[len("result_time_per_output_token_"):-len("_percentile_ns")]) / 100
            tpot[percentile_key(p)] = value / 1e6
    server = v.get("effective_scenario") == "Server"
    single = v.get("effective_scenario") == "SingleStream"
    return TokenFigures(
        ttft_bound_ms=v["requested_server_ttft_latency"] / 1e6 if server else None,
        tpot_bound_ms=v["requested_server_tpot_latency"] / 1e6 if server else None,
        ttft_percentiles_ms=ttft, tpot_percentiles_ms=tpot,
        completed_tokens_per_s=_float(v.get("result_completed_tokens_per_second")),
        early_stopping_ttft=" ".join(str(v.get("early_stopping_ttft_result", "")).split()),
        early_stopping_tpot=" ".join(str(v.get("early_stopping_tpot_result", "")).split()),
        tokens_per_s=_float(v.get("result_tokens_per_second")),
        ttft_early_stopping_ms=_ms(v.get("early_stopping_latency_ss")) if single and v.get("early_stopping_met")
        else None,
        ttft_mean_ms=_ms(v.get("result_first_token_mean_latency_ns")),
        tpot_mean_ms=_ms(v.get("result_time_to_output_token_mean")),
    )


def read_trace_samples(path: Path) -> list[TraceSample]:
    """Every sample of the trace, in LoadGen's issue order (its sample_seq), with its first token's
    latency when LoadGen traced one (Token_Latency events)."""
    samples, first_tokens, first_by_seq = [], {}, {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith('{"name":"Token",') and '"ph":"b"' in line:  # not Server: names its sample
                a = json.loads(line.rstrip().rstrip(","))["args"]
                first_by_seq[int(a["sample_seq"])] = int(a["complete_ns"])
                continue
            if line.startswith('{"name":"Token_Latency"'):
                event = json.loads(line.rstrip().rstrip(","))
                if event["ts"] in first_tokens:
                    raise ValueError(f"{path}: two first tokens traced for queries scheduled at {event['ts']} us")
                first_tokens[event["ts"]] = (int(event["args"]["issue_delay"]) + int(event["args"]["issue_to_done"]))
                continue
            if not line.startswith('{"name":"Sample"') or '"ph":"b"' not in line:
                continue
            event = json.loads(line.rstrip().rstrip(","))
            a = event["args"]
            samples.append((event["ts"], TraceSample(int(a["sample_seq"]), int(a["sample_idx"]),
                                                     float(event["ts"]) / 1e6, int(a["complete_ns"]) / 1e6,
                                                     int(a["issue_start_ns"]) / 1e6, int(a.get("query_seq", 0)))))
    if first_tokens:
        if len({ts for ts, _ in samples}) != len(samples) or len(first_tokens) != len(samples):
            raise ValueError(f"{path}: {len(first_tokens)} first tokens for {len(samples)} samples cannot be paired "
                             "one to one by scheduled time")
        samples = [(ts, replace(s, first_token_ms=first_tokens[ts] / 1e6)) for ts, s in samples]
    if first_by_seq:
        if set(first_by_seq) != {s.sample_seq for _, s in samples}:
            raise ValueError(f"{path}: {len(first_by_seq)} first tokens traced for {len(samples)} samples")
        samples = [(ts, replace(s, first_token_ms=first_by_seq[s.sample_seq] / 1e6)) for ts, s in samples]
    out = [s for _, s in samples]
    out.sort(key=lambda s: s.sample_seq)
    return out


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
