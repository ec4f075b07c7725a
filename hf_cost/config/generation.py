"""How a generative candidate is prompted and decodes: the scenario file's `generation:` block.

One block for the whole file, because the prompt is part of the workload: the performance
sample set, the quality steps and the cost figures all send the same requests. Every setting
that cannot work is refused here, with the key it came from.
"""

from __future__ import annotations

import string
from typing import Any

from pydantic import Field, field_validator, model_validator

from hf_cost.config.base import Strict
from hf_cost.config.fields import Float, PosInt, Seed

PLACEHOLDER = "text"
MAX_NEW_TOKENS = 4096


def check_prompt(v: str) -> str:
    """A prompt template holds '{text}' exactly once and no other placeholder (ValueError, one line)."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc}); write a literal brace as '{{{{' or '}}}}'") from None
    if fields.count(PLACEHOLDER) != 1:
        raise ValueError(
            f"the prompt must hold the placeholder '{{{PLACEHOLDER}}}' exactly once (found "
            f"{fields.count(PLACEHOLDER)}): it is where each row's text goes"
        )
    others = sorted({f for f in fields if f != PLACEHOLDER})
    if others:
        raise ValueError(
            f"unknown placeholder(s) {', '.join('{' + o + '}' for o in others)}: only '{{{PLACEHOLDER}}}' "
            "is filled in; write a literal brace as '{{' or '}}'"
        )
    return v


class GenerationSettings(Strict):
    """The request an LM candidate gets: prompt template, chat template, decoding. A request stops at the tokenizer's EOS token or at max_new_tokens."""

    prompt: str = Field(
        "{text}",
        description="The request, with '{text}' where the dataset row's text goes (once). Other braces are "
        "written doubled: '{{' and '}}'.",
    )
    system: str | None = Field(None, description="A system message (chat template only).")
    chat_template: bool = Field(
        True, description="Wrap the prompt as a user turn with the tokenizer's chat template (and its "
        "generation prompt); false: the prompt text as it is."
    )
    max_new_tokens: PosInt = Field(32, description="Tokens generated at most per request.")
    min_new_tokens: PosInt | None = Field(
        None, description="Ignore EOS until this many tokens (a fixed-length decode for throughput runs)."
    )
    do_sample: bool = Field(False, description="false: greedy decoding (the default); true: sampling.")
    temperature: Float = Field(1.0, gt=0.0, le=100.0, description="Sampling only.")
    top_p: Float = Field(1.0, gt=0.0, le=1.0, description="Sampling only: nucleus mass.")
    top_k: PosInt | None = Field(None, description="Sampling only: keep the k most likely tokens.")
    seed: Seed = Field(0, description="Seeds sampling (torch's generator is reseeded before each request).")

    @field_validator("prompt")
    @classmethod
    def _one_placeholder(cls, v: str) -> str:
        return check_prompt(v)

    @field_validator("max_new_tokens")
    @classmethod
    def _bounded(cls, v: int) -> int:
        if v > MAX_NEW_TOKENS:
            raise ValueError(f"{v} is more than {MAX_NEW_TOKENS}: almost certainly a typo")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> GenerationSettings:
        if self.min_new_tokens is not None and self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) is more than max_new_tokens ({self.max_new_tokens})"
            )
        if not self.do_sample:
            # a value other than the default (the defaults are no-ops, and a resolved suite writes them out)
            fields = type(self).model_fields
            set_for_sampling = [k for k in ("temperature", "top_p", "top_k") if getattr(self, k) != fields[k].default]
            if set_for_sampling:
                raise ValueError(
                    f"{', '.join(set_for_sampling)} only act when sampling, and do_sample is false (greedy): "
                    "set do_sample: true, or remove them"
                )
        if self.system is not None and not self.chat_template:
            raise ValueError("system: a system message needs chat_template: true")
        return self

    def render(self, text: str) -> str:
        """The prompt for one row (before any chat template)."""
        return self.prompt.format(**{PLACEHOLDER: text})

    def generate_kwargs(self, eos_token_id: Any, pad_token_id: Any) -> dict[str, Any]:
        """What `model.generate` gets, every decoding choice explicit (no defaults from the
        checkpoint's generation_config slip in)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": 1,
            "pad_token_id": pad_token_id,
            "eos_token_id": eos_token_id,  # a request ends at EOS (min_new_tokens holds it off)
        }
        if self.min_new_tokens is not None:
            kwargs["min_new_tokens"] = self.min_new_tokens
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or 0)
        else:  # greedy: neutral values, so a checkpoint's sampling defaults raise no warnings
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs


class AnswerSettings(Strict):
    """A causal LM answering a classification prompt: how its answer becomes a label."""

    labels: list[str] | None = Field(
        None, description="The answers that count, spelled as the dataset's labels; default: the labels found in "
        "the dataset.")
    regex: str | None = Field(
        None, description="One capturing group that captures the label (e.g. 'Answer:\\s*(\\w+)'); default: the "
        "first label named in the answer as a whole word, case ignored.")
