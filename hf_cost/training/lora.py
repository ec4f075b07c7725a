"""The lora step's session: examples, `runs` seeded runs to the target, the kept adapter saved and
reloaded from its files as the candidate, the typed result.

- Data: training/lora_data.py (prompt as the candidates get it, then label word + EOS; loss on the
  answer only). Quality: training/lora_loop.py (greedy generation on `eval`, parsed to labels).
- Adapter figures, counted on the wrapped model: trainable parameters (requires_grad) and their
  share of all parameters, adapted Linear modules, the trainable parameters' bytes, and the size of
  adapter_model.safetensors on disk.
- FLOPs per example: FlopCounterMode over one training step (forward + backward, no optimizer) on
  the first batch of examples, divided by its rows; beside it 3 x forward on the same batch (which
  over-counts LoRA: the frozen weights get no weight gradients).
- The candidate: the base loaded as every candidate is, with the saved adapter applied, unmerged;
  its logits are compared with the trained model's on eval prompts (reload_max_abs_logit_difference).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_cost.core.readings import MemoryReading
from hf_cost.core.results import ScenarioResult
from hf_cost.errors import UserError
from hf_cost.training.lora_data import build_examples, check_answers_parse
from hf_cost.training.lora_loop import LoraRunRecord, evaluator, train_lora_once
from hf_cost.training.lora_model import (
    ADAPTER_WEIGHTS,
    LoraCandidate,
    adapted_module_count,
    adapter_parameter_counts,
    load_adapter,
    parameter_counts,
    save_adapter,
    with_fresh_adapter,
)
from hf_cost.training.lora_result import lora_metrics, lora_result
from hf_cost.training.session import TrainingContext, mixed_precision_for

RELOAD_PROBES = 4  # eval prompts the reloaded candidate's logits are compared on


@dataclass
class LoraOutcome:
    result: ScenarioResult
    candidate: Any  # LoraCandidate, None when nothing was saved
    files_dir: Path | None


def train_lora(step: Any, ctx: TrainingContext, generation: Any) -> LoraOutcome:
    from transformers import AutoTokenizer

    from hf_cost.data.labelled import load_labelled
    from hf_cost.models.load import load_model, pick_device, prepare_lm_tokenizer
    from hf_cost.quality.answers import AnswerParser

    name, where = step.name or step.kind, ctx.where
    device = pick_device(ctx.spec.device)
    precision = mixed_precision_for(step, device)
    train = load_labelled(step.train, f"{where}.train")
    evalset = load_labelled(step.eval, f"{where}.eval", train.label_names)
    labels = list(train.label_names)
    tokenizer = AutoTokenizer.from_pretrained(ctx.checkpoint.reference, **ctx.checkpoint.pretrained_kwargs())
    prepare_lm_tokenizer(tokenizer)
    check_answers_parse(labels, tokenizer, AnswerParser(labels), f"{where}.train.label_column")
    seq = step.sequence_length or ctx.sequence_length
    examples = build_examples(train.texts, train.labels, labels, generation, tokenizer, seq)
    if len(examples) == 0:
        raise UserError(f"every training example (prompt + answer) is longer than {seq} tokens: raise "
                        "sequence_length", where=f"{where}.sequence_length")
    spec = ctx.spec.model_copy(update={"task": "text-generation"})

    def make_model() -> Any:
        return with_fresh_adapter(load_model(spec, ctx.checkpoint).model, step)

    evaluate = evaluator(evalset.texts, evalset.labels, labels, step.target.metric, generation,
                         step.eval_batch_size, tokenizer)
    flops, figures = _adapter_figures(make_model, examples, step.batch_size, tokenizer.pad_token_id, device)
    ctx.progress.say(
        f"[{name}] LoRA r={step.r} on {', '.join(step.target_modules)}: {figures['trainable_parameters']:,} "
        f"trainable parameters ({figures['trainable_share']:.2%}); {len(examples)} examples ({train.description}), "
        f"evaluating on {len(evalset)} ({evalset.description}); mixed precision {precision}; "
        f"target {step.target.metric} >= {step.target.value}")
    records, kept_model, kept = _runs(step, ctx, make_model, examples, evaluate, device, precision,
                                      tokenizer.pad_token_id)

    candidate, target, weights, reload_diff = None, None, None, None
    if ctx.checkpoints_dir is not None:
        from hf_cost.output import inside

        target = ctx.checkpoints_dir / name
        inside(ctx.checkpoints_dir.parent, target)
        weights = save_adapter(kept_model, tokenizer, ctx.checkpoint, step.source, target)
        candidate, reload_diff = _reloaded(name, ctx, target, generation, kept_model, evalset.texts)
    del kept_model
    figures.update(adapter_file_bytes=weights.stat().st_size if weights is not None else None,
                   reload_max_abs_logit_difference=reload_diff, train_examples=len(examples),
                   eval_examples=len(evalset))
    saved_as = str(ctx.final_path(target) if ctx.final_path else target) if target is not None else None
    dropped = {"train": {**train.dropped, **({"too_long": examples.too_long} if examples.too_long else {})},
               "eval": evalset.dropped}
    metrics = lora_metrics(records, kept, flops, figures, saved_as, dropped)
    settings = {"sequence_length": seq, "labels": labels, "mixed_precision_used": precision,
                "generation": generation.model_dump(), "num_processes": 1}
    notes = [f"train: {train.description}; eval: {evalset.description}",
             "quality: greedy generation on every eval prompt, the answer parsed to the first label named as a "
             "whole word (case ignored); an answer naming none is wrong and counted as unparseable",
             "each example: the generation prompt in the chat template, then the label word and EOS; loss on "
             "the answer tokens only (prompt tokens labelled -100)"]
    result = lora_result(step, name, records, kept, metrics, settings, [labels[i] for i in evalset.labels], notes)
    return LoraOutcome(result, candidate, target)


def _adapter_figures(make_model: Any, examples: Any, batch_size: int, pad_id: int,
                     device: str) -> tuple[dict[str, float], dict[str, Any]]:
    """FLOPs per example on the first batch, and the adapter's counts, on one fresh model."""
    from hf_cost.measure.flops import count_forward_flops, count_train_step_flops

    model = make_model()
    trainable, total, trainable_bytes = parameter_counts(model)
    rows = list(range(min(batch_size, len(examples))))
    batch = examples.batch(rows, pad_id, device)
    step_flops = count_train_step_flops(model, batch).total / len(rows)
    forward = count_forward_flops(model, {k: v for k, v in batch.items() if k != "labels"}).total / len(rows)
    figures = {"trainable_parameters": trainable, "total_parameters": total, "trainable_share": trainable / total,
               "adapted_modules": adapted_module_count(model), "adapter_parameter_bytes": trainable_bytes}
    del model
    return {"train_per_sample": step_flops, "three_x_forward_per_sample": 3 * forward}, figures


def _runs(step: Any, ctx: TrainingContext, make_model: Any, examples: Any, evaluate: Any, device: str,
          precision: str, pad_id: int) -> tuple[list[LoraRunRecord], Any, int]:
    """`runs` runs with seeds seed, seed+1, ...; the model of the first converged run (else the last)."""
    import torch

    from hf_cost.measure.memory import track_peak_memory

    records: list[LoraRunRecord] = []
    kept_model, kept = None, 0
    for i in range(step.runs):
        seed = step.seed + i
        ctx.progress.say(f"[{step.name}] run {i + 1}/{step.runs} (seed {seed})")
        cuda = torch.device(device) if device.startswith("cuda") else None
        with track_peak_memory(ctx.baseline_rss_bytes, cuda) as mem:
            record, model = train_lora_once(step, make_model, examples, evaluate, seed, device, precision, pad_id,
                                            ctx.progress)
        record.memory = MemoryReading(**mem.to_dict())
        records.append(record)
        if kept_model is None and (record.converged or i == step.runs - 1):
            kept_model, kept = model, i
        else:
            del model
    return records, kept_model, kept


def _reloaded(name: str, ctx: TrainingContext, target: Path, generation: Any, trained: Any,
              texts: list[str]) -> tuple[LoraCandidate, float]:
    """The candidate from its saved files, and max |logit difference| vs the trained model on eval prompts."""
    import torch

    from hf_cost.core.candidate_info import CandidateInfo
    from hf_cost.data.prompts import encode_prompts, render_prompts

    module, tokenizer, info = load_adapter(ctx.spec, ctx.checkpoint, target)
    ids = encode_prompts(render_prompts(texts[:RELOAD_PROBES], generation, tokenizer), generation, tokenizer)
    diff = 0.0
    with torch.inference_mode():
        for row in ids:
            x = torch.tensor([row], device=module.device)
            a, b = trained(input_ids=x).logits.float(), module(input_ids=x).logits.float()
            diff = max(diff, float((a - b).abs().max()))
    trainable, total, adapter_bytes = adapter_parameter_counts(module)
    adapter_file = (target / ADAPTER_WEIGHTS).stat().st_size
    base_disk = info.get("weights_size_on_disk_bytes") or 0
    candidate = LoraCandidate(name, module, tokenizer, generation, target, ctx.checkpoint)
    candidate.info = CandidateInfo(
        name=name, origin="fine-tuned", runtime="torch", dtype=info["dtype"],
        device=info["device"], parameters=total, parameter_bytes=info["parameter_bytes"] + adapter_bytes,
        size_on_disk_bytes=base_disk + adapter_file, path=None, load_time_s=0.0, baseline_rss_mib=0.0,
        model={**info, "path": None, "model_class": type(module).__name__, "parameters": total,
               "adapter": {"parameters": trainable, "parameter_bytes": adapter_bytes, "file_bytes": adapter_file,
                           "base_weights_size_on_disk_bytes": base_disk,
                           "reloaded_from": "base (models/load.load_model) + peft.PeftModel.from_pretrained"}},
    )
    return candidate, diff

