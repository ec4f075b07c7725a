"""Write files so that a reader sees the whole file or nothing."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path


def write_all_atomic(files: dict[Path, str]) -> None:
    """Stage every file, then move them into place with Ctrl-C held off, so a run leaves
    all of its files or none of them."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in files.items():
            staged.append((_stage(path, text), path))
        blocked = hasattr(signal, "pthread_sigmask")
        if blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for tmp, path in staged:
                os.replace(tmp, path)
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def _stage(path: Path, text: str) -> str:
    """Write ``text`` to a temporary file beside ``path``; return its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def check_writable(directory: Path) -> None:
    """Raise OSError unless files could be written in ``directory``.

    Nothing is created: the check probes the directory, or its nearest existing
    ancestor, so a run that fails later leaves no empty output directory behind.
    """
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(probe))
    fd, tmp = tempfile.mkstemp(prefix=".write-test-", dir=probe)
    os.close(fd)
    os.unlink(tmp)
