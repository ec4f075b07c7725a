"""One row per scenario result: the figures both report.md and the console table show.

Each row carries its n, spread and validity, so no printed number stands alone.
"""

from __future__ import annotations


from hf_cost.measure.latency import percentile_key
from hf_cost.report.schema import ScenarioResult

COLUMNS = ("scenario", "n", "headline", "spread", "validity", "peak RSS Δ")


def gflop(flops: float) -> str:
    """FLOPs in GFLOP with 4 significant digits (tiny test models stay readable)."""
    return f"{flops / 1e9:.4g} GFLOP"


def _fmt(x: float | None, unit: str = "", digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}{unit}"


def _dropped(counts: dict[str, int] | None) -> str:
    """' (3 rows with empty cells dropped)' or ''."""
    total = sum((counts or {}).values())
    return f" ({total} row{'s' if total != 1 else ''} with empty cells dropped)" if total else ""


def _drift_cells(m) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    from hf_cost.drift.decay import describe_slope

    d = m.decay
    scored = [p for p in m.periods if p.accuracy is not None]
    headline = " · ".join(f"{p.period} {p.accuracy.value:.3f}" for p in scored)
    bits = []
    if d.drop is not None:
        bits.append(f"ID − OOD {d.drop.value * 100:+.1f} pts [{d.drop.ci_low * 100:+.1f}, {d.drop.ci_high * 100:+.1f}]")
    if d.slope is not None:
        bits.append(describe_slope(d.slope.model_dump(), m.granularity))
    return f"accuracy per period: {headline}", "; ".join(bits) or "—"


def summary_row(r: ScenarioResult) -> dict[str, str]:
    if r.status == "failed":
        label = r.name if r.candidate == r.name else f"{r.name} ({r.candidate})"
        return {"scenario": label, "n": "—", "headline": f"FAILED: {r.error}", "spread": "—",
                "validity": "FAILED", "peak RSS Δ": "—"}
    m = r.metrics
    if r.kind == "single_stream":
        lat = m.latency_ms
        pct = lat.percentiles_ms
        target = percentile_key(m.target_percentile)
        headline = (
            f"p50 {_fmt(pct['p50'])} ms · p90 {_fmt(pct['p90'])} ms · p99 {_fmt(pct['p99'])} ms · "
            f"ES {target} {_fmt(m.early_stopping_latency_ms)} ms"
        )
        spread = f"mean {_fmt(lat.mean_ms)} ± {_fmt(lat.stdev_ms)} ms (sd), min {_fmt(lat.min_ms)}, max {_fmt(lat.max_ms)}"
        n = f"{m.queries} queries"
    elif r.kind == "offline":
        lat = m.batch_latency_ms
        headline = f"{_fmt(m.throughput_samples_per_s, digits=1)} samples/s"
        spread = (
            f"batch p50 {_fmt(lat.percentiles_ms['p50'])} ms, p90 {_fmt(lat.percentiles_ms['p90'])} ms, "
            f"sd {_fmt(lat.stdev_ms)} ms over {m.batches} batches; {_fmt(m.duration_s, ' s', 1)}"
        )
        n = f"{m.samples} samples"
    elif r.kind == "accuracy":
        acc, f1 = m.accuracy, m.f1_macro
        headline = f"accuracy {acc.value:.4f} · macro-F1 {f1.value:.4f}"
        spread = (
            f"95% CI accuracy [{acc.ci_low:.4f}, {acc.ci_high:.4f}], "
            f"F1 [{f1.ci_low:.4f}, {f1.ci_high:.4f}] (bootstrap)"
        )
        n = f"{m.n} samples" + _dropped(m.dropped_rows)
    elif r.kind == "drift":
        headline, spread = _drift_cells(m)
        n = f"{m.scored_rows} rows, {len(m.periods)} periods" + _dropped(m.dropped_rows)
    elif r.kind == "compare":
        figure = "p50" if m.mode == "single_stream" else "throughput"
        unit = " ms" if m.mode == "single_stream" else " samples/s"
        s = m.speedup_vs_reference
        headline = f"reference ({m.reference})" if s is None else (
            f"speed-up {s.ratio_geomean:.2f}x vs {m.reference}"
            + ("" if s.ci_low is None else f" (95% CI {s.ci_low:.2f}–{s.ci_high:.2f})")
        )
        spread = f"per-round {figure} {min(m.per_round):.2f}–{max(m.per_round):.2f}{unit} over {m.rounds} rounds"
        n = f"{m.latency_ms.n} {'queries' if m.mode == 'single_stream' else 'batches'}, {m.rounds} rounds"
    elif "time_to_target_s" not in m:  # a variant built without training (onnx, quanto, prune)
        headline = f"built in {_fmt(m.get('build_time_s'), ' s', 1)}"
        spread = r.notes[0] if r.notes else "—"
        n = "1 build"
    else:  # a building step that trains (fine_tune, distill)
        ttt = m["time_to_target_s"]
        headline = (
            f"time to target {_fmt(ttt, ' s', 1)}; {_fmt(m['train_samples_per_s'], ' samples/s', 1)}, "
            f"{_fmt(m['train_tokens_per_s'], ' tokens/s', 0)}"
        )
        times = [x["time_to_target_s"] for x in m["runs"]]
        spread = (
            f"{m['scoring']['converged_runs']}/{m['scoring']['runs']} converged; per run "
            + ", ".join(_fmt(t, " s", 1) for t in times)
            + f"; {m['scoring']['method']}"
        )
        n = f"{m['scoring']['runs']} run(s), {sum(x['steps'] for x in m['runs'])} steps"
        if m.get("saved_step") is not None and m.get("saved_quality") is not None:
            spread += f"; saved step {m['saved_step']}: {m['saved_quality']:.4f}"
        dropped = m.get("dropped_rows") or {}
        n += _dropped({k: sum(v.values()) for k, v in dropped.items() if v})
    validity = "—"
    if r.validity is not None:
        validity = r.validity.result + (" (reduced)" if r.validity.reduced_settings else "")
    mem = r.memory.get("peak_rss_delta_mib")
    label = r.name if r.candidate == r.name else f"{r.name} ({r.candidate})"
    return {
        "scenario": label,
        "n": n,
        "headline": headline,
        "spread": spread,
        "validity": validity,
        "peak RSS Δ": "—" if mem is None else f"{mem:.0f} MiB",
    }

