"""Selection points from results files (typed RunResults): one point per candidate per file, with CIs.

Metric names a constraint or objective can use (units in the names):

- ``p50_latency_ms``, ``p90_latency_ms``: single-stream latency; CI = percentile bootstrap of
  LoadGen's percentile over the raw latencies (1,000 resamples, seed 0);
- ``accuracy``: the first quality cell of the comparison's tables (CI: its bootstrap; a run of one
  candidate has no comparison, so its rows are built the same way, report/comparison.py);
  ``accuracy:CELL`` any cell by name (``accuracy:drift:2025-H1``, ``accuracy:accuracy-2023h1``;
  every labelled period of a drift step is a cell);
- ``accuracy_delta:CELL``: the cell's paired accuracy difference to the run's reference candidate,
  in points (100 x the comparison's ``delta_vs_reference``: the same rows, paired percentile
  bootstrap CI); higher is better;
- ``worst_period_delta``: of every labelled period of the candidate's drift steps, the paired
  delta (in points, with its CI) whose CI low end is lowest (the comparison's
  ``worst_period_delta``); ``{metric: worst_period_delta, min: -2}`` keeps a candidate whose worst
  period's CI low end is >= -2 points. The run's reference has both deltas at 0 exactly (CI
  [0, 0]), so a constraint on them never drops it; a candidate scored on other rows than the
  reference has no delta and fails such a constraint as not measured;
- ``speedup``: the interleaved speed-up over the run's reference, with its CI;
- ``throughput_samples_per_s`` (best batch size);
- ``server_peak_qps``: the highest target QPS a server step kept LoadGen VALID under its latency
  bound (find_peak's peak; a single run's target when VALID), the highest over the candidate's
  server steps (no CI: a search's probes, not a sample);
- ``peak_rss_mib``, ``size_mb`` (weights on disk, 10^6 bytes), ``size_mib``, ``parameters_m``,
  ``gflop_per_sample``;
- ``cost_per_million`` (at the offline throughput), ``cost_per_million_p90`` (one stream),
  ``cost_per_million_at_slo`` (at ``server_peak_qps``; the cost report's figures);
- ``accuracy_slope_pts_per_period``: the drift slope in points, with its CI;
- a causal LM's: ``ttft_p50_ms``, ``ttft_p90_ms``, ``tpot_p50_ms``, ``tpot_p90_ms`` (single-stream
  token latencies, CIs bootstrapped over the raw per-request values as for latency);
  ``output_tokens_per_s`` (the best offline batch's new tokens/s); ``perplexity`` (the first
  perplexity step's, with its bootstrap CI over documents); ``cost_per_million_output_tokens``
  (offline), ``cost_per_million_output_tokens_one_stream``, ``cost_per_million_output_tokens_at_slo``.

(config/selection.METRICS lists these names for validation, a name outside them is refused, and says
which way each is better.) Every figure is read through the results' models and their hooks.
A candidate with a failed step (building or measuring) becomes a point marked failed, so the
selection lists it with the step and reason instead of silently leaving it out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hf_cost.errors import UserError
from hf_cost.select.pareto import Measure, Point

if TYPE_CHECKING:
    from hf_cost.report.comparison import CandidateRow
    from hf_cost.report.schema import RunResult


def load_results(paths: list[Path]) -> list[tuple[str, RunResult]]:
    """(path, validated RunResult) per file, through the one checked loader (report/results_file.py)."""
    from hf_cost.report.results_file import load_results_file

    return [(str(path), load_results_file(path)) for path in paths]


def quality_cells(files: list[tuple[str, RunResult]]) -> list[str]:
    """The quality cells measured in any file: what ``accuracy:CELL`` may name."""
    return sorted({q.scenario for _, run in files for r in _rows(run) for q in r.quality})


def _rows(run: RunResult) -> list[CandidateRow]:
    """The run's comparison rows (built from its results for a run of one candidate)."""
    from hf_cost.report.comparison import run_comparison

    comparison = run_comparison(run)
    return [] if comparison is None else comparison.rows


def failed_steps(run: RunResult) -> dict[str, str]:
    """Candidate -> ``in step S: reason`` for the first failed step that names it.

    A building step that failed names itself as its candidate (that candidate never existed);
    a step over several candidates at once names them all, joined by ', '.
    """
    out: dict[str, str] = {}
    for s in run.scenarios:
        if s.ok:
            continue
        reason = " ".join(str(s.error or "no reason given").split())
        for name in filter(None, s.candidate.split(", ")):
            out.setdefault(name, f"in step {s.name}: {reason}")
    return out


def points_from_results(files: list[tuple[str, RunResult]]) -> list[Point]:
    several = len(files) > 1
    points = []
    seen: dict[str, int] = {}
    for path, run in files:
        label = run.suite.get("name") or Path(path).parent.name
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:  # two runs of one scenario file: tell them apart by order given
            label = f"{label}#{seen[label]}"
        env = run.environment.describe_hardware()
        try:
            measured = candidate_metrics(run)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            raise UserError(f"incomplete hf_cost results.json ({why})", where=path) from None
        failed = failed_steps(run)
        for name in [*measured, *(n for n in failed if n not in measured)]:
            points.append(Point(name=f"{name}@{label}" if several else name, metrics=measured.get(name, {}),
                                source=label, environment=env, failed=failed.get(name)))
    return points


def candidate_metrics(run: RunResult) -> dict[str, dict[str, Measure]]:
    from hf_cost.report.comparison import run_comparison

    comparison = run_comparison(run)  # built once: for a run of one candidate it scores the rows
    rows = {r.candidate: r for r in ([] if comparison is None else comparison.rows)}
    reference = None if comparison is None else comparison.reference
    costs = {r.candidate: r for r in (run.costs.rows if run.costs is not None else [])}
    out: dict[str, dict[str, Measure]] = {}
    for name, info in run.candidates.items():
        m: dict[str, Measure] = {}
        samples = next((lat for s in run.scenarios if s.ok and s.candidate == name
                        for lat in [s.metrics.latency_samples(s)] if lat), None)
        if samples is not None:
            lat = np.asarray(samples, dtype=float)
            for p in (0.5, 0.9):
                m[f"p{int(p * 100)}_latency_ms"] = _percentile_with_ci(lat, p)
        tokens = next((t for s in run.scenarios if s.ok and s.candidate == name
                       for t in [s.metrics.token_samples(s)] if t), None)
        if tokens is not None:
            for key, values in tokens.items():  # ttft_ms, tpot_ms
                if values:
                    arr = np.asarray(values, dtype=float)
                    for p in (0.5, 0.9):
                        m[f"{key[:-3]}_p{int(p * 100)}_ms"] = _percentile_with_ci(arr, p)
        token_rates = [rate.output_tokens_per_s for s in run.scenarios if s.ok and s.candidate == name
                       for rate in [s.metrics.serving_rate(s)] if rate is not None and rate.output_tokens_per_s]
        if token_rates:
            m["output_tokens_per_s"] = Measure(max(token_rates))
        ppl = next((f for s in run.scenarios if s.ok and s.candidate == name
                    for f in [s.metrics.perplexity_figure()] if f is not None), None)
        if ppl is not None:
            m["perplexity"] = Measure(ppl.value, ppl.ci_low, ppl.ci_high)
        if info.size_on_disk_bytes:
            m["size_mb"] = Measure(info.size_on_disk_bytes / 1e6)
            m["size_mib"] = Measure(info.size_on_disk_bytes / 2**20)
        m["parameters_m"] = Measure(info.parameters / 1e6)
        if info.flops is not None:
            m["gflop_per_sample"] = Measure(info.flops.per_sample / 1e9)
        slo = [rate.qps for s in run.scenarios if s.ok and s.candidate == name
               for rate in [s.metrics.slo_rate(s)] if rate is not None]
        if slo:
            m["server_peak_qps"] = Measure(max(slo))
        row = rows.get(name)
        if row is not None:
            _from_row(m, row)
            _deltas(m, row, row.candidate == reference)
        cost = costs.get(name)
        if cost is not None:
            for key, figure in (("cost_per_million", cost.per_million_at_throughput),
                                ("cost_per_million_p90", cost.per_million_p90_single_stream),
                                ("cost_per_million_at_slo", cost.per_million_at_slo),
                                ("cost_per_million_output_tokens", cost.per_million_output_tokens_at_throughput),
                                ("cost_per_million_output_tokens_one_stream",
                                 cost.per_million_output_tokens_single_stream),
                                ("cost_per_million_output_tokens_at_slo", cost.per_million_output_tokens_at_slo)):
                if figure is not None:
                    m[key] = Measure(figure.value)
        out[name] = m
    return out


def _from_row(m: dict[str, Measure], row: CandidateRow) -> None:
    """The figures of a comparison row."""
    if row.peak_rss_delta_mib is not None:
        m["peak_rss_mib"] = Measure(row.peak_rss_delta_mib)
    if row.throughput_samples_per_s:
        m["throughput_samples_per_s"] = Measure(max(row.throughput_samples_per_s.values()))
    s = row.interleaved_speedup  # KindMetrics.speedup's figures
    if s:
        m["speedup"] = Measure(s["ratio"], s["ci_low"], s["ci_high"])
    for q in row.quality:
        m[f"accuracy:{q.scenario}"] = Measure(q.accuracy, q.ci_low, q.ci_high)
    shown = [q for q in row.quality if q.in_tables]
    if shown:
        m["accuracy"] = m[f"accuracy:{shown[0].scenario}"]
    slope = row.decay["slope"] if row.decay else None  # KindMetrics.decay_summary's figures
    if slope:
        m["accuracy_slope_pts_per_period"] = Measure(slope["value"] * 100, slope["ci_low"] * 100, slope["ci_high"] * 100)


def _deltas(m: dict[str, Measure], row: CandidateRow, is_reference: bool) -> None:
    """``accuracy_delta:CELL`` and ``worst_period_delta`` in points; 0 exactly for the reference."""
    if is_reference:
        zero = Measure(0.0, 0.0, 0.0)
        m.update({f"accuracy_delta:{q.scenario}": zero for q in row.quality})
        if any(q.period is not None for q in row.quality):
            m["worst_period_delta"] = zero
        return
    for q in row.quality:
        d = q.delta_vs_reference
        if d is not None:
            m[f"accuracy_delta:{q.scenario}"] = Measure(d["value"] * 100, d["ci_low"] * 100, d["ci_high"] * 100)
    if row.worst_period_delta:
        w = min(row.worst_period_delta, key=lambda w: (w.ci_low, w.delta))
        m["worst_period_delta"] = Measure(w.delta * 100, w.ci_low * 100, w.ci_high * 100)


def _percentile_with_ci(lat: np.ndarray, p: float, resamples: int = 1000, seed: int = 0) -> Measure:
    """LoadGen's sorted[int(n*p)], with a percentile-bootstrap 95 % CI over the raw latencies."""
    n = len(lat)
    value = float(np.sort(lat)[int(n * p)])
    rng = np.random.default_rng(seed)
    boot = np.sort(lat[rng.integers(0, n, size=(resamples, n))], axis=1)[:, int(n * p)]
    low, high = np.quantile(boot, [0.025, 0.975])
    return Measure(value, float(low), float(high))
