"""Accuracy: the fraction of predictions equal to their reference label (hf_cost's copy).

Shipped inside hf_cost so that it loads by path with no Hugging Face Hub access.
"""

import evaluate
from sklearn.metrics import accuracy_score

from hf_cost.quality.metric_base import classification_info

_DESCRIPTION = """\
Accuracy is the share of examples whose predicted label equals the reference label:
(number of correct predictions) / (number of predictions). With `sample_weight`, each example
counts with its weight instead of 1. It lies in [0, 1]; higher is better.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted label ids.
    references (`list` of `int`): reference (gold) label ids, as many as predictions.
    normalize (`bool`, default True): if False, return the number (or total weight) of correct
        predictions instead of the fraction.
    sample_weight (`list` of `float`, optional): one weight per example.

Returns:
    accuracy (`float`): the fraction (or count, if normalize=False) of correct predictions.

Example:
    >>> metric = evaluate.load("hf_cost/quality/metrics/accuracy/accuracy.py")
    >>> metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2])
    {'accuracy': 0.75}
"""

@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return classification_info(
            _DESCRIPTION,
            _KWARGS_DESCRIPTION,
            "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html",
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        score = accuracy_score(
            references, predictions, normalize=normalize, sample_weight=sample_weight
        )
        return {"accuracy": float(score)}
