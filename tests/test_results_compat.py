"""Results files of schema 3.1 still read, through the one loader (report/results_file.py).

The fixture is a real 3.1 file, whole: the default run of the previous version (three candidates;
fine_tune, distill, onnx_int8, single_stream, offline, compare, drift; a comparison, costs and a
selection), gzip-compressed (tests/data/README.md). The same file upgraded to 4.0 (loaded, then
written by the schema) must give the same card sections and the same selection; what 4.0 renamed
is there under its new name and nothing else moved. Files the upgrade cannot read are refused in
one line that says why, through `card` and `select` alike.
"""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from hf_cost.cards.from_results import card_sections
from hf_cost.cli import main
from hf_cost.config.schema import suite_model
from hf_cost.report.results_file import load_results_file
from hf_cost.report.schema import SCHEMA_VERSION
from hf_cost.select.run_selection import select_results

FIXTURE = Path(__file__).parent / "data" / "results-3.1-default-run.json.gz"
TRAINING = ("fine_tune", "distill")  # the kinds whose scoring.runs 4.0 calls run_count


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """old/results.json (3.1, as the fixture has it) and new/results.json (the same, upgraded and
    written by the 4.0 schema), each in its own folder so the card's paths read the same."""
    root = tmp_path_factory.mktemp("compat")
    text = gzip.decompress(FIXTURE.read_bytes()).decode("utf-8")
    (root / "old").mkdir()
    (root / "new").mkdir()
    old = root / "old" / "results.json"
    old.write_text(text, encoding="utf-8")
    upgraded = load_results_file(old).model_dump(mode="json")
    new = root / "new" / "results.json"
    new.write_text(json.dumps(upgraded, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return {"root": root, "old": old, "new": new, "data": json.loads(text), "upgraded": upgraded}


def contained(old: Any, new: Any, at: str = "") -> list[str]:
    """Where `new` does not hold what `old` holds (new may add keys: fields with defaults)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k, v in old.items() for p in
                (contained(v, new[k], f"{at}.{k}") if k in new else [f"{at}.{k} missing"])]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [p for i, (a, b) in enumerate(zip(old, new)) for p in contained(a, b, f"{at}[{i}]")]
    return [] if old == new else [f"{at}: {old!r} != {new!r}"[:200]]


def test_the_fixture_is_a_3_1_default_run(files: dict[str, Any]) -> None:
    data = files["data"]
    assert data["schema_version"] == "3.1" and len(data["candidates"]) == 3
    assert {s["kind"] for s in data["scenarios"]} == {*TRAINING, "onnx_int8", "single_stream", "offline", "compare",
                                                       "drift"}
    assert data["comparison"] and data["selection"] and data["costs"]
    assert all("runs" in s["metrics"]["scoring"] for s in data["scenarios"] if s["kind"] in TRAINING)
    assert any(s["memory"] == {} for s in data["scenarios"])  # 3.x's spelling of "no memory figures"


def test_the_upgrade_renames_nulls_and_moves_nothing_else(files: dict[str, Any]) -> None:
    old, new = copy.deepcopy(files["data"]), files["upgraded"]
    assert new["schema_version"] == SCHEMA_VERSION
    for s, t in zip(old["scenarios"], new["scenarios"]):
        if s["kind"] in TRAINING:
            runs = s["metrics"]["scoring"].pop("runs")
            assert t["metrics"]["scoring"]["run_count"] == runs and "runs" not in t["metrics"]["scoring"]
            s["metrics"]["scoring"]["run_count"] = runs
        if s["memory"] == {}:
            assert t["memory"] is None
            s["memory"] = None
    old["schema_version"] = SCHEMA_VERSION
    assert contained(old, new) == []


def test_the_card_is_the_same(files: dict[str, Any]) -> None:
    """The sections, and the card file `card` writes (run from each folder, so its paths read the same)."""
    old, new = load_results_file(files["old"]), load_results_file(files["new"])
    assert old.schema_version == new.schema_version == SCHEMA_VERSION  # read as 4.0: no version in the card
    assert card_sections(old) == card_sections(new)
    cards = {}
    for name in ("old", "new"):
        folder = files["root"] / name
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(folder)
            assert main(["card", "results.json", "--card", "README.md"]) == 0
        cards[name] = (folder / "README.md").read_text(encoding="utf-8")
    assert cards["old"] == cards["new"]
    assert "time to target 51.6 s (1 run(s), converged)" in cards["old"]  # the renamed scoring, read


def test_select_gives_the_same_selection(files: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    old, new = load_results_file(files["old"]), load_results_file(files["new"])
    spec = suite_model().model_validate(old.suite).select
    ours = select_results([("results.json", old)], spec)
    assert ours == select_results([("results.json", new)], spec)
    assert ours.model_dump(mode="json") == files["data"]["selection"]  # and the 3.1 run's own, recomputed
    printed = []
    for name in ("old", "new"):
        assert main(["select", str(files[name])]) == 0
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] and "recommended: " in printed[0]


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def edited(files: dict[str, Any], tmp_path: Path, change: Any) -> Path:
    data = copy.deepcopy(files["data"])
    change(data)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def fine_tune(data: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in data["scenarios"] if s["kind"] == "fine_tune")


@pytest.mark.parametrize("runs", ["three", "1", 2.5, True, None, [1]])
def test_a_3_1_scoring_runs_that_is_not_an_integer_is_refused(files: dict[str, Any], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str], runs: Any) -> None:
    path = edited(files, tmp_path, lambda d: fine_tune(d)["metrics"]["scoring"].update(runs=runs))
    for argv in (["select", str(path)], ["card", str(path), "--card", str(tmp_path / "README.md")]):
        refused(capsys, argv, str(path), f"scenarios[0].metrics.scoring.runs: {json.dumps(runs)} is not a number of "
                "runs (an integer; schema 3.1)")
    assert not (tmp_path / "README.md").exists()


def test_an_upgraded_file_names_the_key_it_wrote(files: dict[str, Any], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """An error under a renamed key is reported under the file's own name for it."""
    path = edited(files, tmp_path, lambda d: fine_tune(d)["metrics"]["scoring"].update(runs=-1))
    refused(capsys, ["select", str(path)], "scenarios[0].metrics.scoring.runs: Input should be greater than or equal "
            "to 0 (got -1) (schema 3.1, read as 4.0)")


@pytest.mark.parametrize("version, why", [
    ("2.0", "written by an older hf_cost (schema 2.0); this one reads schema 3.0, 3.1 (upgraded) and 4.0: rerun the "
            "scenario"),
    ("3.2", "schema 3.2 is no version hf_cost wrote; this one reads schema 3.0, 3.1 (upgraded) and 4.0"),
    ("4.1", "written by a newer hf_cost (schema 4.1); this one reads up to 4.0"),
])
def test_versions_it_cannot_read_are_refused_saying_why(files: dict[str, Any], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str], version: str,
                                                        why: str) -> None:
    path = edited(files, tmp_path, lambda d: d.update(schema_version=version))
    refused(capsys, ["select", str(path)], str(path), why)
    refused(capsys, ["card", str(path), "--card", str(tmp_path / "README.md")], why)
