"""F1: the harmonic mean of precision and recall (hf_cost's copy).

Shipped inside hf_cost so that it loads by path with no Hugging Face Hub access.
"""

import evaluate
from sklearn.metrics import f1_score

from hf_cost.quality.metric_base import AVERAGE_TEXT, AVERAGED_ARGS, averaged_score, classification_info

_DESCRIPTION = """\
F1 of one class is 2 * precision * recall / (precision + recall) = 2 TP / (2 TP + FP + FN):
the harmonic mean of its precision and recall.
""" + AVERAGE_TEXT

_KWARGS_DESCRIPTION = AVERAGED_ARGS.format(
    zero_case="TP + FP + FN = 0", key="f1"
) + """
    Example:
    >>> metric = evaluate.load("hf_cost/quality/metrics/f1/f1.py")
    >>> metric.compute(predictions=[0, 1, 1, 1], references=[0, 1, 0, 1])["f1"]
    0.8
    >>> preds, refs = [0, 1, 1, 2], [0, 0, 1, 1]
    >>> metric.compute(predictions=preds, references=refs, average="macro", zero_division=0)["f1"]
    0.38888888888888884
    >>> metric.compute(predictions=preds, references=refs, labels=[0, 1, 2], average=None, zero_division=0)["f1"]
    [0.6666666666666666, 0.5, 0.0]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return classification_info(
            _DESCRIPTION,
            _KWARGS_DESCRIPTION,
            "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html",
        )

    def _compute(self, predictions, references, **kwargs):
        return averaged_score(f1_score, "f1", predictions, references, **kwargs)
