"""F1: the harmonic mean of precision and recall (hf_cost's copy).

Shipped inside hf_cost so that it loads by path with no Hugging Face Hub access.
"""

import datasets
import evaluate
from sklearn.metrics import f1_score

AVERAGES = ("binary", "macro", "micro", "weighted", None)

_DESCRIPTION = """\
F1 of one class is 2 * precision * recall / (precision + recall) = 2 TP / (2 TP + FP + FN):
the harmonic mean of its precision and recall.
`average` decides how the classes are combined: "binary" reports the class `pos_label` only;
"macro" is the unweighted mean over classes; "weighted" weights each class by its number of
reference examples; "micro" pools the counts of all classes first; None returns one value per
class. It lies in [0, 1]; higher is better.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted label ids.
    references (`list` of `int`): reference (gold) label ids, as many as predictions.
    labels (`list` of `int`, optional): the classes to report and average over, in this order.
        Default: every label id that occurs in predictions or references, sorted.
    pos_label (`int`, default 1): the positive class when average="binary".
    average (`str` or None, default "binary"): one of "binary", "macro", "micro", "weighted", None.
    sample_weight (`list` of `float`, optional): one weight per example.
    zero_division (0, 1, nan or "warn", default "warn"): the value when
        TP + FP + FN = 0; "warn" uses 0
        and emits a warning.

Returns:
    f1 (`float`, or `list` of `float` when average=None): the score.

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

_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and
          Grisel, O. and Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and
          Vanderplas, J. and Passos, A. and Cournapeau, D. and Brucher, M. and Perrot, M. and
          Duchesnay, E.},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"
            ],
        )

    def _compute(
        self,
        predictions,
        references,
        labels=None,
        pos_label=1,
        average="binary",
        sample_weight=None,
        zero_division="warn",
    ):
        if average not in AVERAGES:
            raise ValueError(f"average={average!r}: expected one of {AVERAGES}")
        score = f1_score(
            references,
            predictions,
            labels=labels,
            pos_label=pos_label,
            average=average,
            sample_weight=sample_weight,
            zero_division=zero_division,
        )
        return {"f1": score.tolist() if average is None else float(score)}
