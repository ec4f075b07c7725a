"""onnx: a torch checkpoint exported to ONNX Runtime through Optimum (onnx_int8.py quantizes it).

`onnx` exports the `from` candidate's transformers checkpoint to an fp32 ONNX graph with
Optimum's exporter (`optimum.exporters.onnx.main_export`, the call that
`ORTModelFor*.from_pretrained(..., export=True)` makes, here writing straight into the run's
staging folder instead of a system temp dir), for the `text-classification` task when the
source has a classifier head and `feature-extraction` when not. `onnx_int8` exports the same
way into a temporary folder inside staging (removed afterwards), then quantizes it with
`ORTQuantizer` (dynamic int8: weights int8 once, activations quantized at run time) using
`AutoQuantizationConfig.<isa>`; `isa: auto` picks it from /proc/cpuinfo (measure/cpu_flags.py).
Static int8 (`mode: static`) is not built yet and is refused by `check`.

Each build loads the result as an OnnxCandidate and runs it beside the source torch model on
the first samples of the run's performance set: the largest output difference is reported
(`max_abs_output_diff_vs_source`), with each sample's in `raw`.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path
from typing import Any

from hf_cost.config.building import OnnxStep
from hf_cost.core.build_metrics import OnnxMetrics
from hf_cost.errors import UserError
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan, require_checkpoint, source_labels

PARITY_SAMPLES = 8


def _task(has_head: bool) -> str:
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


def _check_source(step: Any, plan: Plan, where: str, has_head: bool) -> None:
    require_checkpoint(step, plan, where)
    model_type = getattr(plan.model_config, "model_type", None)
    tasks = exportable_tasks(str(model_type))
    if tasks is None or _task(has_head) not in tasks:
        has = f"only {', '.join(tasks)}" if tasks else "no task at all"
        raise UserError(
            f"Optimum's ONNX exporter does not support architecture '{model_type}' for {_task(has_head)} ({has})",
            where=f"{where}.kind",
        )


class OnnxBuilder(BuildStep):
    kind = "onnx"
    config = OnnxStep
    metrics = OnnxMetrics
    not_a_checkpoint = "an ONNX Runtime graph"

    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None:
        _require_optimum(where)
        labels = source_labels(step, plan, where)
        _check_source(step, plan, where, labels is not None)
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
        has_head = store.prepared.labels[step.source] is not None
        target = ctx.output.path_in_stage(f"checkpoints/{name}")
        target.mkdir(parents=True, exist_ok=False)
        metrics: dict[str, Any] = {}
        made = self._make(step, ctx, source, has_head, target, metrics)
        AutoTokenizer.from_pretrained(source.reference, **source.pretrained_kwargs()).save_pretrained(target)
        candidate = self._load(name, step, ctx, source, has_head, target, made)
        metrics["build_time_s"] = time.perf_counter() - started
        parity, candidate.info.parameters = _parity(candidate, source, has_head, ctx)
        facts = made["facts"]
        metrics.update({
            "onnx_file_bytes": facts.files_bytes, "opset": facts.opset, "provider": candidate.info.model["provider"],
            "parameters": candidate.info.parameters, "initializer_bytes": facts.initializer_bytes,
            "session_load_time_s": made["session_load_time_s"], "max_abs_output_diff_vs_source": max(parity),
        })
        result = ScenarioResult(
            name=name, kind=self.kind, candidate=name,
            settings={**step.model_dump(mode="json", by_alias=True), "task": _task(has_head), **made["settings"]},
            metrics=metrics, validity=None,
            raw={"max_abs_output_diff_vs_source_per_sample": parity},
            notes=[
                ("exported with optimum.exporters.onnx.main_export (no output validation), loaded with "
                 "ORTModel on CPUExecutionProvider, intra-op threads = torch's"),
                (f"output diff: the candidate vs the source torch model (fp32, CPU) on the first {len(parity)} "
                 "samples of the performance set, max |difference| of logits or last hidden state per sample"),
                *made["notes"],
                *([f"runs on the CPU although model.device is {store.spec.device}: no CUDA provider"]
                  if pick_device(store.spec.device) != "cpu" else []),
            ],
        )
        return Built(
            name=name, parent=step.source, origin="variant", recipe=step.model_dump(mode="json", by_alias=True),
            result=result, candidate=candidate, files_dir=target,
        )

    def _make(self, step: Any, ctx: BuildContext, source: Any, has_head: bool, target: Path,
              metrics: dict[str, Any]) -> dict[str, Any]:
        """Write the graph into ``target``; returns its file name, dtype text, settings and notes."""
        from hf_cost.models.onnx_candidate import graph_facts

        metrics["export_time_s"] = export_onnx(step, ctx, source, has_head, target)
        return {"file_name": "model.onnx", "dtype": "float32", "settings": {}, "notes": [], "int8": False,
                "facts": graph_facts(target / "model.onnx")}

    def _load(self, name: str, step: Any, ctx: BuildContext, source: Any, has_head: bool, target: Path,
              made: dict[str, Any]) -> Any:
        import torch
        from transformers import AutoTokenizer

        from hf_cost.models.onnx_candidate import OnnxCandidate, candidate_info, load_ort

        t0 = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(target)
        ort_model = load_ort(target, made["file_name"], has_head)
        made["session_load_time_s"] = time.perf_counter() - t0
        details = {
            "path": str(ctx.output.final_path(target)), "source_checkpoint": ctx.store.entries[step.source].final_path,
            "intra_op_num_threads": torch.get_num_threads(), **made["settings"],
        }
        info = candidate_info(name, made["facts"], made["file_name"], dtype=made["dtype"], parameters=0,
                              details=details)  # parameters: counted on the source model by _parity
        return OnnxCandidate(name, ort_model, tokenizer, info, source, int8=made["int8"],
                             attn_implementation=ctx.store.spec.attn_implementation)


def _parity(candidate: Any, source: Any, has_head: bool, ctx: BuildContext) -> tuple[list[float], int]:
    import torch

    from hf_cost.data.performance_set import build_performance_set
    from hf_cost.models.onnx_candidate import compare_with_source

    perf = build_performance_set(ctx.store.suite.inputs, candidate.tokenizer, torch.device("cpu"))
    return compare_with_source(candidate, perf.batch(torch.arange(min(PARITY_SAMPLES, perf.num_samples))))


def export_onnx(step: Any, ctx: BuildContext, source: Any, has_head: bool, directory: Path) -> float:
    from optimum.exporters.onnx import main_export

    name = step.name or step.kind
    ctx.progress.say(f"[{name}] exporting '{step.source}' to ONNX ({_task(has_head)}) with Optimum")
    t0 = time.perf_counter()
    try:
        main_export(
            model_name_or_path=source.reference, output=directory, task=_task(has_head), device="cpu",
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
