"""`python -m hf_cost card`: write a results.json's figures into a model card; optionally open a Hub PR.

update_card regenerates hf_cost's sections, its model-index results and co2_eq_emissions through
card_file (every byte hf_cost did not write is kept; a rerun on the same results is a no-op).
A known hf_cost section the card has but this run does not produce (no drift step, no selection)
is emptied, so no figure from an older run stays beside the new ones. push_card uploads the card
as a pull request and fails in one line when the Hub cannot be reached.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hf_cost.cards.card_file import read_hf_cost_sections, upsert_card
from hf_cost.cards.from_results import (
    SECTIONS,
    card_candidate,
    card_sections,
)
from hf_cost.cards.hub_metadata import co2_of, eval_results
from hf_cost.errors import UserError


def load_results(path: Path) -> dict[str, Any]:
    """The results.json at `path`; UserError naming the file when unreadable or not hf_cost's."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"cannot read a results.json: {' '.join(str(exc).split())}", where=str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("candidates"), dict) \
            or not isinstance(data.get("scenarios"), list) or "hf_cost_version" not in data:
        raise UserError("not an hf_cost results.json (needs 'hf_cost_version', 'candidates', 'scenarios')",
                        where=str(path))
    return data


def update_card(results_path: Path, card_path: Path, *, candidate: str | None = None,
                title: str | None = None) -> tuple[bool, list[str]]:
    """Write the figures of `results_path` into the card; (whether the file changed, sections generated)."""
    results = load_results(results_path)
    name = card_candidate(results, candidate)
    source = _shown(results_path)
    try:
        sections = card_sections(results, candidate=candidate, results_path=source, card_path=_shown(card_path))
        evals = eval_results(results, name, results_path=source)
        co2 = co2_of(results, name)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise UserError(f"incomplete hf_cost results.json ({type(exc).__name__}: {exc})", where=source) from None
    existing = read_hf_cost_sections(Path(card_path))  # also refuses a malformed card before any write
    for section, plot in _copy_plots(Path(results_path).parent, Path(card_path).parent, sections):
        sections[section] += f"\n\n![{plot}](plots/{plot})"
    written = {n: sections.get(n, "") for n in SECTIONS if n in sections or n in existing}
    changed = upsert_card(Path(card_path), written, eval_results=evals, co2_eq_emissions=co2,
                          source_url=source, new_card_title=title if title is not None else name)
    return changed, list(sections)


PLOTS = {"selection.png": "selection"}  # and drift-NAME.png -> the drift section
COPY_PREFIX = "hf_cost-"  # the card folder's plots/ files hf_cost owns: no other file there is touched


def _copy_plots(results_dir: Path, card_dir: Path, sections: dict[str, str]) -> list[tuple[str, str]]:
    """The run's PNG plots the card's sections show, copied to `<card dir>/plots/hf_cost-NAME.png`
    (atomic, only when the bytes differ): (section, file name) of each, for the links. Only files
    with the hf_cost- prefix are written, so a user's own plots beside them are never replaced."""
    import os
    import tempfile

    shown = []
    for png in sorted((results_dir / "plots").glob("*.png")):
        section = PLOTS.get(png.name, "drift" if png.name.startswith("drift-") else None)
        if section is None or section not in sections:
            continue
        target = card_dir / "plots" / (COPY_PREFIX + png.name)
        data = png.read_bytes()
        if not (target.is_file() and target.read_bytes() == data):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".plot-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        shown.append((section, target.name))
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
