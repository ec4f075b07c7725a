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


def state_leftovers(root: Path) -> list[str]:
    """What a commit may create in OUT's state folder besides the lock and the manifest:
    staging-* (this run's files), replaced-* (the previous run's, moved out), .manifest.json.*
    (a manifest being written). None of them may outlive a run, however it ended."""
    return sorted(p.name for p in (root / ".hf_cost").iterdir() if p.name not in ("lock", "manifest.json"))


def manifest_paths(root: Path) -> list[str]:
    return [e["path"] for e in json.loads((root / ".hf_cost" / "manifest.json").read_text())["entries"]]


class FailAt:
    """os.replace that raises on its ``n``-th call (from 1) and otherwise moves as usual.
    Records every call, so a test can say which move the failure hit."""

    def __init__(self, n: int, exc: BaseException) -> None:
        self.n, self.exc, self.calls, self.failed = n, exc, 0, None
        self.real = os.replace

    def __call__(self, src, dst):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == self.n:
            self.failed = (Path(src), Path(dst))
            raise self.exc
        return self.real(src, dst)


def which_move(root: Path, stage: Path, src: Path, dst: Path) -> str:
    """'out E': the earlier run's entry E moved aside; 'in E': this run's E moved into OUT;
    'write manifest': the new manifest put in place; else the paths themselves."""
    if dst == root / ".hf_cost" / "manifest.json":
        return "write manifest"
    if src.parent == root or src.parent.parent == root:
        return f"out {src.relative_to(root).as_posix()}"
    if stage in src.parents and root in dst.parents:
        return f"in {dst.relative_to(root).as_posix()}"
    return f"{src} -> {dst}"


# The earlier run wrote results, report and checkpoints ft and old; this run writes results,
# report and checkpoints ft and new. A commit therefore moves the earlier run's entries out
# (old among them: this run does not write it), moves this run's in, and writes the manifest.
EARLIER, THIS = ("ft", "old"), ("ft", "new")


def earlier_output(root: Path) -> str:
    complete_run(root, "one", EARLIER)
    (root / "notes.txt").write_text("mine")  # the user's own file, never touched
    return tree_digest(root)


def assert_this_run_is_complete(root: Path) -> None:
    assert json.loads((root / "results.json").read_text()) == {"run": "two"}
    assert (root / "report.md").read_text() == "# two\n"
    for name in THIS:
        assert (root / "checkpoints" / name / "model.safetensors").read_text() == f"two-{name}"
    assert not (root / "checkpoints" / "old").exists()
    assert (root / "notes.txt").read_text() == "mine"
    assert manifest_paths(root) == ["checkpoints/ft", "checkpoints/new", "report.md", "results.json"]
    assert state_leftovers(root) == []


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk full", "interrupt"])
def test_a_commit_that_fails_at_any_move_leaves_the_earlier_output_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    """Fail the 1st os.replace of a commit, then the 2nd, and so on, until a commit completes
    without reaching the failure. After every failed commit (and the run's abandon): OUT is
    byte-identical to the earlier run's output, with no staging, backup or half-written manifest
    left, and the next run commits normally. The failures between them must have hit every
    entry either run has and the manifest, so no move is left untried."""
    hit: set[str] = set()
    for n in range(1, 100):
        root = tmp_path / f"fail-at-{n}" / "out"
        before = earlier_output(root)
        out = RunOutput.open(root)
        stage_run(out, "two", THIS)
        fail = FailAt(n, exc)
        monkeypatch.setattr(os, "replace", fail)
        try:
            out.commit(created_utc="two")
        except type(exc):
            assert fail.failed is not None  # it was our failure, not another error
        finally:
            monkeypatch.setattr(os, "replace", fail.real)
        if fail.failed is None:  # every move was tried, and this commit went through
            break
        hit.add(which_move(root, out.stage, *fail.failed))
        out.abandon()
        assert tree_digest(root) == before, f"failure at os.replace #{n} ({fail.failed}) changed OUT"
        assert state_leftovers(root) == [], f"failure at os.replace #{n} left files behind"
        retry = RunOutput.open(root)  # not locked, nothing in the way
        stage_run(retry, "two", THIS)
        assert sorted(retry.commit(created_utc="two")) == [
            "checkpoints/ft", "checkpoints/old", "report.md", "results.json"]
        assert_this_run_is_complete(root)
    else:
        pytest.fail("every commit failed: the injected failure never ran out of moves")
    assert_this_run_is_complete(root)  # the commit that outran the failures
    every_move = {"write manifest"} | {
        f"{way} {e}" for way, names in (("out", EARLIER), ("in", THIS))
        for e in ("results.json", "report.md", *(f"checkpoints/{name}" for name in names))}
    assert every_move <= hit, f"moves never failed: {sorted(every_move - hit)}"


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

    from hf_cost.interrupts import Interrupted, signals_as_interrupts
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

    from hf_cost.interrupts import Interrupted, signals_as_interrupts

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


def test_an_interrupt_dropped_inside_a_finalizer_is_silent_and_raised_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal whose handler runs inside a ``__del__`` raises there, where Python drops the
    exception and prints it as "Exception ignored ... Traceback". The run still stops (the signal
    is recorded and raised again at the next check), and no traceback reaches the user."""
    import gc
    import signal as signals
    import sys

    from hf_cost.interrupts import Interrupted, raise_if_interrupted, signals_as_interrupts

    printed: list[BaseException] = []  # what Python would print as "Exception ignored"
    monkeypatch.setattr(sys, "unraisablehook", lambda info: printed.append(info.exc_value))

    class SignalledWhileCollected:
        def __del__(self) -> None:
            os.kill(os.getpid(), signals.SIGTERM)  # the handler runs here, inside the finalizer

    with pytest.raises(Interrupted) as caught, signals_as_interrupts():
        SignalledWhileCollected()  # collected at once: __del__ runs, the Interrupted is dropped
        gc.collect()
        raise_if_interrupted()  # what progress output and training steps call
    assert caught.value.signal_name == "SIGTERM"
    assert printed == []
    assert sys.unraisablehook is not None and sys.unraisablehook.__name__ == "<lambda>"  # restored


def test_other_errors_in_finalizers_are_still_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from hf_cost.interrupts import signals_as_interrupts

    printed: list[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: printed.append(info.exc_value))

    class Broken:
        def __del__(self) -> None:
            raise ValueError("a real bug in a finalizer")

    with signals_as_interrupts():
        Broken()
    assert [str(e) for e in printed] == ["a real bug in a finalizer"]
