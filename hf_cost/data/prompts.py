"""Requests for a causal LM: each row's text in the scenario's prompt, wrapped by the chat template.

The prompt text is never truncated: a cut request is a different request. A prompt longer than
the cap (inputs.sequence_length) is dropped from the sample and counted, as empty rows are.
"""

from __future__ import annotations

from typing import Any

from hf_cost.errors import UserError


def check_chat_template(generation: Any, tokenizer: Any) -> None:
    """Refuse, before any weights load, a chat template the tokenizer does not have."""
    if generation.chat_template and not getattr(tokenizer, "chat_template", None):
        raise UserError(
            "the model's tokenizer has no chat template: set generation.chat_template: false to send the "
            "prompt text as it is", where="generation.chat_template",
        )


def render_prompts(texts: list[str], generation: Any, tokenizer: Any) -> list[str]:
    """The full prompt string of each row: ``generation.prompt`` with the row's text, then (with
    ``chat_template``) the tokenizer's chat template with its generation prompt."""
    rendered = [generation.render(t) for t in texts]
    if not generation.chat_template:
        return rendered
    check_chat_template(generation, tokenizer)
    system = [{"role": "system", "content": generation.system}] if generation.system else []
    return [
        tokenizer.apply_chat_template(system + [{"role": "user", "content": p}], tokenize=False,
                                      add_generation_prompt=True)
        for p in rendered
    ]


def encode_prompts(prompts: list[str], generation: Any, tokenizer: Any) -> list[list[int]]:
    """Token ids of each prompt. A chat template writes its own special tokens (BOS and the turn
    markers), so the tokenizer adds none; a plain prompt gets the tokenizer's usual ones."""
    return tokenizer(prompts, add_special_tokens=not generation.chat_template)["input_ids"]
