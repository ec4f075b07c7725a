"""A causal LM's drift in the report and the drift plot: perplexity per period with its 95 % CI
(bootstrap over the period's documents), the reference periods shaded, and accuracy by generation
on a second axis where the dataset has labels. Drawn from results.json's figures alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LM_PERIOD_COLUMNS = ("period", "n", "perplexity [95% CI]", "nats/token", "ratio to reference [95% CI]",
                     "ΔL vs previous", "accuracy [95% CI]", "unparseable")


def plot_lm_drift(results: list[Any], path: Path, title: str) -> Path:
    """One LM drift scenario's results (one per candidate) -> a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.4), dpi=120)
    first = results[0].metrics
    labels = {p.position: p.period for p in first.periods}
    acc_axis = None
    for r in results:
        pts = [p for p in r.metrics.periods if p.perplexity is not None]
        x = [p.position for p in pts]
        line, = ax.plot(x, [p.perplexity.value for p in pts], marker="o", label=f"{r.candidate} (perplexity)")
        ax.fill_between(x, [p.perplexity.ci_low for p in pts], [p.perplexity.ci_high for p in pts],
                        color=line.get_color(), alpha=0.15, linewidth=0)
        scored = [p for p in r.metrics.periods if p.accuracy is not None]
        if scored:
            acc_axis = acc_axis or ax.twinx()
            acc_axis.plot([p.position for p in scored], [p.accuracy.value * 100 for p in scored], linestyle="--",
                          marker="s", markersize=4, color=line.get_color(),
                          label=f"{r.candidate} (accuracy by generation, right)")
    window = [p.position for p in first.periods if p.in_window]
    if window:
        ax.axvspan(min(window) - 0.4, max(window) + 0.4, color="grey", alpha=0.12, label="reference period(s)")
    ax.set_xticks(sorted(labels), [labels[k] for k in sorted(labels)], rotation=30 if len(labels) > 8 else 0)
    ax.set_ylabel("perplexity (band: 95 % bootstrap CI over documents)")
    ax.set_xlabel(f"period ({first.granularity}, column '{first.period_column}')")
    handles, names = ax.get_legend_handles_labels()
    if acc_axis is not None:
        acc_axis.set_ylabel("accuracy by generation, %")
        h2, n2 = acc_axis.get_legend_handles_labels()
        handles, names = handles + h2, names + n2
    from hf_cost.report.plot_finish import finish_plot

    return finish_plot(fig, ax, handles, names, title, path)


def lm_candidate_lines(r: Any) -> list[str]:
    """report.md: one LM candidate's drift in a sentence, then its table per period."""
    m = r.metrics
    d = m.lm.perplexity_decay
    ref = d.reference
    parts = [(f"**{r.candidate}** (causal LM): reference {', '.join(ref.periods)} ({m.training_window_source}), "
             f"perplexity {_ci(ref.perplexity)} over {ref.documents} documents, {ref.tokens} tokens; "
             f"documents cut at {m.lm.max_length} tokens.")]
    if d.slope is not None:
        s = d.slope
        ols = "" if s.ols_ci_low is None else f"; OLS 95 % CI {s.ols_ci_low:+.3g} to {s.ols_ci_high:+.3g}"
        parts.append(f"Log-perplexity slope {s.value:+.3g} {s.unit} (bootstrap 95 % CI {s.ci_low:+.3g} to "
                     f"{s.ci_high:+.3g}{ols}).")
    parts.append(f"First period with perplexity significantly above the reference: {d.first_significant_rise}."
                 if d.first_significant_rise else "No period's perplexity is significantly above the reference.")
    if m.lm.answers is not None:
        a = m.lm.answers
        parts.append(f"Accuracy by generation overall {_ci(a.exact_match)}, {a.unparseable} unparseable "
                     f"({a.unparseable_share * 100:.1f} %); parser: {m.lm.parser}.")
        if m.decay is not None and m.decay.drop is not None:
            dr = m.decay.drop
            parts.append(f"Accuracy drop reference − later average {dr.value * 100:+.1f} pts "
                         f"[{dr.ci_low * 100:+.1f}, {dr.ci_high * 100:+.1f}].")
    lines = [" ".join(parts), "", "| " + " | ".join(LM_PERIOD_COLUMNS) + " |", "|" + "---|" * len(LM_PERIOD_COLUMNS)]
    decay = {p.period: p for p in d.periods}
    changes = {c.period: c for c in d.changes}
    for p in m.periods:
        q, ln, ch = p.perplexity, decay.get(p.period), changes.get(p.period)
        label = p.period + (" (reference)" if p.in_window else "") + (" ⚠ few rows" if p.few_rows else "")
        lines.append("| " + " | ".join([
            label, str(p.n), "—" if q is None else _ci(q), "—" if q is None else f"{q.mean_nll_per_token:.4f}",
            "—" if ln is None else _ci(ln.ratio_to_reference), "—" if ch is None else _ci(ch, signed=True),
            "—" if p.accuracy is None else _ci(p.accuracy),
            "—" if p.answers is None else f"{p.answers.unparseable} ({p.answers.unparseable_share * 100:.0f} %)",
        ]) + " |")
    return lines + ["", ("Perplexity per period: token-weighted exp(sum NLL / sum tokens), 95 % CI by bootstrap over "
                    f"the period's documents; ratios, ΔL and the slope: {d.method}."), ""]


def _ci(x: Any, signed: bool = False) -> str:
    f = "+.3f" if signed else ".3f"
    return f"{x.value:{f}} [{x.ci_low:{f}}, {x.ci_high:{f}}]"
