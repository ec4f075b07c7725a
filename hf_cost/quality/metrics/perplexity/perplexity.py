"""Perplexity of a corpus from per-document negative log-likelihoods (hf_cost's module).

Shipped inside hf_cost so that it loads by path with no Hugging Face Hub access. It takes what a
causal language model's forward passes produced (``quality/perplexity.document_nll``), not text:
the model runs elsewhere, and this module only aggregates, so it stays cheap and deterministic.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """\
Corpus perplexity of a causal language model, token-weighted: exp(sum of the documents' summed
negative log-likelihoods / sum of their predicted tokens), natural logarithms. A document of n
tokens contributes the NLL of tokens 2..n given their prefixes, so n - 1 predicted tokens. Every
token counts once, whatever document it is in (not a mean of per-document perplexities). It is at
least 1; lower is better; a model that spreads its probability uniformly over V tokens scores V.
"""

_KWARGS_DESCRIPTION = """
Args:
    nll_sums (`list` of `float`): per document, the summed negative log-likelihood (nats) of its
        predicted tokens; finite and >= 0.
    token_counts (`list` of `int`): per document, the number of predicted tokens; each >= 1.

Returns:
    perplexity (`float`): exp(mean_nll_per_token).
    mean_nll_per_token (`float`): sum(nll_sums) / sum(token_counts), in nats.
    documents (`int`): the number of documents.
    tokens (`int`): sum(token_counts).

Example:
    >>> metric = evaluate.load("hf_cost/quality/metrics/perplexity/perplexity.py")
    >>> metric.compute(nll_sums=[2.0, 4.0], token_counts=[1, 2])
    {'perplexity': 7.38905609893065, 'mean_nll_per_token': 2.0, 'documents': 2, 'tokens': 3}
"""

_CITATION = """\
@article{jelinek1977perplexity,
  title={Perplexity---a measure of the difficulty of speech recognition tasks},
  author={Jelinek, Fred and Mercer, Robert L. and Bahl, Lalit R. and Baker, James K.},
  journal={The Journal of the Acoustical Society of America},
  volume={62},
  number={S1},
  pages={S63},
  year={1977}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"nll_sums": datasets.Value("float64"), "token_counts": datasets.Value("int64")}
            ),
            # No format="numpy": datasets' numpy formatter hands float columns over as float32.
            reference_urls=["https://huggingface.co/docs/transformers/perplexity"],
        )

    def _compute(self, nll_sums, token_counts):
        nll = np.asarray(nll_sums, dtype=np.float64)
        counts = np.asarray(token_counts, dtype=np.int64)
        if nll.size == 0:
            raise ValueError("perplexity needs at least one document")
        if not np.all(np.isfinite(nll)) or np.any(nll < 0):
            i = int(np.flatnonzero(~np.isfinite(nll) | (nll < 0))[0])
            raise ValueError(f"nll_sums[{i}] = {nll[i]!r}: every NLL sum must be finite and >= 0")
        if np.any(counts < 1):
            i = int(np.flatnonzero(counts < 1)[0])
            raise ValueError(
                f"token_counts[{i}] = {int(counts[i])}: every document needs at least one predicted token"
            )
        tokens = int(counts.sum())
        mean_nll = float(nll.sum() / tokens)
        return {
            "perplexity": float(np.exp(mean_nll)),
            "mean_nll_per_token": mean_nll,
            "documents": int(nll.size),
            "tokens": tokens,
        }
