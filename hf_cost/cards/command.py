"""`python -m hf_cost card`: write a results.json's figures into a model card; optionally open a Hub PR.

update_card regenerates hf_cost's sections, its model-index results and co2_eq_emissions through
card_file (every byte hf_cost did not write is kept; a rerun on the same results is a no-op).
A known hf_cost section the card has but this run does not produce (no drift step, no selection)
is emptied, so no figure from an older run stays beside the new ones. push_card uploads the card
as a pull request and fails in one line when the Hub cannot be reached.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from hf_cost.cards.card_file import hf_cost_sections, render_card
from hf_cost.cards.card_target import CardTarget, atomic_write, inputs_named_by
from hf_cost.cards.from_results import SECTIONS, card_candidate, card_sections
from hf_cost.cards.hub_metadata import co2_of, eval_results
from hf_cost.errors import UserError
from hf_cost.report.schema import RunResult
from hf_cost.safe_files import LIMITS, read_regular_bytes

# A run's plots a card shows, by file name: selection.png and drift-NAME.png (NAME a step name).
_RUN_PLOT = re.compile(r"^(selection|drift-[A-Za-z0-9_-]{1,64})\.png$")
# hf_cost's copies beside a card: the content's sha256 prefix is in the name, so a new copy never
# overwrites the one the current card shows, and a file is known to be hf_cost's by its bytes.
_CARD_PLOT = re.compile(r"^hf_cost-(selection|drift-[A-Za-z0-9_-]{1,64})-([0-9a-f]{12})\.png$")


def load_results(path: Path) -> RunResult:
    """The results.json at `path`, validated (report/results_file.py); UserError in one line."""
    from hf_cost.report.results_file import load_results_file

    return load_results_file(Path(path))


@dataclass
class CardUpdate:
    """One card's new text and plots, computed with the card folder locked; `apply` writes them
    (new plots first, under new names, then the card by rename: old text with old plots, or new
    with new, whenever it stops), `undo` puts the old card back, `finalize` removes the plots
    no card in the folder shows any more."""

    target: CardTarget
    old_text: str | None
    new_text: str | None
    plots: dict[str, bytes]  # file name in plots/ -> bytes
    sections: list[str]
    applied: bool = False
    _created: list[Path] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.new_text is not None

    @property
    def path(self) -> Path:
        return self.target.path

    def apply(self) -> bool:
        """Write the plots and the card; True if the card changed. On an error nothing is left."""
        from hf_cost.interrupts import signals_held

        with signals_held():
            try:
                for name, data in self.plots.items():
                    self._write_plot(name, data)
                if self.new_text is not None:
                    self.target.replace(self.new_text.encode("utf-8"))
            except BaseException:
                self._remove_created()
                raise
            self.applied = True
        return self.changed

    def undo(self) -> None:
        """The card as it was before `apply` (its results could not be committed)."""
        from hf_cost.interrupts import signals_held

        with signals_held():
            if self.applied and self.new_text is not None:
                if self.old_text is None:
                    with contextlib.suppress(OSError):
                        self.target.target.unlink()
                else:
                    self.target.replace(self.old_text.encode("utf-8"))
            self._remove_created()
            self.applied = False

    def finalize(self) -> list[str]:
        """Remove hf_cost's plot copies that no .md file in the card's folder shows (best effort)."""
        plots = self.target.folder / "plots"
        if not self.applied or not plots.is_dir() or plots.is_symlink():
            return []
        shown = _shown_plots(self.target.folder)
        if shown is None:
            return []
        removed = []
        for p in plots.iterdir():
            m = _CARD_PLOT.match(p.name)
            if m is None or p.name in shown or p.is_symlink() or not p.is_file():
                continue
            with contextlib.suppress(OSError, UserError):
                data = read_regular_bytes(p, what="plot", limit=LIMITS["plot"])
                if hashlib.sha256(data).hexdigest()[:12] == m.group(2):  # hf_cost's bytes, untouched
                    p.unlink()
                    removed.append(p.name)
        return removed

    def _write_plot(self, name: str, data: bytes) -> None:
        folder = self.target.folder / "plots"
        target = folder / name
        if target.is_file() and not target.is_symlink():
            with contextlib.suppress(OSError, UserError):
                if read_regular_bytes(target, what="plot", limit=LIMITS["plot"]) == data:
                    return
        if not folder.exists():
            try:
                folder.mkdir()
            except OSError as exc:
                raise UserError(f"cannot create {folder}: {exc.strerror}; the card was not changed",
                                where=str(self.path)) from None
            self._created.append(folder)
        atomic_write(target, data, None, where=str(self.path))
        self._created.append(target)

    def _remove_created(self) -> None:
        for p in reversed(self._created):
            with contextlib.suppress(OSError):
                p.rmdir() if p.is_dir() else p.unlink()
        self._created = []


@contextlib.contextmanager
def card_update(results_path: Path, card_path: Path, *, candidate: str | None = None, title: str | None = None,
                results_shown: Path | None = None, say: Callable[[str], None] | None = None
                ) -> Iterator[CardUpdate]:
    """The update of `card_path` with the figures of `results_path`, its folder locked while the
    block runs. `results_shown`: the results' path as the card names it (a run's final path,
    while its results are still staged)."""
    results = load_results(results_path)
    name = card_candidate(results, candidate)
    source = _shown(results_shown or results_path)
    run_plots = _run_plots(Path(results_path).parent)
    inputs = [Path(results_path), *(p for p, _ in run_plots.values()),
              *inputs_named_by(results.suite, results.scenario_file)]
    with CardTarget.open(Path(card_path), inputs, say=say) as target:
        text = target.read()
        existing = hf_cost_sections(text, str(card_path)) if text is not None else {}
        try:
            sections = card_sections(results, candidate=candidate, results_path=source, card_path=_shown(card_path))
            evals = eval_results(results, name, results_path=source)
            co2 = co2_of(results, name)
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            raise UserError(f"incomplete hf_cost results.json ({type(exc).__name__}: {exc})"[:300],
                            where=source) from None
        plots = {}
        for stem, (_, data) in run_plots.items():
            section = "selection" if stem == "selection" else "drift"
            if section in sections:
                copy = f"hf_cost-{stem}-{hashlib.sha256(data).hexdigest()[:12]}.png"
                sections[section] += f"\n\n![{stem}](plots/{copy})"
                plots[copy] = data
        written = {n: sections.get(n, "") for n in SECTIONS if n in sections or n in existing}
        new_text = render_card(text, written, eval_results=evals, co2_eq_emissions=co2, source_url=source,
                               new_card_title=title if title is not None else name, where=str(card_path))
        yield CardUpdate(target=target, old_text=text, new_text=new_text, plots=plots, sections=list(sections))


def update_card(results_path: Path, card_path: Path, *, candidate: str | None = None,
                title: str | None = None) -> tuple[bool, list[str]]:
    """Write the figures of `results_path` into the card; (whether the file changed, sections generated)."""
    with card_update(results_path, card_path, candidate=candidate, title=title) as update:
        update.apply()
        update.finalize()
    return update.changed, update.sections


def _run_plots(results_dir: Path) -> dict[str, tuple[Path, bytes]]:
    """stem -> (path, bytes) of the run's plots a card can show (regular files, size-limited)."""
    folder = results_dir / "plots"
    if not folder.is_dir():
        return {}
    out = {}
    for png in sorted(folder.iterdir()):
        m = _RUN_PLOT.match(png.name)
        if m is not None:
            out[m.group(1)] = (png, read_regular_bytes(png, what="plot", limit=LIMITS["plot"]))
    return out


def _shown_plots(folder: Path) -> set[str] | None:
    """Plot file names that any .md file in `folder` links; None when one cannot be read (then
    nothing is removed)."""
    shown: set[str] = set()
    for md in folder.glob("*.md"):
        try:
            text = read_regular_bytes(md, what="card", limit=LIMITS["card"]).decode("utf-8", "replace")
        except UserError:
            return None
        shown.update(re.findall(r"plots/(hf_cost-[A-Za-z0-9_-]+\.png)", text))
    return shown


def _shown(path: Path) -> str:
    """A path as the card shows it: relative to the working directory when inside it (the same
    text on every clone), else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def push_card(card_path: Path, repo_id: str) -> str:
    """Open a pull request on the Hub model repo `repo_id` with the card; returns the PR's url."""
    offline = f"--push: the Hub is not reachable (offline); the card was updated locally at {card_path}"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off"):
        raise UserError(offline)
    if not Path(card_path).is_file():  # ModelCard.load would take a missing path for a repo id
        raise UserError(f"--push: no card at {card_path}")
    import requests
    from huggingface_hub import ModelCard
    from huggingface_hub.errors import LocalTokenNotFoundError, OfflineModeIsEnabled

    try:
        info = ModelCard.load(Path(card_path)).push_to_hub(repo_id, create_pr=True)
    except requests.exceptions.HTTPError as exc:  # HfHubHTTPError too, and validate()'s own
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--push: the Hub refused the card for {repo_id}: {first}; the card was updated "
                        f"locally at {card_path}") from None
    except LocalTokenNotFoundError:
        raise UserError(f"--push: not logged in to the Hub (huggingface-cli login or HF_TOKEN); the card was "
                        f"updated locally at {card_path}") from None
    except (OfflineModeIsEnabled, requests.exceptions.ConnectionError, requests.exceptions.Timeout):
        raise UserError(offline) from None
    except ValueError as exc:  # validate(): the Hub rejected the metadata
        raise UserError(f"--push: {' '.join(str(exc).split())}; the card was updated locally at {card_path}") from None
    return str(getattr(info, "pr_url", None) or info)
