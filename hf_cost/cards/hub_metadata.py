"""The Hub metadata of a card from an hf_cost RunResult: `model-index` eval results (one per quality
cell of the card's candidate, with dataset split and revision) and co2_eq_emissions (from the
energy of the step that trained it). A local dataset's revision is the sha256 prefix of its
bytes, and its name says "synthetic" when the README.md beside it does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_cost.cards.from_results import _dataset_block, _split, card_candidate
from hf_cost.errors import UserError
from hf_cost.report.safe_text import plain_text
from hf_cost.report.schema import RunResult
from hf_cost.safe_files import LIMITS, read_regular_bytes, sha256_regular


def eval_results(results: RunResult, candidate: str, *, results_path: str = "results.json") -> list[dict]:
    """EvalResult field dicts, one per quality cell of `candidate` in the comparison."""
    from hf_cost.report.comparison import run_comparison

    me = card_candidate(results, candidate)
    comparison = run_comparison(results)
    row = next((r for r in comparison.rows if r.candidate == me), None) if comparison is not None else None
    out, seen = [], set()
    for q in row.quality if row is not None else []:
        if not q.in_tables:  # a drift step's periods between its window and its latest: results.json only
            continue
        d = _dataset_fields(results, q.scenario)
        key = (d["dataset_type"], d.get("dataset_config"), d["dataset_split"], d.get("dataset_revision"))
        if key in seen:  # two cells on one split: keep them apart on the Hub
            d["dataset_split"] += f" [{q.scenario}]"
        seen.add(key)
        d = {k: plain_text(v, 200) for k, v in d.items()}  # texts from the results: one bounded line
        out.append({"task_type": "text-classification", "task_name": "Text Classification", **d,
                    "metric_type": "accuracy", "metric_value": float(q.accuracy),
                    "metric_name": f"accuracy (95% CI {q.ci_low:.3f}–{q.ci_high:.3f}, n={q.n})",
                    "source_name": "hf_cost", "source_url": results_path})
    return out


def co2_of(results: RunResult, candidate: str) -> dict | None:
    """The Hub's co2_eq_emissions from the energy of the step that trained `candidate`, or None."""
    me = card_candidate(results, candidate)
    step = next((s for s in results.scenarios if s.candidate == me and s.builds
                 and s.metrics.training_outcome() is not None), None)
    energy = step.energy if step is not None else None
    if energy is None or energy.emissions_kg_co2eq is None:
        return None
    out = {"emissions": float(f"{float(energy.emissions_kg_co2eq) * 1000:.6g}"),
           "source": plain_text(f"codecarbon via hf_cost ({energy.method or 'method not recorded'})", 200),
           "training_type": "fine-tuning", "hardware_used": plain_text(results.environment.describe_hardware(detailed=True), 300)}
    if energy.region:
        out["geographical_location"] = plain_text(energy.region, 100)
    return out


def _dataset_fields(results: RunResult, cell: str) -> dict[str, Any]:
    """dataset_type/name/split/(config, revision) of a quality cell (``DRIFT:PERIOD`` or an accuracy step)."""
    scenario, _, period = cell.partition(":")
    ds = _dataset_block(results, scenario)
    split = period or _split(ds)
    if ds.get("id"):
        out = {"dataset_type": ds["id"], "dataset_name": f"{ds['id']} {period or cell}", "dataset_split": split}
        out.update({k: ds[v] for k, v in (("dataset_config", "config"), ("dataset_revision", "revision")) if ds.get(v)})
        return out
    if not ds.get("path"):
        return {"dataset_type": "unknown", "dataset_name": cell, "dataset_split": split}
    path = Path(ds["path"])
    path = path if path.is_absolute() else Path(results.scenario_file or ".").parent / path
    label = path.parent.name if path.parent.name.endswith(path.stem) else path.stem
    try:  # regular files only, size-limited: a results file may name /dev/zero or a FIFO
        readme = read_regular_bytes(path.parent / "README.md", what="dataset README", limit=LIMITS["card"])
        synthetic = "synthetic" in readme[:3000].decode("utf-8", "replace").lower()
    except (UserError, OSError, ValueError):
        synthetic = False
    out = {"dataset_type": f"local/{path.name}", "dataset_split": split,
           "dataset_name": f"{label}{' (synthetic)' if synthetic else ''} {period or cell}"}
    try:
        out["dataset_revision"] = "sha256:" + sha256_regular(path, what="dataset", limit=LIMITS["dataset"])[:12]
    except (UserError, OSError, ValueError):
        pass  # not a regular file within the limit (or gone): the card names no revision
    return out
