"""Precision: of the examples predicted as a class, the share truly in it (hf_cost's copy).

Shipped inside hf_cost so that it loads by path with no Hugging Face Hub access.
"""

import evaluate
from sklearn.metrics import precision_score

from hf_cost.quality.metric_base import AVERAGE_TEXT, AVERAGED_ARGS, averaged_score, classification_info

_DESCRIPTION = """\
Precision of one class is TP / (TP + FP): the share of examples predicted as that class that truly
belong to it.
""" + AVERAGE_TEXT

_KWARGS_DESCRIPTION = AVERAGED_ARGS.format(
    zero_case="no example is predicted as the class (TP + FP = 0)", key="precision"
) + """
    Example:
    >>> metric = evaluate.load("hf_cost/quality/metrics/precision/precision.py")
    >>> metric.compute(predictions=[0, 1, 1, 1], references=[0, 1, 0, 1])["precision"]
    0.6666666666666666
    >>> preds, refs = [0, 1, 1, 2], [0, 0, 1, 1]
    >>> metric.compute(predictions=preds, references=refs, average="macro", zero_division=0)["precision"]
    0.5
    >>> metric.compute(predictions=preds, references=refs, labels=[0, 1, 2], average=None, zero_division=0)["precision"]
    [1.0, 0.5, 0.0]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Precision(evaluate.Metric):
    def _info(self):
        return classification_info(
            _DESCRIPTION,
            _KWARGS_DESCRIPTION,
            "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.precision_score.html",
        )

    def _compute(self, predictions, references, **kwargs):
        return averaged_score(precision_score, "precision", predictions, references, **kwargs)
