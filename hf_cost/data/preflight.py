"""Check every dataset and metric a scenario file names before any weights load (fail fast).

Loads each split (cheap for local files; a missing Hub dataset fails here, not after a
fine-tune), checks columns, filters, empty cells and label sets (a fine-tune's train set
needs 2 classes or more), so `validate` catches what `run` would otherwise hit minutes in.
"""

from __future__ import annotations

from typing import Any

from hf_cost.config.schema import AccuracyScenario, DatasetInputs, DriftScenario, Suite
from hf_cost.errors import UserError
from hf_cost.models.candidate import BASE


def check_steps(suite: Suite, model_config: Any) -> dict[str, list[str] | None]:
    """Check every step's data; return each candidate's label names (None: no head), by name."""
    from hf_cost.data.labelled import load_labelled
    from hf_cost.data.selection import narrow_rows
    from hf_cost.data.sources import load_split, require_columns
    from hf_cost.variants.registry import Plan, builders

    if isinstance(suite.inputs, DatasetInputs):
        spec = suite.inputs.dataset
        ds = load_split(spec, "inputs.dataset")
        columns = {"text_column": spec.text_column, "text_pair_column": spec.text_pair_column}
        require_columns(ds, columns, "inputs.dataset")
        narrow_rows(ds, spec, "inputs.dataset", columns)  # empty cells: `missing: error` fails here
    plan = Plan(suite=suite, model_config=model_config, labels={BASE: _base_labels(suite, model_config)})
    building = builders()
    for i, sc in enumerate(suite.scenarios):
        where = f"scenarios[{i}]"
        if sc.kind in building:
            plan.labels[sc.name or sc.kind] = building[sc.kind]().check(sc, plan, where)
        elif isinstance(sc, AccuracyScenario):
            checked: set[tuple[str, ...]] = set()
            for key, labels in _scored_candidates(sc, plan, where):
                if tuple(labels) not in checked:
                    load_labelled(sc.dataset, f"{where}.dataset", labels)
                    checked.add(tuple(labels))
            _check_metrics(sc.extra_metrics, f"{where}.extra_metrics")
        elif isinstance(sc, DriftScenario):
            _check_drift(sc, plan, where)
    return plan.labels


def _check_drift(sc: DriftScenario, plan: Any, where: str) -> None:
    """Periods parse, named periods exist, and every candidate's training window is known."""
    from hf_cost.drift.data import load_period_rows, training_window
    from hf_cost.errors import DataError

    loaded: dict[tuple[str, ...], Any] = {}
    for key, name, labels in _scored_candidates(sc, plan, where, with_names=True):
        rows = loaded.get(tuple(labels))
        if rows is None:
            rows = loaded[tuple(labels)] = load_period_rows(sc.dataset, sc, f"{where}.dataset", labels, order=sc.order)
            empty = [p for p in sc.order or [] if p not in rows.column.order]
            if empty:
                raise DataError(f"period '{empty[0]}' has no rows in column '{sc.period_column}'",
                                where=f"{where}.order")
        training_window(sc, plan.suite, name, rows, where, labels)  # loads the train sets' columns


def _base_labels(suite: Suite, config: Any) -> list[str] | None:
    if suite.model.task != "sequence-classification":
        return None
    return [str(config.id2label[i]) for i in range(config.num_labels)]


def _scored_candidates(sc: Any, plan: Any, where: str, with_names: bool = False) -> list[Any]:
    """(key, label names) of each candidate an accuracy or drift scenario scores (with
    ``with_names``: (key, name, label names)); each needs a head."""
    if sc.candidates is None:
        named = [(f"{where}.candidates", n) for n, labels in plan.labels.items() if labels is not None]
        if not named:
            raise UserError(
                "no candidate built so far has a classification head: set model.task: "
                "sequence-classification, or fine-tune one first",
                where=f"{where}.candidates",
            )
    else:
        named = [(f"{where}.candidates[{j}]", n) for j, n in enumerate(sc.candidates)]
    out = []
    for key, name in named:
        labels = plan.labels[name]
        if labels is None:
            raise UserError(
                f"candidate '{name}' has no classification head, so {sc.kind} cannot score it: set "
                "model.task: sequence-classification, or name a fine-tuned candidate",
                where=key,
            )
        out.append((key, name, labels) if with_names else (key, labels))
    return out


def _check_metrics(names: list[str], where: str) -> None:
    """Load each extra metric now, so an unknown or unreachable one fails before any run."""
    from hf_cost.quality.metric_loader import load_metric

    for i, name in enumerate(names):
        try:
            load_metric(name)
        except UserError as exc:
            raise UserError(str(exc), where=f"{where}[{i}]") from None
