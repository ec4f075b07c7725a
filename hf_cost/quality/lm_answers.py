"""A causal LM's answers to a labelled set: each row's text in the scenario's prompt, generated in
batches (left-padded, as the offline step runs them), decoded to text. The same `generate` the
latency steps time, so the answers scored are the answers timed."""

from __future__ import annotations

from typing import Any, Callable

from hf_cost.data.prompts import encode_prompts, render_prompts


def generate_answers(candidate: Any, texts: list[str], generation: Any, batch_size: int,
                     tick: Callable[[int], None] = lambda done: None) -> tuple[list[str], list[int], list[int]]:
    """(answer text, new tokens, prompt tokens) per row, in order. Prompts are never truncated."""
    import torch

    tokenizer = candidate.tokenizer
    ids = encode_prompts(render_prompts(texts, generation, tokenizer), generation, tokenizer)
    pad = tokenizer.pad_token_id
    answers: list[str] = []
    new_tokens: list[int] = []
    for start in range(0, len(ids), batch_size):
        rows = ids[start : start + batch_size]
        width = max(len(r) for r in rows)
        batch = {
            "input_ids": torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=candidate.device),
            "attention_mask": torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows],
                                           device=candidate.device),
        }
        out = candidate.generate(batch)
        answers.extend(candidate.decode(t) for t in out.new_tokens)
        new_tokens.extend(out.output_tokens)
        tick(len(answers))
    return answers, new_tokens, [len(r) for r in ids]
