"""LoRA training examples: each row's prompt as the candidates are queried with it, then the answer.

An example is the suite's `generation:` prompt rendered for the row and wrapped by the chat template
(data/prompts.py, exactly the request a candidate gets), followed by the label word's tokens and EOS:
the answer a greedy decoder should produce. The label word is tokenised on its own (as the decoder
emits it after the generation prompt). The loss is on the answer only: every prompt token's label is
-100, which transformers' causal-LM loss ignores, as it ignores right padding (also -100).

An example longer than the cap (the step's sequence_length, else inputs.sequence_length) is dropped
and counted (prompts are never truncated: a cut request is a different request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hf_cost.data.prompts import encode_prompts, render_prompts
from hf_cost.errors import UserError

IGNORE = -100  # the label transformers' cross-entropy skips


@dataclass
class LoraExamples:
    """Token ids and labels per example (unpadded), and what was dropped."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    too_long: int = 0
    lengths: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, rows: list[int], pad_id: int, device: Any) -> dict[str, Any]:
        """Rows ``rows``, right-padded to the longest: pad tokens get attention 0 and label -100."""
        import torch

        width = max(len(self.input_ids[i]) for i in rows)
        ids, mask, labels = [], [], []
        for i in rows:
            pad = width - len(self.input_ids[i])
            ids.append(self.input_ids[i] + [pad_id] * pad)
            mask.append([1] * len(self.input_ids[i]) + [0] * pad)
            labels.append(self.labels[i] + [IGNORE] * pad)
        return {name: torch.tensor(v, dtype=torch.long, device=device)
                for name, v in (("input_ids", ids), ("attention_mask", mask), ("labels", labels))}


def answer_ids(label: str, tokenizer: Any) -> list[int]:
    """The answer an example teaches: the label word's tokens (no special tokens), then EOS."""
    return list(tokenizer(label, add_special_tokens=False)["input_ids"]) + [int(tokenizer.eos_token_id)]


def check_answers_parse(label_names: list[str], tokenizer: Any, parser: Any, where: str) -> None:
    """Refuse a label whose taught answer would not parse back to it once decoded (a word the
    tokenizer maps to unknown tokens, say): the model could never be scored right."""
    for label in label_names:
        tokens = answer_ids(label, tokenizer)
        decoded = tokenizer.decode(tokens, skip_special_tokens=True)
        if parser.parse(decoded) != label:
            raise UserError(
                f"the label {label!r} tokenises to {tokens[:-1]}, which decodes to {decoded!r}: the answer "
                "parser would not read it back as the label, so no answer could be scored right", where=where)


def build_examples(texts: list[str], label_ids: list[int], label_names: list[str], generation: Any,
                   tokenizer: Any, max_length: int) -> LoraExamples:
    """One example per row: prompt tokens (label -100), then the answer's tokens and EOS."""
    prompts = encode_prompts(render_prompts(texts, generation, tokenizer), generation, tokenizer)
    answers = [answer_ids(name, tokenizer) for name in label_names]
    out = LoraExamples([], [])
    for prompt, y in zip(prompts, label_ids):
        answer = answers[y]
        if len(prompt) + len(answer) > max_length:
            out.too_long += 1
            continue
        out.input_ids.append(list(prompt) + answer)
        out.labels.append([IGNORE] * len(prompt) + answer)
        out.lengths.append(len(prompt) + len(answer))
    return out
