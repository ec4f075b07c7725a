"""quanto: optimum-quanto weight quantization of a torch candidate, an encoder or a causal LM
(activations stay float).

What it builds: the `from` checkpoint loaded as the store loads that candidate (models/store.py
`load_spec`: the suite's dtype, device and attention; a classifier when it has labels, a causal LM
for model.task text-generation, a GGUF base de-quantised), then ``quantize(model, weights=...)``
and ``freeze(model)``. Weights: int8 (symmetric, one float scale per output row, absmax / 127),
float8 e4m3 (one scale per row, absmax / 448) or int4 (affine: a float scale and shift per row,
or per group of 128, 96, 64 or 32 inputs when a row has more than 128, packed two a byte).
Embeddings (nn.Embedding), norms and biases stay float: quanto quantizes nn.Linear only.

A causal LM's head (its output embeddings, `lm_head`) is excluded (quanto's ``exclude=``), as
transformers' own quanto integration leaves it by default: many small LMs (SmolLM2) tie it to the
input embeddings, and quantizing it would untie them and add a quantized copy beside the float
embedding (more bytes, not fewer), and the head's logits decide every greedy token directly.
Encoders keep quantizing every Linear, their classifier head included. Checked on this CPU with
torch 2.13 and quanto 0.2.7: int8, int4 and float8 all quantize and generate on a tiny Llama, in
float32 and in bfloat16/float16 (a `cast` source); int4 also works on the tiny BERT. The weights
are frozen inside ``torch.inference_mode()``: int4 weights frozen outside it fail inside it (quanto's
transposed int4 weight raises "Cannot set version_counter for inference tensor" on torch 2.13), and
every runner calls a candidate in inference mode; frozen inside, they also run under no_grad.

How it measures:
- parameter_bytes: every parameter as stored (models/variant_probe.stored_bytes): a quantized
  weight counts its data and its scales (and int4's shifts), not its logical float size.
- size_on_disk_bytes: the state_dict saved with safetensors (quanto's documented serialisation,
  its quantization map beside it) under checkpoints/<name>/; a tied weight is saved once.
- max |output difference| and top-1 agreement vs the unquantized model on the first samples of
  the run's performance set (models/variant_probe.py; an LM: the first new token's logits and
  the greedy next token); the per-sample figures are kept raw.
- FLOPs: FlopCounterMode counts aten matmuls, and a quanto int8/float8 Linear runs the custom op
  quanto::qbytes_mm (and int4 in bfloat16 with groups of 128 tinygemm's int4 matmul), which the
  counter does not see into. When the quantized model counts fewer FLOPs than the float source,
  the source's count (taken before quantizing) is reported as "inherited": the same matmuls run,
  on weights rescaled from int8/int4/float8. For an encoder that is `flops`; for a causal LM
  `lm_flops` (prefill and decode, measure/lm_flops), inherited when the quantized model's counts
  do not all equal the analytic formula's, counted on it when they do (int4 in float32 runs
  dequantize-then-matmul, which the counter sees).
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
from hf_cost.models.lm_candidate import GenerativeCandidate
from hf_cost.models.torch_candidate import TorchCandidate
from hf_cost.models.variant_probe import PROBE_SAMPLES, compare, outputs, probe, stored_bytes
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan, require_checkpoint, source_labels

__all__ = ["PROBE_SAMPLES", "QuantoBuilder", "stored_bytes"]
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


class QuantoLMCandidate(GenerativeCandidate):
    """A quantized causal LM whose prefill/decode FLOPs were settled at build time, at this run's
    workload (counted on it, or inherited from the float source)."""

    settled_lm_flops: dict[str, Any] | None = None

    def lm_flops(self, perf_set: Any, generation: Any) -> dict[str, Any] | None:
        return None if self.settled_lm_flops is None else json.loads(json.dumps(self.settled_lm_flops))


class QuantoBuilder(BuildStep):
    kind = "quanto"
    config = QuantoStep
    metrics = QuantoMetrics
    serves_lms = True
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
        from optimum.quanto import freeze, qfloat8, qint4, qint8, quantization_map, quantize

        from hf_cost.core.candidate_info import CandidateInfo
        from hf_cost.models.lm_candidate import workload_lm_flops
        from hf_cost.models.load import load_model

        store, name, t0 = ctx.store, step.name or self.kind, time.perf_counter()
        checkpoint = store.checkpoint_of(step.source)
        labels = store.prepared.labels.get(step.source)
        lm, generation = store.spec.generative, store.suite.generation
        ctx.progress.say(f"[{name}] loading {step.source} to quantize its weights to {step.weights}")
        loaded = load_model(store.load_spec(step.source), checkpoint)
        model, device = loaded.model, loaded.device
        p = probe(store.suite, loaded.tokenizer, device, generative=lm, has_head=labels is not None)
        before, bytes_before = outputs(model, p), stored_bytes(model)
        if lm:
            source_flops = workload_lm_flops(model, p.perf, generation)
        else:
            sample = p.perf.batch(_zeros(device))  # one sample: FLOPs are counted per sample
            source_flops = TorchCandidate(step.source, model, loaded.tokenizer).flops(sample, checkpoint.config)

        tq = time.perf_counter()
        qtype = {"int8": qint8, "int4": qint4, "float8": qfloat8}[step.weights]
        excluded = [_head_name(model)] if lm else []
        quantize(model, weights=qtype, exclude=excluded or None)
        with torch.inference_mode():  # int4 frozen outside it fails inside it (see the docstring)
            freeze(model)
        quantize_s = time.perf_counter() - tq
        cmp = compare(before, outputs(model, p), p.output)
        candidate, flops_figures = _settle_flops(name, model, loaded.tokenizer, generation if lm else None, p,
                                                 source_flops, checkpoint.config, step.source)
        qmap = quantization_map(model)
        files_dir, weights_file = self._save(model, loaded.tokenizer, qmap, name, ctx)
        on_disk = weights_file.stat().st_size if weights_file is not None else None
        build_s = time.perf_counter() - t0

        act = loaded.info["dtype"]
        dtype = f"{step.weights} weights (quanto {qtype.name}), {act} activations"
        if excluded:
            dtype += f"; {', '.join(excluded)} {act}"
        bytes_after = stored_bytes(model)
        candidate.info = CandidateInfo(
            name=name, origin="variant", runtime="torch", dtype=dtype, device=str(device),
            parameters=sum(w.numel() for w in model.parameters()), parameter_bytes=bytes_after,
            size_on_disk_bytes=on_disk, path=None, load_time_s=0.0, baseline_rss_mib=0.0,
            model={**loaded.info, "path": None, "dtype": dtype, "parameter_bytes": bytes_after,
                   "weights_size_on_disk_bytes": on_disk, "source_parameter_bytes": bytes_before,
                   "quantized_modules": len(qmap), "excluded_modules": excluded,
                   "quanto_version": metadata.version("optimum-quanto")},
        )
        ctx.progress.say(
            f"[{name}] {len(qmap)} Linear layers quantized to {qtype.name} in {quantize_s:.1f} s: "
            f"parameters {bytes_before / 2**20:.2f} -> {bytes_after / 2**20:.2f} MiB"
        )
        result = _result(step, name, {
            "build_time_s": build_s,
            "quantize_s": quantize_s,
            "weights": step.weights,
            "weights_qtype": qtype.name,
            "activations_dtype": act,
            "quantized_linear_layers": len(qmap),
            "excluded_modules": excluded,
            "parameters": candidate.info.parameters,
            "parameter_bytes_before": bytes_before,
            "parameter_bytes_after": bytes_after,
            "parameter_bytes_ratio": bytes_after / bytes_before,
            "size_on_disk_bytes": on_disk,
            "source_size_on_disk_bytes": loaded.info["weights_size_on_disk_bytes"],
            f"max_abs_{p.output}_difference": cmp.max_abs_difference,
            "top1_agreement": cmp.top1_agreement,
            **flops_figures,
            "saved_weights": str(ctx.output.final_path(weights_file)) if weights_file is not None else None,
        }, {f"max_abs_{p.output}_difference_per_sample": cmp.max_abs_difference_per_sample,
            "probe_sample_indices": p.indices, **cmp.raw_agreement()},
            len(p.indices), p.perf.sequence_length, labels, p.output)
        return Built(
            name=name, parent=step.source, origin="variant", recipe=step.model_dump(mode="json", by_alias=True),
            result=result, candidate=candidate, files_dir=files_dir,
        )

    @staticmethod
    def _save(model: Any, tokenizer: Any, qmap: dict, name: str, ctx: BuildContext) -> tuple[Any, Any]:
        """state_dict -> safetensors, plus the quantization map, config and tokenizer, in staging.

        Reload: ``requantize(AutoModel*.from_config(config), load_file(WEIGHTS_FILE), qmap)``, then
        ``model.tie_weights()`` for tied embeddings (a tensor shared by two names is saved once, under
        the first; the file's metadata `tied` maps the others to it).
        """
        from safetensors.torch import save_file

        if ctx.output is None:
            return None, None
        target = ctx.output.path_in_stage(f"checkpoints/{name}")
        target.mkdir(parents=True, exist_ok=False)
        weights = Path(target) / WEIGHTS_FILE
        state, first, tied = {}, {}, {}
        for key, t in model.state_dict().items():
            where = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
            if where in first:
                tied[key] = first[where]
                continue
            first[where] = key
            state[key] = t.detach().contiguous()
        save_file(state, str(weights), metadata={"format": "pt", "tied": json.dumps(tied, sort_keys=True)})
        (target / QMAP_FILE).write_text(json.dumps(qmap, indent=1, sort_keys=True), encoding="utf-8")
        model.config.save_pretrained(target)
        tokenizer.save_pretrained(target)
        return target, weights


def _settle_flops(name: str, model: Any, tokenizer: Any, generation: Any, p: Any, source_flops: Any, config: Any,
                  parent: str) -> tuple[Any, dict[str, Any]]:
    """The quantized candidate (an LM when ``generation`` is given) with its FLOPs settled: counted on
    it, or inherited from the source's ``source_flops``; and the FLOPs figures of the result."""
    if generation is not None:
        from hf_cost.models.lm_candidate import workload_lm_flops

        lm_candidate = QuantoLMCandidate(name, model, tokenizer, generation)
        counted = workload_lm_flops(model, p.perf, generation)
        lm_candidate.settled_lm_flops = settled = _lm_flops(source_flops, counted, parent)
        return lm_candidate, {"flops_per_sample": None, "flops_source": settled.get("source"),
                              "flops_counted_on_quantized_per_sample": None, "lm_prefill_flops": _prefill(settled),
                              "lm_prefill_flops_counted_on_quantized": _prefill(counted)}
    from hf_cost.measure.flops import count_forward_flops

    candidate = QuantoCandidate(name, model, tokenizer, None, None)
    sample = p.perf.batch(_zeros(candidate.device))
    counted_total = count_forward_flops(model, sample).total
    candidate.flops_info = _flops(candidate, source_flops, counted_total, sample, config, parent)
    return candidate, {"flops_per_sample": candidate.flops_info.measured_per_sample,
                       "flops_source": candidate.flops_info.source,
                       "flops_counted_on_quantized_per_sample": counted_total}


def _zeros(device: Any) -> Any:
    import torch

    return torch.zeros(1, dtype=torch.long, device=device)


def _head_name(model: Any) -> str:
    """The module name of a causal LM's output embeddings (its `lm_head`)."""
    head = model.get_output_embeddings()
    return next(n for n, m in model.named_modules() if m is head)


def _prefill(lm_flops: dict[str, Any] | None) -> int | None:
    """generate's prefill FLOPs at the median prompt length, from an lm_flops summary."""
    prefill = (lm_flops or {}).get("prefill") or []
    return prefill[0]["generate"]["measured"] if prefill else None


def _lm_flops(source: dict[str, Any], quantized: dict[str, Any], parent: str) -> dict[str, Any]:
    """Counted on the quantized LM when every count equals the analytic formula, else the source's."""
    if quantized.get("counted") is None or quantized.get("all_agree"):
        return {**quantized, "source": "measured"}
    return {
        **source, "source": "inherited", "inherited_from": parent,
        "method": (f"inherited from '{parent}', counted before quantizing: FlopCounterMode on the quantized "
                   "model misses the matmuls quanto runs in its own ops (quanto::qbytes_mm for int8/float8, "
                   "tinygemm for int4 in bfloat16); the same matmuls run, on rescaled weights"),
        "counted_on_quantized": {"prefill": quantized.get("prefill"), "decode": quantized.get("decode")},
    }


def _flops(quantized: Any, source_flops: Any, counted: int, sample: Any, config: Any, parent: str) -> Any:
    """Measured on the quantized model if the counter sees all its matmuls, else the source's."""
    if source_flops is None or counted >= source_flops.measured_per_sample:
        return TorchCandidate.flops(quantized, sample, config)
    method = (
        f"inherited from '{parent}', counted before quantizing ({source_flops.method}); FlopCounterMode "
        f"saw {counted} of them on the quantized model, since quanto's Linear runs the custom op "
        "quanto::qbytes_mm, which it does not see into: the same matmuls run, on int8/float8 weights "
        "rescaled by their per-channel scales (int4 in float32 dequantizes, then runs a matmul it counts)"
    )
    return source_flops.model_copy(update={"source": "inherited", "method": method})


def _result(
    step: Any, name: str, metrics: dict, raw: dict, probes: int, seq: int, labels: Any, output_key: str
) -> Any:
    from hf_cost.core.results import ScenarioResult

    m = metrics
    what = {"logit": "logit", "hidden_state": "last-hidden-state (no head)",
            "first_token_logit": "first-new-token logit"}[output_key]
    disk = "not saved" if m["size_on_disk_bytes"] is None else f"{m['size_on_disk_bytes']:,} B on disk"
    top1 = "" if m["top1_agreement"] is None else (
        f", {'greedy next token' if output_key == 'first_token_logit' else 'predicted label'} agrees on "
        f"{m['top1_agreement']:.0%}")
    kept = f"; {', '.join(m['excluded_modules'])} kept float" if m["excluded_modules"] else ""
    return ScenarioResult(
        name=name, kind=step.kind, candidate=name,
        settings={**step.model_dump(mode="json", by_alias=True), "sequence_length": seq, "labels": labels,
                  "probe_samples": probes},
        metrics=metrics, validity=None, raw=raw,
        notes=[
            (f"{m['weights_qtype']} weights in {m['quantized_linear_layers']} Linear layers: parameters "
            f"{m['parameter_bytes_before']:,} -> {m['parameter_bytes_after']:,} B (x{m['parameter_bytes_ratio']:.2f}), "
            f"{disk}{kept}; max |{what} difference| {m[f'max_abs_{output_key}_difference']:.2g}{top1} over "
            f"{probes} samples of the performance set; FLOPs {m['flops_source']}"),
            ("parameter bytes as stored (int8/float8: 1 byte a weight + a float scale per output row; int4: "
            "half a byte a weight + a float scale and shift per row or group; buffers excluded); "
            f"files: {WEIGHTS_FILE} (safetensors of the state_dict) + {QMAP_FILE}, reloaded by "
            "optimum.quanto.requantize; build_time_s: load, quantize + freeze, comparison, save"),
        ],
    )
