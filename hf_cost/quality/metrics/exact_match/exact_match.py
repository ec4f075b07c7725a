"""Exact match: the share of predictions equal to their reference as strings (hf_cost's module).

Shipped inside hf_cost so that it loads by path with no Hugging Face Hub access. Unlike the Hub's
``exact_match`` it has no options: both sides are compared after ``str.strip()`` then
``str.casefold()`` (``hf_cost.quality.answers.match_key``), nothing else.
"""

import evaluate

from hf_cost.quality.answers import match_key
from hf_cost.quality.metric_base import text_info

_DESCRIPTION = """\
Exact match is the share of examples whose prediction equals its reference, both compared after
stripping leading and trailing whitespace and case folding (str.strip, then str.casefold), so
" Complaint" matches "complaint"; inner whitespace and punctuation are compared as they are. An
empty prediction (an unparseable answer) matches no non-empty reference. It lies in [0, 1];
higher is better.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): predicted labels; "" for an answer that could not be parsed.
    references (`list` of `str`): reference labels, as many as predictions.

Returns:
    exact_match (`float`): the fraction of predictions equal to their reference after strip and
        casefold.

Example:
    >>> metric = evaluate.load("hf_cost/quality/metrics/exact_match/exact_match.py")
    >>> metric.compute(predictions=["Praise", " complaint", ""], references=["praise", "praise", "question"])
    {'exact_match': 0.3333333333333333}
"""

_CITATION = """\
@inproceedings{rajpurkar2016squad,
  title={{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle={Proceedings of EMNLP},
  pages={2383--2392},
  year={2016}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExactMatch(evaluate.Metric):
    def _info(self):
        return text_info(_DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION,
                         "https://huggingface.co/spaces/evaluate-metric/exact_match")

    def _compute(self, predictions, references):
        if not predictions:
            raise ValueError("exact_match needs at least one example")
        hits = sum(match_key(p) == match_key(r) for p, r in zip(predictions, references))
        return {"exact_match": hits / len(predictions)}
