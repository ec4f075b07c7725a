"""compile: a torch candidate (an encoder) wrapped in ``torch.compile(module, backend, mode, dynamic)``.

What it builds: the `from` checkpoint loaded as the store loads that candidate (models/store.py
`load_spec`: a cast copy in its own dtype), wrapped by torch.compile. The wrapper lives in memory:
it is not a transformers checkpoint, so later building steps refuse to start from it (name its
`from` instead). Causal LMs are out of scope (compiling `generate`): the plan refuses the kind in
an LM scenario.

torch.compile compiles lazily, at the first call of each new input shape, so the build pays for
it with warm-up calls at batch 1 on the run's performance set: every distinct length the set
holds (fixed lengths: one; natural lengths: each sample's own), or with ``dynamic: true`` its
shortest, median and longest (one graph with a symbolic length serves them all). How it measures:
- compile_time_s = sum over the warm-up lengths of (compiled model's first call - eager source's
  call) at the same input, read by measure.timing.clock after a device synchronize; every call's
  time is kept raw (eager, first compiled call, second compiled call).
- frames / graphs compiled, graph breaks (with their reasons), and the inductor FX-graph cache's
  hits and misses: the difference of ``torch._dynamo.utils.counters`` across the warm-up. Those
  counters are per process and dynamo's compiled code is kept per Python code object, so a second
  compiled candidate of the same model class in one run can reuse the first one's graphs:
  compile_time_s is then not a cold compile, and the notes say so. Inductor's on-disk cache (its
  generated code) goes to checkpoints/<name>/inductor-cache in the run's output, one folder per
  candidate, so no earlier run or candidate serves it (`inductor_cache`); a TORCHINDUCTOR_CACHE_DIR
  set before hf_cost starts is kept instead. ``graphs_compiled_after_warmup``: graphs the probe comparison still compiled.
- max |output difference| and argmax agreement vs the eager source on the first samples of the
  performance set (models/variant_probe.py: logits, or the last hidden state without a head), each
  sample at its own shape.
- FLOPs: the source's, counted by FlopCounterMode on the eager module (the compiled graph runs
  the same matmuls; inductor fuses pointwise ops around them).
A measuring step that later meets a new shape (a batch above 1 in offline, multi_stream or
server, or a length the warm-up did not cover) recompiles inside that step, in its warm-up
queries when it has them; dynamo gives up after ``recompile_limit`` compiles of one code object
and runs that shape eagerly, silently: the result records the limit.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hf_cost.config.base import BuildingStep
from hf_cost.core.build_metrics import CompileMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.errors import UserError
from hf_cost.models.torch_candidate import TorchCandidate
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan, require_checkpoint, source_labels


class CompileStep(BuildingStep):
    """A torch candidate wrapped in torch.compile, its compile time counted as a build cost."""

    kind: Literal["compile"]
    backend: Literal["inductor", "aot_eager"] = Field(
        "inductor", description="inductor (generated C++/Triton kernels) or aot_eager (traced, run eagerly: cheap)")
    mode: Literal["default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"] = Field(
        "default", description="inductor's mode (CUDA graphs in reduce-overhead/max-autotune apply on GPU only)")
    dynamic: bool | None = Field(
        None, description="null: static first, dynamic after a shape changes (torch's default); true: symbolic "
        "shapes from the start; false: one graph per shape")


# set before hf_cost started: the user's choice of where inductor keeps its generated code
USER_INDUCTOR_CACHE = os.environ.get("TORCHINDUCTOR_CACHE_DIR")


def inductor_cache(ctx: Any, name: str) -> Path | None:
    """Point inductor (and triton) at checkpoints/<name>/inductor-cache inside the run's output, where
    the compiled candidate's generated code then lives: torch's default is a folder shared by every
    run under /tmp, and hf_cost writes only inside the run's output. Each compiled candidate gets
    its own folder, so its compile is cold (its build cost) and is not served by another's. None:
    TORCHINDUCTOR_CACHE_DIR was set by the user (kept), or no output (a non-main process)."""
    if USER_INDUCTOR_CACHE is not None or ctx.output is None:
        return None
    from hf_cost.output import inside

    stage = ctx.output.stage
    folder = inside(stage, stage / "checkpoints" / name / "inductor-cache")
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")
    return folder


def cxx_compiler() -> str | None:
    """The C++ compiler inductor's CPU backend would call (torch._inductor.config.cpp.cxx: $CXX, else g++;
    clang++ on macOS), as found on PATH; None when it is missing."""
    return shutil.which(os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++"))


class CompiledCandidate(TorchCandidate):
    """A TorchCandidate whose forwards go through the compiled module; FLOPs counted on the eager one."""

    def __init__(self, name: str, eager: Any, compiled: Any, tokenizer: Any, info: Any = None):
        super().__init__(name, eager, tokenizer, info)  # label names read from the eager module
        self.eager_module = eager
        self.module = compiled

    def flops(self, sample: dict[str, Any], config: Any) -> Any:
        eager = TorchCandidate(self.name, self.eager_module, self.tokenizer)
        return eager.flops(sample, config if config is not None else self.eager_module.config)


class CompileBuilder(BuildStep):
    kind = "compile"
    config = CompileStep
    metrics = CompileMetrics
    not_a_checkpoint = "a torch.compile wrapper in memory"

    def outputs(self, cfg: Any) -> list[str]:
        return [f"checkpoints/{cfg.name}"] if cfg.backend == "inductor" else []  # inductor's generated code

    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None:
        require_checkpoint(step, plan, where)
        on_cpu = plan.suite.model.device == "cpu" or (plan.suite.model.device == "auto" and not _cuda())
        if step.backend == "inductor" and on_cpu and cxx_compiler() is None:
            raise UserError(f"inductor on the CPU needs a C++ compiler and '{os.environ.get('CXX') or 'g++'}' is not "
                            "on PATH: install g++ (or set CXX), or use backend: aot_eager", where=f"{where}.backend")
        if step.backend == "inductor" and not on_cpu and importlib.util.find_spec("triton") is None:
            raise UserError("inductor on a GPU needs triton, which is not installed", where=f"{where}.backend")
        if step.mode != "default" and step.backend != "inductor":
            raise UserError(f"mode {step.mode} is an inductor mode; backend {step.backend} takes mode: default",
                            where=f"{where}.mode")
        return source_labels(step, plan, where)

    def build(self, step: Any, ctx: BuildContext) -> Built:
        import torch

        from hf_cost.models.load import load_model
        from hf_cost.models.variant_probe import probe, stored_bytes

        store, name, t0 = ctx.store, step.name or self.kind, time.perf_counter()
        checkpoint = store.checkpoint_of(step.source)
        labels = store.prepared.labels.get(step.source)
        ctx.progress.say(f"[{name}] loading {step.source} to torch.compile it ({step.backend}, mode {step.mode})")
        loaded = load_model(store.load_spec(step.source), checkpoint)
        model = loaded.model
        p = probe(store.suite, loaded.tokenizer, loaded.device, generative=False, has_head=labels is not None)
        lengths = warmup_lengths(p.perf.token_counts(), step.dynamic)
        limit = int(torch._dynamo.config.recompile_limit)
        if step.dynamic is False and len(lengths) > limit:
            raise UserError(f"dynamic: false compiles one graph per length and the performance set has {len(lengths)} "
                            f"lengths, over dynamo's recompile_limit ({limit}), past which it runs eagerly: use "
                            "dynamic: null or true, or inputs.lengths: fixed", where="dynamic")
        eager = TorchCandidate(step.source, model, loaded.tokenizer)
        cache = inductor_cache(ctx, name) if step.backend == "inductor" else None
        compiled = torch.compile(model, backend=step.backend, mode=None if step.mode == "default" else step.mode,
                                 dynamic=step.dynamic)
        candidate = CompiledCandidate(name, model, compiled, loaded.tokenizer)
        samples = [p.perf.token_counts().index(n) for n in lengths]  # one sample of each length
        eager.forward(p.perf.one(samples[0]))  # eager's one-time costs stay out of its timings
        before = _counters()
        eager_s, first_s = [], []
        for i in samples:
            eager_s.append(_timed(eager, p.perf.one(i)))
            first_s.append(_timed(candidate, p.perf.one(i)))
        second_s = [_timed(candidate, p.perf.one(i)) for i in samples]
        warm = _delta(before, _counters())
        cmp = _compare(eager, candidate, p)
        after_probe = _delta(before, _counters())
        compile_s = sum(first_s) - sum(eager_s)
        candidate.info = _info(name, model, loaded, stored_bytes(model), step)
        ctx.progress.say(f"[{name}] compiled in {compile_s:.1f} s over {len(samples)} warm-up length(s); "
                         f"{warm.get('stats', {}).get('unique_graphs', 0)} graph(s)")
        breaks = warm.get("graph_break", {})
        frames = warm.get("frames", {}).get("total", 0)
        metrics = {
            "build_time_s": time.perf_counter() - t0,
            "backend": step.backend, "mode": step.mode, "dynamic": step.dynamic,
            "compile_time_s": compile_s,
            "warmup_lengths": lengths,
            "eager_s_total": sum(eager_s), "first_calls_s_total": sum(first_s), "second_calls_s_total": sum(second_s),
            "frames_compiled": frames,
            "graphs_compiled": warm.get("stats", {}).get("unique_graphs", 0),
            "graph_breaks": sum(breaks.values()),
            "graph_break_reasons": sorted(str(r)[:200] for r in breaks)[:10],
            "recompiles": max(frames - 1, 0) if not breaks else None,
            "graphs_compiled_after_warmup": (after_probe.get("stats", {}).get("unique_graphs", 0)
                                             - warm.get("stats", {}).get("unique_graphs", 0)),
            "recompile_limit": limit,
            "fx_graph_cache_hits": warm.get("inductor", {}).get("fxgraph_cache_hit", 0),
            "fx_graph_cache_misses": warm.get("inductor", {}).get("fxgraph_cache_miss", 0),
            "source_dtype": loaded.info["dtype"],
            "parameters": candidate.info.parameters,
            "output_compared": p.output,
            "max_abs_output_difference": cmp.max_abs_difference,
            "top1_agreement": cmp.top1_agreement,
            "probe_samples": len(p.indices),
            "flops_source": "the source's: counted by FlopCounterMode on the eager module (the same matmuls)",
        }
        raw = {"warmup_sample_indices": samples, "eager_s_per_call": eager_s, "first_call_s_per_call": first_s,
               "second_call_s_per_call": second_s, "probe_sample_indices": p.indices,
               "max_abs_output_difference_per_sample": cmp.max_abs_difference_per_sample, **cmp.raw_agreement()}
        return Built(
            name=name, parent=step.source, origin="variant", recipe=step.model_dump(mode="json", by_alias=True),
            result=_result(step, name, metrics, raw, labels), candidate=candidate, files_dir=cache,
        )


def warmup_lengths(token_counts: list[int], dynamic: bool | None) -> list[int]:
    """The lengths the build calls the compiled model at (batch 1): every distinct one, ascending;
    with ``dynamic`` true the shortest, the median (nearest rank) and the longest."""
    distinct = sorted(set(token_counts))
    if dynamic is not True:
        return distinct
    ordered = sorted(token_counts)
    return sorted({ordered[0], ordered[len(ordered) // 2], ordered[-1]})


def _timed(candidate: Any, batch: dict[str, Any]) -> float:
    from hf_cost.measure import timing

    start = timing.clock()
    candidate.forward(batch)
    candidate.synchronize()
    return timing.clock() - start


def _counters() -> dict[str, dict[str, int]]:
    from torch._dynamo.utils import counters

    return {k: dict(v) for k, v in counters.items()}


def _delta(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key, values in after.items():
        grown = {k: v - before.get(key, {}).get(k, 0) for k, v in values.items()}
        out[key] = {k: v for k, v in grown.items() if v > 0}
    return out


def _compare(eager: Any, compiled: Any, p: Any) -> Any:
    """Per probe sample, at its own shape: max |compiled - eager| and, for logits, argmax agreement."""
    from hf_cost.models.variant_probe import Comparison

    diffs, agrees = [], []
    for i in p.indices:
        a, b = eager.forward(p.perf.one(i)).float(), compiled.forward(p.perf.one(i)).float()
        diffs.append(float((b - a).abs().max()))
        agrees.append(bool((b.argmax(-1) == a.argmax(-1)).all()))
    return Comparison(max_abs_difference_per_sample=diffs,
                      top1_agrees_per_sample=None if p.output == "hidden_state" else agrees)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _info(name: str, model: Any, loaded: Any, parameter_bytes: int, step: Any) -> Any:
    from hf_cost.core.candidate_info import CandidateInfo

    return CandidateInfo(
        name=name, origin="variant", runtime="torch", dtype=loaded.info["dtype"], device=str(loaded.device),
        parameters=sum(q.numel() for q in model.parameters()), parameter_bytes=parameter_bytes,
        size_on_disk_bytes=None, path=None, load_time_s=0.0, baseline_rss_mib=0.0,
        model={**loaded.info, "path": None, "compiled": {"backend": step.backend, "mode": step.mode,
                                                         "dynamic": step.dynamic}},
    )


def _result(step: Any, name: str, m: dict, raw: dict, labels: Any) -> ScenarioResult:
    what = {"logit": "logit", "hidden_state": "last-hidden-state (no head)"}[m["output_compared"]]
    top1 = "" if m["top1_agreement"] is None else f", predicted label agrees on {m['top1_agreement']:.0%}"
    notes = [
        (f"torch.compile({step.backend}, mode {step.mode}, dynamic {step.dynamic}): compile time "
         f"{m['compile_time_s']:.2f} s over {len(m['warmup_lengths'])} warm-up length(s) at batch 1, "
         f"{m['graphs_compiled']} graph(s), {m['graph_breaks']} graph break(s); max |{what} difference| vs eager "
         f"{m['max_abs_output_difference']:.2g}{top1} over {m['probe_samples']} samples"),
        ("compile_time_s: sum of (first compiled call - eager call) at each warm-up length; FLOPs: the source's, "
         "counted on the eager module; not a checkpoint: later building steps start from its `from`"),
        (f"a measuring step that meets a new shape (a batch above 1, an uncovered length) recompiles during it; "
         f"after {m['recompile_limit']} compiles of one code object dynamo runs new shapes eagerly"),
    ]
    if m["frames_compiled"] == 0:
        notes.append("nothing was compiled: dynamo reused code compiled earlier in this process for the same model "
                     "class, so compile_time_s is not a cold compile")
    elif m["fx_graph_cache_hits"]:
        notes.append(f"inductor's FX-graph cache served {m['fx_graph_cache_hits']} graph(s) from an earlier "
                     "compile (on disk): compile_time_s is not a cold compile")
    if m["graphs_compiled_after_warmup"]:
        notes.append(f"the probe comparison compiled {m['graphs_compiled_after_warmup']} more graph(s): the "
                     "warm-up did not cover every shape")
    return ScenarioResult(
        name=name, kind=step.kind, candidate=name,
        settings={**step.model_dump(mode="json", by_alias=True), "labels": labels, "probe_samples": m["probe_samples"],
                  "warmup_batch_size": 1},
        metrics=m, validity=None, raw=raw, notes=notes,
    )
