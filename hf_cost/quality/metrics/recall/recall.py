"""Recall: of the examples of a class, the share predicted as that class (hf_cost's copy).

Shipped inside hf_cost so that it loads by path with no Hugging Face Hub access.
"""

import evaluate
from sklearn.metrics import recall_score

from hf_cost.quality.metric_base import AVERAGE_TEXT, AVERAGED_ARGS, averaged_score, classification_info

_DESCRIPTION = """\
Recall of one class is TP / (TP + FN): the share of examples of that class that the model
predicts as that class.
""" + AVERAGE_TEXT

_KWARGS_DESCRIPTION = AVERAGED_ARGS.format(
    zero_case="the class has no reference examples (TP + FN = 0)", key="recall"
) + """
    Example:
    >>> metric = evaluate.load("hf_cost/quality/metrics/recall/recall.py")
    >>> metric.compute(predictions=[0, 1, 1, 1], references=[0, 1, 0, 1])["recall"]
    1.0
    >>> preds, refs = [0, 1, 1, 2], [0, 0, 1, 1]
    >>> metric.compute(predictions=preds, references=refs, average="macro", zero_division=0)["recall"]
    0.3333333333333333
    >>> metric.compute(predictions=preds, references=refs, labels=[0, 1, 2], average=None, zero_division=0)["recall"]
    [0.5, 0.5, 0.0]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Recall(evaluate.Metric):
    def _info(self):
        return classification_info(
            _DESCRIPTION,
            _KWARGS_DESCRIPTION,
            "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.recall_score.html",
        )

    def _compute(self, predictions, references, **kwargs):
        return averaged_score(recall_score, "recall", predictions, references, **kwargs)
