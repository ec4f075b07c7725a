"""A causal LM as a candidate: `generate` with each new token's time, `forward` for its logits.

Token times come from a streamer that `model.generate` calls once with the prompt and then once
per decoding step with that step's tokens (already on the host: the device is synchronised by
the copy). The first step's time is the time to first token (TTFT: prefill + first sampling);
later steps give the time per output token (TPOT). Every clock read is `measure.timing.clock`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hf_cost.models.torch_candidate import TorchCandidate


@dataclass
class Generated:
    """One `generate` call on a batch: per row, its new token ids (to and including EOS) and the
    times (seconds after the call began) at which each decoding step's tokens were ready."""

    new_tokens: list[list[int]]
    step_times_s: list[float] = field(default_factory=list)  # one per decoding step, for the whole batch
    total_s: float = 0.0

    @property
    def output_tokens(self) -> list[int]:
        return [len(t) for t in self.new_tokens]

    def ttft_s(self) -> float:
        return self.step_times_s[0] if self.step_times_s else self.total_s

    def tpot_s(self, row: int = 0) -> float | None:
        """Mean time per output token after the first, for ``row`` (its own last token's step);
        None for a single-token answer."""
        n = len(self.new_tokens[row])
        if n < 2 or len(self.step_times_s) < n:
            return None
        return (self.step_times_s[n - 1] - self.step_times_s[0]) / (n - 1)


class _StepClock:
    """A transformers streamer that only reads the clock: the first put is the prompt, each later
    one a decoding step's tokens."""

    def __init__(self, clock: Any, start: float, on_first_token: Any = None):
        self.clock, self.start = clock, start
        self.on_first_token = on_first_token
        self.prompt_seen = False
        self.times: list[float] = []

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.times.append(self.clock() - self.start)
        if len(self.times) == 1 and self.on_first_token is not None:
            self.on_first_token(value)

    def end(self) -> None:
        pass


class TimedGeneration:
    """`generate` and `decode` of a causal LM candidate, whatever runs it: the torch candidate
    below and the ONNX Runtime one (models/onnx_lm_candidate.py) share them, so both are timed by
    the same streamer clock and cut at EOS the same way. A subclass sets ``tokenizer``,
    ``generation`` (via `_set_generation`) and implements `_generator` (an object with
    transformers' `generate`) and `synchronize`."""

    generates = True

    def _set_generation(self, tokenizer: Any, generation: Any) -> None:
        self.label_names = None  # it answers in words; a parser maps them to labels
        self.generation = generation  # config.generation.GenerationSettings
        self._kwargs = generation.generate_kwargs(tokenizer.eos_token_id, tokenizer.pad_token_id)
        self._eos = _id_set(tokenizer.eos_token_id)

    @contextmanager
    def decoding(self, generation: Any) -> Iterator[None]:
        """Decode as ``generation`` says inside the block (a step with its own prompt and
        max_new_tokens), as the scenario's generation block says again after it."""
        saved = self.generation, self._kwargs
        self._set_generation(self.tokenizer, generation)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            self.generation, self._kwargs = saved

    def _generator(self) -> Any:
        raise NotImplementedError

    def generate(self, batch: dict[str, Any], on_first_token: Any = None) -> Generated:
        """Decode one batch of left-padded prompts; the returned times are for the whole batch.
        ``on_first_token(tokens)``, if given, is called once, as soon as the first decoding step's
        tokens (one per row, on the host) are ready: a server reports first tokens from it."""
        import torch

        from hf_cost.measure import timing

        if self.generation.do_sample:
            torch.manual_seed(self.generation.seed)
        start = timing.clock()
        steps = _StepClock(timing.clock, start, on_first_token)
        with torch.inference_mode():
            out = self._generator().generate(**batch, **self._kwargs, streamer=steps)
        self.synchronize()  # type: ignore[attr-defined]
        total = timing.clock() - start
        prompt_width = batch["input_ids"].shape[-1]
        rows = out[:, prompt_width:].tolist()
        return Generated(new_tokens=[self._until_eos(r) for r in rows], step_times_s=steps.times, total_s=total)

    def decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)  # type: ignore[attr-defined]

    def _until_eos(self, row: list[int]) -> list[int]:
        for i, t in enumerate(row):
            if t in self._eos:
                return row[: i + 1]
        return row


class GenerativeCandidate(TimedGeneration, TorchCandidate):
    """A transformers causal LM in eval mode; decoding as the scenario's `generation:` block says."""

    def __init__(self, name: str, module: Any, tokenizer: Any, generation: Any, info: Any = None):
        super().__init__(name, module, tokenizer, info)
        self._set_generation(tokenizer, generation)

    def _generator(self) -> Any:
        return self.module

    def forward(self, batch: dict[str, Any]) -> Any:
        """The logits of one forward over the prompt (no decoding)."""
        import torch

        with torch.inference_mode():
            return self.module(**batch, use_cache=False).logits

    def document_nll(self, texts: list[str], max_length: int, batch_size: int) -> list[Any]:
        """Each document's summed token NLL (quality/perplexity.DocNll), for perplexity."""
        from hf_cost.quality.perplexity import document_nll

        return document_nll(self.module, self.tokenizer, texts, max_length=max_length, batch_size=batch_size,
                            device=self.device)

    def flops(self, sample: dict[str, Any], config: Any) -> Any:
        return None  # prefill and decode FLOPs are counted by measure/lm_flops (see lm_flops)

    def lm_flops(self, perf_set: Any, generation: Any) -> dict[str, Any]:
        """Prefill and decode FLOPs at this workload, counted on this module (`workload_lm_flops`)."""
        return workload_lm_flops(self.module, perf_set, generation)


def workload_lm_flops(module: Any, perf_set: Any, generation: Any) -> dict[str, Any]:
    """A causal LM's FLOPs at this workload: prefill at the median prompt length, decode per token at
    the KV length of the first and of the last new token. For an architecture lm_flops cannot count,
    ``counted`` is None and ``reason`` says why."""
    from hf_cost.measure.lm_flops import SUPPORTED_MODEL_TYPES, lm_flops_summary

    config = module.config
    if getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return {"counted": None, "reason": f"model_type {getattr(config, 'model_type', None)!r} is not one of "
                f"{', '.join(SUPPORTED_MODEL_TYPES)} (measure/lm_flops)"}
    prompt = perf_set.describe()["length_distribution"]["p50"]
    return lm_flops_summary(module, config, [prompt], [prompt, prompt + generation.max_new_tokens - 1])


def _id_set(eos: Any) -> set[int]:
    if eos is None:
        return set()
    return set(eos) if isinstance(eos, (list, tuple)) else {int(eos)}
