"""A causal LM run by ONNX Runtime through Optimum's ORTModelForCausalLM (CPU execution provider).

The graph is Optimum's `text-generation-with-past` export: one decoder `model.onnx` whose inputs
are input_ids, attention_mask, position_ids and every layer's past key/value, and whose outputs
are the logits and every layer's present key/value. Prefill feeds empty past tensors; each
decoding step feeds the previous step's present ones, so generation reuses the KV cache as the
torch model does. `ORTModelForCausalLM` inherits transformers' GenerationMixin, so `generate`
is the same call as the torch LM candidate's, with the same streamer clock (models/lm_candidate.py
`TimedGeneration`): TTFT and TPOT are measured identically for both.

FLOPs are not counted on the graph: `lm_flops` counts the source torch model (measure/lm_flops)
at the same workload and says it was inherited. `compare_lm_with_source` measures how closely
the graph follows the source torch model on fixed prompts.
"""

from __future__ import annotations

import gc
from typing import Any

from hf_cost.core.candidate import Candidate
from hf_cost.models.lm_candidate import TimedGeneration
from hf_cost.models.onnx_candidate import PROVIDER, session_options

EXPORT_TASK = "text-generation-with-past"
FIDELITY_NEW_TOKENS = 16  # at most this many greedy tokens per prompt are compared teacher-forced


def load_ort_lm(directory: Any, file_name: str) -> Any:
    """ORTModelForCausalLM for ``directory/file_name`` with its KV cache, CPU provider, torch's threads."""
    from optimum.onnxruntime import ORTModelForCausalLM

    return ORTModelForCausalLM.from_pretrained(directory, file_name=file_name, provider=PROVIDER, use_cache=True,
                                               session_options=session_options())


def load_source_lm(source: Any, attn_implementation: str | None = None) -> Any:
    """The source torch causal LM (fp32, CPU, eval) from a ResolvedCheckpoint (a GGUF file de-quantised)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if source.gguf_file is not None:
        kwargs["config"] = source.config  # read once at resolve time
    model = AutoModelForCausalLM.from_pretrained(source.reference, dtype=torch.float32, **kwargs,
                                                 **source.pretrained_kwargs())
    return model.eval()


class _OrtCausalLm:
    """The ORT model seen as quality/perplexity's `document_nll` and the perplexity step see a torch
    causal LM: ``config``, eval/train (no-ops: a graph has no training mode) and a call that
    returns the logits of every position (no past: empty KV inputs)."""

    training = False

    def __init__(self, ort_model: Any):
        self.ort_model = ort_model
        self.config = ort_model.config

    def eval(self) -> _OrtCausalLm:
        return self

    def train(self, mode: bool = True) -> _OrtCausalLm:
        return self

    def __call__(self, input_ids: Any, attention_mask: Any, use_cache: bool = False) -> Any:
        return self.ort_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)


class OnnxLmCandidate(TimedGeneration, Candidate):
    runtime = "onnxruntime"

    def __init__(self, name: str, ort_model: Any, tokenizer: Any, generation: Any, info: Any, source: Any, *,
                 int8: bool, attn_implementation: str | None = None):
        import torch

        self.name = name
        self.ort_model = ort_model
        self.module = _OrtCausalLm(ort_model)  # what perplexity reads (config, logits); not a torch module
        self.tokenizer = tokenizer
        self.device = torch.device("cpu")
        self.info = info
        self.source = source  # ResolvedCheckpoint of the torch checkpoint it was exported from
        self.int8 = int8
        self.attn_implementation = attn_implementation
        self._set_generation(tokenizer, generation)
        self._inputs = {"input_ids", "attention_mask"}

    def _generator(self) -> Any:
        return self.ort_model

    def forward(self, batch: dict[str, Any]) -> Any:
        """The logits of one forward over the prompt (empty past, no decoding)."""
        import torch

        with torch.inference_mode():
            return self.module(**{k: v for k, v in batch.items() if k in self._inputs}).logits

    def document_nll(self, texts: list[str], max_length: int, batch_size: int) -> list[Any]:
        """Each document's summed token NLL (quality/perplexity.DocNll) from the graph's logits."""
        from hf_cost.quality.perplexity import document_nll

        return document_nll(self.module, self.tokenizer, texts, max_length=max_length, batch_size=batch_size,
                            device=self.device)

    def flops(self, sample: dict[str, Any], config: Any) -> Any:
        return None  # prefill and decode FLOPs: lm_flops

    def lm_flops(self, perf_set: Any, generation: Any) -> dict[str, Any]:
        """Prefill and decode FLOPs of the source torch model at this workload (the graph is its export)."""
        from hf_cost.models.lm_candidate import workload_lm_flops

        model = load_source_lm(self.source, self.attn_implementation)
        try:
            counted = workload_lm_flops(model, perf_set, generation)
        finally:
            del model
            gc.collect()
        how = "inherited from the source torch model (fp32) at the same workload: the ONNX graph is its export"
        if self.int8:
            how += "; in this graph the matmuls run as int8 ops (MatMulInteger after DynamicQuantizeLinear)"
        return {**counted, "source": "inherited", "inherited_how": how}


def compare_lm_with_source(candidate: OnnxLmCandidate, reference: Any, prompts: list[dict[str, Any]],
                           new_tokens: int) -> dict[str, Any]:
    """How closely the graph follows the source torch model ``reference`` on ``prompts`` (batches of one).

    Per prompt: the torch model's greedy continuation (``new_tokens`` tokens, EOS not stopping it),
    then one forward of each model over prompt + continuation. Reported: the max |logit
    difference| at the first new token's position, and teacher-forced next-token agreement: at
    each of the ``new_tokens`` positions, whether the graph's argmax is the token the torch model
    chose (so one early disagreement does not count every later token against it).
    """
    import torch

    first_diff, agree, positions = [], [], []
    with torch.inference_mode():
        for one in prompts:
            ids, mask = one["input_ids"], one["attention_mask"]
            width = ids.shape[-1]
            out = reference.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1,
                                     max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                     pad_token_id=candidate.tokenizer.pad_token_id, temperature=None, top_p=None,
                                     top_k=None)
            chosen = out[:, width:]
            full = out[:, :-1]
            full_mask = torch.ones_like(full)
            expected = reference(input_ids=full, attention_mask=full_mask, use_cache=False).logits.float()
            got = candidate.forward({"input_ids": full, "attention_mask": full_mask}).float()
            at = slice(width - 1, full.shape[-1])
            first_diff.append(float((got[0, width - 1] - expected[0, width - 1]).abs().max()))
            same = (got[0, at].argmax(-1) == chosen[0]).tolist()
            agree.append(sum(same))
            positions.append(len(same))
    return {
        "first_token_max_abs_logit_diff": first_diff,
        "next_tokens_agreeing": agree,
        "next_tokens_compared": positions,
        "parameters": sum(p.numel() for p in reference.parameters()),
    }
