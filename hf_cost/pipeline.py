"""The driver: scenario file -> preflight -> candidates (builders) -> runners -> RunResult.

`prepare` is everything `validate` does (no weights loaded: every step's `check`);
`run_suite` continues from there: each step, in file order, through its one lifecycle
(steps/base.py); `run_result` assembles the typed RunResult the writers serialise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hf_cost.config.schema import Suite, load_suite
from hf_cost.core.names import BASE
from hf_cost.distributed import is_main_process
from hf_cost.errors import ConfigError, UserError
from hf_cost.models.resolve import ResolvedCheckpoint, resolve_checkpoint
from hf_cost.progress import Progress
from hf_cost.steps.base import in_file as _in_file


@dataclass
class Prepared:
    path: Path
    suite: Suite
    checkpoint: ResolvedCheckpoint
    labels: dict[str, list[str] | None]  # each candidate's label names (None: no head), by name


def prepare(path: str | Path, progress: Progress | None = None) -> Prepared:
    """Validate the file, resolve the model's config, check inputs; load no weights."""
    from hf_cost.measure.memory_estimate import check_batch_sizes
    from hf_cost.models.checkpoint_files import check_checkpoint_files
    from hf_cost.steps.plan import check_steps

    progress = progress or Progress(enabled=False)
    path = Path(path)
    suite = load_suite(path)
    if suite.card is not None:
        card_path(path, suite)  # before anything slow: a bad card path is a scenario-file error
    checkpoint = _in_file(path, lambda: resolve_checkpoint(suite.model, log=progress.say))
    tokenizer = _in_file(path, lambda: check_checkpoint_files(checkpoint))
    _in_file(path, lambda: _check_sequence_lengths(suite, checkpoint.config))
    _in_file(path, lambda: check_batch_sizes(suite, checkpoint.config))
    if suite.model.generative:
        _in_file(path, lambda: _check_lm_tokenizer(suite, tokenizer))
    labels = _in_file(path, lambda: check_steps(suite, checkpoint.config))
    if suite.energy.enabled:
        _in_file(path, lambda: _check_energy(suite))

    return Prepared(path=path, suite=suite, checkpoint=checkpoint, labels=labels)


def _check_lm_tokenizer(suite: Suite, tokenizer: Any) -> None:
    """A causal LM's prompts can be built: its tokenizer has the chat template the file asks for."""
    from hf_cost.data.prompts import check_chat_template

    check_chat_template(suite.generation, tokenizer)


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
    from hf_cost.core.registry import building_kinds

    name = suite.card.candidate
    if name is None:
        return
    made = [BASE] + [s.name for s in suite.scenarios if s.kind in building_kinds()]
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
    from hf_cost.core.registry import step_class

    entries = [e for s in suite.scenarios for e in step_class(s.kind)().outputs(s)]
    return ["results.json", "report.md", *entries, *(["plots/selection.png"] if suite.select is not None else [])]


def run_suite(prepared: Prepared, output: Any, progress: Progress) -> Any:
    """Run every step in order (each through its own lifecycle, steps/base.py) and return the
    RunResult; None on a non-main process of `accelerate launch`. Results files are not written.

    ``output`` is the run's `RunOutput` (None on a non-main process): builders write into its
    staging directory.
    """
    from hf_cost.core.registry import step_class
    from hf_cost.models.load import pick_device
    from hf_cost.models.store import CandidateStore
    from hf_cost.steps.base import RunState, StepEnergy

    suite, main_process = prepared.suite, is_main_process()
    _in_file(prepared.path, lambda: pick_device(suite.model.device))  # no GPU: fail before work
    run = RunState(prepared=prepared, output=output, progress=progress if main_process else Progress(enabled=False),
                   store=None, energy=StepEnergy(suite.energy if main_process else None), main_process=main_process)
    run.store = CandidateStore(prepared, run.progress)
    for i, cfg in enumerate(suite.scenarios):
        run.results += step_class(cfg.kind)().execute(cfg, run, where=f"scenarios[{i}]")
    return run_result(prepared, run) if main_process else None


def run_result(prepared: Prepared, run: Any) -> Any:
    """The typed RunResult of a finished run: its steps' results, and what is derived from them."""
    from hf_cost.core.registry import building_kinds
    from hf_cost.measure.environment import collect_environment
    from hf_cost.report.comparison import build_comparison
    from hf_cost.report.cost import build_costs
    from hf_cost.report.schema import RunResult

    suite, results = prepared.suite, run.results
    first, candidates = run.store.first_context(), run.store.infos()
    built_by = {s.name: s.name for s in suite.scenarios if s.kind in building_kinds()}
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

        result.selection = select_results([("results.json", result)], suite.select)
    return result


def _checkpoint_info(prepared: Prepared) -> dict[str, Any]:
    c = prepared.checkpoint
    return {
        "id": prepared.suite.model.id, "path": str(c.local_dir), "revision": c.revision,
        "commit": c.commit, "source": c.source, "task": prepared.suite.model.task,
        "architecture": getattr(c.config, "model_type", None),
    }


def _version() -> str:
    import hf_cost

    return hf_cost.__version__
