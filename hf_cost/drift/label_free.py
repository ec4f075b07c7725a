"""One classifier's label-free accuracy estimates across a drift step's periods.

1. Calibration on the in-window held-out rows (never training rows): temperature scaling or
   per-class isotonic, kept only when it lowers the out-of-fold ECE (drift/calibration.py).
2. Every estimator per period with its sampling band (drift/estimators.py): average confidence
   and ATC, raw and calibrated, DoC, and CBPE's expected accuracy and macro-F1.
3. Backtest: wherever a period has labels, each estimator's error against the true accuracy, with
   a joint bootstrap CI; the estimator with the smallest mean absolute error over the trusted
   labelled out-of-window periods (step 4) is the headline estimate for every period.
4. Trust: a period whose inputs left the training distribution (its domain-classifier AUC, above
   its permutation baseline when it has one, or its unseen-word rate at or above the scenario's
   levels, `label_free`) gets every estimate labelled untrusted, with the reason. The estimators
   assume the relation between confidence and correctness found on in-window rows still holds;
   on text the training window never saw, it need not (NannyML's CBPE states the same
   assumption: no concept drift, no covariate shift into unseen regions).
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_ID_ROWS = 20  # fewer in-window rows than this: no calibration and no estimates (said in the result)

TRUST_RULE = ("untrusted when the period's domain-classifier AUC against the training window is at least {auc:.2f} "
              "(and beats its label-permutation baseline, p <= 0.05, when the sides are under 1,000 texts) or at "
              "least {unseen:.0%} of its words never occur in the training window")


def trust(input_drift: dict[str, Any] | None, settings: Any) -> tuple[bool, list[str]]:
    """(trusted, reasons): the period's input drift against the scenario's untrusted levels."""
    reasons: list[str] = []
    drift = input_drift or {}
    dc = drift.get("domain_classifier") or {}
    auc = dc.get("auc")
    if auc is not None and auc >= settings.untrusted_domain_auc:
        perm = dc.get("permutation")
        if perm is None or perm["p_value"] <= 0.05:
            base = "" if perm is None else f", label-permutation p = {perm['p_value']:.2g} ({perm['n']} permutations)"
            reasons.append(f"domain-classifier AUC {auc:.3f} ≥ {settings.untrusted_domain_auc:.2f}{base}: "
                           "its text left the training distribution")
    unseen = (drift.get("unseen_word_rate") or {}).get("value")
    if unseen is not None and unseen >= settings.untrusted_unseen_word_rate:
        reasons.append(f"{unseen:.1%} of its words never occur in the training window "
                       f"(≥ {settings.untrusted_unseen_word_rate:.0%})")
    return not reasons, reasons


def label_free(sc: Any, logits: np.ndarray, refs: np.ndarray, by_period: dict[str, np.ndarray],
               id_idx: np.ndarray, entries: list[dict[str, Any]], say: Any) -> dict[str, Any] | None:
    """Add `label_free` to every scored period entry (in place) and return the step-level figures;
    None (and nothing added) with fewer than MIN_ID_ROWS in-window rows to calibrate on."""
    from hf_cost.drift.calibration import choose_calibrator
    from hf_cost.drift.estimators import backtest, estimate, fit_estimators

    settings, seed, resamples = sc.label_free, sc.dataset.seed, sc.bootstrap_resamples
    if len(id_idx) < MIN_ID_ROWS:
        return None
    calibration = choose_calibrator(logits[id_idx], refs[id_idx], folds=settings.calibration_folds, seed=seed,
                                    n_resamples=resamples)
    report = calibration["report"]
    say(f"label-free estimates: calibration {report['chosen']} ({report['reason']})")
    fitted = fit_estimators(logits[id_idx], refs[id_idx], calibration)
    scored = [e for e in entries if e["n"] > 0]
    trusted = {e["period"]: trust(e.get("input_drift"), settings) for e in scored}
    sides = []  # the backtest reads each period's labelled rows (refs -1: no label yet); None: no label at all
    for e in scored:
        idx = by_period[e["period"]]
        lab = idx[refs[idx] >= 0]
        sides.append({"period": e["period"], "in_window": e["in_window"], "trusted": trusted[e["period"]][0],
                      "logits": logits[lab] if len(lab) else logits[idx], "labels": refs[lab] if len(lab) else None})
    bt = backtest(fitted, sides, n_resamples=resamples, seed=seed)
    errors = {p["period"]: p["errors"] for p in bt["periods"] if p.get("labelled")}
    head = bt["headline"] or "cbpe"
    method = ""
    for e in scored:
        est = estimate(fitted, logits[by_period[e["period"]]], n_resamples=resamples, seed=seed)
        method = est.pop("method", method)
        ok, why = trusted[e["period"]]
        e["label_free"] = {"estimates": est, "headline": head, "headline_estimate": est[head], "trusted": ok,
                           "untrusted_because": why, "errors": errors.get(e["period"])}
    thresholds = alert_thresholds(fitted, logits[id_idx], head, settings, seed)
    for e in scored:
        value = e["label_free"]["headline_estimate"]["value"]
        low, high = thresholds["lower"], thresholds["upper"]
        e["label_free"]["alert"] = ("below" if low is not None and value < low else
                                    "above" if high is not None and value > high else None)
    alerts = [e["period"] for e in scored if e["label_free"]["alert"]]
    if alerts:
        say(f"alert: the {head} estimate left its normal range for {', '.join(alerts)}")
    untrusted = [e["period"] for e in scored if not e["label_free"]["trusted"]]
    if untrusted:
        say(f"label-free estimates untrusted for {', '.join(untrusted)} (input drift beyond the trust levels)")
    return {
        "calibration": report,
        "backtest": {k: bt[k] for k in ("summary", "headline", "headline_reason", "method")},
        "headline": head,
        "estimators_method": method,
        "trust_rule": TRUST_RULE.format(auc=settings.untrusted_domain_auc, unseen=settings.untrusted_unseen_word_rate),
        "untrusted_periods": untrusted,
        "alert_thresholds": thresholds,
        "alert_periods": alerts,
    }


def alert_thresholds(fitted: Any, id_logits: np.ndarray, head: str, settings: Any, seed: int) -> dict[str, Any]:
    """The normal range of the headline estimate: the in-window rows cut into ``alert_chunks``
    seeded chunks, the estimate on each, mean ± 3 sample standard deviations (NannyML's default
    thresholds on reference chunks), clipped to [0, 1]; a constant from the scenario replaces a side."""
    from hf_cost.drift.estimators import estimate

    order = np.random.default_rng(seed).permutation(len(id_logits))
    chunks = [c for c in np.array_split(order, settings.alert_chunks) if len(c)]
    values = [estimate(fitted, id_logits[c], n_resamples=1, seed=seed)[head]["value"] for c in chunks]
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    lower = settings.alert_lower if settings.alert_lower is not None else max(0.0, mean - 3 * sd)
    upper = settings.alert_upper if settings.alert_upper is not None else min(1.0, mean + 3 * sd)
    return {"lower": lower, "upper": upper, "chunk_values": values, "chunk_mean": mean, "chunk_sd": sd,
            "source": {"lower": "scenario" if settings.alert_lower is not None else "mean - 3 sd of in-window chunks",
                       "upper": "scenario" if settings.alert_upper is not None else "mean + 3 sd of in-window chunks"},
            "method": f"the {head} estimate on {len(chunks)} seeded chunks of the {len(id_logits)} in-window rows "
                      "(about equal sizes), mean ± 3 sample standard deviations (NannyML's default), clipped to [0, 1]"}
