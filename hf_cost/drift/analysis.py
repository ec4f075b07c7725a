"""One candidate's drift figures from its predictions: quality per period, decay, input drift
against the training window, and label-free accuracy estimates (AC/ATC as before, and the
calibrated, backtested estimators with their trust labels: drift/label_free.py).

Input-drift figures that do not depend on the candidate (word-level unseen rate, label prior,
domain classifier) are cached by (reference text, period text), so candidates trained on the
same rows share them; those that do (word pieces, lengths, predictions) are computed per candidate.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from hf_cost.drift.data import PeriodRows, Window


def text_key(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for t in texts:
        digest.update(t.encode("utf-8") + b"\0")
    return digest.hexdigest()


def period_quality(preds: np.ndarray, refs: np.ndarray, label_names: list[str], sc: Any) -> dict[str, Any]:
    """Accuracy and macro-F1 with bootstrap CIs, per-class F1 and the label distribution."""
    from hf_cost.quality.scoring import score_classification

    scores = score_classification(preds.tolist(), refs.tolist(), label_names,
                                  n_resamples=sc.bootstrap_resamples, seed=sc.dataset.seed)
    counts = np.bincount(refs, minlength=len(label_names))
    return {
        "accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"],
        "per_class_f1": {name: scores["per_class"][name]["f1"] for name in label_names},
        "label_distribution": {name: int(counts[i]) for i, name in enumerate(label_names)},
    }


class InputDrift:
    """Input drift of each period against one candidate's reference (training) text."""

    def __init__(self, sc: Any, window: Window, tokenizer: Any, cache: dict[Any, Any]):
        from hf_cost.drift.input_shift import word_tokens

        self.sc, self.window, self.cache = sc, window, cache
        self.tokenizer = tokenizer
        ref = window.reference
        self.ref_key = text_key(ref.texts)
        self.ref_words = [word_tokens(t) for t in ref.texts]
        self.ref_pieces = self._pieces(ref.texts)
        self.ref_label_counts = np.bincount(ref.labels, minlength=len(ref.label_names))

    def _pieces(self, texts: Sequence[str]) -> list[list[int]]:
        return list(self.tokenizer(list(texts), add_special_tokens=False)["input_ids"])

    def period(self, texts: list[str], labels: np.ndarray, preds: np.ndarray,
               id_preds: np.ndarray | None, num_labels: int) -> dict[str, Any]:
        from hf_cost.drift.input_shift import (
            distribution_shift,
            domain_classifier_auc,
            length_shift,
            unseen_rate,
            word_tokens,
        )

        sc, seed = self.sc, self.sc.dataset.seed
        key = (self.ref_key, text_key(texts))
        shared = self.cache.get(key)
        if shared is None:
            words = [word_tokens(t) for t in texts]
            shared = {
                "unseen_word_rate": unseen_rate(self.ref_words, words, n_resamples=sc.bootstrap_resamples, seed=seed),
                "label_prior_shift": (  # None for a period without labels
                    distribution_shift(self.ref_label_counts, np.bincount(labels, minlength=num_labels))
                    if len(labels) else None),
                "domain_classifier": (
                    domain_classifier_auc(self.window.reference.texts, texts, seed=seed,
                                          max_per_side=sc.max_texts_per_side, n_resamples=sc.bootstrap_resamples)
                    if sc.domain_classifier else None
                ),
            }
            self.cache[key] = shared
        pieces = self._pieces(texts)
        out = dict(shared)
        out["unseen_wordpiece_rate"] = unseen_rate(self.ref_pieces, pieces, n_resamples=sc.bootstrap_resamples, seed=seed)
        out["length_shift"] = length_shift([len(p) for p in self.ref_pieces], [len(p) for p in pieces])
        out["prediction_shift"] = (
            distribution_shift(np.bincount(id_preds, minlength=num_labels), np.bincount(preds, minlength=num_labels))
            if id_preds is not None and len(id_preds) else None
        )
        return out


def eval_stream(sc: Any, kept: list[dict[str, Any]], correct: list[np.ndarray], window: Window) -> dict[str, Any]:
    """Wild-Time's Eval-Stream for this candidate: trained on periods up to t (its window), scored
    on the next `horizon` periods after t; their mean accuracy with a bootstrap CI (rows
    resampled within each period, as for the decay statistics)."""
    from hf_cost.drift.decay import decay_statistics

    names = [e["period"] for e in kept]
    inside = [i for i, e in enumerate(kept) if e["in_window"]]
    out: dict[str, Any] = {"horizon": sc.horizon, "after": None, "periods": [], "average": None, "note": None}
    if not inside:
        out["note"] = "no period of the training window is in the data, so 'the next periods' are undefined"
        return out
    last = max(inside)
    ahead = list(range(last + 1, min(last + 1 + sc.horizon, len(kept))))
    out["after"] = names[last]
    if not ahead:
        out["note"] = f"no period after {names[last]} in the data"
        return out
    if any(kept[i]["in_window"] for i in ahead):
        out["note"] = "the training window is not contiguous: periods after its last one include trained ones"
    stats = decay_statistics([correct[i] for i in ahead], [names[i] for i in ahead],
                             [kept[i]["position"] for i in ahead], [False] * len(ahead),
                             n_resamples=sc.bootstrap_resamples, seed=sc.dataset.seed)
    out["periods"] = [names[i] for i in ahead]
    out["average"] = stats["out_of_distribution"]["average"]
    if len(ahead) < sc.horizon:
        out["note"] = f"only {len(ahead)} of the {sc.horizon} periods after {names[last]} are in the data"
    return out


def analyse(sc: Any, rows: PeriodRows, window: Window, scored: list[int], logits: np.ndarray,
            tokenizer: Any, cache: dict[Any, Any], say: Any) -> dict[str, Any]:
    """The drift metrics of one candidate (see report.metrics.DriftMetrics)."""
    from hf_cost.drift.confidence import estimate_accuracy, max_softmax
    from hf_cost.drift.decay import decay_statistics

    data = rows.data
    label_names = data.label_names
    preds_all = logits.argmax(axis=-1)
    conf_all = max_softmax(logits)
    refs_all = np.asarray([data.labels[i] for i in scored], dtype=np.int64)
    period_of = [rows.periods[i] for i in scored]
    by_period = {p: np.asarray([j for j, q in enumerate(period_of) if q == p], dtype=np.int64)
                 for p in rows.column.order}
    inside = set(window.periods)
    labelled = {p: idx[refs_all[idx] >= 0] for p, idx in by_period.items()}  # rows with a label (-1: none yet)
    id_idx = np.concatenate([labelled[p] for p in rows.column.order if p in inside] or [np.zeros(0, np.int64)])
    id_correct = preds_all[id_idx] == refs_all[id_idx]
    drift = InputDrift(sc, window, tokenizer, cache)
    periods: list[dict[str, Any]] = []
    for p in rows.column.order:
        idx = by_period[p]
        entry: dict[str, Any] = {"period": p, "position": rows.column.positions[p], "n": int(len(idx)),
                                 "rows_in_data": len(rows.rows_in(p)), "in_window": p in inside,
                                 "few_rows": 0 < len(idx) < sc.min_rows_per_period}
        if len(idx) == 0:
            entry["note"] = "every row of this period is in the training set: nothing left to score"
            periods.append(entry)
            continue
        lab = labelled[p]
        entry["labelled_rows"] = int(len(lab))
        say(f"period {p}: {len(idx)} rows" + (f", {len(lab)} labelled" if len(lab) < len(idx) else "")
            + (" (fewer than min_rows_per_period: wide CI)" if entry["few_rows"] else ""))
        if len(lab):
            entry.update(period_quality(preds_all[lab], refs_all[lab], label_names, sc))
        else:
            entry["note"] = "no labels in this period yet: label-free estimates and input drift only"
        entry["estimated_accuracy"] = (
            estimate_accuracy(conf_all[id_idx], id_correct, conf_all[idx]) if len(id_idx) else None
        )
        entry["input_drift"] = drift.period(
            [data.texts[scored[j]] for j in idx], refs_all[lab], preds_all[idx],
            preds_all[id_idx] if len(id_idx) else None, len(label_names),
        )
        periods.append(entry)
    from hf_cost.drift.label_free import label_free

    estimates = label_free(sc, np.asarray(logits), refs_all, by_period, id_idx, periods, say)
    if not any(e.get("labelled_rows") for e in periods):
        say("no period has labels: no accuracy and no decay, label-free estimates and input drift only")
    kept = [e for e in periods if e.get("labelled_rows")]  # decay: the periods with labels, on their labelled rows
    correct = [(preds_all[labelled[e["period"]]] == refs_all[labelled[e["period"]]]).astype(float) for e in kept]
    decay = decay_statistics(
        correct, [e["period"] for e in kept], [e["position"] for e in kept], [e["in_window"] for e in kept],
        n_resamples=sc.bootstrap_resamples, seed=sc.dataset.seed,
    ) if kept else None
    return {
        "stream": eval_stream(sc, kept, correct, window) if sc.horizon else None,
        "period_column": sc.period_column, "granularity": sc.granularity,
        "training_window": list(window.periods), "training_window_source": window.source,
        "reference_rows": len(window.reference), "scored_rows": len(scored),
        "excluded_training_rows": len(data) - len(scored),
        "id_rows": int(len(id_idx)), "periods": periods, "decay": decay,
        "unlabelled_rows": int(np.sum(refs_all < 0)),
        "label_distribution_reference": dict(zip(label_names, map(int, drift.ref_label_counts))),
        "label_free": estimates,
    }
