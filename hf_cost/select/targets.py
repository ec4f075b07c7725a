"""Where `select --json` and `--plot` may write, and writing there atomically.

A file a command reads is data, never a target: the review found `select` writing over its own
results.json. So a target is checked before anything is computed: it must carry the right
suffix, sit in a folder that exists (nothing is created), lie outside /proc, /sys and /dev, and
not be any of the command's inputs (the same file through a symbolic or hard link counts). An
existing target is replaced only when it is a regular file hf_cost select wrote (a JSON whose
"written_by" says so, a PNG whose tEXt Software chunk says so) or when --force is given; a
folder, FIFO or device is refused even then, and a symbolic link is replaced as a link, never
written through. Writes go to a temp file in the target's folder and are moved in with
os.replace, so a failure (read-only folder, full disk) leaves the old file as it was and no
temp behind; every OSError is one line naming the path.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

from hf_cost.errors import UserError
from hf_cost.safe_files import MIB, kind_of, read_regular_bytes

SOFTWARE = "hf_cost select"  # a selection JSON's "written_by"; a plot PNG's tEXt "Software"
_PSEUDO = (Path("/proc"), Path("/sys"), Path("/dev"))  # kernel interfaces and devices, not folders
_SHARED_MEMORY = Path("/dev/shm")  # an ordinary tmpfs folder under /dev
_OWN_JSON_LIMIT = 64 * MIB  # a selection JSON is kilobytes; anything bigger is not one
_PNG_HEAD = 64 * 1024  # matplotlib writes its tEXt chunks right after IHDR


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_target(path: Path, *, flag: str, suffix: str, inputs: list[Path], force: bool,
                 own: Callable[[Path], bool]) -> None:
    """Refuse `path` as the target of `flag` unless every rule in the module docstring holds."""
    where = str(path)
    if "\x00" in where:
        raise UserError(f"{flag}: the path holds a NUL byte", where=repr(where))
    if path.suffix.lower() != suffix:
        raise UserError(f"{flag}: must name a {suffix} file", where=where)
    real = Path(os.path.realpath(path))
    pseudo = next((p for p in _PSEUDO if p == real or p in real.parents), None)
    if pseudo is not None and _SHARED_MEMORY not in real.parents:
        raise UserError(f"{flag}: is under {pseudo}, not a place for files", where=where)
    if not path.parent.is_dir():
        missing = "does not exist" if not path.parent.exists() else "is not a folder"
        raise UserError(f"{flag}: folder {path.parent} {missing} (select creates no folders)", where=where)
    for given in inputs:
        if _same(path, given):
            raise UserError(f"{flag}: is one of this command's inputs ({given}); select never writes its inputs",
                            where=where)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"{flag}: cannot check: {_reason(exc)}", where=where) from None
    if stat.S_ISLNK(mode):
        try:
            pointed = os.stat(path).st_mode
        except OSError:
            pointed = None  # a dangling link
        if pointed is not None and not stat.S_ISREG(pointed):
            raise UserError(f"{flag}: is a symbolic link to {kind_of(pointed)}; select writes only regular files",
                            where=where)
        if not force:
            raise UserError(f"{flag}: is a symbolic link; pass --force to replace the link (what it points "
                            "to is left as it is)", where=where)
        return
    if not stat.S_ISREG(mode):
        raise UserError(f"{flag}: is {kind_of(mode)}; select writes only regular files", where=where)
    if not force and not own(path):
        raise UserError(f"{flag}: the file exists and {SOFTWARE} did not write it; pass --force to replace it",
                        where=where)


def _same(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def is_own_json(path: Path) -> bool:
    """A JSON object whose "written_by" is SOFTWARE (read bounded, never blocking)."""
    try:
        data = json.loads(read_regular_bytes(path, what="--json target", limit=_OWN_JSON_LIMIT))
    except (UserError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("written_by") == SOFTWARE


def is_own_png(path: Path) -> bool:
    """A PNG with a tEXt chunk Software = SOFTWARE before its image data (first 64 KiB only)."""
    head = _head(path, _PNG_HEAD)
    if not head.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    at = 8
    while at + 8 <= len(head):
        length, chunk = struct.unpack(">I4s", head[at:at + 8])
        body = head[at + 8:at + 8 + length]
        if chunk in (b"IDAT", b"IEND") or len(body) < length:
            return False
        if chunk == b"tEXt" and body == b"Software\x00" + SOFTWARE.encode():
            return True
        at += 12 + length
    return False


def _head(path: Path, limit: int) -> bytes:
    """Up to `limit` bytes from the start of the regular file `path`; b"" when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        chunks, total = [], 0
        while total < limit and (chunk := os.read(fd, limit - total)):
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        os.close(fd)


def write_files(files: list[tuple[Path, bytes]]) -> None:
    """Write every (path, bytes) atomically: all staged as temp files first, then moved in."""
    staged: list[tuple[str, Path]] = []
    current = files[0][0] if files else Path()
    try:
        for path, data in files:
            current = path
            staged.append((_stage(path, data), path))
        while staged:
            tmp, current = staged[0]
            os.replace(tmp, current)
            staged.pop(0)
    except OSError as exc:
        raise UserError(f"cannot write: {_reason(exc)}", where=str(current)) from None
    finally:
        for tmp, _ in staged:  # those not moved in
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _stage(path: Path, data: bytes) -> str:
    """A temp file beside `path` holding `data`, with the mode a new file would get."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp
