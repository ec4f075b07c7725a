"""The driver: scenario file -> preflight -> candidates (builders) -> runners -> RunResult.

`prepare` is everything `validate` does (no weights loaded); `run_suite` continues from
there: each step either builds a candidate (variants/registry.py) or measures the
candidates it names (runners/). Neither knows the other's kinds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hf_cost.config.schema import Suite, load_suite
from hf_cost.distributed import is_main_process
from hf_cost.errors import ConfigError, UserError
from hf_cost.models.candidate import BASE
from hf_cost.models.resolve import ResolvedCheckpoint, resolve_checkpoint
from hf_cost.progress import Progress


@dataclass
class Prepared:
    path: Path
    suite: Suite
    checkpoint: ResolvedCheckpoint
    labels: dict[str, list[str] | None]  # each candidate's label names (None: no head), by name


def prepare(path: str | Path, progress: Progress | None = None) -> Prepared:
    """Validate the file, resolve the model's config, check inputs; load no weights."""
    from hf_cost.data.preflight import check_steps
    from hf_cost.measure.memory_estimate import check_batch_sizes
    from hf_cost.models.checkpoint_files import check_checkpoint_files

    progress = progress or Progress(enabled=False)
    path = Path(path)
    suite = load_suite(path)
    if suite.card is not None:
        card_path(path, suite)  # before anything slow: a bad card path is a scenario-file error
    checkpoint = _in_file(path, lambda: resolve_checkpoint(suite.model, log=progress.say))
    _in_file(path, lambda: check_checkpoint_files(checkpoint))
    _in_file(path, lambda: _check_sequence_lengths(suite, checkpoint.config))
    _in_file(path, lambda: check_batch_sizes(suite, checkpoint.config))
    labels = _in_file(path, lambda: check_steps(suite, checkpoint.config))
    if suite.energy.enabled:
        _in_file(path, lambda: _check_energy(suite))

    return Prepared(path=path, suite=suite, checkpoint=checkpoint, labels=labels)


def card_path(scenario_file: Path, suite: Suite) -> Path:
    """The `card:` block's file, checked as the end of the run will need it: an existing
    README.md inside a `model_cards` folder, a regular writable Markdown file that is none of
    the run's inputs, whose front matter and markers parse, and a candidate the run makes.
    Whatever the card update could fail on is refused here, before any work."""
    from hf_cost.cards.card_file import CardError, hf_cost_sections
    from hf_cost.cards.card_target import check_card_path, inputs_named_by, read_card

    where = f"{scenario_file}: card.path"
    raw = suite.card.path
    if "\x00" in raw:
        raise ConfigError("the path holds a NUL byte", where=where)
    target = Path(os.path.realpath(scenario_file.parent / raw))
    if target.name != "README.md" or "model_cards" not in target.parent.parts or not target.is_file():
        raise ConfigError(
            f"'{raw}' is not an existing README.md inside a model_cards folder; a run only "
            "updates such a card (use `python -m hf_cost card` for any other)",
            where=where,
        )
    try:
        check_card_path(scenario_file.parent / raw,
                        inputs_named_by(suite.model_dump(mode="json", by_alias=True), scenario_file))
        text = read_card(target)
        hf_cost_sections(text or "", str(target))
    except (CardError, UserError) as exc:
        raise ConfigError(str(exc).removeprefix(f"{exc.where}: ") if exc.where else str(exc), where=where) from None
    _check_card_candidate(scenario_file, suite)
    return target


def _check_card_candidate(scenario_file: Path, suite: Suite) -> None:
    from hf_cost.variants.registry import builders

    name = suite.card.candidate
    if name is None:
        return
    building = builders()
    made = [BASE] + [s.name for s in suite.scenarios if s.kind in building]
    if name not in made:
        import difflib

        close = difflib.get_close_matches(name, made, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown candidate '{name}'{hint} (this run makes: {', '.join(made)})",
                          where=f"{scenario_file}: card.candidate")


def _check_energy(suite: Suite) -> None:
    import importlib.util

    if importlib.util.find_spec("codecarbon") is None:
        raise ConfigError("codecarbon is not installed; pip install 'hf_cost[energy]', or set enabled: false",
                          where="energy.enabled")


def _check_sequence_lengths(suite: Suite, config: Any) -> None:
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return
    lengths = [("inputs.sequence_length", suite.inputs.sequence_length)] + [
        (f"scenarios[{i}].sequence_length", sc.sequence_length)
        for i, sc in enumerate(suite.scenarios)
        if getattr(sc, "sequence_length", None) is not None
    ]
    for key, seq in lengths:
        if seq > limit:
            raise ConfigError(
                f"{seq} exceeds the model's maximum of {limit} (max_position_embeddings)", where=key
            )


def expected_entries(suite: Suite) -> list[str]:
    """The output entries a run of ``suite`` will write (checked for collisions up front)."""
    from hf_cost.variants.registry import builders

    building = builders()
    names = [f"checkpoints/{s.name}" for s in suite.scenarios if s.kind in building]
    plots = [f"plots/drift-{s.name}.png" for s in suite.scenarios if s.kind == "drift"]
    plots += ["plots/selection.png"] if suite.select is not None else []
    return ["results.json", "report.md", *names, *plots]


def run_suite(prepared: Prepared, output: Any, progress: Progress) -> Any:
    """Run every step in order and return the RunResult (results files not written).

    ``output`` is the run's `RunOutput` (None on a non-main process): builders write into its
    staging directory. Under `accelerate launch`, steps whose builder says so run on every
    process; everything else runs on the main process, which alone gets a RunResult back.
    """
    from hf_cost.measure.environment import collect_environment
    from hf_cost.models.load import pick_device
    from hf_cost.models.store import CandidateStore
    from hf_cost.report.comparison import build_comparison
    from hf_cost.report.cost import build_costs
    from hf_cost.report.schema import RunResult
    from hf_cost.runners import RUNNERS
    from hf_cost.variants.registry import BuildContext, builders

    suite = prepared.suite
    _in_file(prepared.path, lambda: pick_device(suite.model.device))  # no GPU: fail before work
    main_process = is_main_process()
    if not main_process:
        progress = Progress(enabled=False)
    store = CandidateStore(prepared, progress)
    energy = StepEnergy(suite.energy if main_process else None)
    building = builders()
    results = []
    for i, step in enumerate(suite.scenarios):
        where = f"scenarios[{i}]"
        if step.kind in building:
            builder = building[step.kind]()
            if not (main_process or builder.all_processes):
                continue
            ctx = BuildContext(store=store, output=output, progress=progress, where=where)
            try:
                built, reading = energy.track(lambda: _in_file(prepared.path, lambda: builder.build(step, ctx)))
            except Exception as exc:  # one variant that cannot be built does not sink the others
                results.append(_failed(step.name, step.kind, step.name, exc, progress))
                store.fail(step.name, results[-1].error)
                continue
            if built is not None:
                store.add(built, output)
                results += energy.attach([built.result], reading) if built.result is not None else []
            continue
        if not main_process:
            continue
        runner = RUNNERS[step.kind]()
        names = []
        for name in step.candidates or store.names(needs_head=runner.needs_head):
            if store.failed(name):
                progress.say(f"[{step.name}] skipping {name}: it was not built ({store.failed(name)})")
            else:
                names.append(name)
        if runner.multi:
            contexts = [_in_file(prepared.path, lambda: store.context(n)) for n in names]
            for c in contexts:
                c.where = where
            try:
                results += energy.attach(*energy.track(lambda: _in_file(prepared.path, lambda: runner.run_many(step, contexts))))
            except Exception as exc:
                results.append(_failed(step.name, step.kind, ", ".join(names), exc, progress))
            continue
        for name in names:
            run_ctx = _in_file(prepared.path, lambda: store.context(name))
            run_ctx.where = where
            try:
                results += energy.attach(*energy.track(lambda: _in_file(prepared.path, lambda: runner.run(step, run_ctx))))
            except Exception as exc:
                if name == BASE and isinstance(exc, UserError):
                    raise  # the scenario file's own model: bad input, one line, exit 2
                results.append(_failed(step.name, step.kind, name, exc, progress))
    if not main_process:
        return None
    first = store.first_context()
    candidates = store.infos()
    built_by = {s.name: s.name for s in suite.scenarios if s.kind in building}
    result = RunResult(
        hf_cost_version=_version(),
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        scenario_file=str(prepared.path),
        suite=suite.model_dump(mode="json", by_alias=True),
        environment=collect_environment(),
        model=_checkpoint_info(prepared),
        candidates=candidates,
        comparison=build_comparison(results, candidates, suite.reference, built_by),
        costs=build_costs(suite, results, candidates),
        inputs=first.perf_set.describe() if first else suite.inputs.model_dump(mode="json"),
        peak_tflops=first.peak_tflops if first else None,
        peak_source=first.peak_source if first else "peak unknown",
        scenarios=results,
    )
    if suite.select is not None:
        from hf_cost.select.run_selection import select_results

        result.selection = select_results([("results.json", result.model_dump(mode="json"))], suite.select)
    return result


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
    def attach(results: list[Any], reading: Any) -> list[Any]:
        if reading is not None:
            covers = [r.name for r in results]
            for r in results:
                r.energy = {**reading.to_dict(), "covers": covers}
        return results


def _failed(name: str, kind: str, candidate: str, exc: Exception, progress: Progress) -> Any:
    """The result row of a step that failed: the reason in one line, no figures."""
    from hf_cost.report.schema import ScenarioResult

    reason = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
    reason = " ".join(reason.split())[:500]
    progress.say(f"[{name}] FAILED for {candidate}: {reason}")
    return ScenarioResult(
        name=name, kind=kind, candidate=candidate, status="failed", error=reason,
        settings={}, metrics={}, raw={}, notes=["the step failed; every other step still ran"],
    )


def _checkpoint_info(prepared: Prepared) -> dict[str, Any]:
    c = prepared.checkpoint
    return {
        "id": prepared.suite.model.id, "path": str(c.local_dir), "revision": c.revision,
        "commit": c.commit, "source": c.source, "task": prepared.suite.model.task,
        "architecture": getattr(c.config, "model_type", None),
    }


def _in_file(path: Path, fn: Any) -> Any:
    """Run ``fn``; a UserError raised inside gets the scenario file's name in front."""
    try:
        return fn()
    except UserError as exc:
        if exc.where and str(path) in exc.where:
            raise
        where = f"{path}: {exc.where}" if exc.where else str(path)
        message = str(exc).removeprefix(f"{exc.where}: ") if exc.where else str(exc)
        raise type(exc)(message, where=where) from None


def _version() -> str:
    import hf_cost

    return hf_cost.__version__
