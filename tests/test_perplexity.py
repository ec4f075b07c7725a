"""Perplexity of causal LMs (quality/perplexity.py) and the bundled `perplexity` evaluate module.

The model is a tiny LlamaForCausalLM (vocabulary 16, hidden 32, one layer) built from its config,
and the tokenizer a word-level one built in memory: no Hub, no files.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from hf_cost.quality.metric_loader import load_metric
from hf_cost.quality.perplexity import (
    DocNll,
    corpus_perplexity,
    document_nll,
    encode_documents,
    pad_token_id,
)

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
WORDS = [f"w{i}" for i in range(12)]
VOCAB = len(SPECIALS) + len(WORDS)  # 16
BOS, EOS, PAD = 1, 2, 3
MAX_POSITIONS = 64


def make_tokenizer(*, bos: bool = True, adds_bos: bool = False, pad: bool = False) -> PreTrainedTokenizerFast:
    """Whitespace word-level tokenizer; ``adds_bos``: its own post-processor puts <s> in front."""
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if adds_bos:
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    extra = {"bos_token": "<s>"} if bos else {}
    if pad:
        extra["pad_token"] = "<pad>"
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>", **extra)


def make_model(seed: int = 0) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=MAX_POSITIONS,
        initializer_range=0.5,  # spread-out logits, so documents' NLLs differ clearly
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def random_texts(count: int, seed: int, max_words: int = 30) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, max_words + 1)))) for _ in range(count)]


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    return make_model()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return random_texts(11, seed=1) + ["", "w3", "w1 w2"]


def reference_nll(model: LlamaForCausalLM, ids: list[int]) -> float:
    """transformers' own shifted cross-entropy (mean over n - 1 tokens) times n - 1."""
    tensor = torch.tensor([ids])
    with torch.no_grad():
        loss = model(input_ids=tensor, labels=tensor).loss
    return float(loss) * (len(ids) - 1)


# --- tokenisation: BOS and truncation ---------------------------------------------------------


def test_bos_is_put_in_front_only_when_the_tokenizer_does_not_add_it():
    texts = ["w0 w1", ""]
    assert encode_documents(make_tokenizer(), texts, 10) == [([BOS, 4, 5], False), ([BOS], False)]
    assert encode_documents(make_tokenizer(adds_bos=True), texts, 10) == [([BOS, 4, 5], False), ([BOS], False)]
    assert encode_documents(make_tokenizer(bos=False), texts, 10) == [([4, 5], False), ([], False)]


def test_truncation_keeps_the_first_max_length_tokens():
    [(ids, truncated)] = encode_documents(make_tokenizer(), ["w0 w1 w2 w3 w4"], 4)
    assert ids == [BOS, 4, 5, 6] and truncated
    [(ids, truncated)] = encode_documents(make_tokenizer(), ["w0 w1 w2"], 4)
    assert ids == [BOS, 4, 5, 6] and not truncated


def test_pad_id_is_pad_then_eos():
    assert pad_token_id(make_tokenizer(pad=True)) == PAD
    assert pad_token_id(make_tokenizer()) == EOS


# --- NLL against transformers' loss; padding; exclusions --------------------------------------


def test_nll_matches_transformers_shifted_loss(model, texts):
    tokenizer = make_tokenizer()
    docs = document_nll(model, tokenizer, texts, max_length=24, batch_size=4, device="cpu")
    encoded = encode_documents(tokenizer, texts, 24)
    assert len(docs) == len(texts)
    assert any(doc.truncated for doc in docs)
    for doc, (ids, truncated) in zip(docs, encoded):
        assert doc.truncated == truncated
        if len(ids) < 2:
            assert doc == DocNll(0.0, 0, truncated) and doc.excluded
            continue
        assert doc.n_predicted == len(ids) - 1
        assert doc.nll_sum == pytest.approx(reference_nll(model, ids), rel=1e-6)


def test_batched_equals_unbatched_and_pad_id_does_not_matter(model, texts):
    one = document_nll(model, make_tokenizer(), texts, max_length=24, batch_size=1, device="cpu")
    for batch_size, tokenizer in ((3, make_tokenizer()), (len(texts), make_tokenizer(pad=True))):
        many = document_nll(model, tokenizer, texts, max_length=24, batch_size=batch_size, device="cpu")
        for a, b in zip(one, many):
            assert (a.n_predicted, a.truncated) == (b.n_predicted, b.truncated)
            assert b.nll_sum == pytest.approx(a.nll_sum, rel=1e-6, abs=0.0)


def test_short_documents_are_excluded_and_counted(model):
    docs = document_nll(model, make_tokenizer(bos=False), ["", "w1", "w1 w2", "w3 w4 w5"],
                        max_length=8, batch_size=2, device="cpu")
    assert [doc.n_predicted for doc in docs] == [0, 0, 1, 2]
    report = corpus_perplexity(docs, n_resamples=50)
    assert report["excluded_documents"] == 2 and report["documents"] == 2 and report["tokens"] == 3
    with pytest.raises(ValueError, match="no document has 2 or more tokens"):
        corpus_perplexity(docs[:2])


def test_training_flag_is_restored_and_bad_arguments_refused(model):
    tokenizer = make_tokenizer()
    model.train()
    document_nll(model, tokenizer, ["w1 w2"], max_length=8, batch_size=1, device="cpu")
    assert model.training
    model.eval()
    with pytest.raises(ValueError, match="max_length must be at least 2"):
        document_nll(model, tokenizer, ["w1"], max_length=1, batch_size=1, device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        document_nll(model, tokenizer, ["w1"], max_length=8, batch_size=0, device="cpu")
    with pytest.raises(ValueError, match="max_position_embeddings"):
        document_nll(model, tokenizer, ["w1"], max_length=MAX_POSITIONS + 1, batch_size=1, device="cpu")
    with pytest.raises(ValueError, match="not one string"):
        document_nll(model, tokenizer, "w1 w2", max_length=8, batch_size=1, device="cpu")


# --- hand-computed: uniform logits give perplexity = vocabulary size --------------------------


def test_uniform_logits_give_perplexity_equal_to_vocab_size(texts):
    model = make_model(seed=3)
    assert model.lm_head.bias is None
    with torch.no_grad():
        model.lm_head.weight.zero_()  # logits exactly 0: every token has probability 1/16
    docs = document_nll(model, make_tokenizer(), texts, max_length=24, batch_size=4, device="cpu")
    for doc in docs:
        assert doc.nll_sum == pytest.approx(doc.n_predicted * math.log(VOCAB), rel=1e-12, abs=0.0)
    report = corpus_perplexity(docs, n_resamples=200)
    assert abs(report["perplexity"]["value"] - VOCAB) <= 1e-9
    assert abs(report["perplexity"]["ci_low"] - VOCAB) <= 1e-9 and abs(report["perplexity"]["ci_high"] - VOCAB) <= 1e-9
    assert report["mean_nll_per_token"] == pytest.approx(math.log(VOCAB), rel=1e-15)


# --- the corpus figure and its bootstrap CI ---------------------------------------------------


def synthetic_docs(count: int, seed: int) -> list[DocNll]:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(5, 60, size=count)
    per_token = rng.lognormal(mean=1.0, sigma=0.4, size=count)
    return [DocNll(float(t * p), int(t), False) for t, p in zip(tokens, per_token)]


def test_corpus_perplexity_is_token_weighted_and_its_ci_brackets_it():
    docs = synthetic_docs(200, seed=0)
    report = corpus_perplexity(docs, n_resamples=500, seed=4)
    total_nll = math.fsum(doc.nll_sum for doc in docs)
    total_tokens = sum(doc.n_predicted for doc in docs)
    ppl = report["perplexity"]
    assert ppl["value"] == pytest.approx(math.exp(total_nll / total_tokens), rel=1e-12)
    assert report["tokens"] == total_tokens and report["documents"] == 200
    assert ppl["ci_low"] < ppl["value"] < ppl["ci_high"]
    assert ppl["ci_level"] == 0.95 and ppl["n"] == 200 and "500 resamples, seed 4" in ppl["method"]
    assert corpus_perplexity(docs, n_resamples=500, seed=4) == report  # seeded: same interval


def test_ci_narrows_with_more_documents():
    widths = []
    for count in (20, 200, 2000):
        ppl = corpus_perplexity(synthetic_docs(count, seed=count), n_resamples=400)["perplexity"]
        assert ppl["ci_low"] <= ppl["value"] <= ppl["ci_high"]
        widths.append(ppl["ci_high"] - ppl["ci_low"])
    assert widths[0] > widths[1] > widths[2] > 0


# --- the bundled evaluate module, by hand ------------------------------------------------------


def test_evaluate_module_hand_calculation():
    # Three documents: NLL sums 3.0, 1.5, 4.5 nats over 2, 1, 3 predicted tokens.
    # Token-weighted: (3.0 + 1.5 + 4.5) / (2 + 1 + 3) = 9 / 6 = 1.5 nats per token; perplexity e^1.5.
    # (The mean of per-document perplexities, (e^1.5 + e^1.5 + e^1.5) / 3, happens to agree here;
    # the second case below shows the weighting: 2 / 4 = 0.5, not mean(e^1, e^0) = 1.859.)
    metric = load_metric("perplexity")
    got = metric.compute(nll_sums=[3.0, 1.5, 4.5], token_counts=[2, 1, 3])
    assert got == {"perplexity": pytest.approx(4.4816890703380645, rel=1e-15), "mean_nll_per_token": 1.5,
                   "documents": 3, "tokens": 6}
    got = metric.compute(nll_sums=[2.0, 0.0, 0.0], token_counts=[2, 1, 1])
    assert got["perplexity"] == pytest.approx(math.exp(0.5), rel=1e-15) and got["tokens"] == 4
    assert corpus_perplexity([DocNll(3.0, 2, False), DocNll(1.5, 1, True), DocNll(4.5, 3, False)],
                             n_resamples=20)["perplexity"]["value"] == pytest.approx(math.exp(1.5), rel=1e-15)


@pytest.mark.parametrize(
    ("nll_sums", "token_counts", "message"),
    [
        ([1.0, 2.0], [1, 0], r"token_counts\[1\] = 0"),
        ([1.0, -0.5], [1, 1], r"nll_sums\[1\]"),
        ([float("nan")], [1], r"nll_sums\[0\]"),
    ],
)
def test_evaluate_module_refuses_impossible_inputs(nll_sums, token_counts, message):
    with pytest.raises(ValueError, match=message):
        load_metric("perplexity").compute(nll_sums=nll_sums, token_counts=token_counts)
