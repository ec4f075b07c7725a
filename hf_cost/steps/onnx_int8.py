"""onnx_int8: the `onnx` export (steps/onnx.py) quantized to int8 by ONNX Runtime through Optimum.

Exports into a temporary folder inside staging (removed afterwards), then quantizes with
`ORTQuantizer` using `AutoQuantizationConfig.<isa>`; `isa: auto` picks it from /proc/cpuinfo
(measure/cpu_flags.py). Everything is written by one function, `quantize_graph`, which the
accuracy-aware search (models/int8_tuning.py) calls again with nodes kept in float.

`mode: dynamic` (default): weights int8 once, each matmul's activations quantized as it runs
(DynamicQuantizeLinear + MatMulInteger; Optimum's QOperator format).

`mode: static`: activations get fixed ranges from a calibration set. The rows and their shapes
come from models/onnx_calibration.py (the `calibration` dataset's text, tokenized by the source
tokenizer and padded as the candidate runs); ONNX Runtime's calibrator (what `ORTQuantizer.fit`
runs, here batch by batch) runs the fp32 graph over them and computes each activation's range
with `calibration_method` (minmax: min and max seen; entropy: the histogram threshold of least KL
divergence, 128 bins; percentile: the (100 - p)th and p-th percentiles of a 2048-bin
histogram). Optimum's static configs write QDQ graphs (QuantizeLinear/DequantizeLinear pairs
around each quantized op) that ONNX Runtime fuses into int8 kernels when the session loads.
Op types on the attention-mask path are left float (see models/onnx_calibration.py). The result
records the method, the rows, the calibration time, the format, the op types quantized and every
calibrated range (`raw.calibration_ranges`).

A causal LM's graph (`text-generation-with-past`) is quantized dynamically only: its past
key/value inputs and present outputs stay float32, so generation still feeds the KV cache back;
only the weights (MatMul, Gather) become int8. Static int8 of an LM is refused at validate.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from hf_cost.config.building import OnnxInt8Step
from hf_cost.core.onnx_metrics import OnnxInt8Metrics
from hf_cost.errors import UserError
from hf_cost.steps.base import BuildContext, Plan
from hf_cost.steps.onnx import OnnxBuilder, export_onnx, step_failed

FP32_FILE = "model.onnx"
INT8_FILE = "model_quantized.onnx"
CALIBRATION_BATCH = 8  # rows per calibration run at fixed lengths (natural lengths: 1)
OPTIMUM_METHOD = {"minmax": "minmax", "entropy": "entropy", "percentile": "percentiles"}
DEFAULT_PERCENTILE = 99.999  # Optimum's AutoCalibrationConfig.percentiles default


def quantization_config(isa: str, step: Any, without_ops: Sequence[str] = ()) -> Any:
    """Optimum's QuantizationConfig for ``isa`` and the step's mode and per-channel flag; op types
    in ``without_ops`` are left out of Optimum's default list."""
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    static = step.mode == "static"
    make = getattr(AutoQuantizationConfig, isa)
    cfg = make(is_static=static, per_channel=step.per_channel)
    if without_ops:
        ops = [op for op in cfg.operators_to_quantize if op not in without_ops]
        cfg = make(is_static=static, per_channel=step.per_channel, operators_to_quantize=ops)
    return cfg


def quantize_graph(fp32_dir: Path, target: Path, cfg: Any, ranges: Any = None,
                   nodes_to_exclude: Sequence[str] = ()) -> None:
    """Write ``target/model_quantized.onnx``: ``fp32_dir/model.onnx`` quantized with the Optimum
    QuantizationConfig ``cfg`` (static: with the calibrated ``ranges``), the nodes named in
    ``nodes_to_exclude`` kept float. Optimum's ort_config.json is not kept (settings record cfg)."""
    from dataclasses import replace

    from optimum.onnxruntime import ORTQuantizer

    if nodes_to_exclude:
        cfg = replace(cfg, nodes_to_exclude=[*cfg.nodes_to_exclude, *nodes_to_exclude])
    ORTQuantizer.from_pretrained(fp32_dir, file_name=FP32_FILE).quantize(
        save_dir=target, quantization_config=cfg, calibration_tensors_range=ranges)
    (target / "ort_config.json").unlink(missing_ok=True)


def calibrate(fp32_dir: Path, step: Any, cfg: Any, tokenizer: Any, inputs: Any, say: Any, where: str
              ) -> tuple[Any, dict[str, Any]]:
    """Calibration ranges for the static ``cfg`` and the record of how they were found.

    What `ORTQuantizer.fit` does, one batch at a time: Optimum's CalibrationConfig makes ONNX
    Runtime's calibrator (the fp32 graph with every calibrated tensor added as an output), which
    collects each batch and merges it into running min/max or histograms. `fit` itself would keep
    every batch's activations in memory until the end (gigabytes for 128 rows of MiniLM) and,
    for histograms, needs every batch to have the same shape, which natural lengths do not."""
    from optimum.onnxruntime.configuration import AutoCalibrationConfig
    from optimum.onnxruntime.quantization import ORTCalibrationDataReader

    from hf_cost.models.onnx_calibration import calibration_dataset, calibration_rows, graph_input_names

    rows = calibration_rows(step.calibration, step.calibration_rows_asked, f"{where}.calibration")
    natural = (inputs.lengths or "fixed") == "natural"
    graph = fp32_dir / FP32_FILE
    dataset = calibration_dataset(rows, tokenizer, inputs.sequence_length, natural, graph_input_names(graph))
    method = step.calibration_method_used
    options = {"percentile": step.percentile or DEFAULT_PERCENTILE} if method == "percentile" else {}
    calibration = getattr(AutoCalibrationConfig, OPTIMUM_METHOD[method])(dataset, **options)
    batch = 1 if natural else min(CALIBRATION_BATCH, len(dataset))
    slow = "" if method == "minmax" else " (a histogram of every activation: slower than minmax)"
    say(f"calibrating {method}{slow} on {rows.description}, batches of {batch}")
    t0 = time.perf_counter()
    calibrator = calibration.create_calibrator(
        onnx_model_path=graph.as_posix(), operators_to_quantize=cfg.operators_to_quantize,
        augmented_model_name=(fp32_dir / "augmented_model.onnx").as_posix())
    for first in range(0, len(dataset), batch):
        chunk = dataset.select(range(first, min(first + batch, len(dataset))))
        calibrator.collect_data(ORTCalibrationDataReader(chunk, batch_size=len(chunk)))
    ranges = calibrator.compute_data()
    record = {
        "method": method, **options, "rows": len(rows.texts), "rows_available": rows.available,
        "dataset": rows.description, "batch_size": batch, "sequence_length": inputs.sequence_length,
        "lengths": "natural" if natural else "fixed", "time_s": time.perf_counter() - t0,
    }
    say(f"calibrated {len(list(ranges.keys()))} tensors in {record['time_s']:.1f} s")
    return ranges, record


class OnnxInt8Builder(OnnxBuilder):
    kind = "onnx_int8"
    config = OnnxInt8Step
    metrics = OnnxInt8Metrics

    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None:
        if step.mode == "static" and plan.suite.model.generative:
            raise UserError(
                "static int8 of a causal LM is not supported: its graph's past key/value inputs would need "
                "calibrating on generated caches; use mode: dynamic", where=f"{where}.mode")
        labels = super().check(step, plan, where)
        if step.accuracy_aware is not None:
            from hf_cost.models.int8_tuning import check_settings

            check_settings(step.accuracy_aware, plan.suite.model.generative, labels, f"{where}.accuracy_aware")
        if step.mode == "static":
            from hf_cost.models.onnx_calibration import calibration_rows

            calibration_rows(step.calibration, step.calibration_rows_asked, f"{where}.calibration")
        return labels

    def _check_settings(self, step: Any, where: str) -> None:
        from hf_cost.measure.cpu_flags import choose_isa, read_cpu_flags, refusal

        cpu = read_cpu_flags()
        if step.isa == "auto":
            isa, why = choose_isa(cpu)
            if isa is None:
                raise UserError(f"isa: auto found no int8 instruction set: {why}", where=f"{where}.isa")
        elif (why := refusal(step.isa, cpu)) is not None:
            raise UserError(why, where=f"{where}.isa")

    def _make(self, step: Any, ctx: BuildContext, source: Any, task: str, target: Path,
              metrics: dict[str, Any]) -> dict[str, Any]:
        from hf_cost.measure.cpu_flags import X86_ORDER, choose_isa, read_cpu_flags
        from hf_cost.models.onnx_candidate import describe_quantization, graph_facts
        from hf_cost.output import inside

        cpu = read_cpu_flags()
        isa, why = choose_isa(cpu) if step.isa == "auto" else (step.isa, "asked for by name")
        if step.isa != "auto" and not cpu.readable:
            why += f"; not checked against this CPU ({cpu.source})"
        stage = ctx.output.stage
        tmp = inside(stage, Path(tempfile.mkdtemp(prefix=f".{target.name}-fp32-", dir=stage)))
        static: dict[str, Any] = {}
        tuned: dict[str, Any] | None = None
        try:
            metrics["export_time_s"] = export_onnx(step, ctx, source, task, tmp)
            fp32 = graph_facts(tmp / FP32_FILE)
            if step.mode == "static":
                cfg, ranges = self._calibrate(step, ctx, source, tmp, isa, metrics, static)
            else:
                cfg, ranges = quantization_config(isa, step), None
            ctx.progress.say(f"[{target.name}] quantizing to {step.mode} int8 ({isa} config: {cfg})")
            t0 = time.perf_counter()
            try:
                quantize_graph(tmp, target, cfg, ranges)
            except Exception as exc:  # noqa: BLE001
                raise step_failed("int8 quantization", step, exc, ctx.where) from None
            metrics["quantize_time_s"] = time.perf_counter() - t0
            if step.accuracy_aware is not None:  # may quantize target's graph again, nodes kept float
                tuned = self._accuracy_aware(step, ctx, source, tmp, target, cfg, ranges)
                metrics["accuracy_aware"] = tuned["metrics"]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        facts = graph_facts(target / INT8_FILE)
        metrics["fp32_onnx_file_bytes"] = fp32.files_bytes
        metrics["size_reduction_vs_fp32_onnx"] = fp32.files_bytes / facts.files_bytes
        flags = sorted({flag for _, flag in X86_ORDER if cpu.has(flag)} | {f for f in cpu.flags if "vnni" in f})
        described, dtype = describe_quantization(cfg)
        settings = {"isa_used": isa, "isa_reason": why, "cpu_flags_found": flags, "cpu_flags_source": cpu.source,
                    "quantization_config": described}
        notes = [f"{step.mode} int8 with AutoQuantizationConfig.{isa} ({described['format']} format): {why}",
                 "int8_op_counts in the candidate's model details show the int8 operators"]
        if static:
            from hf_cost.models.onnx_calibration import quantized_node_counts

            static["quantized_node_counts"] = quantized_node_counts(target / INT8_FILE, cfg.operators_to_quantize)
            settings.update({k: v for k, v in static.items() if k != "ranges"})
            c = static["calibration"]
            notes.append(f"calibrated with {c['method']} on {c['dataset']}, {c['lengths']} lengths "
                         f"(sequence length {c['sequence_length']}), batches of {c['batch_size']}")
        made = {"file_name": INT8_FILE, "int8": True, "facts": facts, "settings": settings, "dtype": dtype,
                "notes": notes, "raw": {"calibration_ranges": static.get("ranges", [])} if static else {}}
        if tuned is not None:
            made["notes"].append(tuned["note"])
            made["raw"].update(tuned["raw"])
        return made

    def _accuracy_aware(self, step: Any, ctx: BuildContext, source: Any, fp32_dir: Path, target: Path, cfg: Any,
                        ranges: Any) -> dict[str, Any]:
        """models/int8_tuning.accuracy_aware on the step's labelled rows, each trial quantized by
        `quantize_graph` (same config and ranges) into a scratch folder inside staging."""
        from transformers import AutoTokenizer

        from hf_cost.models.int8_tuning import accuracy_aware, load_rows
        from hf_cost.output import inside

        aware, name, where = step.accuracy_aware, step.name or step.kind, f"{ctx.where}.accuracy_aware"
        tokenizer = AutoTokenizer.from_pretrained(source.reference, **source.pretrained_kwargs())
        seq = aware.sequence_length or ctx.store.suite.inputs.sequence_length
        rows = load_rows(aware, tokenizer, ctx.store.prepared.labels[step.source], seq, where)
        stage = ctx.output.stage
        scratch = inside(stage, Path(tempfile.mkdtemp(prefix=f".{target.name}-tuning-", dir=stage)))

        def quantize(excluded: Sequence[str], directory: Path) -> Path:
            quantize_graph(fp32_dir, directory, cfg, ranges, nodes_to_exclude=excluded)
            return directory / INT8_FILE

        try:
            return accuracy_aware(aware, fp32_dir / FP32_FILE, target / INT8_FILE, quantize, rows, cfg, scratch,
                                  lambda m: ctx.progress.say(f"[{name}] {m}"))
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - one line naming the step
            raise step_failed("accuracy-aware int8 tuning", step, exc, ctx.where) from None

    def _calibrate(self, step: Any, ctx: BuildContext, source: Any, fp32_dir: Path, isa: str,
                   metrics: dict[str, Any], static: dict[str, Any]) -> tuple[Any, Any]:
        from transformers import AutoTokenizer

        from hf_cost.models.onnx_calibration import mask_path_op_types, range_rows

        mask_ops = mask_path_op_types(fp32_dir / FP32_FILE)
        default_ops = quantization_config(isa, step).operators_to_quantize
        left_float = {op: nodes for op, nodes in mask_ops.items() if op in default_ops}
        cfg = quantization_config(isa, step, without_ops=tuple(left_float))
        tokenizer = AutoTokenizer.from_pretrained(source.reference, **source.pretrained_kwargs())
        name = step.name or step.kind
        try:
            ranges, record = calibrate(fp32_dir, step, cfg, tokenizer, ctx.store.suite.inputs,
                                       lambda m: ctx.progress.say(f"[{name}] {m}"), ctx.where)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise step_failed("int8 calibration", step, exc, ctx.where) from None
        metrics["calibration_time_s"] = record.pop("time_s")
        metrics["calibration_rows"] = record["rows"]
        static.update({
            "calibration": record, "ranges": range_rows(ranges),
            "op_types_left_float": {op: f"{len(nodes)} node(s) read the attention-mask path ({', '.join(nodes[:3])}"
                                    f"{', ...' if len(nodes) > 3 else ''})" for op, nodes in left_float.items()},
        })
        return cfg, ranges
