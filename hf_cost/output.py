"""A run's output directory: locked, staged, and moved in as a whole at the end.

Everything a run writes (results, report, checkpoints, later cards and plots) goes into a
staging directory first. Only when the whole run has succeeded is it moved into the
output directory, with Ctrl-C and SIGTERM held off, so an interrupted or failed run
leaves the earlier output byte-identical. Layout::

    OUT/results.json, OUT/report.md, OUT/checkpoints/NAME/   what the last run wrote
    OUT/.hf_cost/lock            held (flock) while a run uses OUT; a second run is refused
    OUT/.hf_cost/manifest.json   the entries the last run wrote: the only ones a later run
                                 replaces or removes. Nothing else in OUT is ever touched.
    OUT/.hf_cost/staging-*/      this run's files until commit (removed on any exit)

Every path is checked to resolve inside OUT before anything is written or deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from hf_cost.errors import UserError

STATE_DIR = ".hf_cost"
MANIFEST = "manifest.json"
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class OutputBusyError(UserError):
    """Another hf_cost run holds the output directory."""


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: the run stops, and its staged files are removed.

    A BaseException (like KeyboardInterrupt) so that no `except Exception` swallows it.
    """

    def __init__(self, signal_name: str):
        self.signal_name = signal_name
        self.kept_in: Path | None = None  # set when the run had already been moved in
        super().__init__(signal_name)


_received: list[str] = []  # signals seen inside signals_as_interrupts, in order


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` inside the block (the default handlers return after).

    Python runs a handler at the next bytecode, which may be inside a ``__del__`` or a GC
    callback, where the exception is printed and dropped, or inside library code that turns
    it into another error (safetensors loading raises a ValueError). The signal is therefore
    also recorded: `raise_if_interrupted` (called from progress output and training steps)
    raises it again, and any error that leaves the block after a signal is reported as the
    interruption it is.
    """

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        _received.append(name)
        raise Interrupted(name)

    _received.clear()
    previous = {s: signal.signal(s, handler) for s in _HELD_SIGNALS}
    try:
        yield
    except Interrupted:
        raise
    except BaseException as exc:
        if _received:
            raise Interrupted(_received[0]) from exc
        raise
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _received.clear()


def raise_if_interrupted() -> None:
    """Raise `Interrupted` again if a signal arrived whose exception was swallowed."""
    if _received:
        raise Interrupted(_received[0])


@contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done, then are delivered as usual.

    Held at the Python level: a handler that only records the signal stands in during the
    block. (Blocking with pthread_sigmask would not do: it masks the main thread only, the
    kernel then hands the signal to another thread, e.g. a tqdm monitor, and Python still
    runs the handler on the main thread, in the middle of the block.)
    """
    pending: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: pending.append(signum)) for s in _HELD_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


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
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
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
        try:
            data = json.loads((self.root / STATE_DIR / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("entries"), list) else None

    def check_free(self, relative_entries: list[str]) -> None:
        """Refuse now, before any work, entries that exist in OUT but no hf_cost run wrote."""
        old = self._previous_entries()
        for e in relative_entries:
            target = self.root / e
            if (target.exists() or target.is_symlink()) and e not in old:
                raise UserError(
                    f"{target} exists and was not written by an earlier hf_cost run; move it away "
                    "or choose another --output (nothing was changed)",
                    where="--output",
                )

    def _previous_entries(self) -> list[str]:
        previous = self.previous()
        if previous is not None:
            return [e for e in previous["entries"] if _safe_relative(e)]
        return _legacy_entries(self.root)

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

        Returns the previous run's entries that were replaced or removed. Signals are held
        off throughout; on an error midway everything is put back as it was.
        """
        entries = _entries(self.stage)
        old = self._previous_entries()
        self.check_free(entries)
        backup = Path(tempfile.mkdtemp(prefix="replaced-", dir=self.root / STATE_DIR))
        moved_out: list[tuple[Path, Path]] = []
        moved_in: list[tuple[Path, Path]] = []
        with signals_held():
            try:
                for e in old:
                    src = self.root / e
                    if src.exists() or src.is_symlink():
                        inside(self.root, src)
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
                _write_json_atomic(
                    self.root / STATE_DIR / MANIFEST,
                    {"entries": entries, "created_utc": created_utc, "writer": "hf_cost"},
                )
            except BaseException:
                for src, dst in reversed(moved_in):
                    os.replace(dst, src)
                for src, dst in reversed(moved_out):
                    os.replace(dst, src)
                shutil.rmtree(backup, ignore_errors=True)
                raise
            self.committed = True
            shutil.rmtree(backup, ignore_errors=True)
            for e in old:  # empty folders the previous entries leave (e.g. checkpoints/)
                _remove_empty_parents(self.root / e, self.root)
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


def _legacy_entries(root: Path) -> list[str]:
    """results.json and report.md of a run from before manifests (hf_cost 0.1), if any."""
    try:
        data = json.loads((root / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not (isinstance(data, dict) and "hf_cost_version" in data and "schema_version" in data):
        return []
    return ["results.json", "report.md"]


def _safe_relative(entry: object) -> bool:
    """A manifest entry we wrote: relative, no '..', not our own state folder."""
    if not isinstance(entry, str) or not entry:
        return False
    parts = Path(entry).parts
    return not Path(entry).is_absolute() and ".." not in parts and parts[0] != STATE_DIR


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
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
