"""lora_merge: a lora candidate's adapter folded into its base weights, W' = W + (alpha / r) B A
(PEFT merge_and_unload), saved as a plain transformers checkpoint under checkpoints/<name>/ and
loaded like any checkpoint as the candidate `<name>`.

What it builds: the base and the adapter reloaded from the lora step's files (training/lora_model:
the same load as that candidate), merged. What it checks: on the first `probe_prompts` prompts of
the run's performance set, each alone (no padding), the merged model's logits against the unmerged
model's over every prompt position: the largest |difference| and the share of positions whose
argmax (the greedy next token) is the same. build_time_s covers the reload, comparison and save.
"""

from __future__ import annotations

import time
from typing import Any

from hf_cost.config.lora import LoraMergeStep
from hf_cost.core.build_metrics import LoraMergeMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.errors import UserError
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan
from hf_cost.steps.lora import lora_candidate


class LoraMergeBuilder(BuildStep):
    kind = "lora_merge"
    config = LoraMergeStep
    metrics = LoraMergeMetrics
    serves_lms = True

    def check(self, step: LoraMergeStep, plan: Plan, where: str) -> list[str] | None:
        from hf_cost.training.lora_model import INSTALL, peft_installed

        if not peft_installed():
            raise UserError(f"lora_merge needs peft, which is not installed: {INSTALL}", where=f"{where}.kind")
        kind = next((sc.kind for sc in plan.suite.scenarios if sc.name == step.source), None)
        if kind != "lora":
            what = "the scenario file's model" if kind is None else f"built by {kind}"
            raise UserError(f"'{step.source}' is {what}, not a lora step: lora_merge merges a LoRA adapter into "
                            "its base; name a lora step", where=f"{where}.from")
        return None

    def build(self, step: LoraMergeStep, ctx: BuildContext) -> Built:
        import torch

        from hf_cost.data.performance_set import build_performance_set
        from hf_cost.training.lora_model import load_adapter

        store, name, t0 = ctx.store, step.name or self.kind, time.perf_counter()
        lora = lora_candidate(store, step.source, ctx.where)
        ctx.progress.say(f"[{name}] merging the adapter of {step.source} into its base")
        model, tokenizer, info = load_adapter(store.spec, lora.base_checkpoint, lora.adapter_dir)
        perf = build_performance_set(store.suite.inputs, tokenizer, model.device, store.suite.generation)
        probes = [perf.one(i) for i in range(min(step.probe_prompts, perf.num_samples))]
        unmerged = _logits(model, probes)
        t_merge = time.perf_counter()
        merged = model.merge_and_unload()
        merge_s = time.perf_counter() - t_merge
        after = _logits(merged, probes)
        diffs, agree, positions = [], 0, 0
        for a, b, p in zip(unmerged, after, probes):
            real = p["attention_mask"][0].bool()
            diffs.append(float((a[real] - b[real]).abs().max()))
            agree += int((a[real].argmax(-1) == b[real].argmax(-1)).sum())
            positions += int(real.sum())
        target = saved = None
        if ctx.output is not None:
            target = ctx.output.path_in_stage(f"checkpoints/{name}")
            target.mkdir(parents=True, exist_ok=False)
            merged.save_pretrained(target)
            tokenizer.save_pretrained(target)
            saved = str(ctx.output.final_path(target))
        params = list(merged.parameters())
        metrics = LoraMergeMetrics(
            build_time_s=time.perf_counter() - t0, merge_s=merge_s, max_abs_logit_difference=max(diffs),
            greedy_token_agreement=agree / positions, probe_prompts=len(probes), probe_positions=positions,
            parameters=sum(p.numel() for p in params),
            parameter_bytes=sum(p.numel() * p.element_size() for p in params),
            size_on_disk_bytes=_weights_bytes(target), saved_checkpoint=saved,
        )
        del merged, model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return Built(name=name, parent=step.source, origin="variant",
                     recipe=step.model_dump(mode="json", by_alias=True),
                     result=_result(step, name, metrics, diffs, info), checkpoint_dir=target)


def _logits(model: Any, probes: list[dict[str, Any]]) -> list[Any]:
    import torch

    with torch.inference_mode():
        return [model(**p, use_cache=False).logits[0].float() for p in probes]


def _weights_bytes(target: Any) -> int | None:
    from hf_cost.models.load import weights_size_on_disk

    return weights_size_on_disk(target) if target is not None else None


def _result(step: LoraMergeStep, name: str, m: LoraMergeMetrics, diffs: list[float], info: dict) -> ScenarioResult:
    return ScenarioResult(
        name=name, kind=step.kind, candidate=name,
        settings={**step.model_dump(mode="json", by_alias=True), "dtype": info["dtype"], "device": info["device"]},
        metrics=m, validity=None, raw={"max_abs_logit_difference_per_prompt": diffs},
        notes=[
            f"merged {step.source}'s adapter into its base in {m.merge_s:.2f} s; max |logit difference| merged vs "
            f"unmerged {m.max_abs_logit_difference:.2g}, greedy next token the same at {m.greedy_token_agreement:.2%} "
            f"of {m.probe_positions} positions of {m.probe_prompts} prompts",
            "compared on the first prompts of the performance set, each alone; the merged model is a plain "
            f"transformers checkpoint ({m.size_on_disk_bytes} B of weights on disk), loaded like any other",
        ],
    )
