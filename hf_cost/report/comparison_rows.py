"""The comparison table as strings, one dict per candidate: shared by report.md and the console.

The accuracy columns show the cells `in_tables` (an accuracy step's, a drift step's training-window
periods and its latest); every period's cell is in results.json, and "worst period Δ" names the
period whose paired delta has the lowest CI low end (CandidateRow.worst_period_delta).
"""

from __future__ import annotations

from hf_cost.report.comparison import CandidateRow, Comparison, TextQualityCell

COMPARISON_COLUMNS = (
    "candidate", "what", "parameters", "on disk", "GFLOP/sample", "p50 (n)", "p50 ratio",
    "interleaved speed-up", "throughput", "peak RSS Δ", "accuracy", "Δ accuracy vs ref", "agreement", "worst period Δ",
    "free text (Δ vs ref)",
    "decay", "build",
)


def comparison_rows(c: Comparison) -> list[dict[str, str]]:
    return [_cells(row, c.reference) for row in c.rows]


def _cells(row: CandidateRow, reference: str) -> dict[str, str]:
    name = row.candidate + (" (reference)" if row.candidate == reference else "")
    if row.status == "failed":
        blank = {k: "—" for k in COMPARISON_COLUMNS}
        return {**blank, "candidate": name, "what": f"FAILED: {row.error}"}
    s = row.interleaved_speedup
    shown = [q for q in row.quality if q.in_tables]
    return {
        "candidate": name,
        "what": " · ".join(x for x in (row.origin, row.runtime, row.dtype) if x) or "—",
        "parameters": _or_dash(row.parameters, lambda v: f"{v / 1e6:.2f}M"),
        "on disk": _or_dash(row.size_on_disk_bytes, lambda v: f"{v / 2**20:.1f} MiB"),
        "GFLOP/sample": _or_dash(row.flops_per_sample, lambda v: f"{v / 1e9:.4g} ({row.flops_source})"),
        "p50 (n)": _or_dash(row.p50_ms, lambda v: f"{v:.2f} ms ({row.latency_queries})"),
        "p50 ratio": _or_dash(row.p50_ratio_vs_reference, lambda v: f"{v:.2f}x (sequential, no CI)"),
        "interleaved speed-up": "—" if s is None else (
            f"{s['ratio']:.2f}x" + ("" if s["ci_low"] is None else f" [{s['ci_low']:.2f}, {s['ci_high']:.2f}]")
            + f" ({s['mode']}, {s['rounds']} rounds)"
        ),
        "throughput": ", ".join(f"bs{b}: {v:.1f}/s" for b, v in row.throughput_samples_per_s.items()) or "—",
        "peak RSS Δ": _or_dash(row.peak_rss_delta_mib, lambda v: f"{v:.0f} MiB"),
        "accuracy": "; ".join(
            f"{q.scenario}: {q.accuracy:.4f} [{q.ci_low:.4f}, {q.ci_high:.4f}] n={q.n}" for q in shown
        ) or "—",
        "Δ accuracy vs ref": "; ".join(
            f"{q.scenario}: {d['value']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
            for q in shown if (d := q.delta_vs_reference) is not None
        ) or "—",
        "agreement": "; ".join(
            f"{q.scenario}: {a['value']:.3f}" for q in shown if (a := q.agreement_with_reference) is not None
        ) or "—",
        "worst period Δ": _worst(row, row.candidate == reference),
        "free text (Δ vs ref)": "; ".join(_text(t) for t in row.text_quality) or "—",
        "decay": _decay(row.decay),
        "build": "—" if row.build is None else (
            f"{row.build['kind']}" + _or_blank(row.build.get("time_s"), lambda v: f", {v:.1f} s")
            + _or_blank(row.build.get("train_flops_total"), lambda v: f", {v / 1e12:.3g} TFLOP trained")
        ),
    }


def _worst(row: CandidateRow, is_reference: bool) -> str:
    """``drift: 2025-03 -0.0680 [-0.0980, -0.0400] n=300 (worst of 6)`` per drift step; "reference" on
    the reference's own row when it has drift periods."""
    if is_reference:
        return "reference" if any(q.period is not None for q in row.quality) else "—"
    return "; ".join(f"{w.scenario}: {w.period} {w.delta:+.4f} [{w.ci_low:+.4f}, {w.ci_high:+.4f}] n={w.n} "
                     f"(worst of {w.periods})" for w in row.worst_period_delta or []) or "—"


def _text(t: TextQualityCell) -> str:
    f = ".4f" if t.scale == 1 else ".2f"
    text = f"{t.scenario}: {t.score} {t.value:{f}} [{t.ci_low:{f}}, {t.ci_high:{f}}] n={t.n}"
    d = t.delta_vs_reference
    return text if d is None else text + f"; Δ {d['value']:+{f}} [{d['ci_low']:+{f}}, {d['ci_high']:+{f}}]"


def _decay(d: dict | None) -> str:
    if d is None or d.get("slope") is None:
        return "—"
    from hf_cost.core.format import describe_slope

    text = describe_slope(d["slope"], d["granularity"])
    drop = d.get("drop")
    if drop is not None:
        text += f"; ID − OOD {drop['value'] * 100:+.1f} pts [{drop['ci_low'] * 100:+.1f}, {drop['ci_high'] * 100:+.1f}]"
    return f"{d['scenario']}: {text}"


def _or_dash(value, fmt) -> str:  # type: ignore[no-untyped-def]
    return "—" if value is None else fmt(value)


def _or_blank(value, fmt) -> str:  # type: ignore[no-untyped-def]
    return "" if value is None else fmt(value)
