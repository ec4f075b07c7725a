"""cast: a copy of a torch candidate (an encoder or a causal LM) with its floating-point weights
cast to bfloat16 or float16, saved as a transformers checkpoint and measured like any other.

What it builds: the `from` checkpoint loaded as the store loads that candidate (models/store.py
`load_spec`; a GGUF base de-quantised), then ``model.to(dtype)``: every floating-point parameter
and buffer (integer buffers stay), then ``save_pretrained`` under checkpoints/<name>/, whose config
records the dtype. The store loads the candidate from there in that dtype, whatever model.dtype
says (`Built.keeps_dtype`: dtype 'auto', so the checkpoint's config wins), so every later step
runs it in bfloat16 / float16: activations and, for an LM, the KV cache too.

How it measures:
- parameter_bytes before and after: every parameter's numel x element size (a tied weight once).
- size_on_disk_bytes: the saved checkpoint's weight files.
- max |output difference| and top-1 agreement vs the source on the first samples of the run's
  performance set (models/variant_probe.py): a classifier's logits and predicted label, a bare
  encoder's last hidden state, a causal LM's first-new-token logits and greedy next token; each
  sample's figures are kept raw.
- FLOPs: not settled here; the candidate is a checkpoint, counted when it is loaded (FlopCounterMode
  sees bfloat16 / float16 matmuls as it sees float32 ones).

float16 on CPU: checked on this machine with torch 2.13, it runs (a tiny Llama generates, a tiny
BERT classifies); older torch builds have no float16 matmul on CPU ("addmm_impl_cpu_ not
implemented for 'Half'"), so validate runs one small float16 matmul on the CPU when a float16 cast
will run there, and refuses with one line if it fails.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field

from hf_cost.config.base import BuildingStep
from hf_cost.core.build_metrics import CastMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.errors import UserError
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan, require_checkpoint, source_labels


class CastStep(BuildingStep):
    """A copy of a torch candidate with its floating-point weights cast to bfloat16 or float16."""

    kind: Literal["cast"]
    dtype: Literal["bfloat16", "float16"] = Field(description="The weights' (and so the activations') dtype.")


@lru_cache(maxsize=1)
def float16_runs_on_cpu() -> bool:
    """Whether this torch build has a float16 matmul on the CPU (torch 2.13 has)."""
    import torch

    try:
        torch.nn.functional.linear(torch.ones(2, 4, dtype=torch.float16), torch.ones(3, 4, dtype=torch.float16))
    except RuntimeError:
        return False
    return True


def _runs_on_cpu(device: str) -> bool:
    if device == "cpu":
        return True
    if device != "auto":
        return False
    import torch

    return not torch.cuda.is_available()


class CastBuilder(BuildStep):
    kind = "cast"
    config = CastStep
    metrics = CastMetrics
    serves_lms = True

    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None:
        require_checkpoint(step, plan, where)
        if step.dtype == "float16" and _runs_on_cpu(plan.suite.model.device) and not float16_runs_on_cpu():
            raise UserError("float16 does not run on this CPU with this torch build (no float16 matmul): use "
                            "dtype: bfloat16, or a GPU", where=f"{where}.dtype")
        return source_labels(step, plan, where)

    def build(self, step: Any, ctx: BuildContext) -> Built:
        import torch

        from hf_cost.models.load import load_model, weights_size_on_disk
        from hf_cost.models.variant_probe import compare, outputs, probe, stored_bytes

        store, name, t0 = ctx.store, step.name or self.kind, time.perf_counter()
        checkpoint = store.checkpoint_of(step.source)
        labels = store.prepared.labels.get(step.source)
        ctx.progress.say(f"[{name}] loading {step.source} to cast its weights to {step.dtype}")
        loaded = load_model(store.load_spec(step.source), checkpoint)
        model = loaded.model
        p = probe(store.suite, loaded.tokenizer, loaded.device, generative=store.spec.generative,
                  has_head=labels is not None)
        before, bytes_before = outputs(model, p), stored_bytes(model)
        tc = time.perf_counter()
        model.to(getattr(torch, step.dtype))
        cast_s = time.perf_counter() - tc
        cmp = compare(before, outputs(model, p), p.output)
        target = ctx.output.path_in_stage(f"checkpoints/{name}")
        target.mkdir(parents=True, exist_ok=False)
        model.save_pretrained(target)  # its config records the dtype the store reloads it in
        loaded.tokenizer.save_pretrained(target)
        bytes_after = stored_bytes(model)
        metrics = {
            "build_time_s": time.perf_counter() - t0,
            "cast_s": cast_s,
            "source_dtype": loaded.info["dtype"],
            "dtype": step.dtype,
            "parameters": sum(q.numel() for q in model.parameters()),
            "parameter_bytes_before": bytes_before,
            "parameter_bytes_after": bytes_after,
            "parameter_bytes_ratio": bytes_after / bytes_before,
            "size_on_disk_bytes": weights_size_on_disk(target),
            "source_size_on_disk_bytes": loaded.info["weights_size_on_disk_bytes"],
            "output_compared": p.output,
            "max_abs_output_difference": cmp.max_abs_difference,
            "top1_agreement": cmp.top1_agreement,
            "probe_samples": len(p.indices),
            "saved_checkpoint": str(ctx.output.final_path(target)),
        }
        raw = {"max_abs_output_difference_per_sample": cmp.max_abs_difference_per_sample,
               "probe_sample_indices": p.indices, **cmp.raw_agreement()}
        ctx.progress.say(f"[{name}] {loaded.info['dtype']} -> {step.dtype}: parameters "
                         f"{bytes_before / 2**20:.2f} -> {bytes_after / 2**20:.2f} MiB")
        return Built(
            name=name, parent=step.source, origin="variant", recipe=step.model_dump(mode="json", by_alias=True),
            result=_result(step, name, metrics, raw, labels, loaded.info.get("weights_note")),
            checkpoint_dir=target, keeps_dtype=True,
        )


def _result(step: Any, name: str, m: dict, raw: dict, labels: Any, weights_note: str | None) -> ScenarioResult:
    what = {"logit": "logit", "hidden_state": "last-hidden-state (no head)",
            "first_token_logit": "first-new-token logit"}[m["output_compared"]]
    top1 = "" if m["top1_agreement"] is None else (
        f", {'greedy next token' if m['output_compared'] == 'first_token_logit' else 'predicted label'} agrees "
        f"on {m['top1_agreement']:.0%}")
    notes = [
        (f"{m['source_dtype']} -> {m['dtype']}: parameters {m['parameter_bytes_before']:,} -> "
         f"{m['parameter_bytes_after']:,} B (x{m['parameter_bytes_ratio']:.2f}), {m['size_on_disk_bytes']:,} B on disk; "
         f"max |{what} difference| {m['max_abs_output_difference']:.2g}{top1} over {m['probe_samples']} samples "
         "of the performance set"),
        ("parameter bytes: numel x element size of every parameter (buffers excluded); the checkpoint is loaded "
         f"in {m['dtype']} whatever model.dtype says; build_time_s: load, cast, comparison, save"),
    ]
    if m["source_dtype"] == m["dtype"]:
        notes.append(f"the source is already {m['dtype']}: the copy is the same weights")
    if weights_note:
        notes.append(f"source: {weights_note}")
    return ScenarioResult(
        name=name, kind=step.kind, candidate=name,
        settings={**step.model_dump(mode="json", by_alias=True), "labels": labels, "probe_samples": m["probe_samples"]},
        metrics=m, validity=None, raw=raw, notes=notes,
    )
