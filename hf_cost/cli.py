"""Command line: `python -m hf_cost run|validate|cache import|schema`.

Nothing heavy is imported here, so `--help` is instant; each subcommand imports
what it needs. A UserError becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hf_cost.errors import UserError
from hf_cost.interrupts import Interrupted

DEFAULT_OUTPUT_ROOT = Path("results")


EXIT_STEP_FAILED = 3  # the run completed and wrote its results, but some step failed


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    raw_argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(raw_argv)
    args.raw_argv = raw_argv
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a file-system error no command turned into a UserError: still one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {_one_line(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as exc:
        name = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
        kept_in = exc.kept_in if isinstance(exc, Interrupted) else None
        if kept_in is not None:
            what = f"after the run had completed; its results are in {kept_in}"
            card = getattr(exc, "card", None)
            what += f", and its model card {card} was updated with them" if card is not None else ""
        else:
            what = "stopped cleanly; nothing this run made was kept, earlier output is as it was"
        print(f"\ninterrupted ({name}): {what}", file=sys.stderr)
        return 143 if name == "SIGTERM" else 130


def _one_line(text: str, limit: int = 2000) -> str:
    """An error message as one line: a path or value from the input may hold line breaks."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hf-cost", description="What a Hugging Face checkpoint really costs, measured MLPerf-style."
    )
    sub = p.add_subparsers(title="commands")

    run = sub.add_parser("run", help="run every scenario in a scenario file")
    run.add_argument("scenario_file", type=Path)
    run.add_argument(
        "--output", "-o", type=Path, default=None,
        help=f"output directory (default: {DEFAULT_OUTPUT_ROOT}/<scenario name>/)",
    )
    run.add_argument("--offline", action="store_true", help="never contact the Hub")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    run.set_defaults(func=_cmd_run)

    sel = sub.add_parser("select", help="pick a checkpoint from results.json files (constraints, Pareto, ties)")
    sel.add_argument("results", type=Path, nargs="+", help="results.json of one or more runs")
    sel.add_argument("--constraints", type=Path, default=None,
                     help="YAML with constraints and objectives (default: max accuracy, min p90 latency)")
    sel.add_argument("--plot", type=Path, default=None, help="write the scatter plot (PNG) here")
    sel.add_argument("--json", type=Path, default=None, dest="json_out", help="write the selection as JSON here")
    sel.add_argument("--force", action="store_true",
                     help="replace an existing --json/--plot file select did not write (never an input)")
    sel.set_defaults(func=_cmd_select)

    card = sub.add_parser("card", help="write hf_cost's sections and model-index into a model card")
    card.add_argument("results", type=Path, help="a run's results.json")
    card.add_argument("--card", type=Path, required=True, help="the card (README.md); created if missing")
    card.add_argument("--candidate", default=None, help="the candidate it describes (default: the reference)")
    card.add_argument("--push", metavar="REPO", default=None, help="then open a pull request on this Hub repo")
    card.set_defaults(func=_cmd_card)

    val = sub.add_parser("validate", help="check scenario files without loading weights")
    val.add_argument("scenario_files", type=Path, nargs="+")
    val.add_argument("--offline", action="store_true", help="never contact the Hub")
    val.set_defaults(func=_cmd_validate)

    cache = sub.add_parser("cache", help="manage the local Hub cache")
    cache_sub = cache.add_subparsers(title="cache commands")
    imp = cache_sub.add_parser(
        "import", help="make a local checkpoint directory answer to a Hub id, offline"
    )
    imp.add_argument("directory", type=Path)
    imp.add_argument("--as", dest="repo_id", required=True, help="the Hub id, e.g. org/name")
    imp.add_argument("--revision", default="main", help="branch name or 40-hex commit (default main)")
    imp.set_defaults(func=_cmd_cache_import)

    schema = sub.add_parser("schema", help="print the JSON Schema of results.json")
    schema.set_defaults(func=_cmd_schema)
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from hf_cost.distributed import relaunch_with_torchrun, requested_cpu_processes
    from hf_cost.hub_access import configure_hub_access

    processes = requested_cpu_processes()
    if processes is not None and processes > 1:
        relaunch_with_torchrun(processes, ["run", *args.raw_argv[1:]])

    configure_hub_access(force_offline=args.offline, quiet=args.quiet)

    from hf_cost.distributed import is_main_process
    from hf_cost.interrupts import Interrupted, signals_as_interrupts, signals_held
    from hf_cost.output import RunOutput
    from hf_cost.pipeline import expected_entries, prepare, run_suite
    from hf_cost.progress import Progress

    progress = Progress(enabled=not args.quiet)
    with signals_as_interrupts():  # SIGTERM is handled like Ctrl-C from here on
        prepared = prepare(args.scenario_file, progress)
        out_dir = args.output or DEFAULT_OUTPUT_ROOT / (prepared.suite.name or args.scenario_file.stem)
        if not is_main_process():  # under `accelerate launch`: the main process writes
            run_suite(prepared, None, progress)
            return 0
        output = RunOutput.open(out_dir)
        try:
            output.check_free(expected_entries(prepared.suite))
            previous = output.previous()
            if previous is not None:
                progress.say(
                    f"{out_dir} holds the results of an earlier run ({previous.get('created_utc')}); "
                    "they are replaced only if this run completes"
                )
            result = run_suite(prepared, output, progress)
            _write_staged(result, output)
            if prepared.suite.card is None:
                replaced = output.commit(result.created_utc)
                _print_outcome(result, output, replaced)
                card_ok = True
            else:
                card_ok = _commit_with_card(prepared, output, result, progress)
            failed = [f"{r.name} ({r.candidate})" for r in result.scenarios if r.status == "failed"]
            if failed:
                print(f"error: {len(failed)} step(s) FAILED: {', '.join(failed)}; every other step's "
                      "results were written", file=sys.stderr)
            if failed or not card_ok:
                return EXIT_STEP_FAILED
        except Interrupted as exc:
            if output.committed:
                exc.kept_in = output.root
                exc.card = getattr(output, "card_updated", None)
            raise
        finally:
            if not output.committed:
                with signals_held():
                    output.abandon()
    return 0


def _commit_with_card(prepared, output, result, progress) -> bool:  # type: ignore[no-untyped-def]
    """Commit the run and update its card as one step; False when the card could not be updated.

    The card's text and plots are computed from the staged results first. `validate` refused
    every card problem it could know; what only the run's outcome decides (the card's candidate
    failed to build) keeps the results and skips the card (exit 3, said in one line). Then, with
    signals held, the card is written and the results moved in; if the move fails, the card is
    put back (exit 2: nothing written)."""
    import contextlib

    from hf_cost.cards.command import card_update
    from hf_cost.interrupts import signals_held
    from hf_cost.pipeline import card_path

    with contextlib.ExitStack() as stack:
        try:
            target = card_path(prepared.path, prepared.suite)  # checked again: the card may have changed
            update = stack.enter_context(card_update(
                output.stage / "results.json", target, candidate=prepared.suite.card.candidate,
                results_shown=output.root / "results.json", say=progress.say))
        except UserError as exc:  # what the run itself produced (its card's candidate failed to build)
            _print_outcome(result, output, output.commit(result.created_utc))
            print(f"error: the model card was not updated: {_one_line(str(exc))}; the run's results were "
                  f"kept in {output.root}", file=sys.stderr)
            return False
        with signals_held():
            update.apply()
            try:
                replaced = output.commit(result.created_utc)
            except BaseException:
                update.undo()
                raise
            output.card_updated = target
        update.finalize()
    _print_outcome(result, output, replaced)
    print(f"model card {'updated' if update.changed else 'unchanged'}: {target} (sections: "
          f"{', '.join(update.sections)})")
    return True


def _print_outcome(result, output, replaced: list[str]) -> None:  # type: ignore[no-untyped-def]
    from hf_cost.report.console import print_summary

    print_summary(result)
    if replaced:
        print(f"replaced the earlier results in {output.root} ({len(replaced)} entries: {', '.join(replaced)})")
    print("wrote " + ", ".join(str(output.root / e) for e in ("results.json", "report.md")))


def _write_staged(result, output) -> None:  # type: ignore[no-untyped-def]
    from hf_cost.writers import write_results

    write_results(result, output.stage)


def _cmd_validate(args: argparse.Namespace) -> int:
    from hf_cost.hub_access import configure_hub_access

    configure_hub_access(force_offline=args.offline)

    from hf_cost.pipeline import prepare

    for path in args.scenario_files:
        prepared = prepare(path)
        kinds = ", ".join(s.name or s.kind for s in prepared.suite.scenarios)
        print(f"{path}: OK — {prepared.suite.model.display_name} ({prepared.checkpoint.source}); scenarios: {kinds}")
    return 0


def _cmd_cache_import(args: argparse.Namespace) -> int:
    from hf_cost.models.hub_cache import import_checkpoint

    snapshot = import_checkpoint(args.directory, args.repo_id, args.revision)
    print(f"{args.directory} -> {args.repo_id}@{args.revision}: {snapshot}")
    print(f"from_pretrained('{args.repo_id}') now resolves offline (HF_HUB_OFFLINE=1).")
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    from hf_cost.cards.command import card_update, push_card
    from hf_cost.interrupts import Interrupted, signals_as_interrupts

    update = None
    try:
        with signals_as_interrupts(), card_update(args.results, args.card, candidate=args.candidate) as update:
            update.apply()
            update.finalize()
    except (KeyboardInterrupt, Interrupted) as exc:
        name = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
        done = update is not None and update.applied
        what = (f"the card {args.card} had already been updated, with its plots" if done
                else f"the card {args.card} and its plots were not changed")
        print(f"\ninterrupted ({name}): {what}", file=sys.stderr)
        return 143 if name == "SIGTERM" else 130
    print(f"{'updated' if update.changed else 'unchanged'}: {args.card} (sections: {', '.join(update.sections)})")
    if args.push:
        print(f"opened {push_card(args.card, args.push)}")
    return 0


def _cmd_select(args: argparse.Namespace) -> int:
    from hf_cost.select.command import run_select

    return run_select(args.results, args.constraints, args.plot, args.json_out, force=args.force)


def _cmd_schema(args: argparse.Namespace) -> int:
    import json

    from hf_cost.report.schema import results_json_schema

    print(json.dumps(results_json_schema(), indent=2))
    return 0
