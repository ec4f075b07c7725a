"""The candidates side by side: one row per candidate, figures read from typed results.

Every figure names where it comes from. Latency and throughput come from each candidate's own
single_stream/offline runs (measured one after the other, so their ratios carry machine drift:
the table says so); a `compare` step's interleaved speed-up with its 95 % CI is the claim to
quote. Accuracy deltas are paired: the same samples, the same bootstrap resamples for both
candidates (quality/paired.py), with prediction agreement beside them. A drift step gives one quality
cell per labelled period, each paired with the reference; per drift step, the period whose paired
delta has the lowest CI low end is the candidate's `worst_period_delta` (report.md shows the window's
and the latest period's cells, and that worst one).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hf_cost.core.bounds import Count, NonNegative, Parameters, Share


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
    step: str | None = Field(None, description="the step that scored it (None in files written before it was kept)")
    period: str | None = Field(None, description="a drift step's period; None for a cell that is not one")
    in_tables: bool = Field(True, description="shown in report.md's and the card's tables: every cell but a drift "
                            "step's periods outside the training window before the latest")


class WorstPeriodDelta(_Out):
    """Of a drift step's periods, the one whose paired accuracy delta vs the reference has the lowest CI low end."""

    scenario: str = Field(description="the drift step")
    period: str
    delta: float = Field(description="accuracy - reference's accuracy on the period's labelled rows (a fraction)")
    ci_low: float = Field(description="paired percentile bootstrap, the cell's delta_vs_reference")
    ci_high: float
    n: Count
    periods: Count = Field(description="the step's periods with a paired delta, the worst taken over them")


class TextQualityCell(_Out):
    scenario: str
    score: str = Field(description="rougeL, chrf or chrf++")
    value: NonNegative
    ci_low: NonNegative
    ci_high: NonNegative
    scale: float = Field(description="1 (ROUGE) or 100 (chrF)")
    n: Count
    delta_vs_reference: dict[str, Any] | None = Field(
        None, description="score - reference's score on the same rows, paired bootstrap 95% CI")


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
    flops_per_sample: NonNegative | None = Field(None, description="FLOPs of an average sample (FlopsInfo.per_sample)")
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
    text_quality: list[TextQualityCell] = Field(default_factory=list, description="free_text steps (ROUGE / chrF)")
    build: dict[str, Any] | None = Field(None, description="the step that built it: kind, time, training FLOPs")
    decay: dict[str, Any] | None = Field(
        None, description="from its first drift result: accuracy slope per period and ID - OOD drop, with CIs"
    )
    worst_period_delta: list[WorstPeriodDelta] | None = Field(
        None, description="one per drift step with paired deltas: its worst period (lowest CI low end); "
        "None for the reference itself (and in files written before it was kept)")


class Comparison(_Out):
    reference: str
    rows: list[CandidateRow]
    method: str


def build_comparison(results: list[Any], candidates: dict[str, Any], reference: str | None,
                     built_by: dict[str, str]) -> Comparison | None:
    """Rows for every candidate measured or built; None when fewer than two."""
    names = list(candidates) + [n for n in built_by if n not in candidates]
    return compare_candidates(results, candidates, reference, built_by) if len(names) >= 2 else None


def run_comparison(run: Any) -> Comparison | None:
    """A RunResult's candidates side by side: its own comparison, or (a run of one candidate, which
    has none) the same rows built from its results; None when it has no candidate at all."""
    if run.comparison is not None:
        return run.comparison
    return compare_candidates(run.scenarios, run.candidates, None, building_steps(run.scenarios))


def building_steps(results: list[Any]) -> dict[str, str]:
    """Candidate -> the step that built it, from the results alone: a building step's result names
    itself as its candidate, built (`builds`) or failed."""
    return {r.candidate: r.name for r in results if r.candidate == r.name and (r.builds or not r.ok)}


def compare_candidates(results: list[Any], candidates: dict[str, Any], reference: str | None,
                       built_by: dict[str, str]) -> Comparison | None:
    """Rows for every candidate measured or built, however many (None when there is none)."""
    from hf_cost.quality.paired import agreement, paired_accuracy_difference

    names = list(candidates) + [n for n in built_by if n not in candidates]
    if not names:
        return None
    reference = reference if reference in names else names[0]
    rows = {n: _row(n, candidates.get(n), results, built_by.get(n)) for n in names}
    ref_row = rows[reference]
    scored = {(q.cell, r.candidate): q for r in results if r.ok for q in r.metrics.quality(r)}
    for name, row in rows.items():
        if row.p50_ms and ref_row.p50_ms and name != reference:
            row.p50_ratio_vs_reference = ref_row.p50_ms / row.p50_ms
        for cell in row.quality:
            ref = scored.get((cell.scenario, reference))
            mine = scored[(cell.scenario, name)]
            if name == reference or ref is None or ref.rows != mine.rows:
                continue  # paired deltas only on the very same samples
            cell.delta_vs_reference = paired_accuracy_difference(ref.predictions, mine.predictions, mine.references,
                                                                 seed=mine.seed)
            cell.agreement_with_reference = agreement(ref.predictions, mine.predictions)
        if name != reference:
            row.worst_period_delta = worst_period_deltas(row.quality)
    _text_deltas(rows, results, reference)
    return Comparison(
        reference=reference,
        rows=list(rows.values()),
        method=(
            "latency/throughput: each candidate's own single_stream/offline results (sequential runs); "
            "interleaved speed-up: compare step (alternating rounds, Student-t 95% CI on log ratios); "
            "accuracy and free-text deltas: paired percentile bootstrap over the same samples"
        ),
    )


def worst_period_deltas(cells: list[QualityCell]) -> list[WorstPeriodDelta]:
    """Per drift step (in order of first appearance), the period cell whose paired delta has the lowest
    CI low end (ties: the lower delta, then the earlier period)."""
    steps: dict[str, list[QualityCell]] = {}
    for q in cells:
        if q.period is not None and q.step is not None and q.delta_vs_reference is not None:
            steps.setdefault(q.step, []).append(q)
    out = []
    for step, paired in steps.items():
        worst = min(paired, key=lambda q: (q.delta_vs_reference["ci_low"], q.delta_vs_reference["value"]))
        d = worst.delta_vs_reference
        out.append(WorstPeriodDelta(scenario=step, period=worst.period, delta=d["value"], ci_low=d["ci_low"],
                                    ci_high=d["ci_high"], n=d["n"], periods=len(paired)))
    return out


def _text_deltas(rows: dict[str, CandidateRow], results: list[Any], reference: str) -> None:
    """Each free-text cell's paired difference to the reference's cell of the same step, when both
    scored the same rows (same references, same count)."""
    from hf_cost.quality.text_scores import paired_text_difference

    scored = {(r.name, r.candidate): r for r in results if r.ok and r.metrics.text_quality(r) is not None}
    for name, row in rows.items():
        for cell in row.text_quality:
            ref, mine = scored.get((cell.scenario, reference)), scored.get((cell.scenario, name))
            if name == reference or ref is None or mine is None or ref.raw["references"] != mine.raw["references"]:
                continue
            a, b = ref.metrics.text_quality(ref), mine.metrics.text_quality(mine)
            cell.delta_vs_reference = paired_text_difference(
                b.metric, a.raw, b.raw, b.options, seed=b.seed,
                n_resamples=int(mine.settings.get("bootstrap_resamples", 1000)))


def _row(name: str, info: Any, results: list[Any], built_by: str | None) -> CandidateRow:
    mine = [r for r in results if r.candidate == name]
    failed = next((r for r in results if r.status == "failed" and r.name == built_by), None)
    row = CandidateRow(candidate=name, status="failed" if failed else "ok", error=failed.error if failed else None)
    if info is not None:
        row.origin, row.parent, row.runtime, row.dtype = info.origin, info.parent, info.runtime, info.dtype
        row.parameters, row.size_on_disk_bytes = info.parameters, info.size_on_disk_bytes
        if info.flops is not None:
            row.flops_per_sample, row.flops_source = info.flops.per_sample, info.flops.source
    measured = [r for r in mine if r.ok and r.name != built_by]
    peaks = [r.memory.peak_rss_delta_mib for r in measured if r.memory is not None]
    row.peak_rss_delta_mib = max(peaks) if peaks else None
    for r in measured:
        m = r.metrics
        latency, rate, speedup, decay = m.latency(), m.serving_rate(r), m.speedup(r), m.decay_summary(r)
        if latency is not None and row.p50_ms is None:
            row.p50_ms, row.p90_ms, row.latency_queries = latency.p50_ms, latency.p90_ms, latency.queries
        if rate is not None:
            row.throughput_samples_per_s[str(rate.batch_size)] = rate.samples_per_s
        if speedup is not None:
            row.interleaved_speedup = speedup
        for q in m.quality(r):
            a = q.accuracy
            row.quality.append(QualityCell(scenario=q.cell, accuracy=a.value, ci_low=a.ci_low, ci_high=a.ci_high, n=a.n,
                                           step=r.name, period=q.period, in_tables=q.in_tables))
        text = m.text_quality(r)
        if text is not None:
            t = text.score
            row.text_quality.append(TextQualityCell(scenario=text.cell, score=r.metrics.headline, value=t.value,
                                                    ci_low=t.ci_low, ci_high=t.ci_high, scale=t.scale, n=t.n))
        row.decay = row.decay or decay
    build = next((r for r in mine if r.name == built_by and r.builds), None)
    if build is not None:
        b = build.metrics.build_summary()
        row.build = {"step": build.name, "kind": build.kind, "time_s": b.time_s, "train_flops_total": b.train_flops_total}
    return row
