"""The card's quality section: per candidate and quality cell (an accuracy step, or a drift step's
window, latest and worst periods), accuracy with its CI and the paired change vs the reference."""

from __future__ import annotations

from typing import Any

_QUALITY_HOW = (
    "Accuracy: share of rows predicted right; 95% CI by {method}. Δ = this candidate − the reference ({ref}) on the "
    "very same rows: paired bootstrap CI and an exact McNemar test; agreement = same predicted class, Wilson CI. "
    "Cells named DRIFT:PERIOD come from the drift step (the candidate's training rows not scored): its training "
    "window's periods, its latest, and any period that is a candidate's worst (marked worst period: the one whose "
    "Δ has the lowest CI low end); every period's Δ is in results.json."
)


def quality_section(card: Any, _tr: Any, _ci: Any, evaluated_on: Any) -> str:
    """Markdown for the card's `quality` section; ``_tr``, ``_ci`` are the card's table-row and interval
    formatters, ``evaluated_on(run, step)`` names the rows a step scored."""
    head = ["candidate", "evaluated on", "accuracy [95% CI]", "n", "Δ vs reference [95% CI]", "McNemar p",
            "agreement [95% CI]"]
    lines = [_tr(head), "|" + "---|" * len(head)]
    steps = {s.name for s in card.run.scenarios}
    # a drift step's periods between its window and its latest: only those some candidate is worst on
    any_worst = {(w.scenario, w.period) for r in card.rows for w in r.worst_period_delta or []}
    for r in card.rows:
        worst = {(w.scenario, w.period) for w in r.worst_period_delta or []}
        for q in r.quality:
            is_worst = (q.step, q.period) in worst
            if not (q.in_tables or (q.step, q.period) in any_worst):
                continue
            d, a = q.delta_vs_reference, q.agreement_with_reference
            # a cell named after a step is scored on that step's dataset; DRIFT:PERIOD cells say where they are from
            cell = q.scenario if q.scenario not in steps else (
                f"{q.scenario}: {evaluated_on(card.run, q.scenario)}")
            cell += " (worst period)" if is_worst else ""
            lines.append(_tr([card.label(r.candidate), cell, _ci(q.accuracy, q.ci_low, q.ci_high), str(q.n),
                              "—" if d is None else f"{d['value']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]",
                              "—" if d is None or d.get("mcnemar_p") is None else f"{d['mcnemar_p']:.2g}",
                              "—" if a is None else _ci(a["value"], a["ci_low"], a["ci_high"])]))
    if len(lines) == 2:
        return "No accuracy or drift step in this run."
    methods = dict.fromkeys(q.accuracy.method for s in card.ok for q in s.metrics.quality(s))
    return "\n".join(lines + ["", _QUALITY_HOW.format(method="; ".join(methods) or "bootstrap over rows",
                                                      ref=card.reference or "none")])
