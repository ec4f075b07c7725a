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

dtype: auto picks per device (`choose_dtype`): on the CPU bfloat16 when /proc/cpuinfo lists
amx_bf16 or avx512_bf16 (aarch64: bf16), else validate refuses (bfloat16 would run emulated); on
CUDA bfloat16 at compute capability >= 8.0, float16 at >= 7.0 (tensor cores), else refused. The
choice and its reason go in the result's settings. An explicit dtype the device has no native
matmul for still builds, with a note saying it runs emulated (converted to float32 per op).

autocast: true builds no copy: the source's float32 weights stay, and every forward of the
candidate runs under ``torch.autocast(device type, dtype)`` (models/torch_candidate.AutocastCandidate).
It is not a checkpoint (nothing is saved in the new dtype), so later building steps refuse to
start from it (`not_a_checkpoint_for`); name its `from` instead. Encoders only: a causal LM's
generate under autocast is not wired, and validate refuses it.

float16 on CPU: checked on this machine with torch 2.13, it runs (a tiny Llama generates, a tiny
BERT classifies); older torch builds have no float16 matmul on CPU ("addmm_impl_cpu_ not
implemented for 'Half'"), so validate runs one small float16 matmul on the CPU when a float16 cast
will run there, and refuses with one line if it fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field

from hf_cost.config.base import BuildingStep
from hf_cost.core.build_metrics import CastMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.errors import UserError
from hf_cost.measure.cpu_flags import CpuFlags, read_cpu_flags
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan, require_checkpoint, source_labels

# CPU flags that mean a native 16-bit matmul (AMX tiles or AVX-512 dot products); aarch64 lists bf16 / fphp
NATIVE_CPU_FLAGS = {"bfloat16": ("amx_bf16", "avx512_bf16", "bf16"), "float16": ("amx_fp16", "avx512_fp16", "fphp")}


class CastStep(BuildingStep):
    """A copy of a torch candidate with its floating-point weights cast to bfloat16 or float16."""

    kind: Literal["cast"]
    dtype: Literal["bfloat16", "float16", "auto"] = Field(
        description="The weights' (and so the activations') dtype; auto: bfloat16 on a CPU with native bfloat16 "
        "(amx_bf16, avx512_bf16) or a GPU of compute capability >= 8.0, float16 on a GPU >= 7.0, else refused.")
    autocast: bool = Field(False, description="Keep the float32 weights and run every forward under "
                           "torch.autocast(device, dtype) instead of saving a cast copy (encoders only).")


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str | None  # None: auto found no dtype this device runs natively
    reason: str
    native: bool  # whether the device has a native matmul in dtype (False: emulated or unknown)


def choose_dtype(requested: str, on_cpu: bool, cpu: CpuFlags | None = None,
                 capability: tuple[int, int] | None = None) -> DtypeChoice:
    """The dtype a cast runs in and why: ``requested`` (bfloat16 | float16 | auto) on a CPU with
    flags ``cpu``, or a CUDA GPU of compute ``capability``."""
    if on_cpu:
        assert cpu is not None
        natives = {d: [f for f in flags if cpu.has(f)] for d, flags in NATIVE_CPU_FLAGS.items()}
        if requested == "auto":
            if natives["bfloat16"]:
                return DtypeChoice("bfloat16", f"CPU flags include {', '.join(natives['bfloat16'])}", True)
            seen = "cannot be read" if not cpu.readable else f"list none of {', '.join(NATIVE_CPU_FLAGS['bfloat16'])}"
            return DtypeChoice(None, f"no native bfloat16 on this CPU ({cpu.source}: flags {seen}): bfloat16 "
                               "would run emulated, slower than float32; set dtype: bfloat16 to measure it anyway", False)
        found = natives[requested]
        if found:
            return DtypeChoice(requested, f"set explicitly; CPU flags include {', '.join(found)}", True)
        return DtypeChoice(requested, f"set explicitly; {cpu.source} lists none of "
                           f"{', '.join(NATIVE_CPU_FLAGS[requested])}: {requested} matmuls run emulated "
                           "(converted per op), expect them slower than float32", False)
    assert capability is not None
    cc = f"compute capability {capability[0]}.{capability[1]}"
    if requested == "auto":
        if capability >= (8, 0):
            return DtypeChoice("bfloat16", f"{cc} >= 8.0: bfloat16 tensor cores", True)
        if capability >= (7, 0):
            return DtypeChoice("float16", f"{cc} >= 7.0: float16 tensor cores, no bfloat16 ones", True)
        return DtypeChoice(None, f"{cc} < 7.0: no 16-bit tensor cores, so neither dtype would beat float32; set "
                           "dtype: float16 or bfloat16 to measure it anyway", False)
    native = capability >= ((8, 0) if requested == "bfloat16" else (7, 0))
    return DtypeChoice(requested, f"set explicitly; {cc}" + (
        "" if native else f": no {requested} tensor cores, its matmuls run without them"), native)


def resolve_dtype(requested: str, device: str) -> DtypeChoice:
    """`choose_dtype` on this machine: /proc/cpuinfo's flags, or the GPU's compute capability."""
    if _runs_on_cpu(device):
        return choose_dtype(requested, True, cpu=read_cpu_flags())
    import torch

    return choose_dtype(requested, False, capability=tuple(torch.cuda.get_device_capability(device if device != "auto"
                                                                                               else None)))


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

    @classmethod
    def not_a_checkpoint_for(cls, cfg: Any) -> str | None:
        return "float32 weights run under torch.autocast, not saved in a new dtype" if cfg.autocast else None

    def outputs(self, cfg: Any) -> list[str]:
        return [] if cfg.autocast else super().outputs(cfg)

    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None:
        require_checkpoint(step, plan, where)
        choice = resolve_dtype(step.dtype, plan.suite.model.device)
        if choice.dtype is None:
            raise UserError(choice.reason, where=f"{where}.dtype")
        if step.autocast and plan.suite.model.generative:
            raise UserError("autocast runs encoders' forwards only (generate under autocast is not wired): use "
                            "autocast: false to cast the LM's weights", where=f"{where}.autocast")
        source_kind = next((sc.kind for sc in plan.suite.scenarios if sc.name == step.source), None)
        if step.autocast and (plan.suite.model.dtype in ("bfloat16", "float16") or source_kind == "cast"):
            raise UserError(f"autocast starts from float32 weights, but '{step.source}' is not float32 (model.dtype "
                            f"{plan.suite.model.dtype}{', a cast' if source_kind == 'cast' else ''})",
                            where=f"{where}.autocast")
        if choice.dtype == "float16" and _runs_on_cpu(plan.suite.model.device) and not float16_runs_on_cpu():
            raise UserError("float16 does not run on this CPU with this torch build (no float16 matmul): use "
                            "dtype: bfloat16, or a GPU", where=f"{where}.dtype")
        return source_labels(step, plan, where)

    def build(self, step: Any, ctx: BuildContext) -> Built:
        import torch

        from hf_cost.models.load import load_model, weights_size_on_disk
        from hf_cost.models.variant_probe import compare, outputs, probe, stored_bytes

        store, name, t0 = ctx.store, step.name or self.kind, time.perf_counter()
        choice = resolve_dtype(step.dtype, store.spec.device)
        dtype = choice.dtype
        if dtype is None:
            raise UserError(choice.reason, where="dtype")
        checkpoint = store.checkpoint_of(step.source)
        labels = store.prepared.labels.get(step.source)
        how = f"run under torch.autocast({dtype})" if step.autocast else f"cast its weights to {dtype}"
        ctx.progress.say(f"[{name}] loading {step.source} to {how}")
        loaded = load_model(store.load_spec(step.source), checkpoint)
        model = loaded.model
        if step.autocast and loaded.info["dtype"] != "float32":
            raise UserError(f"autocast starts from float32 weights; '{step.source}' loads in {loaded.info['dtype']}",
                            where="autocast")
        p = probe(store.suite, loaded.tokenizer, loaded.device, generative=store.spec.generative,
                  has_head=labels is not None)
        before, bytes_before = outputs(model, p), stored_bytes(model)
        tc = time.perf_counter()
        if step.autocast:
            with torch.autocast(device_type=loaded.device.type, dtype=getattr(torch, dtype)):
                after = outputs(model, p)
        else:
            model.to(getattr(torch, dtype))
            after = None
        cast_s = 0.0 if step.autocast else time.perf_counter() - tc
        cmp = compare(before, outputs(model, p) if after is None else after, p.output)
        target, candidate = None, None
        if step.autocast:
            candidate = _autocast_candidate(name, model, loaded, dtype, bytes_before)
        else:
            target = ctx.output.path_in_stage(f"checkpoints/{name}")
            target.mkdir(parents=True, exist_ok=False)
            model.save_pretrained(target)  # its config records the dtype the store reloads it in
            loaded.tokenizer.save_pretrained(target)
        bytes_after = stored_bytes(model)
        metrics = {
            "build_time_s": time.perf_counter() - t0,
            "cast_s": cast_s,
            "source_dtype": loaded.info["dtype"],
            "dtype": dtype,
            "autocast": step.autocast,
            "parameters": sum(q.numel() for q in model.parameters()),
            "parameter_bytes_before": bytes_before,
            "parameter_bytes_after": bytes_after,
            "parameter_bytes_ratio": bytes_after / bytes_before,
            "size_on_disk_bytes": weights_size_on_disk(target) if target is not None else None,
            "source_size_on_disk_bytes": loaded.info["weights_size_on_disk_bytes"],
            "output_compared": p.output,
            "max_abs_output_difference": cmp.max_abs_difference,
            "top1_agreement": cmp.top1_agreement,
            "probe_samples": len(p.indices),
            "saved_checkpoint": str(ctx.output.final_path(target)) if target is not None else None,
        }
        raw = {"max_abs_output_difference_per_sample": cmp.max_abs_difference_per_sample,
               "probe_sample_indices": p.indices, **cmp.raw_agreement()}
        ctx.progress.say(f"[{name}] {loaded.info['dtype']} -> {dtype}{' (autocast)' if step.autocast else ''}: "
                         f"parameters {bytes_before / 2**20:.2f} -> {bytes_after / 2**20:.2f} MiB")
        return Built(
            name=name, parent=step.source, origin="variant", recipe=step.model_dump(mode="json", by_alias=True),
            result=_result(step, name, metrics, raw, labels, loaded.info.get("weights_note"), choice),
            checkpoint_dir=target, keeps_dtype=target is not None, candidate=candidate,
        )


def _autocast_candidate(name: str, model: Any, loaded: Any, dtype: str, parameter_bytes: int) -> Any:
    from hf_cost.core.candidate_info import CandidateInfo
    from hf_cost.models.torch_candidate import AutocastCandidate

    candidate = AutocastCandidate(name, model, loaded.tokenizer, dtype)
    # dtype: the matmuls' (what the MFU peak is read for); the weights stay float32 (model.weights_dtype)
    candidate.info = CandidateInfo(
        name=name, origin="variant", runtime="torch", dtype=dtype, device=str(loaded.device),
        parameters=sum(q.numel() for q in model.parameters()), parameter_bytes=parameter_bytes,
        size_on_disk_bytes=None, path=None, load_time_s=0.0, baseline_rss_mib=0.0,
        model={**loaded.info, "path": None, "dtype": dtype, "weights_dtype": loaded.info["dtype"], "autocast": True},
    )
    return candidate


def _result(step: Any, name: str, m: dict, raw: dict, labels: Any, weights_note: str | None,
            choice: DtypeChoice) -> ScenarioResult:
    what = {"logit": "logit", "hidden_state": "last-hidden-state (no head)",
            "first_token_logit": "first-new-token logit"}[m["output_compared"]]
    top1 = "" if m["top1_agreement"] is None else (
        f", {'greedy next token' if m['output_compared'] == 'first_token_logit' else 'predicted label'} agrees "
        f"on {m['top1_agreement']:.0%}")
    diff = (f"max |{what} difference| {m['max_abs_output_difference']:.2g}{top1} over {m['probe_samples']} samples "
            "of the performance set")
    if m["autocast"]:
        notes = [
            (f"{m['source_dtype']} weights kept ({m['parameter_bytes_after']:,} B), every forward under "
             f"torch.autocast({m['dtype']}); {diff}"),
            ("not a checkpoint: nothing is saved; later building steps start from its `from` instead; "
             "build_time_s: load, comparison"),
        ]
    else:
        disk = m["size_on_disk_bytes"]
        notes = [
            (f"{m['source_dtype']} -> {m['dtype']}: parameters {m['parameter_bytes_before']:,} -> "
             f"{m['parameter_bytes_after']:,} B (x{m['parameter_bytes_ratio']:.2f}), {disk:,} B on disk; {diff}"),
            ("parameter bytes: numel x element size of every parameter (buffers excluded); the checkpoint is loaded "
             f"in {m['dtype']} whatever model.dtype says; build_time_s: load, cast, comparison, save"),
        ]
    if not choice.native:
        notes.append(f"{m['dtype']}: {choice.reason}")
    if m["source_dtype"] == m["dtype"] and not m["autocast"]:
        notes.append(f"the source is already {m['dtype']}: the copy is the same weights")
    if weights_note:
        notes.append(f"source: {weights_note}")
    settings = {**step.model_dump(mode="json", by_alias=True), "dtype_requested": step.dtype, "dtype": m["dtype"],
                "dtype_reason": choice.reason, "dtype_native": choice.native, "labels": labels,
                "probe_samples": m["probe_samples"]}
    return ScenarioResult(name=name, kind=step.kind, candidate=name, settings=settings,
                          metrics=m, validity=None, raw=raw, notes=notes)
