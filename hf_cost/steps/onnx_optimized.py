"""onnx_optimized: the `onnx` export (steps/onnx.py) rewritten by ONNX Runtime's graph optimizer.

What it builds: the `from` torch checkpoint exported to an fp32 ONNX graph exactly as `onnx` does
(into a temporary folder inside staging, removed afterwards), then rewritten by Optimum's
`ORTOptimizer` with `AutoOptimizationConfig.<level>` (built for the CPU: `for_gpu=False`), which
writes `model_optimized.onnx`. The levels (Optimum's docs, "Optimization"):

- O1: ONNX Runtime's basic graph optimizations only (constant folding, redundant node removal);
  on a BERT export it removes Constant / Identity nodes and fuses nothing;
- O2: O1 plus the extended ones and the transformers-specific fusions of ORT's
  `onnxruntime.transformers` optimizer: Attention, SkipLayerNormalization, BiasGelu (an encoder),
  SkipSimplifiedLayerNormalization and QuickGelu (SiLU) for a Llama decoder;
- O3: O2 with GELU replaced by its tanh approximation (FastGelu): outputs change by design;
- O4: O3 in float16 mixed precision, for GPUs only ("fp16, GPU-only, requires --device cuda"):
  refused by `check`, since ONNX candidates here run on CPUExecutionProvider only.

Model types: those `ORTConfigManager` maps to an ORT optimizer model type (bert, distilbert,
roberta, gpt2, llama, ...); others are refused by `check` with the list. A causal LM's decoder with
past key/values (`text-generation-with-past`) is optimized as one graph; checked on a tiny Llama:
same greedy tokens, logits within 1e-6 of the source.

How it measures (beside `onnx`'s figures: the max |output difference| vs the source torch model on
the first samples of the performance set, raw per sample, and for an LM next-token agreement):
- the graph before and after: node counts by operator type and in all, and file bytes, read from
  the .onnx files with `onnx` (models/onnx_candidate.graph_facts);
- fused_op_counts: the operator types the optimized graph has and the fp32 export has not;
- optimize_time_s: the ORTOptimizer call alone; the optimization config, serialized, in settings.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hf_cost.config.base import BuildingStep
from hf_cost.core.onnx_metrics import OnnxOptimizedMetrics
from hf_cost.errors import UserError
from hf_cost.steps.base import BuildContext, Plan
from hf_cost.steps.onnx import OnnxBuilder, export_onnx, step_failed

OPTIMIZED_FILE = "model_optimized.onnx"  # ORTOptimizer's name for model.onnx with file_suffix "optimized"
LEVEL_NOTES = {
    "O1": "O1: ONNX Runtime's basic graph optimizations only (constant folding, redundant nodes removed)",
    "O2": "O2: basic and extended ONNX Runtime optimizations plus transformers-specific fusions",
    "O3": ("O3: O2 plus GELU approximation (FastGelu, tanh form): outputs change by design, see "
           "max_abs_output_diff_vs_source"),
}


class OnnxOptimizedStep(BuildingStep):
    """The fp32 ONNX export rewritten by ONNX Runtime's graph optimizer (Optimum's ORTOptimizer)."""

    kind: Literal["onnx_optimized"]
    level: Literal["O1", "O2", "O3", "O4"] = Field(
        "O2", description="AutoOptimizationConfig level: O1 basic, O2 + fusions, O3 + GELU approximation, "
        "O4 + fp16 (GPU only: refused, ONNX candidates run on the CPU here).")


@cache
def optimizable_model_types() -> tuple[str, ...]:
    """Model types ORTOptimizer rewrites: those ORTConfigManager maps to an ORT optimizer type that
    ONNX Runtime's optimizer supports (its own check, asked per type)."""
    from optimum.onnxruntime.utils import ORTConfigManager

    supported = []
    for model_type in ORTConfigManager._conf:  # the mapping is the only list Optimum keeps
        try:
            ORTConfigManager.check_optimization_supported_model(model_type, None)
        except NotImplementedError:
            continue
        supported.append(model_type)
    return tuple(sorted(supported))


class OnnxOptimizedBuilder(OnnxBuilder):
    kind = "onnx_optimized"
    config = OnnxOptimizedStep
    metrics = OnnxOptimizedMetrics

    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None:
        if step.level == "O4":
            raise UserError(
                "O4 is float16 mixed precision for GPUs only (Optimum: fp16, GPU-only); ONNX candidates run on "
                "CPUExecutionProvider here: use level O1, O2 or O3", where=f"{where}.level")
        labels = super().check(step, plan, where)
        model_type = getattr(plan.model_config, "model_type", None)
        supported = optimizable_model_types()
        if model_type not in supported:
            raise UserError(f"ORTOptimizer does not optimize model type '{model_type}'; it supports "
                            f"{', '.join(supported)}", where=f"{where}.kind")
        return labels

    def _make(self, step: Any, ctx: BuildContext, source: Any, task: str, target: Path,
              metrics: dict[str, Any]) -> dict[str, Any]:
        from optimum.onnxruntime import ORTOptimizer
        from optimum.onnxruntime.configuration import AutoOptimizationConfig

        from hf_cost.models.onnx_candidate import graph_facts
        from hf_cost.output import inside

        cfg = getattr(AutoOptimizationConfig, step.level)(for_gpu=False)
        stage = ctx.output.stage
        tmp = inside(stage, Path(tempfile.mkdtemp(prefix=f".{target.name}-fp32-", dir=stage)))
        try:
            metrics["export_time_s"] = export_onnx(step, ctx, source, task, tmp)
            fp32 = graph_facts(tmp / "model.onnx")
            ctx.progress.say(f"[{target.name}] optimizing the graph with ORTOptimizer ({step.level})")
            t0 = time.perf_counter()
            try:
                ORTOptimizer.from_pretrained(tmp, file_names=["model.onnx"]).optimize(
                    optimization_config=cfg, save_dir=target)
            except Exception as exc:  # noqa: BLE001 - one line naming the step
                raise step_failed(f"ORT graph optimization ({step.level})", step, exc, ctx.where) from None
            metrics["optimize_time_s"] = time.perf_counter() - t0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        (target / "ort_config.json").unlink(missing_ok=True)  # a record of cfg: kept in settings instead
        facts = graph_facts(target / OPTIMIZED_FILE)
        metrics.update(graph_change(fp32.op_counts, facts.op_counts, fp32.files_bytes, facts.files_bytes))
        return {
            "file_name": OPTIMIZED_FILE, "int8": False, "facts": facts, "dtype": "float32",
            "settings": {"optimized_file": OPTIMIZED_FILE, "optimization_config": dict(vars(cfg))},
            "notes": [LEVEL_NOTES[step.level] + f"; nodes {metrics['nodes_before']} -> {metrics['nodes_after']}, "
                      f"fused operators: {_counts_text(metrics['fused_op_counts'])}",
                      "graph facts before/after: node counts by operator type read from the .onnx files with onnx"],
        }


def graph_change(before: dict[str, int], after: dict[str, int], bytes_before: int, bytes_after: int) -> dict[str, Any]:
    """The graph's node counts and file bytes before and after, and the operator types it gained."""
    return {
        "op_counts_before": dict(sorted(before.items())), "op_counts_after": dict(sorted(after.items())),
        "nodes_before": sum(before.values()), "nodes_after": sum(after.values()),
        "fused_op_counts": {op: n for op, n in sorted(after.items()) if op not in before},
        "fp32_onnx_file_bytes": bytes_before, "file_bytes_ratio_vs_fp32_onnx": bytes_after / bytes_before,
    }


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{op} x{n}" for op, n in counts.items()) or "none"
