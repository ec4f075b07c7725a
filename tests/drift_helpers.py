"""A dated CSV whose class-marker words change over time, for drift tests on the tiny model."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from scenario_helpers import vocab_words

QUARTERS = ["2023-01-15", "2023-04-15", "2023-07-15", "2023-10-15"]


def drifting_csv(path: Path, model_dir: Path, per_period: int = 80, seed: int = 0,
                 dates: list[str] | None = None) -> Path:
    """Quarterly rows: 'pos'/'neg' texts carry their marker word; from the second quarter on, a
    growing share of them carries a new marker the early rows never use (vocabulary drift)."""
    words = vocab_words(model_dir)
    old = {"pos": words[0], "neg": words[1]}
    new = {"pos": words[2], "neg": words[3]}
    rest = words[4:]
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["date", "quarter", "text", "label"])
        for q, day in enumerate(dates or QUARTERS):
            for i in range(per_period):
                label = "pos" if i % 2 == 0 else "neg"
                shifted = rng.random() < q / 3
                marker = (new if shifted else old)[label]
                tokens = [marker] * 3 + [rng.choice(rest) for _ in range(rng.randint(2, 6))]
                rng.shuffle(tokens)
                writer.writerow([day, f"Q{q + 1}", " ".join(tokens), label])
    return path


def save_constant_llama(directory: Path, boosts: dict[str, float]) -> Path:
    """The tiny Llama of lm_helpers made to predict one fixed next-token distribution whatever the
    context: every token embeds as the all-ones vector, attention and MLP outputs are zeroed, so
    each position's final hidden state is RMSNorm(ones) = ones (norm weight 1); the LM head's row
    for word w is (boosts[w] / hidden) * ones and zero otherwise, so logit(w) = boosts.get(w, 0).
    Hence P(w) = exp(b_w) / Z with Z = sum_v exp(b_v) over the whole vocabulary (b_v = 0 unboosted):
    a document's NLL is known in closed form, and greedy decoding always answers the top word."""
    import torch
    from lm_helpers import save_tiny_llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    save_tiny_llama(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    vocab = AutoTokenizer.from_pretrained(directory).get_vocab()
    hidden = model.config.hidden_size
    with torch.no_grad():
        model.model.embed_tokens.weight.fill_(1.0)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        model.lm_head.weight.zero_()
        for word, boost in boosts.items():
            model.lm_head.weight[vocab[word]] = boost / hidden
    model.save_pretrained(directory)
    return directory
