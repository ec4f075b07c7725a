"""A causal LM's drift figures: perplexity per period (no labels needed) with its decay
(drift/lm_decay.py), and, where the dataset has labels, accuracy by generation per period with
the decay statistics the classifier path gives accuracy (drift/decay.py).

Perplexity per period is `quality.perplexity.corpus_perplexity` on the period's documents, so a
period's figure is the perplexity kind's figure on the same rows. Answers are generated once for
every row (`quality.lm_answers.generate_answers`), parsed (`quality.answers.AnswerParser`) and
scored per period (`score_answers`: exact match and the unparseable share; accuracy and macro-F1
with an unparseable answer as a class of its own, as the accuracy kind scores them).

The reference (training) window is `training_window` when given, else the first period: a
pretrained LM's training rows are not in the scenario, so no row is excluded from scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hf_cost.config.generation import AnswerSettings
from hf_cost.drift.data import load_period_rows, load_period_texts
from hf_cost.drift.periods import PeriodColumn, check_named_periods
from hf_cost.errors import DataError, UserError


@dataclass
class LmRows:
    """The dated rows an LM's drift scores; ``labels`` (ids into ``label_names``) None without a label column."""

    texts: list[str]
    periods: list[str]
    column: PeriodColumn
    row_numbers: list[int]
    dropped: dict[str, int]
    description: str
    labels: list[int] | None
    label_names: list[str]

    def rows_in(self, period: str) -> list[int]:
        return [i for i, p in enumerate(self.periods) if p == period]


def load_lm_rows(sc: Any, where: str) -> LmRows:
    """The drift step's rows; with a label column, the labels the answers are parsed to
    (answers.labels, else the dataset's), refused with one line when the parser cannot produce them."""
    from hf_cost.quality.answers import check_parser

    spec = sc.dataset
    if spec.label_column is None:
        t = load_period_texts(spec, sc, f"{where}.dataset", order=sc.order)
        return LmRows(t.texts, t.periods, t.column, t.row_numbers, t.dropped, t.description, None, [])
    settings = sc.answers or AnswerSettings()
    r = load_period_rows(spec, sc, f"{where}.dataset", settings.labels, order=sc.order)
    try:
        check_parser(r.data.label_names, settings.regex)
    except ValueError as exc:
        raise UserError(str(exc), where=f"{where}.answers") from None
    d = r.data
    return LmRows(d.texts, r.periods, r.column, r.row_numbers, d.dropped, d.description, list(d.labels),
                  list(d.label_names))


def lm_window(sc: Any, column: PeriodColumn, where: str) -> tuple[list[str], str]:
    """The reference periods and where they come from, in words."""
    if sc.training_window is not None:
        check_named_periods(sc.training_window, column, "training_window", where)
        return list(sc.training_window), "given in the scenario (training_window)"
    return [column.order[0]], ("the first period (no training_window given; the LM's training data is not in "
                               "the scenario)")


def analyse_lm(sc: Any, rows: LmRows, window: list[str], docs: Sequence[Any], answers: dict[str, Any] | None,
               no_answer: str, where: str, say: Any) -> dict[str, Any]:
    """Per-period figures, the perplexity decay and (with ``answers``: 'answers', 'parser'
    (an AnswerParser)) the accuracy decay. Returns the DriftMetrics fields this analysis sets."""
    from hf_cost.drift.decay import decay_statistics
    from hf_cost.drift.lm_decay import perplexity_decay
    from hf_cost.quality.perplexity import corpus_perplexity

    inside = set(window)
    periods, ppl_idx, correct = [], [], []
    for p in rows.column.order:
        idx = rows.rows_in(p)
        entry: dict[str, Any] = {"period": p, "position": rows.column.positions[p], "n": len(idx),
                                 "rows_in_data": len(idx), "in_window": p in inside,
                                 "few_rows": 0 < len(idx) < sc.min_rows_per_period}
        say(f"period {p}: {len(idx)} rows" + (" (fewer than min_rows_per_period: wide CI)"
                                             if entry["few_rows"] else ""))
        try:
            scores = corpus_perplexity([docs[i] for i in idx], n_resamples=sc.bootstrap_resamples,
                                       seed=sc.dataset.seed)
            entry["perplexity"] = {**scores.pop("perplexity"), **scores}
            ppl_idx.append(len(periods))
        except ValueError:
            entry["note"] = "no document of this period has 2 or more tokens: its perplexity is undefined"
        if answers is not None:
            figures, right = _period_answers(sc, rows, idx, answers, no_answer)
            entry.update(figures)
            correct.append(right)
        periods.append(entry)
    if not any(periods[i]["in_window"] for i in ppl_idx):
        raise DataError(f"no document of the reference period(s) {', '.join(window)} has 2 or more tokens: "
                        "perplexity ratios need a reference", where=f"{where}.training_window")
    kept = [periods[i] for i in ppl_idx]
    ppl_docs = [[docs[i] for i in rows.rows_in(e["period"]) if docs[i].n_predicted > 0] for e in kept]
    out: dict[str, Any] = {
        "periods": periods,
        "perplexity_decay": perplexity_decay(
            [[d.nll_sum for d in ds] for ds in ppl_docs], [[d.n_predicted for d in ds] for ds in ppl_docs],
            [e["period"] for e in kept], [e["position"] for e in kept], [e["in_window"] for e in kept],
            n_resamples=sc.bootstrap_resamples, seed=sc.dataset.seed),
        "decay": None,
    }
    if answers is not None:
        out["decay"] = decay_statistics(correct, [e["period"] for e in periods], [e["position"] for e in periods],
                                        [e["in_window"] for e in periods], n_resamples=sc.bootstrap_resamples,
                                        seed=sc.dataset.seed)
    return out


def _period_answers(sc: Any, rows: LmRows, idx: list[int], answers: dict[str, Any],
                    no_answer: str) -> tuple[dict[str, Any], np.ndarray]:
    """One period's answers scored: exact match and unparseable share (quality/answers.py), accuracy,
    macro-F1 and per-class F1 with an unparseable answer as a class of its own (never right)."""
    from hf_cost.drift.analysis import period_quality
    from hf_cost.quality.answers import score_answers

    names = rows.label_names
    refs = np.asarray([rows.labels[i] for i in idx], dtype=np.int64)  # type: ignore[index]
    scored = score_answers([answers["answers"][i] for i in idx], [names[r] for r in refs], answers["parser"],
                           n_resamples=sc.bootstrap_resamples, seed=sc.dataset.seed)
    preds = np.asarray([len(names) if q is None else names.index(q) for q in scored["parsed"]], dtype=np.int64)
    quality = period_quality(preds, refs, [*names, no_answer], sc)
    quality["per_class_f1"].pop(no_answer, None)
    quality["label_distribution"].pop(no_answer, None)
    unparseable = scored["unparseable"]
    figures = {**quality, "answers": {"exact_match": scored["exact_match"], "unparseable": unparseable["count"],
                                      "unparseable_share": unparseable["share"]}}
    return figures, (preds == refs).astype(float)
