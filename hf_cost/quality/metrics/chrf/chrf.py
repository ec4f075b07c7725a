"""chrF / chrF++ of generated text against references, through sacrebleu (hf_cost's module).

Shipped inside hf_cost so that it loads by path with no Hugging Face Hub access. The corpus score is
sacrebleu's own (``sacrebleu.metrics.CHRF``): the character (and word) n-gram statistics of all
documents are summed first, then turned into one F-score, exactly as ``sacrebleu.corpus_chrf``
does. Each document's statistics are returned too, so that an interval can be bootstrapped over
documents by summing resampled statistics.
"""

import evaluate

from hf_cost.quality.metric_base import text_info

_DESCRIPTION = """\
chrF (Popovic 2015) is an F-score over character n-grams (orders 1..char_order, 6 by default),
with recall weighted beta times as much as precision (beta 2). chrF++ (Popovic 2017) adds word
n-grams of orders 1..word_order (word_order 2). Whitespace is not part of the character n-grams
unless whitespace=True; case counts unless lowercase=True. The corpus score is computed from the
n-gram statistics summed over all documents (sacrebleu's corpus_chrf), not as a mean of sentence
scores. It lies in [0, 100]; higher is better.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): generated texts.
    references (`list` of `str`): one reference text per prediction.
    char_order (`int`, default 6), word_order (`int`, default 0; 2 for chrF++), beta (`int`, default 2),
    lowercase (`bool`, default False), whitespace (`bool`, default False): sacrebleu's CHRF settings.

Returns:
    chrf (`float`): the corpus score, 0..100;
    statistics (`list` of `list` of `int`): each document's n-gram statistics (sacrebleu's layout);
    signature (`str`): sacrebleu's signature of the settings and its version.

Example:
    >>> metric = evaluate.load("hf_cost/quality/metrics/chrf/chrf.py")
    >>> round(metric.compute(predictions=["Nimbus X1"], references=["Nimbus X1"])["chrf"], 2)
    100.0
"""

_CITATION = """\
@inproceedings{popovic-2015-chrf,
  title={chr{F}: character n-gram {F}-score for automatic {MT} evaluation},
  author={Popovi{\\'c}, Maja},
  booktitle={Proceedings of the Tenth Workshop on Statistical Machine Translation},
  pages={392--395},
  year={2015}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Chrf(evaluate.Metric):
    def _info(self):
        return text_info(_DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION,
                         "https://github.com/mjpost/sacrebleu")

    def _compute(self, predictions, references, char_order=6, word_order=0, beta=2, lowercase=False,
                 whitespace=False):
        from sacrebleu.metrics import CHRF

        if not predictions:
            raise ValueError("chrf needs at least one example")
        chrf = CHRF(char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase,
                    whitespace=whitespace)
        statistics = [list(map(int, s)) for s in chrf._extract_corpus_statistics(list(predictions),
                                                                                 [list(references)])]
        total = [sum(column) for column in zip(*statistics)]
        return {"chrf": float(chrf._compute_score_from_stats(total).score), "statistics": statistics,
                "signature": str(chrf.get_signature())}
