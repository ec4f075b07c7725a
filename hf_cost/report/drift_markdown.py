"""report.md's drift sections: per candidate the decay in one sentence, then a table per period
(quality with CIs, the label-free estimates beside the true accuracy, input drift)."""

from __future__ import annotations

from typing import Any

from hf_cost.report.drift_plot import drift_groups, drift_plot_name

PERIOD_COLUMNS = (
    "period", "n", "accuracy [95% CI]", "macro-F1", "S(t) vs previous", "est. accuracy: AC / ATC",
    "unseen words", "unseen word pieces", "length KS D (p)", "label prior JS (p)",
    "prediction JS (p)", "domain AUC [95% CI]",
)


def drift_sections(scenarios: list[Any]) -> list[str]:
    lines: list[str] = []
    for name, results in drift_groups(scenarios).items():
        first = results[0].metrics
        how = ("each causal LM's perplexity per period (and accuracy by generation where labelled)"
               if first.lm is not None else "each candidate scored on every period through the accuracy "
               "runner's path, rows of its training set excluded")
        lines += ["", f"## Drift: {name}", "",
                  f"Periods from column `{first.period_column}` ({first.granularity}); {how}. "
                  f"![quality per period]({drift_plot_name(name)})", ""]
        for r in results:
            lines += _candidate(r)
        if first.lm is not None:  # an LM group: its notes are in its own lines (report/drift_lm.py)
            continue
        lines += ["S(t) = P(t) − P(t−1). AC = average max-softmax confidence; ATC = average thresholded "
                  "confidence (Garg et al. 2022), threshold fitted on the in-window rows, so it equals the "
                  "in-distribution accuracy there by construction. Input drift is against the training "
                  "window's text; the domain AUC is a cross-validated TF-IDF logistic regression telling "
                  "training text from the period's (0.5 = no drift). JS = Jensen–Shannon divergence in bits, "
                  "p from a chi-square test of homogeneity. Every figure is recomputable from results.json."]
    return lines


def _candidate(r: Any) -> list[str]:
    from hf_cost.core.format import describe_slope

    m, d = r.metrics, r.metrics.decay
    if m.lm is not None:  # a causal LM: perplexity per period, accuracy by generation where labelled
        from hf_cost.report.drift_lm import lm_candidate_lines

        return lm_candidate_lines(r)
    parts = [f"**{r.candidate}**: training window {', '.join(m.training_window)} ({m.training_window_source}); "
             f"{m.scored_rows} rows scored, {m.excluded_training_rows} training rows excluded."]
    if d.in_distribution is not None:
        parts.append(f"In-distribution accuracy {_ci(d.in_distribution)} (n={d.in_distribution.n}).")
    if d.out_of_distribution is not None:
        avg, worst = d.out_of_distribution.average, d.out_of_distribution.worst
        parts.append(f"Out-of-distribution average {_ci(avg)}, worst {_ci(worst)} ({worst.period}).")
    if d.drop is not None:
        parts.append(f"Drop ID − OOD average {_pts(d.drop)}; ID − worst {_pts(d.worst_drop)}.")
    if d.slope is not None:
        s = d.slope
        ols = "" if s.ols_ci_low is None else (
            f" (OLS over the {s.periods} period values: 95 % CI {s.ols_ci_low * 100:+.2f} to "
            f"{s.ols_ci_high * 100:+.2f} points, p = {s.ols_p_value:.2g})")
        parts.append(f"Trend: {describe_slope(s.model_dump(), m.granularity)}, bootstrap over rows{ols}.")
    st = m.stream
    if st is not None:
        if st.average is not None:
            parts.append(f"Eval-Stream (trained up to {st.after}, next {st.horizon}): mean accuracy "
                         f"{_ci(st.average)} over {', '.join(st.periods)}.")
        if st.note:
            parts.append(f"Eval-Stream: {st.note}.")
    lines = [" ".join(parts), "", "| " + " | ".join(PERIOD_COLUMNS) + " |", "|" + "---|" * len(PERIOD_COLUMNS)]
    changes = {c.period: c for c in d.changes}
    for p in m.periods:
        lines.append("| " + " | ".join(_period_cells(p, changes.get(p.period))) + " |")
    return lines + [""]


def _period_cells(p: Any, change: Any) -> list[str]:
    label = p.period + (" (window)" if p.in_window else "") + (" ⚠ few rows" if p.few_rows else "")
    if p.accuracy is None:
        return [label, "0", p.note or "—"] + ["—"] * (len(PERIOD_COLUMNS) - 3)
    est = p.estimated_accuracy
    drift = p.input_drift or {}
    return [
        label, str(p.n), _ci(p.accuracy), f"{p.f1_macro.value:.3f}",
        "—" if change is None else _pts(change),
        "—" if est is None else f"{est['average_confidence']:.3f} / {est['atc']:.3f}",
        _rate(drift.get("unseen_word_rate")), _rate(drift.get("unseen_wordpiece_rate")),
        _test(drift.get("length_shift"), "ks_statistic"), _test(drift.get("label_prior_shift"), "js_divergence"),
        _test(drift.get("prediction_shift"), "js_divergence"), _auc(drift.get("domain_classifier")),
    ]


def _ci(x: Any) -> str:
    return f"{x.value:.3f} [{x.ci_low:.3f}, {x.ci_high:.3f}]"


def _pts(x: Any) -> str:
    return f"{x.value * 100:+.1f} pts [{x.ci_low * 100:+.1f}, {x.ci_high * 100:+.1f}]"


def _rate(x: dict | None) -> str:
    if not x or x.get("value") is None:
        return "—"
    return f"{x['value'] * 100:.1f}% [{x['ci_low'] * 100:.1f}, {x['ci_high'] * 100:.1f}]"


def _test(x: dict | None, key: str) -> str:
    if not x or x.get(key) is None:
        return "—"
    p = x.get("p_value")
    return f"{x[key]:.3f} (p {'n/a' if p is None else f'{p:.2g}'})"


def _auc(x: dict | None) -> str:
    if not x:
        return "off"
    if x.get("auc") is None:
        return x.get("skipped", "—")
    return f"{x['auc']:.3f} [{x['ci_low']:.3f}, {x['ci_high']:.3f}]"
