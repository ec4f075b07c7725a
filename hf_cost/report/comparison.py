"""The candidates side by side: one row per candidate, figures read from typed results.

Every figure names where it comes from. Latency and throughput come from each candidate's own
single_stream/offline runs (measured one after the other, so their ratios carry machine drift:
the table says so); a `compare` step's interleaved speed-up with its 95 % CI is the claim to
quote. Accuracy deltas are paired: the same samples, the same bootstrap resamples for both
candidates (quality/paired.py), with prediction agreement beside them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hf_cost.report.metrics import Count, NonNegative, Parameters, Share


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class QualityCell(_Out):
    scenario: str
    accuracy: Share
    ci_low: Share
    ci_high: Share
    n: Count
    delta_vs_reference: dict[str, Any] | None = Field(
        None, description="accuracy - reference's accuracy, paired bootstrap 95% CI, 2x2 counts, McNemar p"
    )
    agreement_with_reference: dict[str, Any] | None = None


class CandidateRow(_Out):
    candidate: str
    status: str = Field(description="ok, or failed (with error) when its building step failed")
    error: str | None = None
    origin: str | None = None
    parent: str | None = None
    runtime: str | None = None
    dtype: str | None = None
    parameters: Parameters | None = None
    size_on_disk_bytes: Count | None = None
    flops_per_sample: Count | None = None
    flops_source: str | None = None
    peak_rss_delta_mib: float | None = Field(None, description="highest over its measurement runs")
    p50_ms: NonNegative | None = None
    p90_ms: NonNegative | None = None
    latency_queries: int | None = None
    p50_ratio_vs_reference: float | None = Field(
        None, description="reference p50 / this p50 from separate single_stream runs: no CI, drift included"
    )
    throughput_samples_per_s: dict[str, NonNegative] = Field(default_factory=dict, description="batch size -> samples/s")
    interleaved_speedup: dict[str, Any] | None = Field(None, description="from a compare step: ratio and 95% CI")
    quality: list[QualityCell] = Field(default_factory=list)
    build: dict[str, Any] | None = Field(None, description="the step that built it: kind, time, training FLOPs")
    decay: dict[str, Any] | None = Field(
        None, description="from its first drift result: accuracy slope per period and ID - OOD drop, with CIs"
    )


class Comparison(_Out):
    reference: str
    rows: list[CandidateRow]
    method: str


def build_comparison(results: list[Any], candidates: dict[str, Any], reference: str | None,
                     built_by: dict[str, str]) -> Comparison | None:
    """Rows for every candidate measured or built; None when fewer than two."""
    from hf_cost.quality.paired import agreement, paired_accuracy_difference

    names = list(candidates) + [n for n in built_by if n not in candidates]
    if len(names) < 2:
        return None
    reference = reference if reference in names else names[0]
    rows = {n: _row(n, candidates.get(n), results, built_by.get(n)) for n in names}
    ref_row = rows[reference]
    scored = _scored_samples(results)
    for name, row in rows.items():
        if row.p50_ms and ref_row.p50_ms and name != reference:
            row.p50_ratio_vs_reference = ref_row.p50_ms / row.p50_ms
        for cell in row.quality:
            ref = scored.get((cell.scenario, reference))
            mine = scored[(cell.scenario, name)]
            if name == reference or ref is None or ref["rows"] != mine["rows"]:
                continue  # paired deltas only on the very same samples
            p_ref, p_mine, refs = ref["predictions"], mine["predictions"], mine["references"]
            cell.delta_vs_reference = paired_accuracy_difference(p_ref, p_mine, refs, seed=mine["seed"])
            cell.agreement_with_reference = agreement(p_ref, p_mine)
    return Comparison(
        reference=reference,
        rows=list(rows.values()),
        method=(
            "latency/throughput: each candidate's own single_stream/offline results (sequential runs); "
            "interleaved speed-up: compare step (alternating rounds, Student-t 95% CI on log ratios); "
            "accuracy delta: paired percentile bootstrap over the same samples"
        ),
    )


def _shown_periods(m: Any) -> list[Any]:
    """A drift result's periods in the table: those of the training window, and the latest."""
    scored = [p for p in m.periods if p.accuracy is not None]
    shown = [p for p in scored if p.in_window]
    return shown + ([scored[-1]] if scored and scored[-1] not in shown else [])


def _scored_samples(results: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(quality cell name, candidate) -> the predictions it is scored from, for paired deltas."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        if r.status != "ok" or r.kind not in ("accuracy", "drift"):
            continue
        seed = int(r.settings.get("dataset", {}).get("seed", 0))
        if r.kind == "accuracy":
            refs = r.raw["references"]
            out[(r.name, r.candidate)] = {"predictions": r.raw["predictions"], "references": refs,
                                          "rows": None, "seed": seed}
            continue
        for p in _shown_periods(r.metrics):
            idx = [i for i, q in enumerate(r.raw["periods"]) if q == p.period]
            out[(f"{r.name}:{p.period}", r.candidate)] = {
                "predictions": [r.raw["predictions"][i] for i in idx],
                "references": [r.raw["references"][i] for i in idx],
                "rows": [r.raw["rows"][i] for i in idx], "seed": seed,
            }
    return out


def _row(name: str, info: Any, results: list[Any], built_by: str | None) -> CandidateRow:
    mine = [r for r in results if r.candidate == name]
    failed = next((r for r in results if r.status == "failed" and r.name == built_by), None)
    row = CandidateRow(candidate=name, status="failed" if failed else "ok", error=failed.error if failed else None)
    if info is not None:
        row.origin, row.parent, row.runtime, row.dtype = info.origin, info.parent, info.runtime, info.dtype
        row.parameters, row.size_on_disk_bytes = info.parameters, info.size_on_disk_bytes
        if info.flops is not None:
            row.flops_per_sample, row.flops_source = info.flops.measured_per_sample, info.flops.source
    measured = [r for r in mine if r.status == "ok" and r.name != built_by]
    peaks = [r.memory.get("peak_rss_delta_mib") for r in measured if r.memory.get("peak_rss_delta_mib") is not None]
    row.peak_rss_delta_mib = max(peaks) if peaks else None
    for r in measured:
        m = r.metrics
        if r.kind == "single_stream" and row.p50_ms is None:
            row.p50_ms, row.p90_ms = m.latency_ms.percentiles_ms["p50"], m.latency_ms.percentiles_ms["p90"]
            row.latency_queries = m.queries
        elif r.kind == "offline":
            row.throughput_samples_per_s[str(r.settings["batch_size"])] = m.throughput_samples_per_s
        elif r.kind == "compare" and m.speedup_vs_reference is not None:
            s = m.speedup_vs_reference
            row.interleaved_speedup = {
                "scenario": r.name, "mode": m.mode, "reference": m.reference, "ratio": s.ratio_geomean,
                "ci_low": s.ci_low, "ci_high": s.ci_high, "rounds": s.rounds,
            }
        elif r.kind == "accuracy":
            a = m.accuracy
            row.quality.append(QualityCell(scenario=r.name, accuracy=a.value, ci_low=a.ci_low, ci_high=a.ci_high, n=a.n))
        elif r.kind == "drift":
            for p in _shown_periods(m):
                a = p.accuracy
                row.quality.append(QualityCell(scenario=f"{r.name}:{p.period}", accuracy=a.value,
                                               ci_low=a.ci_low, ci_high=a.ci_high, n=a.n))
            d = m.decay
            row.decay = row.decay or {
                "scenario": r.name, "granularity": m.granularity,
                "slope": None if d.slope is None else d.slope.model_dump(),
                "drop": None if d.drop is None else d.drop.model_dump(),
            }
    build = next((r for r in mine if r.name == built_by and r.status == "ok"), None)
    if build is not None and isinstance(build.metrics, dict):
        m = build.metrics
        row.build = {
            "step": build.name, "kind": build.kind,
            "time_s": m.get("build_time_s", m.get("time_to_target_s")),
            "train_flops_total": m.get("train_flops_total"),
        }
    return row
