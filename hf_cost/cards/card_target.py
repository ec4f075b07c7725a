"""The one model card a command was told to update: checked, locked, written atomically.

People point hf_cost at their real model repos, so a card path is checked before anything is
read or written (`check_card_path`): it must be a Markdown file (`.md`), a regular file if it
exists, not one of the command's inputs (the results file, a plot, a dataset), writable
(not read-only by its mode bits or immutable), and neither it nor the folder's `plots/` may
resolve through a symlink out of the card's folder. `validate` runs the same checks.

`CardTarget.open` holds an exclusive flock on the card's folder while a card is read and
written, so two concurrent updates run one after the other and neither is lost (a second one
waits up to `LOCK_WAIT_S`, then fails in one line). While it holds the lock it removes temp
files a killed update left (`.hf_cost-tmp-*`). Files are replaced with signals held: temp
file in the same folder, fsync, the old file's mode and owner, os.replace.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from hf_cost.cards.card_file import CardError, decode_card, hf_cost_sections
from hf_cost.safe_files import LIMITS, kind_of, read_regular_bytes

TMP_PREFIX = ".hf_cost-tmp-"
LOCK_WAIT_S = 30.0
_FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h; FS_IMMUTABLE_FL 0x10, FS_APPEND_FL 0x20
_PINNED_FLAGS = 0x10 | 0x20


def _pinned(path: Path) -> bool:
    """True when `path` carries the immutable or append-only attribute (chattr +i / +a)."""
    try:
        import fcntl

        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (ImportError, OSError):
        return False
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, b"\0" * 4))[0]
    except OSError:  # a file system without attributes
        return False
    finally:
        os.close(fd)
    return bool(flags & _PINNED_FLAGS)


def check_card_path(path: Path, inputs: Iterable[Path] = ()) -> Path:
    """The card's real path, once every check above holds; CardError (one line) otherwise."""
    where = str(path)
    if "\x00" in where:
        raise CardError("the card path holds a NUL byte", where=repr(where))
    if path.suffix.lower() != ".md":
        raise CardError("a model card must be a Markdown file ending in .md (hf_cost writes nothing else)", where)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder_st = os.stat(folder)
    except FileNotFoundError:
        raise CardError(f"its folder {folder} does not exist (hf_cost creates a card, never a folder)",
                        where) from None
    except OSError as exc:
        raise CardError(f"its folder {folder} cannot be used: {exc.strerror}", where) from None
    if not stat.S_ISDIR(folder_st.st_mode):
        raise CardError(f"{folder} is {kind_of(folder_st.st_mode)}, not a folder", where)
    real_folder = Path(os.path.realpath(folder))
    target = Path(os.path.realpath(path))
    if target.parent != real_folder:
        raise CardError(f"resolves through a symlink to {target}, outside the card's folder {real_folder}", where)
    if target.suffix.lower() != ".md":
        raise CardError(f"resolves through a symlink to {target}, which is not a .md file", where)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise CardError(f"cannot be used: {exc.strerror}", where) from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise CardError(f"is {kind_of(st.st_mode)}, not a regular file; hf_cost writes only a Markdown "
                            "model card", where)
        if _pinned(target):
            raise CardError("is marked immutable or append-only (chattr); hf_cost cannot replace it", where)
        if st.st_mode & 0o222 == 0 or not os.access(target, os.W_OK):
            raise CardError(f"is read-only (mode {stat.S_IMODE(st.st_mode):04o}); make it writable to let "
                            "hf_cost update it", where)
    if not os.access(real_folder, os.W_OK | os.X_OK) or _pinned(real_folder):
        raise CardError(f"its folder {real_folder} is not writable (hf_cost replaces the card through a temp "
                        "file there)", where)
    for given in inputs:
        if _same_file(target, st, Path(given)):
            raise CardError(f"is one of this command's inputs ({given}); hf_cost never writes a file it reads",
                            where)
    plots = real_folder / "plots"
    if plots.is_symlink() or (plots.exists() and not plots.is_dir()):
        raise CardError(f"{plots} is a symlink or not a folder; hf_cost writes the card's plots only into a "
                        "real plots/ folder beside it", where)
    return target


def inputs_named_by(suite: object, scenario_file: object) -> list[Path]:
    """The scenario file and every local file its steps read (`path`, `data_files` keys), from a
    resolved suite dict; the `card:` block itself is not an input."""
    found: list[Path] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("path", "data_files") and isinstance(v, str) and v and "\x00" not in v:
                    found.append(Path(v))
                elif k in ("path", "data_files") and isinstance(v, list):
                    walk({k: x for x in v})
                elif not (node is suite and k == "card"):
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(suite)
    if isinstance(scenario_file, (str, Path)) and "\x00" not in str(scenario_file):
        found.append(Path(scenario_file))
    return found


def _same_file(target: Path, st: os.stat_result | None, other: Path) -> bool:
    try:
        other_st = os.stat(other)
    except (OSError, ValueError):
        return Path(os.path.realpath(other)) == target if "\x00" not in str(other) else False
    if st is None:
        return Path(os.path.realpath(other)) == target
    return (st.st_dev, st.st_ino) == (other_st.st_dev, other_st.st_ino)


def read_card(target: Path) -> str | None:
    """The card's text (regular file, at most LIMITS['card']); None when there is no card yet."""
    if not os.path.lexists(target):
        return None
    return decode_card(read_regular_bytes(target, what="model card", limit=LIMITS["card"]), str(target))


@dataclass
class CardTarget:
    """A checked card path with its folder locked. Use `CardTarget.open(path)` as a context."""

    path: Path  # as given
    target: Path  # resolved
    _lock_fd: int

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path, inputs: Iterable[Path] = (), *, wait_s: float | None = None,
             say: object = None) -> Iterator[CardTarget]:
        target = check_card_path(Path(path), inputs)
        fd = _lock_folder(target.parent, str(path), LOCK_WAIT_S if wait_s is None else wait_s, say)
        try:
            remove_stale_temp_files(target.parent)
            yield cls(Path(path), target, fd)
        finally:
            os.close(fd)  # releases the flock

    def read(self) -> str | None:
        return read_card(self.target)

    @property
    def folder(self) -> Path:
        return self.target.parent

    def replace(self, data: bytes) -> None:
        """Replace the card with `data` (its mode and owner kept), signals held throughout."""
        try:
            st = os.stat(self.target)
        except FileNotFoundError:
            st = None
        atomic_write(self.target, data, st, where=str(self.path))


def _lock_folder(folder: Path, where: str, wait_s: float, say: object) -> int:
    import fcntl

    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise CardError(f"cannot open its folder {folder} to lock it: {exc.strerror}", where) from None
    deadline, told = time.monotonic() + wait_s, False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise CardError(f"another hf_cost update of a card in {folder} has held it for over "
                                f"{wait_s:.0f} s; try again when it is done", where) from None
            if not told and callable(say):
                say(f"waiting for another hf_cost update of a card in {folder}")
                told = True
            time.sleep(0.05)
        except OSError as exc:
            os.close(fd)
            raise CardError(f"cannot lock its folder {folder}: {exc.strerror}", where) from None


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Temp files an interrupted (killed) update left in the card folder and its plots/; only
    regular files with hf_cost's temp prefix, and only while the folder's lock is held."""
    removed = []
    for d in (folder, folder / "plots"):
        if not d.is_dir() or d.is_symlink():
            continue
        for p in d.glob(TMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(p).st_mode):
                    p.unlink()
                    removed.append(p)
    return removed


def atomic_write(target: Path, data: bytes, old: os.stat_result | None, *, where: str) -> None:
    """`target` replaced by `data` through a temp file beside it; the old mode and owner kept.
    Ctrl-C and SIGTERM wait until the file is whole; an error leaves no temp file behind."""
    from hf_cost.interrupts import signals_held

    with signals_held():
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TMP_PREFIX)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                if old is not None:
                    with contextlib.suppress(PermissionError):  # only root may give a file away
                        os.fchown(fh.fileno(), old.st_uid, old.st_gid)
                os.fchmod(fh.fileno(), stat.S_IMODE(old.st_mode) if old is not None else _default_mode())
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            tmp = None
        except OSError as exc:
            raise CardError(f"cannot write {target.name}: {exc.strerror or exc}; the file was not changed",
                            where) from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def upsert_card(path: Path, sections: dict[str, str], **kwargs: Any) -> bool:
    """Write `sections` (and the metadata `render_card` takes) into the card at `path`, under the
    card folder's lock; True if the file changed. The path is checked by check_card_path first."""
    from hf_cost.cards.card_file import render_card

    with CardTarget.open(Path(path)) as target:
        new_text = render_card(target.read(), sections, where=str(path), **kwargs)
        if new_text is None:
            return False
        target.replace(new_text.encode("utf-8"))
        return True


def read_hf_cost_sections(path: Path) -> dict[str, str]:
    """Section name -> content (blank lines around it removed, "\\n" line breaks); {} if no file."""
    text = read_card(Path(path))
    return {} if text is None else hf_cost_sections(text, str(path))
