"""Check every dataset and metric a scenario file names before any weights load (fail fast).

Loads each split (cheap for local files; a missing Hub dataset fails here, not after a
fine-tune), checks columns, filters, empty cells and label sets (a fine-tune's train set
needs 2 classes or more), so `validate` catches what `run` would otherwise hit minutes in.
"""

from __future__ import annotations

from typing import Any

from hf_cost.config.schema import AccuracyScenario, DatasetInputs, FineTuneScenario, Suite
from hf_cost.errors import UserError


def check_datasets(suite: Suite, model_config: Any) -> None:
    from hf_cost.data.labelled import load_labelled
    from hf_cost.data.selection import narrow_rows
    from hf_cost.data.sources import load_split, require_columns

    if isinstance(suite.inputs, DatasetInputs):
        spec = suite.inputs.dataset
        ds = load_split(spec, "inputs.dataset")
        columns = {"text_column": spec.text_column, "text_pair_column": spec.text_pair_column}
        require_columns(ds, columns, "inputs.dataset")
        narrow_rows(ds, spec, "inputs.dataset", columns)  # empty cells: `missing: error` fails here
    trained: dict[str, list[str]] = {}  # fine_tune name -> its label names
    for i, sc in enumerate(suite.scenarios):
        where = f"scenarios[{i}]"
        if isinstance(sc, FineTuneScenario):
            labels = load_labelled(sc.train, f"{where}.train").label_names
            load_labelled(sc.eval, f"{where}.eval", labels)
            trained[sc.name or sc.kind] = labels
        elif isinstance(sc, AccuracyScenario):
            if sc.checkpoint is not None:
                labels = trained[sc.checkpoint]
            else:
                labels = _model_labels(suite, model_config, f"{where}.checkpoint")
            load_labelled(sc.dataset, f"{where}.dataset", labels)
            _check_metrics(sc.extra_metrics, f"{where}.extra_metrics")


def _model_labels(suite: Suite, config: Any, where: str) -> list[str]:
    if suite.model.task != "sequence-classification":
        raise UserError(
            "accuracy needs a classification model: set model.task: sequence-classification, "
            "or measure an earlier fine_tune scenario with `checkpoint:`",
            where=where,
        )
    return [str(config.id2label[i]) for i in range(config.num_labels)]


def _check_metrics(names: list[str], where: str) -> None:
    """Load each extra metric now, so an unknown or unreachable one fails before any run."""
    from hf_cost.quality.metric_loader import load_metric

    for i, name in enumerate(names):
        try:
            load_metric(name)
        except UserError as exc:
            raise UserError(str(exc), where=f"{where}[{i}]") from None
