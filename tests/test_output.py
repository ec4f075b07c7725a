"""The run's output directory: staging, exclusive lock, commit, and never touching other files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from hf_cost.errors import UserError
from hf_cost.output import OutputBusyError, RunOutput, inside


def tree_digest(root: Path) -> str:
    """Every path (files and folders) under ``root`` with every file's bytes."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(p.relative_to(root).as_posix().encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def stage_run(out: RunOutput, text: str, checkpoints: tuple[str, ...] = ()) -> None:
    (out.stage / "results.json").write_text(json.dumps({"run": text}))
    (out.stage / "report.md").write_text(f"# {text}\n")
    for name in checkpoints:
        ck = out.path_in_stage(f"checkpoints/{name}")
        ck.mkdir(parents=True)
        (ck / "model.safetensors").write_text(f"{text}-{name}")


def complete_run(root: Path, text: str, checkpoints: tuple[str, ...] = ()) -> list[str]:
    out = RunOutput.open(root)
    stage_run(out, text, checkpoints)
    return out.commit(created_utc=text)


def test_abandoned_run_into_a_new_directory_leaves_nothing(tmp_path: Path) -> None:
    out = RunOutput.open(tmp_path / "a" / "b" / "out")
    stage_run(out, "one", ("ft",))
    out.abandon()
    assert list(tmp_path.iterdir()) == []  # a/, a/b/, out/ and .hf_cost/ all went again


def test_commit_moves_everything_in_and_keeps_user_files(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    assert complete_run(root, "one", ("ft",)) == []
    assert json.loads((root / "results.json").read_text()) == {"run": "one"}
    assert (root / "checkpoints" / "ft" / "model.safetensors").read_text() == "one-ft"
    assert (root / "notes.txt").read_text() == "mine"
    manifest = json.loads((root / ".hf_cost" / "manifest.json").read_text())
    assert [e["path"] for e in manifest["entries"]] == ["checkpoints/ft", "report.md", "results.json"]
    ft, report = manifest["entries"][0], manifest["entries"][1]
    assert ft["kind"] == "folder" and ft["folders"] == []
    assert ft["files"] == {"model.safetensors": {"size": 6, "sha256": hashlib.sha256(b"one-ft").hexdigest()}}
    assert report == {"path": "report.md", "kind": "file", "size": len("# one\n"),
                      "sha256": hashlib.sha256(b"# one\n").hexdigest()}
    assert [p.name for p in (root / ".hf_cost").iterdir() if p.name.startswith("staging")] == []


def test_rerun_replaces_only_the_previous_runs_entries(tmp_path: Path) -> None:
    root = tmp_path / "out"
    complete_run(root, "one", ("old-ft",))
    (root / "checkpoints" / "user-model").mkdir()
    (root / "checkpoints" / "user-model" / "w.bin").write_text("user's")
    replaced = complete_run(root, "two", ("new-ft",))
    assert sorted(replaced) == ["checkpoints/old-ft", "report.md", "results.json"]
    assert json.loads((root / "results.json").read_text()) == {"run": "two"}
    assert not (root / "checkpoints" / "old-ft").exists()  # the earlier run's, listed in its manifest
    assert (root / "checkpoints" / "user-model" / "w.bin").read_text() == "user's"


def test_abandoned_rerun_leaves_earlier_output_byte_identical(tmp_path: Path) -> None:
    root = tmp_path / "out"
    complete_run(root, "one", ("ft",))
    before = tree_digest(tmp_path)
    out = RunOutput.open(root)
    stage_run(out, "two", ("ft",))
    out.abandon()
    assert tree_digest(tmp_path) == before


def test_failure_midway_through_commit_puts_everything_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "out"
    complete_run(root, "one", ("ft",))
    before = tree_digest(root)
    out = RunOutput.open(root)
    stage_run(out, "two", ("ft",))
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:  # after the 3 old entries went out and 1 new one came in
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError):
        out.commit(created_utc="two")
    monkeypatch.setattr(os, "replace", real_replace)
    out.abandon()
    assert tree_digest(root) == before


def test_a_file_hf_cost_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / "report.md").write_text("the user's own report")
    out = RunOutput.open(root)
    with pytest.raises(UserError, match="was not written by an earlier hf_cost run"):
        out.check_free(["results.json", "report.md"])
    stage_run(out, "one")
    with pytest.raises(UserError, match="report.md"):
        out.commit(created_utc="one")
    out.abandon()
    assert (root / "report.md").read_text() == "the user's own report"
    assert not (root / "results.json").exists()


OLD_RESULTS = json.dumps({"schema_version": "1.0", "hf_cost_version": "0.1.0"})


@pytest.mark.parametrize("manifest", [None, {"entries": ["results.json", "report.md"], "writer": "hf_cost"}],
                         ids=["no manifest", "manifest without checksums"])
def test_results_from_before_checksums_are_adopted(tmp_path: Path, manifest: dict | None) -> None:
    root = tmp_path / "out"
    (root / ".hf_cost").mkdir(parents=True)
    if manifest is not None:
        (root / ".hf_cost" / "manifest.json").write_text(json.dumps(manifest))
    (root / "results.json").write_text(OLD_RESULTS)
    (root / "report.md").write_text("# hf_cost report: old\n")
    assert sorted(complete_run(root, "new")) == ["report.md", "results.json"]
    assert (root / "report.md").read_text() == "# new\n"


def test_before_checksums_only_results_and_an_hf_cost_report_are_adopted(tmp_path: Path) -> None:
    """A manifest without checksums names a checkpoint and the user's own report.md: neither is
    taken (they may have changed since), so the run that needs those names refuses."""
    root = tmp_path / "out"
    (root / ".hf_cost").mkdir(parents=True)
    (root / ".hf_cost" / "manifest.json").write_text(
        json.dumps({"entries": ["results.json", "report.md", "checkpoints/ft"], "writer": "hf_cost"}))
    (root / "results.json").write_text(OLD_RESULTS)
    (root / "report.md").write_text("my own notes on that run\n")
    (root / "checkpoints" / "ft").mkdir(parents=True)
    (root / "checkpoints" / "ft" / "w.bin").write_text("weights")
    (root / ".hf_cost" / "lock").touch()  # as an earlier run left it
    before = tree_digest(root)
    out = RunOutput.open(root)
    with pytest.raises(UserError, match=r"report\.md exists and was not written by an earlier hf_cost run"):
        out.check_free(["results.json", "report.md"])
    with pytest.raises(UserError, match=r"checkpoints/ft exists .*recorded no checksums"):
        out.check_free(["checkpoints/ft"])
    out.abandon()
    assert tree_digest(root) == before
    # A run that needs neither name replaces results.json only; the rest stays.
    out = RunOutput.open(root)
    (out.stage / "results.json").write_text("{}")
    assert out.commit(created_utc="new") == ["results.json"]
    assert (root / "report.md").read_text() == "my own notes on that run\n"
    assert (root / "checkpoints" / "ft" / "w.bin").read_text() == "weights"


# --- a manifest edited by hand, entries changed after the run ----------------------------------


def edit_manifest(root: Path, change) -> None:  # type: ignore[no-untyped-def]
    path = root / ".hf_cost" / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("listed", [
    "notes.txt",  # a name only
    {"path": "notes.txt"},  # an entry without a record
    {"path": "notes.txt", "kind": "file", "size": 4, "sha256": "0" * 64},  # a record that does not match
], ids=["name", "no record", "wrong checksum"])
def test_a_hand_edited_manifest_never_makes_a_user_file_hf_costs(tmp_path: Path, listed: object) -> None:
    root = tmp_path / "out"
    complete_run(root, "one")
    (root / "notes.txt").write_text("mine")
    edit_manifest(root, lambda m: m["entries"].append(listed))
    out = RunOutput.open(root)
    with pytest.raises(UserError, match=r"notes\.txt exists and was not written by an earlier hf_cost run"):
        out.check_free(["results.json", "notes.txt"])
    out.abandon()
    assert complete_run(root, "two") == ["report.md", "results.json"]  # notes.txt is not replaced or removed
    assert (root / "notes.txt").read_text() == "mine"
    assert "notes.txt" not in (root / ".hf_cost" / "manifest.json").read_text()


@pytest.mark.parametrize("edit", ["append", "extra file", "extra folder", "symlink", "remove"])
def test_an_entry_changed_after_the_run_is_kept_and_not_replaced(tmp_path: Path, edit: str) -> None:
    root = tmp_path / "out"
    complete_run(root, "one", ("ft",))
    ft = root / "checkpoints" / "ft"
    if edit == "append":
        with (root / "report.md").open("a") as fh:
            fh.write("my notes\n")
        name = "report.md"
    else:
        name = "checkpoints/ft"
        if edit == "extra file":
            (ft / "notes.txt").write_text("mine")
        elif edit == "extra folder":
            (ft / "mine").mkdir()
        elif edit == "symlink":
            (ft / "link").symlink_to(tmp_path)
        else:
            (ft / "model.safetensors").unlink()
    before = tree_digest(root)
    out = RunOutput.open(root)
    with pytest.raises(UserError, match=f"{name} exists and was not written by an earlier hf_cost run"):
        out.check_free(["results.json", "report.md", "checkpoints/ft"])
    stage_run(out, "two", ("ft",))
    with pytest.raises(UserError, match=name):
        out.commit(created_utc="two")
    out.abandon()
    assert tree_digest(root) == before
    # A run that does not need the name leaves it where it is (and forgets it).
    other = ("other",) if name == "checkpoints/ft" else ()
    out = RunOutput.open(root)
    (out.stage / "results.json").write_text("{}")
    for ck in other:
        out.path_in_stage(f"checkpoints/{ck}").mkdir(parents=True)
    replaced = out.commit(created_utc="three")
    assert name not in replaced and "results.json" in replaced
    assert (root / name).exists() or (root / name).is_symlink()
    assert name not in [e["path"] for e in json.loads((root / ".hf_cost" / "manifest.json").read_text())["entries"]]


def test_a_manifest_path_through_a_symlink_is_not_trusted(tmp_path: Path) -> None:
    """checkpoints/ replaced by a link to the user's own folder holding the same bytes."""
    root = tmp_path / "out"
    complete_run(root, "one", ("ft",))
    elsewhere = tmp_path / "elsewhere"
    (root / "checkpoints").rename(elsewhere)
    (root / "checkpoints").symlink_to(elsewhere)
    out = RunOutput.open(root)
    with pytest.raises(UserError, match="symbolic link"):
        out.check_free(["checkpoints/ft"])
    out.abandon()
    assert (elsewhere / "ft" / "model.safetensors").read_text() == "one-ft"


def test_normal_reruns_replace_their_own_entries_every_time(tmp_path: Path) -> None:
    root = tmp_path / "out"
    out = RunOutput.open(root)
    stage_run(out, "one", ("ft", "other"))
    (out.path_in_stage("checkpoints/ft") / "onnx" / "empty").mkdir(parents=True)  # nested, and empty
    (out.path_in_stage("checkpoints/ft") / "onnx" / "model.onnx").write_bytes(os.urandom(3 * 1024 * 1024))
    out.commit(created_utc="one")
    assert sorted(complete_run(root, "two", ("ft",))) == [
        "checkpoints/ft", "checkpoints/other", "report.md", "results.json"]
    assert not (root / "checkpoints" / "other").exists()
    assert not (root / "checkpoints" / "ft" / "onnx").exists()
    assert sorted(complete_run(root, "three", ("ft",))) == ["checkpoints/ft", "report.md", "results.json"]
    assert (root / "checkpoints" / "ft" / "model.safetensors").read_text() == "three-ft"
    assert json.loads((root / "results.json").read_text()) == {"run": "three"}


def test_second_run_into_the_same_directory_is_refused(tmp_path: Path) -> None:
    first = RunOutput.open(tmp_path / "out")
    try:
        with pytest.raises(OutputBusyError, match=f"pid {os.getpid()}"):
            RunOutput.open(tmp_path / "out")
    finally:
        first.abandon()
    RunOutput.open(tmp_path / "out").abandon()  # free again once the first has gone


@pytest.mark.parametrize("relative", ["..", "../x", "/etc", "a/../../x"])
def test_inside_refuses_paths_that_leave_the_root(tmp_path: Path, relative: str) -> None:
    with pytest.raises(UserError, match="not inside"):
        inside(tmp_path / "root", tmp_path / "root" / relative)


def test_inside_refuses_a_symlink_that_points_out(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError):
        inside(tmp_path / "root", tmp_path / "root" / "link" / "file")
    assert inside(tmp_path / "root", tmp_path / "root" / "a" / "b") == (tmp_path / "root" / "a" / "b").resolve()


def test_an_interrupt_swallowed_by_library_code_is_raised_again() -> None:
    """A handler's exception raised inside a __del__ or a broad `except` is lost; the signal
    is recorded, so the next progress line (or training step) raises it again."""
    import signal

    from hf_cost.output import Interrupted, signals_as_interrupts
    from hf_cost.progress import Progress

    progress = Progress(enabled=False)
    with signals_as_interrupts():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs at a bytecode boundary in here
                pass
        except BaseException:  # noqa: BLE001 - what careless library code does
            pass
        with pytest.raises(Interrupted) as caught:
            progress.say("next step")
        assert caught.value.signal_name == "SIGTERM"
    progress.say("outside the block, nothing is pending")


def test_an_interrupt_that_library_code_turned_into_another_error_is_reported_as_such() -> None:
    """safetensors loading turns the handler's exception into a ValueError; the run must still
    end as an interruption (exit 130/143 and the clean-up), not as a crash."""
    import signal

    from hf_cost.output import Interrupted, signals_as_interrupts

    with pytest.raises(Interrupted) as caught:
        with signals_as_interrupts():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):
                    pass
            except BaseException as exc:  # noqa: BLE001
                raise ValueError("could not determine the shape of object type") from exc
    assert caught.value.signal_name == "SIGINT"
    with pytest.raises(ValueError):  # without a signal, an error stays what it is
        with signals_as_interrupts():
            raise ValueError("a real error")
