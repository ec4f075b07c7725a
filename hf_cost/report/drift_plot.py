"""The drift plot (PNG): quality per period with its 95 % CI band for every candidate, its
headline label-free estimate (hollow where untrusted), the training window shaded, and input
drift (domain-classifier AUC) on a second axis.

Drawn from the results alone (results.json holds every figure it shows), linked from report.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def drift_plot_name(scenario: str) -> str:
    return f"plots/drift-{scenario}.png"


def plot_drift(results: list[Any], path: Path, title: str) -> Path:
    """One drift scenario's results (one per candidate) -> a PNG at ``path``."""
    if results[0].metrics.lm is not None:  # a causal LM: perplexity per period
        from hf_cost.report.drift_lm import plot_lm_drift

        return plot_lm_drift(results, path, title)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.4), dpi=120)
    first = results[0].metrics
    labels = {p.position: p.period for p in first.periods}
    for r in results:
        pts = [p for p in r.metrics.periods if p.accuracy is not None]
        x = [p.position for p in pts]
        y = [p.accuracy.value * 100 for p in pts]
        line, = ax.plot(x, y, marker="o", label=f"{r.candidate} (accuracy)")
        ax.fill_between(x, [p.accuracy.ci_low * 100 for p in pts], [p.accuracy.ci_high * 100 for p in pts],
                        color=line.get_color(), alpha=0.15, linewidth=0)
        est = [p for p in r.metrics.periods if p.label_free is not None]  # periods without labels too
        if est:  # the headline label-free estimate: filled where trusted, hollow where untrusted
            trusted = [p for p in est if p.label_free.trusted]
            untrusted = [p for p in est if not p.label_free.trusted]
            head = est[0].label_free.headline
            if trusted:
                ax.scatter([p.position for p in trusted], [p.label_free.headline_estimate.value * 100 for p in trusted],
                           marker="D", s=22, color=line.get_color(), zorder=3,
                           label=f"{r.candidate}: label-free estimate ({head})")
            if untrusted:
                ax.scatter([p.position for p in untrusted],
                           [p.label_free.headline_estimate.value * 100 for p in untrusted], marker="D", s=22,
                           facecolors="none", edgecolors=line.get_color(), zorder=3,
                           label=f"{r.candidate}: label-free estimate, UNTRUSTED (input drift)")
        few = [p for p in pts if p.few_rows]
        if few:
            ax.scatter([p.position for p in few], [p.accuracy.value * 100 for p in few], marker="x",
                       color=line.get_color(), zorder=3)
    window = [p.position for p in first.periods if p.in_window]
    if window:
        ax.axvspan(min(window) - 0.4, max(window) + 0.4, color="grey", alpha=0.12,
                   label=f"training window ({results[0].candidate})")
    ax.set_xticks(sorted(labels), [labels[k] for k in sorted(labels)], rotation=30 if len(labels) > 8 else 0)
    ax.set_ylabel("accuracy, % (band: 95 % bootstrap CI)")
    ax.set_xlabel(f"period ({first.granularity}, column '{first.period_column}')")
    auc = [(p.position, p.input_drift["domain_classifier"]) for p in first.periods
           if p.input_drift and p.input_drift.get("domain_classifier") and p.input_drift["domain_classifier"].get("auc") is not None]
    handles, names = ax.get_legend_handles_labels()
    if auc:
        ax2 = ax.twinx()
        d, = ax2.plot([a[0] for a in auc], [a[1]["auc"] for a in auc], color="black", linestyle="--", marker="s",
                      markersize=4, label="input drift: domain-classifier AUC (right; 0.5 = none)")
        ax2.set_ylim(min(0.4, min(a[1]["auc"] for a in auc) - 0.05), 1.02)
        ax2.axhline(0.5, color="black", linewidth=0.6, alpha=0.4)
        ax2.set_ylabel("domain-classifier AUC vs training window")
        handles, names = handles + [d], names + [d.get_label()]
    from hf_cost.report.plot_finish import finish_plot

    return finish_plot(fig, ax, handles, names, title, path)


def drift_groups(scenarios: list[Any]) -> dict[str, list[Any]]:
    """Drift results (their figures are DriftMetrics) that succeeded, by scenario name, in run order."""
    from hf_cost.core.drift_metrics import DriftMetrics

    groups: dict[str, list[Any]] = {}
    for r in scenarios:
        if r.ok and isinstance(r.metrics, DriftMetrics):
            groups.setdefault(r.name, []).append(r)
    return groups
