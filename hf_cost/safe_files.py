"""Reading files hf_cost did not write: regular files only, with stated size limits.

A scenario file, an include, a results.json, a constraints file, a model card or a dataset
named by any of them may be a FIFO (open() blocks forever), a character device (/dev/zero
never ends), a folder, or simply huge. Every such read goes through here: the file is opened
with O_NONBLOCK (so a FIFO without a writer does not block), checked with fstat on that same
descriptor (no race between the check and the read), and read up to its limit. Every
failure is a UserError naming the path and the reason, in one line.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from hf_cost.errors import UserError

KIB, MIB, GIB = 1024, 1024**2, 1024**3
# The stated limits (README "Files hf_cost reads"). A limit names the largest file accepted.
LIMITS = {
    "scenario": 1 * MIB,  # a scenario file or one of its includes (bert.yaml is 4 KiB)
    "constraints": 1 * MIB,  # a `select --constraints` file
    "results": 512 * MIB,  # a results.json (the default run's, raw samples included, is about 3 MiB)
    "card": 10 * MIB,  # a model card (README.md)
    "dataset": 4 * GIB,  # a local dataset file (csv, json, jsonl, parquet)
    "plot": 64 * MIB,  # a PNG a run made, copied next to a card
}
_CHUNK = 1 * MIB


def kind_of(mode: int) -> str:
    """What a file mode names, in words."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def describe_limit(limit: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _open_regular(path: Path, what: str, limit: int) -> tuple[int, os.stat_result]:
    """An open read-only descriptor on the regular file `path` (symlinks followed) and its stat."""
    where = str(path)
    if "\x00" in where:
        raise UserError(f"{what}: the path holds a NUL byte", where=repr(where))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UserError(f"{what}: no such file", where=where) from None
    except IsADirectoryError:
        raise UserError(f"{what}: is a folder, not a file", where=where) from None
    except (UnicodeEncodeError, ValueError):  # a lone surrogate cannot name a file
        raise UserError(f"{what}: the path cannot be encoded as a file name", where=ascii(where)) from None
    except OSError as exc:
        raise UserError(f"{what}: cannot open: {_reason(exc)}", where=where) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{what}: is {kind_of(st.st_mode)}, not a regular file; hf_cost reads only "
                            "regular files", where=where)
        if st.st_size > limit:
            raise UserError(f"{what}: is {st.st_size:,} bytes, over the {describe_limit(limit)} limit for "
                            "this kind of file", where=where)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular_bytes(path: str | Path, *, what: str, limit: int) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them (a growing file is cut off
    and refused, not read without end)."""
    fd, _ = _open_regular(Path(path), what, limit)
    chunks, total = [], 0
    try:
        while True:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise UserError(f"{what}: grew past the {describe_limit(limit)} limit while being read",
                                where=str(path))
    except OSError as exc:
        raise UserError(f"{what}: cannot read: {_reason(exc)}", where=str(path)) from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_regular_text(path: str | Path, *, what: str, limit: int) -> str:
    """`read_regular_bytes` decoded as UTF-8; an undecodable byte is a one-line error."""
    data = read_regular_bytes(path, what=what, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what}: not UTF-8 text (byte {exc.start})", where=str(path)) from None


def check_regular(path: str | Path, *, what: str, limit: int) -> os.stat_result:
    """Refuse `path` unless it is a regular file within `limit`; for files another library
    reads (a dataset handed to `datasets`)."""
    fd, st = _open_regular(Path(path), what, limit)
    os.close(fd)
    return st


def sha256_regular(path: str | Path, *, what: str, limit: int) -> str:
    """The SHA-256 hex digest of the regular file `path`, streamed (never the whole file in memory)."""
    fd, _ = _open_regular(Path(path), what, limit)
    digest, total = hashlib.sha256(), 0
    try:
        while chunk := os.read(fd, _CHUNK):
            total += len(chunk)
            if total > limit:
                raise UserError(f"{what}: grew past the {describe_limit(limit)} limit while being read",
                                where=str(path))
            digest.update(chunk)
    except OSError as exc:
        raise UserError(f"{what}: cannot read: {_reason(exc)}", where=str(path)) from None
    finally:
        os.close(fd)
    return digest.hexdigest()
