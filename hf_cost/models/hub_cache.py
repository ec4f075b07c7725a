"""Make a local checkpoint answer to its Hub id, offline.

Writes the layout `huggingface_hub` reads from its cache::

    <HF_HUB_CACHE>/models--org--name/refs/<revision>          (holds the commit hash)
    <HF_HUB_CACHE>/models--org--name/snapshots/<commit>/...    (the files)

so that ``from_pretrained("org/name")`` resolves with ``HF_HUB_OFFLINE=1``. The
commit is a content hash of the files, so importing the same files twice is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable

from hf_cost.errors import UserError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# A branch or tag name as git allows it, kept simple: no '..', no leading '.', '/', '-'.
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:[./][A-Za-z0-9_-]+)*$")


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_folder(repo_id: str, cache_dir: Path | None = None) -> Path:
    return (cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))


def content_hash(src: Path) -> str:
    """A 40-hex digest of the relative paths and bytes of every file under ``src``."""
    digest = hashlib.sha1()
    for file in sorted(p for p in src.rglob("*") if p.is_file() and ".git" not in p.parts):
        digest.update(file.relative_to(src).as_posix().encode())
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def import_checkpoint(
    src: str | Path, repo_id: str, revision: str = "main", cache_dir: Path | None = None
) -> Path:
    """Copy the checkpoint in ``src`` into the Hub cache as ``repo_id@revision``.

    Returns the snapshot directory. Raises UserError for a bad id or source.
    """
    src = Path(src).expanduser()
    _check_names(repo_id, revision)
    if not src.is_dir():
        raise UserError(f"no directory at {src}", where="cache import")
    if not (src / "config.json").is_file():
        raise UserError(f"{src} has no config.json: not a transformers checkpoint", where="cache import")
    commit = revision if _COMMIT.match(revision) else content_hash(src)
    return _install(
        repo_id, revision, commit, cache_dir,
        lambda target: shutil.copytree(src, target, ignore=shutil.ignore_patterns(".git")),
    )


def import_file(src: str | Path, repo_id: str, revision: str = "main", cache_dir: Path | None = None) -> Path:
    """Copy the one file ``src`` (a GGUF checkpoint: config, tokenizer and weights in one file)
    into the Hub cache as ``repo_id@revision``, under its own name; the snapshot holds that file
    alone. Its commit is `content_hash` of a folder holding only that file.

    Returns the snapshot directory. Raises UserError for a bad id or source.
    """
    src = Path(src).expanduser()
    _check_names(repo_id, revision)
    try:
        regular = stat.S_ISREG(src.lstat().st_mode)
    except OSError:
        regular = False
    if not regular:
        raise UserError(f"no regular file at {src}", where="cache import")
    commit = revision if _COMMIT.match(revision) else _file_hash(src)

    def fill(target: Path) -> None:
        target.mkdir()
        shutil.copyfile(src, target / src.name)

    return _install(repo_id, revision, commit, cache_dir, fill)


def _check_names(repo_id: str, revision: str) -> None:
    if not (_COMMIT.match(revision) or (_REF.match(revision) and not revision.endswith(".lock"))):
        raise UserError(
            f"'{revision}' is not a branch, tag or 40-hex commit name (letters, digits, '_', '-', "
            "and single '.' or '/' between them)",
            where="--revision",
        )
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise UserError(f"'{repo_id}' is not a Hub model id (expected 'org/name')", where="--as")


def _file_hash(src: Path) -> str:
    """`content_hash` of a folder that holds ``src`` alone, without making the folder."""
    digest = hashlib.sha1(src.name.encode())
    with src.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _install(
    repo_id: str, revision: str, commit: str, cache_dir: Path | None, fill: Callable[[Path], object]
) -> Path:
    """snapshots/<commit>, made by ``fill(staging)`` and moved into place whole, then refs/<revision>.

    A snapshot that is already there is kept (same commit, same files)."""
    folder = repo_folder(repo_id, cache_dir)
    snapshot = folder / "snapshots" / commit
    created = False
    try:
        if not snapshot.exists():
            snapshot.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".import-", dir=snapshot.parent))
            try:
                fill(staging / "files")
                os.replace(staging / "files", snapshot)
                created = True
            finally:
                shutil.rmtree(staging, ignore_errors=True)  # made just now, by this call
        if not _COMMIT.match(revision):
            ref = folder / "refs" / revision  # a tag may hold '/', e.g. v1/rc
            ref.parent.mkdir(parents=True, exist_ok=True)
            tmp = ref.parent / f".{ref.name}.tmp"
            tmp.write_text(commit)
            os.replace(tmp, ref)
    except OSError as exc:
        if created:  # no half-finished import: the snapshot made by this call goes again
            shutil.rmtree(snapshot, ignore_errors=True)
        raise UserError(f"cannot write the Hub cache at {folder}: {exc.strerror}", where="cache import") from None
    return snapshot
