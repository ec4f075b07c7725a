"""What the bundled metric scripts share: features, citation, the sklearn call.

The scripts under quality/metrics/ stay separate files because `evaluate.load(path)`
loads one script per metric; they import this module by its absolute name.
"""

from __future__ import annotations

from typing import Any, Callable

AVERAGES = ("binary", "macro", "micro", "weighted", None)

SKLEARN_CITATION = """\
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

AVERAGED_ARGS = """
Args:
    predictions (`list` of `int`): predicted label ids.
    references (`list` of `int`): reference (gold) label ids, as many as predictions.
    labels (`list` of `int`, optional): the classes to report and average over, in this order.
        Default: every label id that occurs in predictions or references, sorted.
    pos_label (`int`, default 1): the positive class when average="binary".
    average (`str` or None, default "binary"): one of "binary", "macro", "micro", "weighted", None.
    sample_weight (`list` of `float`, optional): one weight per example.
    zero_division (0, 1, nan or "warn", default "warn"): the value when {zero_case}; "warn" uses 0
        and emits a warning.

Returns:
    {key} (`float`, or `list` of `float` when average=None): the score.
"""

AVERAGE_TEXT = """\
`average` decides how the classes are combined: "binary" reports the class `pos_label` only;
"macro" is the unweighted mean over classes; "weighted" weights each class by its number of
reference examples; "micro" pools the counts of all classes first; None returns one value per
class. It lies in [0, 1]; higher is better.
"""


def classification_info(description: str, inputs_description: str, reference_url: str) -> Any:
    """The `evaluate.MetricInfo` of a metric over integer label ids."""
    import datasets
    import evaluate

    return evaluate.MetricInfo(
        description=description,
        citation=SKLEARN_CITATION,
        inputs_description=inputs_description,
        features=datasets.Features(
            {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
        ),
        reference_urls=[reference_url],
    )


def text_info(description: str, citation: str, inputs_description: str, reference_url: str) -> Any:
    """The `evaluate.MetricInfo` of a metric over strings (one prediction, one reference each)."""
    import datasets
    import evaluate

    return evaluate.MetricInfo(
        description=description,
        citation=citation,
        inputs_description=inputs_description,
        features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        reference_urls=[reference_url],
    )


def averaged_score(
    score_fn: Callable[..., Any],
    key: str,
    predictions: Any,
    references: Any,
    labels: Any = None,
    pos_label: int = 1,
    average: str | None = "binary",
    sample_weight: Any = None,
    zero_division: Any = "warn",
) -> dict[str, Any]:
    """Call an sklearn precision/recall/F1 function; a list per class when average=None."""
    if average not in AVERAGES:
        raise ValueError(f"average={average!r}: expected one of {AVERAGES}")
    score = score_fn(
        references, predictions, labels=labels, pos_label=pos_label, average=average,
        sample_weight=sample_weight, zero_division=zero_division,
    )
    return {key: score.tolist() if average is None else float(score)}
