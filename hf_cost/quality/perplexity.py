"""Perplexity of a causal language model on a set of documents, with a bootstrap CI over documents.

``document_nll`` runs the model; ``corpus_perplexity`` aggregates, through the bundled ``perplexity``
evaluate module (``metric_loader.load_metric("perplexity")``), and adds the interval.

Per document (``encode_documents``):

- Tokens: the tokenizer's own encoding with its special tokens (``add_special_tokens=True``). When
  the tokenizer has a BOS token and that encoding does not already start with it, BOS is put in
  front (GPT-2's tokenizer, for one, adds nothing: its documents then start with <|endoftext|>,
  the usual convention; Llama's adds BOS itself, and it is not doubled). So the first real token is
  predicted from BOS where a BOS exists.
- Truncation: the first ``max_length`` tokens (BOS included) are kept; ``DocNll.truncated`` says
  when tokens were dropped. There is no sliding window: the tokens past ``max_length`` are not
  scored.
- NLL: the summed negative log-likelihood (nats) of tokens 2..n given their prefixes, n the length
  after truncation. The model's logits (whatever their dtype) are cast to float64, a chunk of
  positions at a time, and the log-softmax and the sum are float64: so logits that are all equal
  give exactly log(vocabulary size) per token. ``n_predicted = n - 1``.
- A document with fewer than 2 tokens (empty text with no BOS, or only a BOS) has nothing to
  predict: it keeps its place in the returned list as ``DocNll(0.0, 0, truncated)``
  (``DocNll.excluded`` is True); ``corpus_perplexity`` leaves it out and counts it
  (``excluded_documents``).

Batches: documents are sorted longest first (little padding, and the largest batch runs first, so
an out-of-memory error shows at once), right-padded with an attention mask; the pad id is the
tokenizer's pad token, else its EOS token, else 0. With right padding and a causal mask a real
token never sees a pad, so padding does not change any document's NLL; pad positions are not
scored.

Corpus perplexity is token-weighted: exp(sum of NLL sums / sum of predicted tokens) over the
scored documents. Its interval is a percentile bootstrap over documents (``scoring.bootstrap_ci``):
each resample draws documents with replacement and recomputes that ratio, so long documents weigh
more, as they do in the point estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from hf_cost.quality.metric_loader import load_metric
from hf_cost.quality.scoring import bootstrap_ci

if TYPE_CHECKING:
    import torch

# Logit elements cast to float64 at once when summing one document's NLL (2^24: 128 MiB).
_CHUNK_ELEMENTS = 1 << 24


class DocNll(NamedTuple):
    """One document's summed NLL (nats, float64) over its ``n_predicted`` tokens; 0 tokens = excluded."""

    nll_sum: float
    n_predicted: int
    truncated: bool

    @property
    def excluded(self) -> bool:
        """True for a document with fewer than 2 tokens: nothing predicted, left out of perplexity."""
        return self.n_predicted == 0


def encode_documents(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[tuple[list[int], bool]]:
    """Each text's token ids (BOS in front where the tokenizer has one) cut to ``max_length``, and whether cut."""
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of documents, not one string")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 (one token to predict from, one to predict), got {max_length}")
    if not texts:
        return []
    bos = tokenizer.bos_token_id
    encoded = tokenizer(list(texts), add_special_tokens=True, verbose=False)["input_ids"]
    out = []
    for ids in encoded:
        ids = list(ids)
        if bos is not None and (not ids or ids[0] != bos):
            ids.insert(0, int(bos))
        out.append((ids[:max_length], len(ids) > max_length))
    return out


def pad_token_id(tokenizer: Any) -> int:
    """The id padding uses: the pad token's, else the EOS token's, else 0 (pads are masked anyway)."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    return 0


def document_nll(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
    device: str | torch.device,
) -> list[DocNll]:
    """Per document, the summed NLL of its tokens 2..n under causal LM ``model``; one DocNll per text, in order.

    ``model`` must already be on ``device`` (inputs are moved there); it is put in eval mode for
    the call and its training flag restored afterwards. Raises ValueError on ``max_length`` < 2 or
    above the model's ``max_position_embeddings``, or ``batch_size`` < 1.
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(limit, int) and max_length > limit:
        raise ValueError(f"max_length {max_length} exceeds the model's max_position_embeddings ({limit})")
    encoded = encode_documents(tokenizer, texts, max_length)
    results: list[DocNll | None] = [
        DocNll(0.0, 0, truncated) if len(ids) < 2 else None for ids, truncated in encoded
    ]
    order = sorted((i for i, (ids, _) in enumerate(encoded) if len(ids) >= 2), key=lambda i: -len(encoded[i][0]))
    pad_id = pad_token_id(tokenizer)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                lengths = [len(encoded[i][0]) for i in batch]
                input_ids = torch.full((len(batch), max(lengths)), pad_id, dtype=torch.long)
                attention_mask = torch.zeros_like(input_ids)
                for row, i in enumerate(batch):
                    input_ids[row, : lengths[row]] = torch.tensor(encoded[i][0], dtype=torch.long)
                    attention_mask[row, : lengths[row]] = 1
                input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
                logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
                sums = [_summed_nll(logits[row, : n - 1], input_ids[row, 1:n]) for row, n in enumerate(lengths)]
                for row, (i, total) in enumerate(zip(batch, torch.stack(sums).cpu().tolist())):
                    results[i] = DocNll(float(total), lengths[row] - 1, encoded[i][1])
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]  # every slot is filled above


def _summed_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over positions of -log softmax(logits[t])[targets[t]], in float64, a chunk of positions at a time."""
    import torch

    step = max(1, _CHUNK_ELEMENTS // logits.shape[-1])
    total = torch.zeros((), dtype=torch.float64, device=logits.device)
    for start in range(0, logits.shape[0], step):
        chunk = logits[start : start + step].double()
        total += torch.nn.functional.cross_entropy(chunk, targets[start : start + step], reduction="sum")
    return total


def corpus_perplexity(
    docs: Sequence[DocNll],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Token-weighted corpus perplexity of ``docs`` with a percentile bootstrap CI over documents.

    Excluded documents (``n_predicted == 0``) are left out and counted. Returns::

        {"perplexity": {"value", "ci_low", "ci_high": float, "ci_level": float, "n": int, "method": str},
         "mean_nll_per_token": float, "documents": int, "tokens": int,
         "excluded_documents": int, "truncated_documents": int}

    ``documents`` and ``tokens`` count the scored documents and their predicted tokens. The value,
    mean NLL and counts come from the bundled ``perplexity`` evaluate module. Raises ValueError when
    no document is scored.
    """
    scored = [DocNll(*doc) for doc in docs if doc[1] > 0]
    if not scored:
        raise ValueError(f"no document has 2 or more tokens: nothing to score ({len(docs)} document(s) given)")
    nll = np.array([doc.nll_sum for doc in scored], dtype=np.float64)
    counts = np.array([doc.n_predicted for doc in scored], dtype=np.int64)
    values = load_metric("perplexity").compute(nll_sums=nll.tolist(), token_counts=counts.tolist())

    def statistic(idx: np.ndarray) -> np.ndarray:
        return np.exp(nll[idx].sum(axis=-1) / counts[idx].sum(axis=-1))

    low, high = bootstrap_ci(statistic, len(scored), n_resamples=n_resamples, seed=seed, confidence=confidence)
    return {
        "perplexity": {
            "value": float(values["perplexity"]),
            "ci_low": float(low),
            "ci_high": float(high),
            "ci_level": confidence,
            "n": len(scored),
            "method": (
                f"token-weighted exp(sum NLL / sum tokens); percentile bootstrap over documents, "
                f"{n_resamples} resamples, seed {seed}"
            ),
        },
        "mean_nll_per_token": float(values["mean_nll_per_token"]),
        "documents": int(values["documents"]),
        "tokens": int(values["tokens"]),
        "excluded_documents": len(docs) - len(scored),
        "truncated_documents": sum(bool(doc[2]) for doc in docs),
    }
