"""ROUGE-1, ROUGE-2 and ROUGE-L F-measures of generated text against references (hf_cost's module).

Shipped inside hf_cost so that it loads by path with no Hugging Face Hub access. It calls Google's
``rouge_score`` package (PyPI rouge-score, the scorer the Hub's ``rouge`` module also calls), one
prediction against one reference at a time, and returns the mean F-measure of each ROUGE type and
every document's own F-measure, so that an interval can be bootstrapped over documents.
"""

import evaluate

from hf_cost.quality.metric_base import text_info

_DESCRIPTION = """\
ROUGE (Lin 2004) counts overlapping units between a generated text and a reference: ROUGE-1
unigrams, ROUGE-2 bigrams, ROUGE-L the longest common subsequence of tokens. Per document this
module reports the F-measure (harmonic mean of precision and recall); the corpus figure of each
type is the mean over documents (what the Hub's rouge module returns with use_aggregator=False,
averaged). Tokens are rouge_score's default tokenisation: lower case, runs of [a-z0-9] only (other
characters, accented letters included, are separators), optionally Porter-stemmed. Each value
lies in [0, 1]; higher is better. An empty prediction or reference scores 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): generated texts.
    references (`list` of `str`): one reference text per prediction.
    rouge_types (`list` of `str`, default ["rouge1", "rouge2", "rougeL"]): the ROUGE types.
    use_stemmer (`bool`, default False): Porter-stem tokens first.

Returns:
    one key per ROUGE type (`float`): the mean F-measure over documents;
    per_document (`dict` of `list` of `float`): each type's F-measure per document, in order.

Example:
    >>> metric = evaluate.load("hf_cost/quality/metrics/rouge/rouge.py")
    >>> metric.compute(predictions=["the cat sat"], references=["the cat sat on the mat"], rouge_types=["rouge1"])
    {'rouge1': 0.6666666666666666, 'per_document': {'rouge1': [0.6666666666666666]}}
"""

_CITATION = """\
@inproceedings{lin-2004-rouge,
  title={{ROUGE}: A Package for Automatic Evaluation of Summaries},
  author={Lin, Chin-Yew},
  booktitle={Text Summarization Branches Out},
  pages={74--81},
  year={2004}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    def _info(self):
        return text_info(_DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION,
                         "https://github.com/google-research/google-research/tree/master/rouge")

    def _compute(self, predictions, references, rouge_types=("rouge1", "rouge2", "rougeL"), use_stemmer=False):
        from rouge_score import rouge_scorer

        if not predictions:
            raise ValueError("rouge needs at least one example")
        types = list(rouge_types)
        scorer = rouge_scorer.RougeScorer(types, use_stemmer=use_stemmer)
        per_document = {t: [] for t in types}
        for prediction, reference in zip(predictions, references):
            scores = scorer.score(reference, prediction)  # rouge_score's order: target, then prediction
            for t in types:
                per_document[t].append(float(scores[t].fmeasure))
        return {**{t: sum(v) / len(v) for t, v in per_document.items()}, "per_document": per_document}
