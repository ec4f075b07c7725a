"""onnx_int8: the `onnx` export (steps/onnx.py) quantized to dynamic int8 by ONNX Runtime.

Exports into a temporary folder inside staging (removed afterwards), then quantizes with
`ORTQuantizer` (dynamic int8: weights int8 once, activations quantized at run time) using
`AutoQuantizationConfig.<isa>`; `isa: auto` picks it from /proc/cpuinfo (measure/cpu_flags.py).
Static int8 (`mode: static`) is not built yet and is refused by `check`.

A causal LM's graph (`text-generation-with-past`) is quantized the same way: its past key/value
inputs and present outputs stay float32, so generation still feeds the KV cache back; only the
weights (MatMul, Gather) become int8, and each matmul's activations are quantized as it runs.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from hf_cost.config.building import OnnxInt8Step
from hf_cost.core.build_metrics import OnnxInt8Metrics
from hf_cost.errors import UserError
from hf_cost.steps.base import BuildContext
from hf_cost.steps.onnx import OnnxBuilder, export_onnx, step_failed


class OnnxInt8Builder(OnnxBuilder):
    kind = "onnx_int8"
    config = OnnxInt8Step
    metrics = OnnxInt8Metrics

    def _check_settings(self, step: Any, where: str) -> None:
        from hf_cost.measure.cpu_flags import choose_isa, read_cpu_flags, refusal

        if step.mode == "static":
            raise UserError(
                "static int8 is not supported yet: use mode: dynamic (activations quantized at run time)",
                where=f"{where}.mode",
            )
        cpu = read_cpu_flags()
        if step.isa == "auto":
            isa, why = choose_isa(cpu)
            if isa is None:
                raise UserError(f"isa: auto found no int8 instruction set: {why}", where=f"{where}.isa")
        elif (why := refusal(step.isa, cpu)) is not None:
            raise UserError(why, where=f"{where}.isa")

    def _make(self, step: Any, ctx: BuildContext, source: Any, task: str, target: Path,
              metrics: dict[str, Any]) -> dict[str, Any]:
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig

        from hf_cost.measure.cpu_flags import X86_ORDER, choose_isa, read_cpu_flags
        from hf_cost.models.onnx_candidate import describe_quantization, graph_facts
        from hf_cost.output import inside

        cpu = read_cpu_flags()
        isa, why = choose_isa(cpu) if step.isa == "auto" else (step.isa, "asked for by name")
        if step.isa != "auto" and not cpu.readable:
            why += f"; not checked against this CPU ({cpu.source})"
        cfg = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=step.per_channel)
        stage = ctx.output.stage
        tmp = inside(stage, Path(tempfile.mkdtemp(prefix=f".{target.name}-fp32-", dir=stage)))
        try:
            metrics["export_time_s"] = export_onnx(step, ctx, source, task, tmp)
            fp32 = graph_facts(tmp / "model.onnx")
            ctx.progress.say(f"[{target.name}] quantizing to dynamic int8 ({isa} config: {cfg})")
            t0 = time.perf_counter()
            try:
                ORTQuantizer.from_pretrained(tmp, file_name="model.onnx").quantize(save_dir=target,
                                                                                   quantization_config=cfg)
            except Exception as exc:  # noqa: BLE001
                raise step_failed("int8 quantization", step, exc, ctx.where) from None
            metrics["quantize_time_s"] = time.perf_counter() - t0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        (target / "ort_config.json").unlink(missing_ok=True)  # a record of cfg: kept in settings instead
        facts = graph_facts(target / "model_quantized.onnx")
        metrics["fp32_onnx_file_bytes"] = fp32.files_bytes
        metrics["size_reduction_vs_fp32_onnx"] = fp32.files_bytes / facts.files_bytes
        flags = sorted({flag for _, flag in X86_ORDER if cpu.has(flag)} | {f for f in cpu.flags if "vnni" in f})
        described, dtype = describe_quantization(cfg)
        settings = {"isa_used": isa, "isa_reason": why, "cpu_flags_found": flags, "cpu_flags_source": cpu.source,
                    "quantization_config": described}
        return {
            "file_name": "model_quantized.onnx", "int8": True, "facts": facts, "settings": settings,
            "dtype": dtype,
            "notes": [f"dynamic int8 with AutoQuantizationConfig.{isa}: {why}",
                      "int8_op_counts in the candidate's model details show the int8 operators"],
        }
