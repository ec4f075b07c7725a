"""The candidates of one run, by name: 'base' (the scenario file's model) and each built one.

A candidate is loaded when a scenario first measures it, and with it what its runners need:
the performance sample set (tokenised by its own tokenizer), its FLOPs and the peak for MFU.
Builders ask the store for the checkpoint a step starts from (`checkpoint_of`). Under
`accelerate launch`, the other processes record what the main process built (`shared`, `adopt`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hf_cost.core.names import BASE
from hf_cost.errors import UserError


@dataclass
class _Entry:
    origin: str
    parent: str | None
    recipe: dict[str, Any]
    checkpoint: Any = None  # ResolvedCheckpoint of a torch candidate's files
    final_path: str | None = None  # where its files are after the run
    candidate: Any = None  # a Candidate already in hand (a builder made it)
    context: Any = None  # runners.RunContext, once loaded
    keeps_dtype: bool = False  # load its checkpoint in the dtype it was saved in (a cast)


@dataclass
class CandidateStore:
    prepared: Any  # pipeline.Prepared
    progress: Any
    entries: dict[str, _Entry] = field(default_factory=dict)  # in build order
    failures: dict[str, str] = field(default_factory=dict)  # candidates whose building step failed: reason

    def __post_init__(self) -> None:
        c = self.prepared.checkpoint
        path = str(c.local_dir)
        self.entries[BASE] = _Entry(origin="base", parent=None, recipe={}, checkpoint=c, final_path=path)

    @property
    def suite(self) -> Any:
        return self.prepared.suite

    @property
    def spec(self) -> Any:
        return self.prepared.suite.model

    def names(self, needs_head: bool = False) -> list[str]:
        """Every candidate so far (in build order); with ``needs_head``, those with a classifier."""
        if not needs_head:
            return list(self.entries)
        return [n for n in self.entries if self.prepared.labels.get(n) is not None]

    def fail(self, name: str, reason: str) -> None:
        """Record that the step building ``name`` failed; steps that need it skip it."""
        self.failures[name] = reason

    def failed(self, name: str) -> str | None:
        return self.failures.get(name)

    def checkpoint_of(self, name: str) -> Any:
        if name in self.failures:
            raise UserError(f"candidate '{name}' was not built ({self.failures[name]})", where="from")
        entry = self.entries[name]
        if entry.checkpoint is None:
            raise UserError(f"candidate '{name}' has no transformers checkpoint to start from", where="from")
        return entry.checkpoint

    def add(self, built: Any, output: Any) -> None:
        """Record a candidate a builder made (loaded later, when first measured)."""
        entry = _Entry(origin=built.origin, parent=built.parent, recipe=built.recipe, candidate=built.candidate,
                       keeps_dtype=built.keeps_dtype)
        if built.checkpoint_dir is not None:
            entry.checkpoint = self._resolve(built.checkpoint_dir)
            final = output.final_path(built.checkpoint_dir) if output is not None else built.checkpoint_dir
            entry.final_path = str(final)
        elif built.files_dir is not None:
            entry.final_path = str(output.final_path(built.files_dir) if output is not None else built.files_dir)
        self.entries[built.name] = entry

    def shared(self, name: str) -> dict[str, Any] | None:
        """What the other processes of a distributed launch need to know of candidate ``name``
        (on the main process, after its step): why it was not built, or its entry with the staged
        checkpoint directory, which is on the same machine. None: the step recorded nothing."""
        if name in self.failures:
            return {"name": name, "failed": self.failures[name]}
        entry = self.entries.get(name)
        if entry is None:
            return None
        checkpoint = str(entry.checkpoint.local_dir) if entry.checkpoint is not None else None
        return {"name": name, "origin": entry.origin, "parent": entry.parent, "recipe": entry.recipe,
                "checkpoint_dir": checkpoint, "final_path": entry.final_path, "keeps_dtype": entry.keeps_dtype}

    def adopt(self, shared: dict[str, Any] | None) -> None:
        """Record the main process's outcome of a step (`shared`) in place of this process's own."""
        if shared is None:
            return
        name = shared["name"]
        self.entries.pop(name, None)
        self.failures.pop(name, None)
        if "failed" in shared:
            self.fail(name, shared["failed"])
            return
        entry = _Entry(origin=shared["origin"], parent=shared["parent"], recipe=shared["recipe"],
                       final_path=shared["final_path"], keeps_dtype=shared.get("keeps_dtype", False))
        if shared["checkpoint_dir"] is not None:
            entry.checkpoint = self._resolve(shared["checkpoint_dir"])
        self.entries[name] = entry

    def _resolve(self, checkpoint_dir: Any) -> Any:
        from hf_cost.models.resolve import resolve_checkpoint

        return resolve_checkpoint(self.spec.model_copy(update={"id": None, "path": str(checkpoint_dir),
                                                               "gguf_file": None}))

    def infos(self) -> dict[str, Any]:
        """CandidateInfo of every candidate that was loaded, by name."""
        return {n: e.context.candidate.info for n, e in self.entries.items() if e.context is not None}

    def first_context(self) -> Any:
        return next((e.context for e in self.entries.values() if e.context is not None), None)

    def context(self, name: str) -> Any:
        """The candidate ``name`` with what its runners need, loading it on first use."""
        entry = self.entries[name]
        if entry.context is None:
            entry.context = self._load(name, entry)
        return entry.context

    def _load(self, name: str, entry: _Entry) -> Any:
        from hf_cost.data.performance_set import build_performance_set
        from hf_cost.measure.memory import current_rss_bytes
        from hf_cost.measure.peak_flops import peak_for
        from hf_cost.models.context import RunContext

        suite = self.suite
        t0 = time.perf_counter()
        candidate = entry.candidate or self._load_torch(name, entry)
        load_time = time.perf_counter() - t0
        perf_set = build_performance_set(suite.inputs, candidate.tokenizer, candidate.device,
                                         suite.generation if getattr(candidate, "generates", False) else None)
        flops, sample_flops = _flops(candidate, perf_set, entry.checkpoint.config if entry.checkpoint else None)
        info = candidate.info
        info.name, info.origin, info.parent, info.recipe = name, entry.origin, entry.parent, entry.recipe
        info.path, info.flops, info.load_time_s = entry.final_path, flops, load_time
        if getattr(candidate, "generates", False):
            info.lm_flops = candidate.lm_flops(perf_set, suite.generation)  # its own, or its source's
        baseline = current_rss_bytes()
        info.baseline_rss_mib = baseline / 2**20
        peak, peak_source = peak_for(suite.hardware.peak_tflops, info.device, info.dtype)
        self.progress.say(
            f"loaded {name} in {load_time:.1f} s: {info.parameters / 1e6:.1f}M parameters, "
            f"{info.dtype} on {info.device} ({info.runtime})"
        )
        return RunContext(
            candidate=candidate, perf_set=perf_set,
            flops_per_sample=flops.mean_per_sample if flops else None, sample_flops=sample_flops,
            peak_tflops=peak, peak_source=peak_source, baseline_rss_bytes=baseline, progress=self.progress,
            suite=suite,
        )

    def load_spec(self, name: str) -> Any:
        """The ModelSpec candidate ``name``'s checkpoint loads with: the scenario file's model for 'base';
        for a checkpoint a builder saved, its directory, with a classification head when it has labels
        (an LM's copy: a causal LM), in model.dtype or, for one that keeps its dtype (a cast), in the
        dtype its config says (dtype 'auto')."""
        spec, entry = self.spec, self.entries[name]
        if entry.origin == "base":
            return spec
        task = "text-generation" if spec.generative else (
            "sequence-classification" if self.prepared.labels.get(name) is not None else "feature-extraction")
        return spec.model_copy(update={"id": None, "path": str(entry.checkpoint.local_dir), "gguf_file": None,
                                       "task": task, "dtype": "auto" if entry.keeps_dtype else spec.dtype})

    def _load_torch(self, name: str, entry: _Entry) -> Any:
        from hf_cost.core.candidate_info import CandidateInfo
        from hf_cost.models.load import load_model
        from hf_cost.models.torch_candidate import TorchCandidate

        spec = self.load_spec(name)
        self.progress.say(f"loading {name}: {spec.display_name} ({entry.checkpoint.source})")
        loaded = load_model(spec, entry.checkpoint)
        m = {**loaded.info, "path": entry.final_path}  # where the files are after the run, not staging
        if spec.generative:
            from hf_cost.models.lm_candidate import GenerativeCandidate

            candidate: Any = GenerativeCandidate(name, loaded.model, loaded.tokenizer, self.suite.generation)
        else:
            candidate = TorchCandidate(name, loaded.model, loaded.tokenizer)
        candidate.info = CandidateInfo(
            name=name, origin="base", runtime="torch", dtype=m["dtype"], device=m["device"],
            parameters=m["parameters"], parameter_bytes=m["parameter_bytes"],
            size_on_disk_bytes=m["weights_size_on_disk_bytes"], path=None, model=m,
            load_time_s=0.0, baseline_rss_mib=0.0,
        )
        return candidate


def _flops(candidate: Any, perf_set: Any, config: Any) -> tuple[Any, list[int] | None]:
    """The candidate's FlopsInfo over the performance set and, with natural lengths, each sample's FLOPs.

    Fixed lengths: one count on sample 0 (every sample has the same shape). Natural lengths: counts
    at the set's median, min and max lengths, and every length from the analytic formula they
    cross-check (measure/flops.flops_over_lengths).
    """
    if not perf_set.natural:
        flops = candidate.flops(perf_set.batch(_zeros(candidate.device)), config)
        if flops is None:
            return None, None
        return flops.model_copy(update={"mean_per_sample": float(flops.measured_per_sample),
                                        "per_sample_from": "measured"}), None
    from hf_cost.measure.flops import flops_over_lengths

    stats = perf_set.describe()["length_distribution"]
    return flops_over_lengths(lambda i: candidate.flops(perf_set.one(i), config), perf_set.token_counts(),
                              [stats["p50"], stats["min"], stats["max"]])


def _zeros(device: Any) -> Any:
    import torch

    return torch.zeros(1, dtype=torch.long, device=device)
