"""The step lifecycle: every kind, building or measuring, is one `Step` subclass in its own
module, registered once (hf_cost/steps/__init__.py).

A kind declares:

- ``kind``, ``config`` (its scenario-file model) and ``metrics`` (its result's typed figures,
  whose hooks are what it contributes to report.md, the console, comparison, cost and cards);
- ``check(cfg, plan, where)``: at validate time, before any weights load: datasets, labels,
  lengths, variant support. A building kind returns the label names its candidate will have;
- ``build(cfg, ctx)`` (a `BuildStep`) or ``run(cfg, ctx)`` / ``run_many`` (a `MeasureStep`).

`execute` is the one lifecycle around them, so the driver has no branches: which processes
take part (after each building step, every process of `accelerate launch` records the main
process's candidate or failure), which candidates a measurement gets (failed ones skipped, with a line), energy
tracking around the work, and a failure that becomes a result row instead of ending the run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hf_cost.core.names import BASE
from hf_cost.core.results import ScenarioResult
from hf_cost.errors import UserError
from hf_cost.models.context import RunContext


@dataclass
class Plan:
    """What the checks know so far: the suite, the base model's config, and each candidate's
    label names (None: no classification head), filled in file order."""

    suite: Any
    model_config: Any
    labels: dict[str, list[str] | None] = field(default_factory=dict)


@dataclass
class Built:
    name: str
    parent: str
    origin: str  # "fine-tuned" | "variant"
    recipe: dict[str, Any]
    result: Any = None  # the ScenarioResult of the building step, if it has one
    checkpoint_dir: Path | None = None  # a saved transformers checkpoint the store loads on demand
    candidate: Any = None  # or the candidate itself (e.g. an ONNX Runtime session), its info filled
    files_dir: Path | None = None  # with a candidate in hand: its staged files (ONNX graph), if any
    keeps_dtype: bool = False  # its checkpoint loads in the dtype it was saved in (a cast), not model.dtype


@dataclass
class BuildContext:
    store: Any  # models.store.CandidateStore: earlier candidates, their checkpoints
    output: Any  # output.RunOutput (None on non-main processes)
    progress: Any
    where: str


@dataclass
class RunState:
    """One run in progress: what every step's lifecycle reads and adds to."""

    prepared: Any  # pipeline.Prepared
    output: Any  # output.RunOutput, None on a non-main process
    progress: Any
    store: Any  # models.store.CandidateStore
    energy: Any  # StepEnergy
    main_process: bool
    results: list[ScenarioResult] = field(default_factory=list)

    def in_file(self, fn: Any) -> Any:
        return in_file(self.prepared.path, fn)


class Step(ABC):
    kind: ClassVar[str]
    config: ClassVar[type]
    metrics: ClassVar[type]
    builds: ClassVar[bool]
    # runs causal LMs (model.task text-generation); the plan refuses a kind that does not
    serves_lms: ClassVar[bool] = False

    def check(self, cfg: Any, plan: Plan, where: str) -> list[str] | None:
        """Validate-time checks (nothing heavy loaded); a building kind returns its labels."""
        return None

    def outputs(self, cfg: Any) -> list[str]:
        """The entries of the run's output folder this step writes (checked for collisions up front)."""
        return []

    @abstractmethod
    def execute(self, cfg: Any, run: RunState, where: str) -> list[ScenarioResult]:
        """The lifecycle: the step's results (also a failed step's row)."""


class BuildStep(Step):
    """A kind that makes a candidate named after the step, from an earlier one (`from`)."""

    builds = True
    all_processes: ClassVar[bool] = False  # True: every process of a distributed launch takes part
    # None: its candidate is a transformers checkpoint others can start from; else what it is instead
    not_a_checkpoint: ClassVar[str | None] = None

    @classmethod
    def not_a_checkpoint_for(cls, cfg: Any) -> str | None:
        """What the candidate ``cfg`` builds is instead of a transformers checkpoint (None: it is one).
        Default: the kind's `not_a_checkpoint`; a kind whose settings decide it (cast's autocast) overrides."""
        return cls.not_a_checkpoint

    @classmethod
    def shape_after(cls, cfg: Any, parent: Any) -> Any:
        """The encoder shape (config.lineage.Shape) of the candidate ``cfg`` builds from one of
        shape ``parent``, known before weights load. Default: the architecture is kept."""
        return parent

    @abstractmethod
    def check(self, cfg: Any, plan: Plan, where: str) -> list[str] | None: ...

    def outputs(self, cfg: Any) -> list[str]:
        return [f"checkpoints/{cfg.name}"]

    @abstractmethod
    def build(self, cfg: Any, ctx: BuildContext) -> Built | None:
        """None on a process that takes part but does not keep the result (non-main)."""

    def execute(self, cfg: Any, run: RunState, where: str) -> list[ScenarioResult]:
        results = self._build(cfg, run, where) if run.main_process or self.all_processes else []
        self._share(cfg, run)
        return results

    @staticmethod
    def _share(cfg: Any, run: RunState) -> None:
        """Under `accelerate launch`, every process records the main process's outcome of the
        step (the candidate's staged checkpoint, or why it failed), so a later step can start
        from it on every process. A single-process run has nothing to share."""
        from hf_cost.distributed import from_main, process_count

        if process_count() == 1:
            return
        from hf_cost.models.load import pick_device

        shared = from_main(run.store.shared(cfg.name) if run.main_process else None,
                           cpu=pick_device(run.store.spec.device) == "cpu")
        if not run.main_process:
            run.store.adopt(shared)

    def _build(self, cfg: Any, run: RunState, where: str) -> list[ScenarioResult]:
        ctx = BuildContext(store=run.store, output=run.output, progress=run.progress, where=where)
        try:
            built, reading = run.energy.track(lambda: run.in_file(lambda: self.build(cfg, ctx)))
        except Exception as exc:  # one variant that cannot be built does not sink the others
            failed = failed_result(cfg.name, self.kind, cfg.name, exc, run.progress)
            run.store.fail(cfg.name, failed.error)
            return [failed]
        if built is None:
            return []
        run.store.add(built, run.output)
        return run.energy.attach([built.result], reading) if built.result is not None else []


class MeasureStep(Step):
    """A kind that measures candidates: each one in turn (`run`), or all together (`run_many`)."""

    builds = False
    needs_head: ClassVar[bool] = False  # True: only candidates with a classification head qualify
    together: ClassVar[bool] = False  # True: measures all its candidates at once, through run_many

    @abstractmethod
    def run(self, cfg: Any, ctx: RunContext) -> list[ScenarioResult]: ...

    def run_many(self, cfg: Any, contexts: list[RunContext]) -> list[ScenarioResult]:
        raise NotImplementedError(f"{self.kind} measures one candidate at a time")

    def execute(self, cfg: Any, run: RunState, where: str) -> list[ScenarioResult]:
        if not run.main_process:
            return []
        names = []
        # a causal LM answers in words (no head): every LM candidate qualifies
        needs_head = self.needs_head and not run.store.spec.generative
        for name in cfg.candidates or run.store.names(needs_head=needs_head):
            if run.store.failed(name):
                run.progress.say(f"[{cfg.name}] skipping {name}: it was not built ({run.store.failed(name)})")
            else:
                names.append(name)
        if self.together:
            contexts = [self._context(run, n, where) for n in names]
            return self._measure(run, cfg, ", ".join(names), lambda: self.run_many(cfg, contexts))
        results = []
        for name in names:
            ctx = self._context(run, name, where)
            results += self._measure(run, cfg, name, lambda: self.run(cfg, ctx))
        return results

    @staticmethod
    def _context(run: RunState, name: str, where: str) -> RunContext:
        ctx = run.in_file(lambda: run.store.context(name))
        ctx.where = where
        ctx.artifacts_dir = run.output.stage if run.output is not None else None
        return ctx

    def _measure(self, run: RunState, cfg: Any, candidate: str, fn: Any) -> list[ScenarioResult]:
        """``fn()`` inside energy tracking and the noise sentinel (measure/machine_load.py),
        whose readings go on every result it produced; a failure becomes a result row."""
        from hf_cost.measure.machine_load import MachineLoadSentinel

        try:
            sentinel = MachineLoadSentinel()
            results = run.energy.attach(*run.energy.track(lambda: sentinel.around(lambda: run.in_file(fn))))
            for r in results:
                r.machine_load = sentinel.reading
            if results and sentinel.reading is not None and sentinel.reading.busy:
                run.progress.say(f"[{cfg.name}] {candidate}: {sentinel.reading.warning()}")
            return results
        except Exception as exc:
            if candidate == BASE and isinstance(exc, UserError):
                raise  # the scenario file's own model: bad input, one line, exit 2
            return [failed_result(cfg.name, self.kind, candidate, exc, run.progress)]


class StepEnergy:
    """codecarbon around each step when `energy.enabled` (main process only), its reading
    attached to every result the step produced."""

    def __init__(self, settings: Any) -> None:
        self.tracker = None
        if settings is not None and settings.enabled:
            from hf_cost.measure.energy import EnergyTracker

            self.tracker = EnergyTracker(country_iso_code=settings.country_iso_code, region=settings.region)
            with self.tracker:  # codecarbon's one-time hardware probe (seconds) stays out of every step
                pass

    def track(self, fn: Any) -> tuple[Any, Any]:
        if self.tracker is None:
            return fn(), None
        with self.tracker:
            value = fn()
        return value, self.tracker.reading

    @staticmethod
    def attach(results: list[ScenarioResult], reading: Any) -> list[ScenarioResult]:
        if reading is not None:
            from hf_cost.core.readings import EnergyReading

            covers = [r.name for r in results]
            for r in results:
                r.energy = EnergyReading(**reading.to_dict(), covers=covers)
        return results


def failed_result(name: str, kind: str, candidate: str, exc: Exception, progress: Any) -> ScenarioResult:
    """The result row of a step that failed: the reason in one line, no figures."""
    reason = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
    reason = " ".join(reason.split())[:500]
    progress.say(f"[{name}] FAILED for {candidate}: {reason}")
    return ScenarioResult(
        name=name, kind=kind, candidate=candidate, status="failed", error=reason,
        settings={}, metrics=None, raw={}, notes=["the step failed; every other step still ran"],
    )


def in_file(path: Path, fn: Any) -> Any:
    """Run ``fn``; a UserError raised inside gets the scenario file's name in front."""
    try:
        return fn()
    except UserError as exc:
        if exc.where and str(path) in exc.where:
            raise
        where = f"{path}: {exc.where}" if exc.where else str(path)
        message = str(exc).removeprefix(f"{exc.where}: ") if exc.where else str(exc)
        raise type(exc)(message, where=where) from None


def source_labels(step: Any, plan: Plan, where: str, *, needs_head: bool = False) -> list[str] | None:
    """The label names of the candidate a step starts from; with ``needs_head``, it must have some."""
    labels = plan.labels[step.source]
    if needs_head and labels is None:
        raise UserError(
            f"'{step.source}' has no classification head, and {step.kind} needs one: start from a "
            "fine-tuned candidate, or set model.task: sequence-classification",
            where=f"{where}.from",
        )
    return labels


def require_checkpoint(step: Any, plan: Plan, where: str) -> None:
    """Refuse a `from` candidate without a transformers checkpoint (an ONNX graph, quanto weights)."""
    from hf_cost.core.registry import kinds

    source = next((sc for sc in plan.suite.scenarios if sc.name == step.source), None)
    kind = getattr(source, "kind", None)
    step_cls = kinds().get(kind)
    what = step_cls.not_a_checkpoint_for(source) if hasattr(step_cls, "not_a_checkpoint_for") else None
    if what is not None:
        raise UserError(
            f"'{step.source}' is built by {kind} ({what}), not a transformers checkpoint, so {step.kind} "
            "cannot start from it: name 'base' or a torch candidate (fine_tune, distill, prune)",
            where=f"{where}.from",
        )


def scored_candidates(sc: Any, plan: Any, where: str, with_names: bool = False) -> list[Any]:
    """(key, label names) of each candidate an accuracy or drift scenario scores (with
    ``with_names``: (key, name, label names)); each needs a head."""
    if sc.candidates is None:
        named = [(f"{where}.candidates", n) for n, labels in plan.labels.items() if labels is not None]
        if not named:
            raise UserError(
                "no candidate built so far has a classification head: set model.task: "
                "sequence-classification, or fine-tune one first",
                where=f"{where}.candidates",
            )
    else:
        named = [(f"{where}.candidates[{j}]", n) for j, n in enumerate(sc.candidates)]
    out = []
    for key, name in named:
        labels = plan.labels[name]
        if labels is None:
            raise UserError(
                f"candidate '{name}' has no classification head, so {sc.kind} cannot score it: set "
                "model.task: sequence-classification, or name a fine-tuned candidate",
                where=key,
            )
        out.append((key, name, labels) if with_names else (key, labels))
    return out
