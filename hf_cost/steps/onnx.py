"""onnx: a torch checkpoint exported to ONNX Runtime through Optimum (onnx_int8.py quantizes it).

`onnx` exports the `from` candidate's transformers checkpoint to an fp32 ONNX graph with
Optimum's exporter (`optimum.exporters.onnx.main_export`, the call that
`ORTModelFor*.from_pretrained(..., export=True)` makes, here writing straight into the run's
staging folder instead of a system temp dir), for the `text-classification` task when the
source has a classifier head and `feature-extraction` when not, and a causal LM (model.task
text-generation) for `text-generation-with-past`: one decoder graph with past key/value inputs,
so generation reuses its KV cache (models/onnx_lm_candidate.py). A GGUF source is first loaded
(de-quantised) and saved as a plain transformers checkpoint in a temporary staging folder,
since the exporter reads only those. `onnx_int8` exports the same
way into a temporary folder inside staging (removed afterwards), then quantizes it with
`ORTQuantizer` (dynamic int8: weights int8 once, activations quantized at run time) using
`AutoQuantizationConfig.<isa>`; `isa: auto` picks it from /proc/cpuinfo (measure/cpu_flags.py).
Static int8 (`mode: static`) first calibrates activation ranges on a calibration set.

Each build loads the result as a candidate and runs it beside the source torch model (fp32, CPU)
on the first samples of the run's performance set: the largest output difference is reported
(`max_abs_output_diff_vs_source`), with each sample's in `raw`. For a causal LM that is the
logits at the first new token, plus teacher-forced greedy next-token agreement
(`next_token_agreement_vs_source`, models/onnx_lm_candidate.compare_lm_with_source).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from hf_cost.config.building import OnnxStep
from hf_cost.core.onnx_metrics import OnnxMetrics
from hf_cost.errors import UserError
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan, require_checkpoint, source_labels

PARITY_SAMPLES = 8


def export_task(generative: bool, has_head: bool) -> str:
    """The exporter's task: a causal LM with its KV cache, a classifier, or a bare encoder."""
    if generative:
        return "text-generation-with-past"
    return "text-classification" if has_head else "feature-extraction"


@cache
def exportable_tasks(model_type: str) -> tuple[str, ...] | None:
    """The tasks Optimum's ONNX exporter supports for ``model_type``; None for an unknown type."""
    import optimum.exporters.onnx.model_configs  # noqa: F401 - registers the ONNX configs
    from optimum.exporters.tasks import TasksManager

    try:
        tasks = TasksManager.get_supported_tasks_for_model_type(
            model_type, exporter="onnx", library_name="transformers"
        )
    except KeyError:
        return None
    return tuple(tasks)


def _require_optimum(where: str) -> None:
    import importlib.util

    try:
        found = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "optimum", "optimum.onnxruntime"))
    except ModuleNotFoundError:
        found = False
    if not found:
        raise UserError('ONNX Runtime via Optimum is not installed: pip install -e ".[onnx]"', where=f"{where}.kind")


def _check_source(step: Any, plan: Plan, where: str, task: str) -> None:
    require_checkpoint(step, plan, where)
    model_type = getattr(plan.model_config, "model_type", None)
    tasks = exportable_tasks(str(model_type))
    if tasks is None or task not in tasks:
        has = f"only {', '.join(tasks)}" if tasks else "no task at all"
        raise UserError(
            f"Optimum's ONNX exporter does not support architecture '{model_type}' for {task} ({has})",
            where=f"{where}.kind",
        )


class OnnxBuilder(BuildStep):
    kind = "onnx"
    config = OnnxStep
    metrics = OnnxMetrics
    not_a_checkpoint = "an ONNX Runtime graph"
    serves_lms = True

    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None:
        _require_optimum(where)
        labels = source_labels(step, plan, where)
        _check_source(step, plan, where, export_task(plan.suite.model.generative, labels is not None))
        self._check_settings(step, where)
        return labels

    def _check_settings(self, step: Any, where: str) -> None:
        """Settings a subclass adds (the int8 ISA, the mode)."""

    def build(self, step: Any, ctx: BuildContext) -> Built:
        from transformers import AutoTokenizer

        from hf_cost.core.results import ScenarioResult
        from hf_cost.models.load import pick_device

        started = time.perf_counter()
        store, name = ctx.store, step.name or self.kind
        source = store.checkpoint_of(step.source)
        lm = store.spec.generative
        has_head = store.prepared.labels[step.source] is not None
        task = export_task(lm, has_head)
        target = ctx.output.path_in_stage(f"checkpoints/{name}")
        target.mkdir(parents=True, exist_ok=False)
        metrics: dict[str, Any] = {}
        reference = _source_lm(source, ctx) if lm else None  # loaded once: GGUF copy, fidelity, parameters
        with _ExportableCheckpoint(source, reference, ctx, target.name) as exported_from:
            made = self._make(step, ctx, exported_from, task, target, metrics)
        AutoTokenizer.from_pretrained(source.reference, **source.pretrained_kwargs()).save_pretrained(target)
        candidate = self._load(name, step, ctx, source, has_head, target, made)
        metrics["build_time_s"] = time.perf_counter() - started
        if lm:
            parity, fidelity = _lm_parity(candidate, reference, ctx)
            metrics.update(fidelity)
        else:
            parity, candidate.info.parameters = _parity(candidate, source, has_head, ctx)
        del reference
        facts = made["facts"]
        metrics.update({
            "onnx_file_bytes": facts.files_bytes, "opset": facts.opset, "provider": candidate.info.model["provider"],
            "parameters": candidate.info.parameters, "initializer_bytes": facts.initializer_bytes,
            "session_load_time_s": made["session_load_time_s"], "max_abs_output_diff_vs_source": max(parity),
        })
        what = ("logits at the first new token's position (teacher-forced greedy next-token agreement beside it)"
                if lm else "logits or last hidden state")
        result = ScenarioResult(
            name=name, kind=self.kind, candidate=name,
            settings={**step.model_dump(mode="json", by_alias=True), "task": task, **made["settings"]},
            metrics=metrics, validity=None,
            raw={"max_abs_output_diff_vs_source_per_sample": parity, **made.get("raw", {})},
            notes=[
                ("exported with optimum.exporters.onnx.main_export (no output validation), loaded with "
                 "ORTModel on CPUExecutionProvider, intra-op threads = torch's"),
                (f"output diff: the candidate vs the source torch model (fp32, CPU) on the first {len(parity)} "
                 f"samples of the performance set, max |difference| of {what} per sample"),
                *made["notes"],
                *([f"runs on the CPU although model.device is {store.spec.device}: no CUDA provider"]
                  if pick_device(store.spec.device) != "cpu" else []),
            ],
        )
        return Built(
            name=name, parent=step.source, origin="variant", recipe=step.model_dump(mode="json", by_alias=True),
            result=result, candidate=candidate, files_dir=target,
        )

    def _make(self, step: Any, ctx: BuildContext, source: Any, task: str, target: Path,
              metrics: dict[str, Any]) -> dict[str, Any]:
        """Write the graph into ``target``; returns its file name, dtype text, settings and notes."""
        from hf_cost.models.onnx_candidate import graph_facts

        metrics["export_time_s"] = export_onnx(step, ctx, source, task, target)
        return {"file_name": "model.onnx", "dtype": "float32", "settings": {}, "notes": [], "int8": False,
                "facts": graph_facts(target / "model.onnx")}

    def _load(self, name: str, step: Any, ctx: BuildContext, source: Any, has_head: bool, target: Path,
              made: dict[str, Any]) -> Any:
        import torch
        from transformers import AutoTokenizer

        from hf_cost.models.onnx_candidate import OnnxCandidate, candidate_info, load_ort

        t0 = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(target)
        lm = ctx.store.spec.generative
        if lm:
            from hf_cost.models.load import prepare_lm_tokenizer
            from hf_cost.models.onnx_lm_candidate import load_ort_lm

            prepare_lm_tokenizer(tokenizer)
            ort_model = load_ort_lm(target, made["file_name"])
        else:
            ort_model = load_ort(target, made["file_name"], has_head)
        made["session_load_time_s"] = time.perf_counter() - t0
        details = {
            "path": str(ctx.output.final_path(target)), "source_checkpoint": ctx.store.entries[step.source].final_path,
            "intra_op_num_threads": torch.get_num_threads(), "model_class": type(ort_model).__name__,
            **made["settings"],
        }
        if source.gguf_file is not None:  # say what the graph's weights are, as the torch candidate does
            from hf_cost.models.load import gguf_weights

            note = gguf_weights(source.local_dir / source.gguf_file, "float32")["weights_note"]
            details["weights_note"] = f"exported from {note}"
        info = candidate_info(name, made["facts"], made["file_name"], dtype=made["dtype"], parameters=0,
                              details=details)  # parameters: counted on the source model by the parity check
        attn = ctx.store.spec.attn_implementation
        if lm:
            from hf_cost.models.onnx_lm_candidate import OnnxLmCandidate

            return OnnxLmCandidate(name, ort_model, tokenizer, ctx.store.suite.generation, info, source,
                                   int8=made["int8"], attn_implementation=attn)
        return OnnxCandidate(name, ort_model, tokenizer, info, source, int8=made["int8"], attn_implementation=attn)


def _parity(candidate: Any, source: Any, has_head: bool, ctx: BuildContext) -> tuple[list[float], int]:
    import torch

    from hf_cost.data.performance_set import build_performance_set
    from hf_cost.models.onnx_candidate import compare_with_source

    perf = build_performance_set(ctx.store.suite.inputs, candidate.tokenizer, torch.device("cpu"))
    return compare_with_source(candidate, perf.batch(torch.arange(min(PARITY_SAMPLES, perf.num_samples))))


def _source_lm(source: Any, ctx: BuildContext) -> Any:
    from hf_cost.models.onnx_lm_candidate import load_source_lm

    return load_source_lm(source, ctx.store.spec.attn_implementation)


def _lm_parity(candidate: Any, reference: Any, ctx: BuildContext) -> tuple[list[float], dict[str, Any]]:
    """A causal LM's first-token logit difference per prompt, and its next-token agreement figures."""
    import torch

    from hf_cost.data.performance_set import build_performance_set
    from hf_cost.models.onnx_lm_candidate import FIDELITY_NEW_TOKENS, compare_lm_with_source

    generation = ctx.store.suite.generation
    perf = build_performance_set(ctx.store.suite.inputs, candidate.tokenizer, torch.device("cpu"), generation)
    prompts = [perf.one(i) for i in range(min(PARITY_SAMPLES, perf.num_samples))]
    found = compare_lm_with_source(candidate, reference, prompts, min(generation.max_new_tokens, FIDELITY_NEW_TOKENS))
    candidate.info.parameters = found["parameters"]
    compared = sum(found["next_tokens_compared"])
    return found["first_token_max_abs_logit_diff"], {
        "next_token_agreement_vs_source": sum(found["next_tokens_agreeing"]) / compared,
        "next_tokens_compared": compared,
    }


class _ExportableCheckpoint:
    """The checkpoint Optimum's exporter reads: ``source`` itself, or for a GGUF file a plain
    transformers copy of the loaded (de-quantised) ``reference`` in a temporary staging folder,
    removed on exit."""

    def __init__(self, source: Any, reference: Any, ctx: BuildContext, name: str):
        self.source, self.reference, self.ctx, self.name = source, reference, ctx, name
        self.tmp: Path | None = None

    def __enter__(self) -> Any:
        if self.source.gguf_file is None:
            return self.source
        from transformers import AutoTokenizer

        from hf_cost.output import inside

        stage = self.ctx.output.stage
        self.tmp = inside(stage, Path(tempfile.mkdtemp(prefix=f".{self.name}-plain-", dir=stage)))
        self.ctx.progress.say(f"[{self.name}] saving the GGUF model de-quantised as a transformers checkpoint")
        self.reference.save_pretrained(self.tmp)
        AutoTokenizer.from_pretrained(self.source.reference, **self.source.pretrained_kwargs()).save_pretrained(self.tmp)
        return replace(self.source, reference=str(self.tmp), local_dir=self.tmp, revision=None, gguf_file=None)

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def export_onnx(step: Any, ctx: BuildContext, source: Any, task: str, directory: Path) -> float:
    from optimum.exporters.onnx import main_export

    name = step.name or step.kind
    ctx.progress.say(f"[{name}] exporting '{step.source}' to ONNX ({task}) with Optimum")
    t0 = time.perf_counter()
    try:
        main_export(
            model_name_or_path=source.reference, output=directory, task=task, device="cpu",
            do_validation=False, no_post_process=True, revision=source.revision or "main",
            trust_remote_code=source.trust_remote_code, library_name="transformers",
        )
    except Exception as exc:  # noqa: BLE001 - one line naming the step, not a traceback
        raise step_failed("ONNX export", step, exc, ctx.where) from None
    return time.perf_counter() - t0


def step_failed(what: str, step: Any, exc: BaseException, where: str) -> UserError:
    lines = str(exc).strip().splitlines()
    first = (lines[0] if lines else "")[:300]
    return UserError(f"{what} of '{step.source}' failed: {type(exc).__name__}: {first}", where=where)
