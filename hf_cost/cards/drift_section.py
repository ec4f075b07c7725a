"""The card's drift section: per drift step and candidate, accuracy per dated period with its CI and
the headline label-free estimate, labelled UNTRUSTED or ALERT where it is (drift/label_free.py)."""

from __future__ import annotations

from typing import Any

_GRAN = {"half": "half-year"}


def drift_section(card: Any, _tr: Any, _ci: Any) -> str:
    """Markdown for the card's `drift` section, or '' when no step scores dated periods; ``_tr`` and
    ``_ci`` are the card's table-row and interval formatters."""
    from hf_cost.core.format import describe_slope

    lines: list[str] = []
    for s in card.ok:
        periods = s.metrics.period_quality()
        if periods is None:
            continue
        decay, gran = s.metrics.decay_summary(s) or {}, periods.granularity
        slope, drop = decay.get("slope"), decay.get("drop")
        trend = (f"accuracy {describe_slope(slope, gran)}; least-squares slope over period positions, "
                 "CI by bootstrap over rows" if slope else "no trend (fewer than 2 scored periods)")
        if drop:
            trend += (f"; in-window minus out-of-window average {drop['value'] * 100:+.1f} points "
                      f"[{drop['ci_low'] * 100:+.1f}, {drop['ci_high'] * 100:+.1f}]")
        window = ", ".join(periods.training_window) or "none"
        lines += [f"**{s.candidate}** ({s.name}, periods from `{periods.period_column}` by "
                  f"{_GRAN.get(gran, gran)}; training window {window}): {trend}.", "",
                  _tr(["period", "n", "accuracy [95% CI]", "macro-F1 [95% CI]", "label-free estimate [band]"]),
                  "|---|---|---|---|---|"]
        for p in periods.periods:
            a, f = p.accuracy, p.f1_macro
            label = p.period + (" (training window)" if p.in_window else "") + (" ⚠ few rows" if p.few_rows else "")
            unscored = "no labels yet" if p.n and getattr(p, "labelled_rows", None) == 0 else "not scored"
            lines.append(_tr([label, str(p.n), unscored if a is None else _ci(a.value, a.ci_low, a.ci_high),
                              "—" if f is None else _ci(f.value, f.ci_low, f.ci_high), _label_free(p, _ci)]))
        lines.append("")
    if not lines:
        return ""
    return "\n".join(lines + ["CIs: percentile bootstrap over the period's rows. Rows the candidate was trained on "
                              "are not scored. Label-free estimate: the estimator with the smallest error where labels "
                              "exist (results.json: label_free.backtest), band by bootstrap over the period's rows; "
                              "UNTRUSTED where the period's text left the training distribution (domain-classifier "
                              "AUC or unseen-word rate beyond the step's trust levels); ALERT where the estimate left "
                              "its normal range (in-window chunks' mean ± 3 sd, or the step's constants). See the "
                              "dataset's README for "
                              "the drift built into its periods."])


def _label_free(p: Any, _ci: Any) -> str:
    lf = getattr(p, "label_free", None)
    if lf is None:
        return "—"
    h = lf.headline_estimate
    text = f"{lf.headline} {_ci(h.value, h.ci_low, h.ci_high)}"
    if getattr(lf, "alert", None):
        text += f" 🔔 ALERT: {lf.alert} the normal range"
    return text if lf.trusted else text + " ⚠ UNTRUSTED: " + "; ".join(lf.untrusted_because)
