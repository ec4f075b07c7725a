"""`select` against hostile inputs and targets, end to end through the CLI (issue 14).

One real run (a fine-tuned candidate, one whose building step fails, latency and accuracy)
writes the results.json every case starts from; each case copies or edits it in its own folder.
A refused case must exit 2 with exactly one stderr line starting "error:", print nothing on
stdout, and leave every input byte-identical.
"""

from __future__ import annotations

import copy
import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import write_scenario
from scenario_helpers import easy_csv, fine_tune_yaml, suite_yaml

from hf_cost.cli import main
from hf_cost.errors import UserError
from hf_cost.report.results_file import load_results_file
from hf_cost.safe_files import LIMITS
from hf_cost.select.targets import SOFTWARE, is_own_json, is_own_png

SELECT_BLOCK = """
select:
  objectives: [{metric: accuracy, direction: max}, {metric: p90_latency_ms, direction: min}]
"""


@pytest.fixture(scope="module")
def run(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import hf_cost.steps.fine_tune as ft

    tmp = tmp_path_factory.mktemp("hostile-select")
    data = easy_csv(tmp / "easy.csv", tiny_bert_dir, n=80)
    steps = (fine_tune_yaml(data, name="ft", max_steps=10, eval_every=5)
             + fine_tune_yaml(data, name="broken", max_steps=2, eval_every=2)
             + f"""
  - kind: single_stream
    warmup_queries: 1
    min_duration_s: 0.05
    min_query_count: 10
  - kind: accuracy
    name: acc
    dataset: {{path: {json.dumps(str(data))}, label_column: label, select: holdout}}
    bootstrap_resamples: 50
""")
    scenario = write_scenario(tmp, suite_yaml(tiny_bert_dir, steps) + SELECT_BLOCK)
    original = ft.FineTuneBuilder.run

    def crash(self: Any, step: Any, context: Any) -> Any:
        if step.name == "broken":
            raise RuntimeError("simulated crash\nwith a second line")
        return original(self, step, context)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ft.FineTuneBuilder, "run", crash)
        code = main(["run", str(scenario), "--output", str(tmp / "out"), "--quiet"])
    assert code == 3  # written, with a failed step
    path = tmp / "out" / "results.json"
    return {"path": path, "text": path.read_text(encoding="utf-8"), "data": json.loads(path.read_text(encoding="utf-8"))}


@pytest.fixture
def results(run: dict[str, Any], tmp_path: Path) -> Path:
    """A private copy of the run's results.json."""
    path = tmp_path / "results.json"
    path.write_text(run["text"], encoding="utf-8")
    return path


def edited(run: dict[str, Any], tmp_path: Path, change: Any, name: str = "edited.json") -> Path:
    data = copy.deepcopy(run["data"])
    change(data)
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def refused(capsys: pytest.CaptureFixture[str], args: list[Any], fragment: str, *inputs: Path) -> str:
    """Run `select ARGS`; assert exit 2, one 'error:' line holding `fragment`, inputs unchanged."""
    before = {p: p.read_bytes() for p in inputs}
    code = main(["select", *map(str, args)])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]
    assert out == ""  # nothing printed before the error
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path} changed"
    return lines[0]


def selected(capsys: pytest.CaptureFixture[str], args: list[Any]) -> str:
    code = main(["select", *map(str, args)])
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    return out


def constraints(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- the loader on a real file


def test_real_results_round_trip(run: dict[str, Any]) -> None:
    assert load_results_file(run["path"]).model_dump(mode="json") == run["data"]


def test_in_run_selection_lists_the_failed_candidate(run: dict[str, Any]) -> None:
    sel = run["data"]["selection"]
    assert sel["recommended"] == "ft" and sel["failed"] == ["broken"]
    assert sel["verdicts"]["broken"] == "FAILED in step broken: RuntimeError: simulated crash with a second line"
    assert "broken" not in sel["frontier"] + sel["feasible"]


def test_metric_names_are_the_documented_ones(run: dict[str, Any]) -> None:
    import hf_cost.select.from_results as fr
    from hf_cost.config.selection import CELL, METRICS

    for name in METRICS:
        assert f"``{name}``" in (fr.__doc__ or "")
    measured = {m for ms in fr.candidate_metrics(load_results_file(run["path"])).values() for m in ms}
    assert {m for m in measured if not m.startswith(CELL)} <= set(METRICS)


# ---------------------------------------------------------------- targets


def test_json_or_plot_onto_an_input_is_refused(run: dict[str, Any], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    res = tmp_path / "results.json"
    res.write_text(run["text"])
    as_png = tmp_path / "results.png"
    as_png.write_text(run["text"])
    spec = constraints(tmp_path, '{"objectives": [{"metric": "accuracy", "direction": "max"}]}', "c.json")
    link = tmp_path / "link.json"
    link.symlink_to(res)
    hard = tmp_path / "hard.json"
    os.link(res, hard)
    for args in ([res, "--json", res], [as_png, "--plot", as_png], [res, "--constraints", spec, "--json", spec],
                 [res, "--json", link], [res, "--json", hard], [res, "--json", tmp_path / "." / "results.json"]):
        for force in ([], ["--force"]):
            refused(capsys, args + force, "is one of this command's inputs", res, as_png, spec)
    assert link.is_symlink()


def test_an_existing_user_file_needs_force(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user_json, user_png = tmp_path / "mine.json", tmp_path / "mine.png"
    user_json.write_text('{"written_by": "me"}')
    user_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    refused(capsys, [results, "--json", user_json], "did not write it; pass --force", results, user_json)
    refused(capsys, [results, "--plot", user_png], "did not write it; pass --force", results, user_png)
    out = selected(capsys, [results, "--json", user_json, "--plot", user_png, "--force"])
    assert f"wrote {user_json}" in out and f"wrote {user_png}" in out
    assert json.loads(user_json.read_text())["written_by"] == SOFTWARE and is_own_png(user_png)


def test_a_file_select_wrote_is_replaced(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    js, png = tmp_path / "sel.json", tmp_path / "sel.png"
    selected(capsys, [results, "--json", js, "--plot", png])
    assert is_own_json(js) and is_own_png(png)
    js.write_text(js.read_text().replace('"recommended": "ft"', '"recommended": "old"'))
    selected(capsys, [results, "--json", js, "--plot", png])  # no --force needed
    assert json.loads(js.read_text())["recommended"] == "ft"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "sel.json", "sel.png"]  # no temp left


@pytest.mark.parametrize("flag, name", [("--json", "x.txt"), ("--plot", "x.jpg"), ("--json", "x")])
def test_wrong_suffix_is_refused(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 flag: str, name: str) -> None:
    refused(capsys, [results, flag, tmp_path / name], "must name a", results)
    assert not (tmp_path / name).exists()


def test_non_regular_targets_are_refused_even_with_force(results: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "folder.json"
    folder.mkdir()
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    to_folder = tmp_path / "to-folder.json"
    to_folder.symlink_to(folder)
    for args, fragment in (([results, "--json", folder], "is a folder"),
                           ([results, "--plot", fifo], "is a FIFO"),
                           ([results, "--json", to_folder], "symbolic link to a folder"),
                           ([results, "--json", "/proc/self/x.json"], "is under /proc"),
                           ([results, "--plot", "/sys/x.png"], "is under /sys"),
                           ([results, "--json", "/dev/null.json"], "is under /dev")):
        refused(capsys, args, fragment, results)
        refused(capsys, args + ["--force"], fragment, results)
    assert folder.is_dir() and not any(folder.iterdir())


def test_missing_parent_folder_is_refused_not_created(results: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    refused(capsys, [results, "--json", tmp_path / "nope" / "x.json"], "does not exist", results)
    refused(capsys, [results, "--plot", results / "x.png"], "is not a folder", results)
    assert not (tmp_path / "nope").exists()


def test_a_symlink_target_is_replaced_as_a_link_only_with_force(results: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    user = tmp_path / "user.json"
    user.write_text('{"mine": 1}')
    link = tmp_path / "link.json"
    link.symlink_to(user)
    refused(capsys, [results, "--json", link], "symbolic link; pass --force", results, user)
    selected(capsys, [results, "--json", link, "--force"])
    assert not link.is_symlink() and is_own_json(link) and user.read_text() == '{"mine": 1}'


@pytest.mark.parametrize("call, code", [("replace", errno.ENOSPC), ("fsync", errno.ENOSPC), ("replace", errno.EISDIR),
                                        ("mkstemp", errno.EROFS)])
def test_a_failed_write_is_one_line_and_leaves_no_temp(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch, call: str, code: int) -> None:
    from hf_cost.select import targets

    js = tmp_path / "sel.json"
    selected(capsys, [results, "--json", js])
    old = js.read_bytes()

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(targets.tempfile if call == "mkstemp" else targets.os, call, fail)
    line = refused(capsys, [results, "--json", js, "--plot", tmp_path / "sel.png"], os.strerror(code), results)
    assert line.startswith(f"error: {tmp_path / 'sel'}")
    assert js.read_bytes() == old and not (tmp_path / "sel.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "sel.json"]


# ---------------------------------------------------------------- results files that are not files


def test_results_that_are_not_regular_files(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    refused(capsys, [fifo], "is a FIFO")
    refused(capsys, ["/dev/zero"], "is a character device")
    refused(capsys, [tmp_path], "is a folder")
    refused(capsys, [tmp_path / "absent.json"], "no such file")
    refused(capsys, [results, "--constraints", fifo], "constraints file: is a FIFO", results)
    refused(capsys, [results, "--constraints", "/dev/zero"], "constraints file: is a character device", results)
    monkeypatch.setitem(LIMITS, "results", 1000)
    refused(capsys, [results], "over the 1000 bytes limit", results)


# ---------------------------------------------------------------- results files with bad content


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.pop("schema_version"), "no 'schema_version'"),
    (lambda d: d.update(schema_version="3.99"), "schema 3.99 is no version hf_cost wrote; this one reads schema 3.0, 3.1"),
    (lambda d: d.update(schema_version="4.1"), "written by a newer hf_cost (schema 4.1); this one reads up to 4.0"),
    (lambda d: d.update(schema_version="9.0"), "written by a newer hf_cost (schema 9.0)"),
    (lambda d: d.update(schema_version="2.0"), "written by an older hf_cost (schema 2.0); this one reads schema 3.0, 3.1 "
                                               "(upgraded) and 4.0: rerun the scenario"),
    (lambda d: d.update(schema_version="three\nlines"), 'schema_version: "three\\nlines" is not a "MAJOR.MINOR"'),
    (lambda d: d.update(schema_version=3.1), "is not a \"MAJOR.MINOR\" string"),
    (lambda d: d["candidates"]["ft"].pop("parameters"), "candidates.ft.parameters: Field required"),
    (lambda d: d["candidates"]["ft"].update(parameters=10**14), "candidates.ft.parameters: Input should be less than"),
    (lambda d: d["comparison"]["rows"][1]["quality"][0].update(accuracy=1.5),
     "comparison.rows[1].quality[0].accuracy: Input should be less than or equal to 1 (got 1.5)"),
    (lambda d: next(s for s in d["scenarios"] if s["kind"] == "single_stream")["metrics"]["latency_ms"].update(min_ms=-1),
     ".metrics.latency_ms.min_ms: Input should be greater than or equal to 0"),
    (lambda d: next(s for s in d["scenarios"] if s["kind"] == "single_stream")["raw"].update(latencies_ms=[]),
     ".raw.latencies_ms: a measured single_stream needs its raw latencies"),
    (lambda d: next(s for s in d["scenarios"] if s["kind"] == "single_stream")["raw"].update(latencies_ms=[1, -2]),
     ".raw.latencies_ms[1]: -2 is not a latency (a number >= 0)"),
    (lambda d: next(s for s in d["scenarios"] if s["kind"] == "single_stream").update(metrics=None),
     ".metrics: an ok step needs its figures (null is only for a failed step)"),
    (lambda d: next(s for s in d["scenarios"] if s["kind"] == "fine_tune")["metrics"]["scoring"].update(run_count="x"),
     ".metrics.scoring.run_count: Input should be a valid integer"),
    (lambda d: d["candidates"].update(ft="not a candidate"), "candidates.ft: Input should be a valid dictionary"),
])
def test_bad_content_is_one_line(run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 change: Any, fragment: str) -> None:
    path = edited(run, tmp_path, change)
    refused(capsys, [path], fragment, path)


@pytest.mark.parametrize("old, new, fragment", [
    ('"accuracy": 0.', '"accuracy": NaN, "x": 0.', "accuracy: NaN is not a number JSON allows"),
    ('"accuracy": 0.', '"accuracy": Infinity, "x": 0.', "accuracy: Infinity is not a number JSON allows"),
    ('"accuracy": 0.', '"accuracy": -Infinity, "x": 0.', "-Infinity is not a number JSON allows"),
    ('"accuracy": 0.', '"accuracy": 1e308, "x": 0.', "accuracy: 1e308 is beyond"),
    ('"parameters": ', '"parameters": 1' + "0" * 400 + ', "x": ', "candidates.base.parameters: 1000"),
    ('"candidates": {', '"candidates": [', "not JSON"),
])
def test_numbers_json_does_not_allow_are_refused(run: dict[str, Any], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], old: str, new: str,
                                                 fragment: str) -> None:
    assert old in run["text"]
    path = tmp_path / "r.json"
    path.write_text(run["text"].replace(old, new, 1))
    refused(capsys, [path], fragment, path)


def test_deep_nesting_and_wrong_top_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text, fragment in (("deep.json", '{"a":' * 100 + "1" + "}" * 100, "nested deeper than 64 levels"),
                                 ("deeper.json", "[" * 100000 + "]" * 100000, "nested deeper"),
                                 ("list.json", "[1, 2]", "the top level is a list"),
                                 ("empty.json", "", "not JSON"),
                                 ("latin1.json", '{"a": "\xe9"}', "not UTF-8")):
        path = tmp_path / name
        path.write_bytes(text.encode("latin-1"))
        refused(capsys, [path], fragment, path)


def test_loader_errors_name_the_file(run: dict[str, Any], tmp_path: Path) -> None:
    path = edited(run, tmp_path, lambda d: d["candidates"]["base"].update(parameters=-1))
    with pytest.raises(UserError) as err:
        load_results_file(path)
    assert err.value.where == str(path) and "candidates.base.parameters" in str(err.value)


# ---------------------------------------------------------------- metric names


@pytest.mark.parametrize("text, fragment", [
    ("constraints: [{metric: p90_latency_msec, max: 10}]\nobjectives: [{metric: accuracy, direction: max}]\n",
     "constraints[0].metric: unknown metric 'p90_latency_msec'; did you mean 'p90_latency_ms'? (known: p50_latency_ms,"),
    ("objectives: [{metric: acuracy, direction: max}]\n", "objectives[0].metric: unknown metric 'acuracy'; did you mean 'accuracy'?"),
    ("objectives: [{metric: 'accuracy:acc2', direction: max}]\n",
     "no quality cell 'acc2' in the results; did you mean 'accuracy:acc'? (cells: acc)"),
])
def test_unknown_metrics_are_refused(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     text: str, fragment: str) -> None:
    spec = constraints(tmp_path, text)
    line = refused(capsys, [results, "--constraints", spec], fragment, results, spec)
    assert line.startswith(f"error: {spec}: ")


def test_a_scenario_select_block_refuses_unknown_metrics(tiny_bert_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    base = suite_yaml(tiny_bert_dir, "\n  - kind: single_stream\n")
    good = write_scenario(tmp_path, base + SELECT_BLOCK.replace("accuracy,", "'accuracy:any-cell',"), "good.yaml")
    assert main(["validate", str(good)]) == 0
    bad = write_scenario(tmp_path, base + SELECT_BLOCK.replace("p90_latency_ms", "p90_latency_msec"), "bad.yaml")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "select.objectives[1].metric: unknown metric 'p90_latency_msec'; did you mean 'p90_latency_ms'?" in err
    axis = write_scenario(tmp_path, base + SELECT_BLOCK + "  plot_x: latency\n", "axis.yaml")
    assert main(["validate", str(axis)]) == 2
    assert "select.plot_x: unknown metric 'latency'" in capsys.readouterr().err


# ---------------------------------------------------------------- failed candidates


def test_a_failed_building_step_is_listed_not_dropped(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = selected(capsys, [results])
    assert "recommended: ft" in out
    assert "- broken: FAILED in step broken: RuntimeError: simulated crash with a second line" in out.splitlines()


def test_a_failed_measuring_step_is_never_recommended(run: dict[str, Any], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    failed = {"name": "acc", "kind": "accuracy", "candidate": "ft", "status": "failed", "error": "out of memory",
              "settings": {}, "metrics": None, "raw": {}}
    path = edited(run, tmp_path, lambda d: d["scenarios"].append(failed))
    js = tmp_path / "sel.json"
    out = selected(capsys, [path, "--json", js])
    assert "recommended: none" in out and "- ft: FAILED in step acc: out of memory" in out.splitlines()
    summary = json.loads(js.read_text())
    assert summary["failed"] == ["ft", "broken"] and summary["recommended"] is None
    assert "ft" not in summary["frontier"] + summary["feasible"]
