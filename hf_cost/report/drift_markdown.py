"""report.md's drift sections: per candidate the decay in one sentence, then a table per period
(quality with CIs, the label-free estimates beside the true accuracy, input drift)."""

from __future__ import annotations

from typing import Any

from hf_cost.report.drift_plot import drift_groups, drift_plot_name

PERIOD_COLUMNS = (
    "period", "n", "accuracy [95% CI]", "macro-F1", "S(t) vs previous",
    "label-free estimate [band] · error vs true [95% CI]",
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
        lines += ["S(t) = P(t) − P(t−1). Label-free estimate: the headline estimator (smallest backtest error "
                  "over the labelled out-of-window periods) with its band, a percentile bootstrap over the "
                  "period's rows; error = estimate − true accuracy, joint bootstrap. ATC = average thresholded "
                  "confidence (Garg et al. 2022), threshold fitted on the in-window rows, so it equals the "
                  "in-distribution accuracy there by construction; CBPE = expected accuracy from calibrated "
                  "probabilities (NannyML); DoC = difference of confidences (Guillory et al. 2021). Older "
                  "results files show AC / ATC. Input drift is against the training "
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
             f"{m.scored_rows} rows scored, {m.excluded_training_rows} training rows excluded"
             + (f", {m.unlabelled_rows} without a label yet (estimated, not scored)." if m.unlabelled_rows else ".")]
    if d is None:
        parts.append("No period has labels: no accuracy, no decay.")
    if d is not None and d.in_distribution is not None:
        parts.append(f"In-distribution accuracy {_ci(d.in_distribution)} (n={d.in_distribution.n}).")
    if d is not None and d.out_of_distribution is not None:
        avg, worst = d.out_of_distribution.average, d.out_of_distribution.worst
        parts.append(f"Out-of-distribution average {_ci(avg)}, worst {_ci(worst)} ({worst.period}).")
    if d is not None and d.drop is not None:
        parts.append(f"Drop ID − OOD average {_pts(d.drop)}; ID − worst {_pts(d.worst_drop)}.")
    if d is not None and d.slope is not None:
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
    lines = [" ".join(parts), *_label_free_lines(m.label_free), "",
             "| " + " | ".join(PERIOD_COLUMNS) + " |", "|" + "---|" * len(PERIOD_COLUMNS)]
    changes = {c.period: c for c in d.changes} if d is not None else {}
    for p in m.periods:
        lines.append("| " + " | ".join(_period_cells(p, changes.get(p.period))) + " |")
    return lines + _what_drifted(m.periods) + [""]


def _what_drifted(periods: list[Any]) -> list[str]:
    """Per out-of-window period, the words that tell it from the training window most (the domain
    classifier's largest coefficients), with the share of texts holding each on both sides."""
    out = []
    for p in periods:
        dc = (p.input_drift or {}).get("domain_classifier") or {}
        terms = dc.get("top_terms") or {}
        if p.in_window or not (terms.get("period") or terms.get("reference")):
            continue
        def shown(side: str) -> str:
            return ", ".join(f"'{t['term']}' ({t['period_doc_share']:.0%} vs {t['reference_doc_share']:.0%})"
                             for t in terms.get(side, [])[:5]) or "none"
        perm = dc.get("permutation")
        base = ("" if perm is None else f"; AUC vs {perm['n']} label permutations: p = {perm['p_value']:.2g}")
        out.append(f"- {p.period}: more {shown('period')}; fewer {shown('reference')} (share of texts, period vs "
                   f"training window{base})")
    return ["", "What drifted (the domain classifier's strongest words):", *out] if out else []


def _period_cells(p: Any, change: Any) -> list[str]:
    label = p.period + (" (window)" if p.in_window else "") + (" ⚠ few rows" if p.few_rows else "")
    if p.n == 0:
        return [label, "0", p.note or "—"] + ["—"] * (len(PERIOD_COLUMNS) - 3)
    drift = p.input_drift or {}
    some = p.labelled_rows is not None and p.labelled_rows < p.n
    return [
        label, str(p.n) + (f" ({p.labelled_rows} labelled)" if some else ""),
        "no labels" if p.accuracy is None else _ci(p.accuracy), "—" if p.f1_macro is None else f"{p.f1_macro.value:.3f}",
        "—" if change is None else _pts(change), _estimate(p),
        _rate(drift.get("unseen_word_rate")), _rate(drift.get("unseen_wordpiece_rate")),
        _test(drift.get("length_shift"), "ks_statistic"), _test(drift.get("label_prior_shift"), "js_divergence"),
        _test(drift.get("prediction_shift"), "js_divergence"), _auc(drift.get("domain_classifier")),
    ]


def _label_free_lines(lf: Any) -> list[str]:
    """One paragraph: the calibration kept, each estimator's backtest error, the headline, the trust rule."""
    if lf is None:
        return []
    c = lf.calibration
    before, after = c["ece_before"], c["ece_after"]
    text = (f"Label-free estimates: calibrated on the in-window held-out rows ({c['n']} rows, {c['folds']}-fold): "
            f"{c['chosen']} — {c['reason']}; ECE {before['value']:.3f} [{before['ci_low']:.3f}, "
            f"{before['ci_high']:.3f}] before, {after['value']:.3f} [{after['ci_low']:.3f}, {after['ci_high']:.3f}] "
            "after (out of fold).")
    summary = lf.backtest.get("summary") or {}
    if summary:
        text += " Backtest, mean |estimate − true| over the trusted labelled out-of-window periods: " + ", ".join(
            f"{name} {v['mean_abs_error'] * 100:.1f} pts (max {v['max_abs_error'] * 100:.1f})"
            for name, v in summary.items() if v.get("mean_abs_error") is not None) + "."
    text += f" Headline: {lf.headline} ({lf.backtest.get('headline_reason', '')}). Trust: {lf.trust_rule}."
    t = lf.alert_thresholds
    if t is not None:
        text += (f" Alert range of the {lf.headline} estimate: [{t['lower']:.3f}, {t['upper']:.3f}] ({t['method']}; "
                 f"lower: {t['source']['lower']}, upper: {t['source']['upper']}).")
    if lf.alert_periods:
        text += f" **Alerts: {', '.join(lf.alert_periods)}.**"
    if lf.untrusted_periods:
        text += f" **Untrusted: {', '.join(lf.untrusted_periods)}.**"
    return ["", text]


def _estimate(p: Any) -> str:
    lf = p.label_free
    if lf is None:  # an older results file: AC / ATC only
        est = p.estimated_accuracy
        return "—" if est is None else f"AC {est['average_confidence']:.3f} / ATC {est['atc']:.3f}"
    h = lf.headline_estimate
    cell = f"{lf.headline} {h.value:.3f} [{h.ci_low:.3f}, {h.ci_high:.3f}]"
    err = (lf.errors or {}).get(lf.headline)
    if err is not None:
        cell += f" · {_pts(err)}"
    if lf.alert:
        cell += f" · 🔔 ALERT: {lf.alert} the normal range"
    if not lf.trusted:
        cell += " · ⚠ UNTRUSTED: " + "; ".join(lf.untrusted_because)
    return cell


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
