"""A run's output directory: locked, staged, and moved in as a whole at the end.

Everything a run writes (results, report, checkpoints, later cards and plots) goes into a
staging directory first. Only when the whole run has succeeded is it moved into the
output directory, with Ctrl-C and SIGTERM held off, so an interrupted or failed run
leaves the earlier output byte-identical. Layout::

    OUT/results.json, OUT/report.md, OUT/checkpoints/NAME/   what the last run wrote
    OUT/.hf_cost/lock            held (flock) while a run uses OUT; a second run is refused
    OUT/.hf_cost/manifest.json   the entries the last run wrote, each with its size and SHA-256
                                 (a folder: every file's): a later run replaces or removes an
                                 entry only while it still matches (output_records.py).
                                 Nothing else in OUT is ever touched.
    OUT/.hf_cost/staging-*/      this run's files until commit (removed on any exit)

Every path is checked to resolve inside OUT before anything is written or deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hf_cost.errors import UserError
from hf_cost.interrupts import signals_held
from hf_cost.output_records import (
    MANIFEST,
    STATE_DIR,
    Previous,
    Verdict,
    legacy_own,
    manifest_data,
    read_manifest,
    record,
    unchanged_since,
    verify,
)
from hf_cost.safe_files import read_regular_text


class OutputBusyError(UserError):
    """Another hf_cost run holds the output directory."""


def inside(root: Path, path: Path) -> Path:
    """``path`` resolved, if it lies strictly inside ``root``; otherwise a UserError."""
    root_r, path_r = root.resolve(), path.resolve()
    if path_r == root_r or root_r not in path_r.parents:
        raise UserError(f"refusing to touch {path}: it is not inside the output directory {root}")
    return path_r


@dataclass
class RunOutput:
    """The output directory of one run. Use `RunOutput.open`, then `commit` or `abandon`."""

    root: Path
    stage: Path
    created: list[Path] = field(default_factory=list)  # directories this run made, deepest last
    _lock_fd: int | None = None
    committed: bool = False

    # -- opening ------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path) -> RunOutput:
        """Create OUT (if needed) and lock it; a second concurrent run gets OutputBusyError."""
        root = Path(os.path.abspath(root))
        created = _make_dirs(root / STATE_DIR)
        out = cls(root=root, stage=root, created=created)
        try:
            try:
                out._lock()
            except OSError as exc:
                raise UserError(
                    f"output directory {root} is not writable: {exc.strerror}", where="--output"
                ) from None
            out.stage = Path(tempfile.mkdtemp(prefix=f"staging-{os.getpid()}-", dir=root / STATE_DIR))
        except BaseException:
            out._release(remove_created=True)
            raise
        return out

    def _lock(self) -> None:
        import fcntl

        path = self.root / STATE_DIR / "lock"
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)  # never through a planted symlink
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _read_holder(path)
                raise OutputBusyError(
                    f"another hf_cost run{holder} is writing to {self.root}; wait for it or use "
                    "another --output",
                    where="--output",
                ) from None
            # The file may have been removed and re-created between open and flock.
            if os.path.exists(path) and os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    # -- what was there before ----------------------------------------------------
    def previous(self) -> dict | None:
        """The manifest of the run whose output is in OUT now, or None."""
        return read_manifest(self.root).data

    def check_free(self, relative_entries: list[str]) -> dict[str, Verdict]:
        """Refuse now, before any work, entries that exist in OUT but are not an earlier run's
        own (unlisted, or changed since it wrote them). Returns the verdict on each one that exists."""
        verdicts = self._verdicts(relative_entries)
        self._refuse_others(relative_entries, verdicts)
        return verdicts

    def _refuse_others(self, entries: list[str], verdicts: dict[str, Verdict]) -> None:
        for e in entries:
            v = verdicts.get(e)
            if v is not None and not v.own:
                raise UserError(
                    f"{self.root / e} exists and was not written by an earlier hf_cost run ({v.reason}); "
                    "move it away or choose another --output (nothing was changed)",
                    where="--output",
                )

    def _verdicts(self, entries: list[str], previous: Previous | None = None) -> dict[str, Verdict]:
        """For each of ``entries`` that exists in OUT: is it the earlier run's own, unchanged?"""
        previous = previous or read_manifest(self.root)
        legacy = legacy_own(self.root) if previous.legacy else {}
        out: dict[str, Verdict] = {}
        for e in dict.fromkeys(entries):
            target = self.root / e
            if not (target.exists() or target.is_symlink()):
                continue
            if e in legacy:
                out[e] = legacy[e]
            elif e in previous.records:
                out[e] = verify(self.root, previous.records[e])
            elif previous.legacy and previous.data is not None and e in previous.data["entries"]:
                out[e] = Verdict(False, "it is listed by a manifest from an hf_cost version that recorded "
                                        "no checksums, so it may have changed since")
            else:
                out[e] = Verdict(False, f"{STATE_DIR}/{MANIFEST} does not list it")
        return out

    def path_in_stage(self, relative: str) -> Path:
        """Where this run writes ``relative`` (e.g. 'checkpoints/NAME'), checked to be inside."""
        target = self.stage / relative
        inside(self.stage, target)
        return target

    def final_path(self, staged: Path) -> Path:
        """Where a staged path will live after commit."""
        return self.root / Path(staged).resolve().relative_to(self.stage.resolve())

    # -- ending -------------------------------------------------------------------
    def commit(self, created_utc: str) -> list[str]:
        """Move every staged entry into OUT, replacing the previous run's entries.

        Returns the previous run's entries that were replaced or removed: only those still
        exactly as it wrote them; anything else in OUT stays. Signals are held off while
        entries move; on an error midway everything is put back as it was.
        """
        entries = _entries(self.stage)
        previous = read_manifest(self.root)
        theirs = list(previous.records) + (["results.json", "report.md"] if previous.legacy else [])
        verdicts = self._verdicts(entries + theirs, previous)
        self._refuse_others(entries, verdicts)
        old = {e: v for e, v in verdicts.items() if v.own}  # the earlier run's, exactly as it wrote them
        records = [record(self.stage, e) for e in entries]  # hashed before signals are held
        backup = Path(tempfile.mkdtemp(prefix="replaced-", dir=self.root / STATE_DIR))
        moved_out: list[tuple[Path, Path]] = []
        moved_in: list[tuple[Path, Path]] = []
        with signals_held():
            try:
                for e, verdict in old.items():
                    src = self.root / e
                    inside(self.root, src)
                    if not unchanged_since(self.root, e, verdict):
                        if e in entries:  # changed in the last moments: refuse as check_free would
                            raise UserError(f"{src} changed while this run was being moved in; nothing "
                                            "was replaced", where="--output")
                        continue  # no longer the earlier run's own: left where it is
                    dst = backup / e
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
                    moved_out.append((src, dst))
                for e in entries:
                    src, dst = self.stage / e, self.root / e
                    inside(self.root, dst)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
                    moved_in.append((src, dst))
                _write_json_atomic(self.root / STATE_DIR / MANIFEST, manifest_data(records, created_utc))
            except BaseException:
                for src, dst in reversed(moved_in):
                    os.replace(dst, src)
                for src, dst in reversed(moved_out):
                    os.replace(dst, src)
                shutil.rmtree(backup, ignore_errors=True)
                raise
            self.committed = True
            shutil.rmtree(backup, ignore_errors=True)
            for src, _ in moved_out:  # empty folders the previous entries leave (e.g. checkpoints/)
                _remove_empty_parents(src, self.root)
            self._release(remove_created=False)
        return [str(src.relative_to(self.root)) for src, _ in moved_out]

    def abandon(self) -> None:
        """Remove everything this run staged; leave OUT as it was before the run."""
        self._release(remove_created=True)

    def _release(self, remove_created: bool) -> None:
        if self.stage != self.root and self.stage.exists():
            inside(self.root / STATE_DIR, self.stage)
            shutil.rmtree(self.stage, ignore_errors=True)
        if remove_created and self.created:
            (self.root / STATE_DIR / "lock").unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)  # the pid goes with the run: the file is as before
            os.close(self._lock_fd)
            self._lock_fd = None
        if remove_created:
            for d in reversed(self.created):
                try:
                    d.rmdir()  # only if empty: never removes anything else
                except OSError:
                    break
            self.created = []


def _make_dirs(path: Path) -> list[Path]:
    """mkdir -p, returning the directories it created (outermost first)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    made = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.append(d)
    except OSError as exc:
        for d in reversed(made):
            d.rmdir()
        raise UserError(
            f"output directory {path.parent} is not writable: cannot create {exc.filename or path}: "
            f"{exc.strerror}",
            where="--output",
        ) from None
    return made


def _entries(stage: Path) -> list[str]:
    """What a run produced: top-level files, and each checkpoint (or plot, card) folder."""
    out: list[str] = []
    for p in sorted(stage.iterdir()):
        if p.is_dir() and not p.is_symlink():
            out.extend(f"{p.name}/{c.name}" for c in sorted(p.iterdir()))
        else:
            out.append(p.name)
    return out


def _remove_empty_parents(path: Path, root: Path) -> None:
    p = path.parent
    while p != root and root in p.parents:
        try:
            p.rmdir()
        except OSError:
            return
        p = p.parent


def _write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_holder(path: Path) -> str:
    try:
        pid = read_regular_text(path, what="lock file", limit=64).strip()
    except UserError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
