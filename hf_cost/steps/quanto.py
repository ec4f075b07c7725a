"""quanto: optimum-quanto weight quantization of a torch candidate (activations stay float).

What it builds: the `from` checkpoint loaded with transformers the way models/load.py loads any
candidate (same dtype, device, attention; a classifier when it has labels, else AutoModel), then
``quantize(model, weights=qint8 | qfloat8)`` and ``freeze(model)``: every nn.Linear's weight
becomes int8 (or float8 e4m3) data plus one float scale per output channel (absmax / qmax).
Embeddings, LayerNorms and biases stay float.

How it measures:
- parameter_bytes: every parameter as stored; a quantized weight counts its data and its scales
  (the inner tensors of quanto's tensor subclass), not its logical float size.
- size_on_disk_bytes: the state_dict saved with safetensors (quanto's documented serialisation,
  its quantization map beside it) under checkpoints/<name>/.
- FLOPs: FlopCounterMode counts aten matmuls, and a quanto Linear runs the custom op
  quanto::qbytes_mm, which the counter does not see into. When the quantized model counts fewer
  FLOPs than the float source, the source's count (taken before quantizing) is reported as
  "inherited": the same matmuls run, on weights rescaled from int8/float8.
- max_abs_logit_difference: quantized vs unquantized outputs on the first samples of the run's
  performance set (fixed by its seed); the per-sample maxima are kept raw.
"""

from __future__ import annotations

import importlib.util
import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from hf_cost.config.building import QuantoStep
from hf_cost.core.build_metrics import QuantoMetrics
from hf_cost.errors import UserError
from hf_cost.models.torch_candidate import TorchCandidate
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan, require_checkpoint, source_labels

PROBE_SAMPLES = 8  # fixed inputs the quantized outputs are compared on
WEIGHTS_FILE = "quanto_weights.safetensors"  # not model.safetensors: from_pretrained must not half-load it
QMAP_FILE = "quanto_qmap.json"


def quanto_installed() -> bool:
    try:
        return importlib.util.find_spec("optimum.quanto") is not None
    except ModuleNotFoundError:  # no `optimum` at all
        return False


def float8_supported() -> bool:
    """quanto's float8 weights need torch.float8_e4m3fn (torch 2.1+). Checked on this CPU with
    torch 2.13 / quanto 0.2.7: they quantize and run (weights rescaled to float before matmul)."""
    from packaging.version import Version

    return Version(metadata.version("torch")).release >= (2, 1)


def stored_bytes(module: Any) -> int:
    """Bytes of ``module``'s parameters as stored: a tensor subclass counts its inner tensors."""
    return sum(_tensor_bytes(p) for p in module.parameters())


def _tensor_bytes(t: Any) -> int:
    flatten = getattr(t, "__tensor_flatten__", None)
    if flatten is None:
        return t.numel() * t.element_size()
    names, _ = flatten()
    return sum(_tensor_bytes(getattr(t, n)) for n in names)


class QuantoCandidate(TorchCandidate):
    """A TorchCandidate whose FLOPs were settled at build time (counted or inherited)."""

    def __init__(self, name: str, module: Any, tokenizer: Any, info: Any, flops_info: Any):
        super().__init__(name, module, tokenizer, info)
        self.flops_info = flops_info

    def flops(self, sample: dict[str, Any], config: Any) -> Any:
        shape = tuple(next(iter(sample.values())).shape)
        info = self.flops_info
        if info is None or shape != (info.batch_size, info.sequence_length):
            return None  # counted for another shape: not this sample's
        return info.model_copy()


class QuantoBuilder(BuildStep):
    kind = "quanto"
    config = QuantoStep
    metrics = QuantoMetrics
    not_a_checkpoint = "quanto weights in memory"

    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None:
        if not quanto_installed():
            raise UserError("optimum-quanto is not installed: pip install optimum-quanto", where=f"{where}.kind")
        require_checkpoint(step, plan, where)
        if step.weights == "float8" and not float8_supported():
            raise UserError(
                f"float8 weights need torch 2.1 or later (torch {metadata.version('torch')} is installed): "
                "use weights: int8",
                where=f"{where}.weights",
            )
        return source_labels(step, plan, where)

    def build(self, step: Any, ctx: BuildContext) -> Built:
        import torch
        from optimum.quanto import freeze, qfloat8, qint8, quantization_map, quantize

        from hf_cost.core.candidate_info import CandidateInfo
        from hf_cost.data.performance_set import build_performance_set
        from hf_cost.measure.flops import count_forward_flops
        from hf_cost.models.load import load_model

        store, name, t0 = ctx.store, step.name or self.kind, time.perf_counter()
        checkpoint = store.checkpoint_of(step.source)
        labels = store.prepared.labels.get(step.source)
        task = "sequence-classification" if labels is not None else "feature-extraction"
        ctx.progress.say(f"[{name}] loading {step.source} to quantize its weights to {step.weights}")
        loaded = load_model(store.spec.model_copy(update={"task": task}), checkpoint)
        model, device = loaded.model, loaded.device
        perf = build_performance_set(store.suite.inputs, loaded.tokenizer, device)
        probe_idx = torch.arange(min(PROBE_SAMPLES, perf.num_samples), device=device)
        probe, sample = perf.batch(probe_idx), perf.batch(torch.zeros(1, dtype=torch.long, device=device))
        source = TorchCandidate(step.source, model, loaded.tokenizer)
        source_flops = source.flops(sample, checkpoint.config)
        before, bytes_before = source.forward(probe).float(), stored_bytes(model)

        tq = time.perf_counter()
        qtype = qint8 if step.weights == "int8" else qfloat8
        quantize(model, weights=qtype)
        freeze(model)
        quantize_s = time.perf_counter() - tq
        candidate = QuantoCandidate(name, model, loaded.tokenizer, None, None)
        after = candidate.forward(probe).float()
        per_sample = (after - before).abs().flatten(1).amax(dim=1).tolist()
        counted = count_forward_flops(model, sample).total
        candidate.flops_info = _flops(candidate, source_flops, counted, sample, checkpoint.config, step.source)
        qmap = quantization_map(model)
        files_dir, weights_file = self._save(model, loaded.tokenizer, qmap, name, ctx)
        on_disk = weights_file.stat().st_size if weights_file is not None else None
        build_s = time.perf_counter() - t0

        act = loaded.info["dtype"]
        dtype = f"{step.weights} weights (quanto {qtype.name}), {act} activations"
        bytes_after = stored_bytes(model)
        candidate.info = CandidateInfo(
            name=name, origin="variant", runtime="torch", dtype=dtype, device=str(device),
            parameters=sum(p.numel() for p in model.parameters()), parameter_bytes=bytes_after,
            size_on_disk_bytes=on_disk, path=None, load_time_s=0.0, baseline_rss_mib=0.0,
            model={**loaded.info, "path": None, "dtype": dtype, "parameter_bytes": bytes_after,
                   "weights_size_on_disk_bytes": on_disk, "source_parameter_bytes": bytes_before,
                   "quantized_modules": len(qmap), "quanto_version": metadata.version("optimum-quanto")},
        )
        ctx.progress.say(
            f"[{name}] {len(qmap)} Linear layers quantized to {qtype.name} in {quantize_s:.1f} s: "
            f"parameters {bytes_before / 2**20:.2f} -> {bytes_after / 2**20:.2f} MiB"
        )
        output_key = "logit" if candidate.label_names is not None else "hidden_state"
        result = _result(step, name, {
            "build_time_s": build_s,
            "quantize_s": quantize_s,
            "weights": step.weights,
            "weights_qtype": qtype.name,
            "activations_dtype": act,
            "quantized_linear_layers": len(qmap),
            "parameters": candidate.info.parameters,
            "parameter_bytes_before": bytes_before,
            "parameter_bytes_after": bytes_after,
            "parameter_bytes_ratio": bytes_after / bytes_before,
            "size_on_disk_bytes": on_disk,
            "source_size_on_disk_bytes": loaded.info["weights_size_on_disk_bytes"],
            f"max_abs_{output_key}_difference": max(per_sample),
            "flops_per_sample": candidate.flops_info.measured_per_sample,
            "flops_source": candidate.flops_info.source,
            "flops_counted_on_quantized_per_sample": counted,
            "saved_weights": str(ctx.output.final_path(weights_file)) if weights_file is not None else None,
        }, {f"max_abs_{output_key}_difference_per_sample": per_sample, "probe_sample_indices": probe_idx.tolist()},
            len(per_sample), perf.sequence_length, labels, output_key)
        return Built(
            name=name, parent=step.source, origin="variant", recipe=step.model_dump(mode="json", by_alias=True),
            result=result, candidate=candidate, files_dir=files_dir,
        )

    @staticmethod
    def _save(model: Any, tokenizer: Any, qmap: dict, name: str, ctx: BuildContext) -> tuple[Any, Any]:
        """state_dict -> safetensors, plus the quantization map, config and tokenizer, in staging.

        Reload: ``requantize(AutoModel*.from_config(config), load_file(WEIGHTS_FILE), qmap)``.
        """
        from safetensors.torch import save_file

        if ctx.output is None:
            return None, None
        target = ctx.output.path_in_stage(f"checkpoints/{name}")
        target.mkdir(parents=True, exist_ok=False)
        weights = Path(target) / WEIGHTS_FILE
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(weights), metadata={"format": "pt"})
        (target / QMAP_FILE).write_text(json.dumps(qmap, indent=1, sort_keys=True), encoding="utf-8")
        model.config.save_pretrained(target)
        tokenizer.save_pretrained(target)
        return target, weights


def _flops(quantized: Any, source_flops: Any, counted: int, sample: Any, config: Any, parent: str) -> Any:
    """Measured on the quantized model if the counter sees all its matmuls, else the source's."""
    if source_flops is None or counted >= source_flops.measured_per_sample:
        return TorchCandidate.flops(quantized, sample, config)
    method = (
        f"inherited from '{parent}', counted before quantizing ({source_flops.method}); FlopCounterMode "
        f"saw {counted} of them on the quantized model, since quanto's Linear runs the custom op "
        "quanto::qbytes_mm, which it does not see into: the same matmuls run, on int8/float8 weights "
        "rescaled by their per-channel scales"
    )
    return source_flops.model_copy(update={"source": "inherited", "method": method})


def _result(
    step: Any, name: str, metrics: dict, raw: dict, probes: int, seq: int, labels: Any, output_key: str
) -> Any:
    from hf_cost.core.results import ScenarioResult

    m, what = metrics, "logit" if output_key == "logit" else "last-hidden-state (no head)"
    disk = "not saved" if m["size_on_disk_bytes"] is None else f"{m['size_on_disk_bytes']:,} B on disk"
    return ScenarioResult(
        name=name, kind=step.kind, candidate=name,
        settings={**step.model_dump(mode="json", by_alias=True), "sequence_length": seq, "labels": labels,
                  "probe_samples": probes},
        metrics=metrics, validity=None, raw=raw,
        notes=[
            (f"{m['weights_qtype']} weights in {m['quantized_linear_layers']} Linear layers: parameters "
            f"{m['parameter_bytes_before']:,} -> {m['parameter_bytes_after']:,} B (x{m['parameter_bytes_ratio']:.2f}), "
            f"{disk}; max |{what} difference| {m[f'max_abs_{output_key}_difference']:.2g} over {probes} "
            f"samples of the performance set; FLOPs {m['flops_source']}"),
            ("parameter bytes as stored (int8/float8 data + float32 scale per output row; buffers excluded); "
            f"files: {WEIGHTS_FILE} (safetensors of the state_dict) + {QMAP_FILE}, reloaded by "
            "optimum.quanto.requantize; build_time_s: load, quantize + freeze, comparison, save"),
        ],
    )
