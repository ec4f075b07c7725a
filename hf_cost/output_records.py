"""What a run wrote into its output directory, recorded so that a later run replaces only that.

OUT/.hf_cost/manifest.json lists each entry a run moved into OUT with what it was::

    {"format": 2, "writer": "hf_cost", "created_utc": "...", "entries": [
      {"path": "report.md", "kind": "file", "size": 5120, "sha256": "..."},
      {"path": "checkpoints/ft", "kind": "folder", "folders": [],
       "files": {"config.json": {"size": 700, "sha256": "..."}, ...}}]}

A later run treats an entry as its own (replaces or removes it) only while what is on disk
still matches the record exactly: a regular file of that size and SHA-256, or a folder
holding exactly those files and sub-folders, each matching, with no symbolic link anywhere
on the way. Anything else is the user's: an entry the manifest does not list, one edited
since, one the manifest names without a record (hand-edited, or written before records).

Manifests from before records (hf_cost 0.1: `entries` a list of names) and output folders
with no manifest are trusted for two files only: results.json when it parses as hf_cost
results, and report.md beside it when it starts like an hf_cost report. Their checkpoints
and plots are left alone; a run that needs those names refuses until they are moved away.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_cost.errors import UserError
from hf_cost.safe_files import (
    LIMITS,
    MIB,
    read_regular_bytes,
    read_regular_text,
    sha256_regular,
)

STATE_DIR = ".hf_cost"
MANIFEST = "manifest.json"
FORMAT = 2
MANIFEST_LIMIT = 64 * MIB  # a manifest lists every file of every checkpoint: ~150 bytes each
REPORT_TITLE = b"# hf_cost report"

# One lstat line per path under an entry ("" is the entry itself): any rewrite, replacement,
# addition or removal changes it.
Fingerprint = tuple[tuple[str, int, int, int, int, int], ...]


@dataclass
class Verdict:
    """Whether an existing entry is an earlier run's own; if not, why (for the refusal line)."""

    own: bool
    reason: str = ""
    fingerprint: Fingerprint = ()


def safe_relative(entry: object) -> bool:
    """A manifest path we could have written: relative, no '..', not our own state folder."""
    if not isinstance(entry, str) or not entry or "\x00" in entry:
        return False
    parts = Path(entry).parts
    return not Path(entry).is_absolute() and ".." not in parts and parts[0] != STATE_DIR


# -- recording --------------------------------------------------------------------------


def record(base: Path, entry: str) -> dict[str, Any]:
    """What ``base/entry`` is now (this run's staged entry), for the manifest. An entry that is
    neither a regular file nor a plain folder of them is listed without a record: no later
    run will take it for its own."""
    path = base / entry
    shot = snapshot(path)
    kinds = {rel: mode for rel, mode, *_ in shot}
    sizes = {rel: size for rel, _, _, size, *_ in shot}
    if not all(stat.S_ISREG(m) or stat.S_ISDIR(m) for m in kinds.values()):
        return {"path": entry, "kind": "unrecorded"}
    if stat.S_ISREG(kinds[""]):
        return {"path": entry, "kind": "file", **_file_record(path, sizes[""])}
    return {"path": entry, "kind": "folder",
            "folders": [rel for rel, m in kinds.items() if rel and stat.S_ISDIR(m)],
            "files": {rel: _file_record(path / rel, sizes[rel]) for rel, m in kinds.items() if stat.S_ISREG(m)}}


def _file_record(path: Path, size: int) -> dict[str, Any]:
    return {"size": size, "sha256": sha256_regular(path, what="output file", limit=size)}


def snapshot(path: Path) -> Fingerprint:
    """lstat of ``path`` and, for a folder, of everything under it (symlinks not followed),
    sorted by relative path; "" is ``path`` itself."""
    def line(rel: str, st: os.stat_result) -> tuple[str, int, int, int, int, int]:
        return rel, st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns

    out = [line("", os.lstat(path))]
    todo = [("", path)] if stat.S_ISDIR(out[0][1]) else []
    while todo:
        prefix, here = todo.pop()
        with os.scandir(here) as it:
            for item in it:
                st = item.stat(follow_symlinks=False)
                out.append(line(prefix + item.name, st))
                if stat.S_ISDIR(st.st_mode):
                    todo.append((prefix + item.name + "/", Path(item.path)))
    return tuple(sorted(out))


# -- checking ---------------------------------------------------------------------------


def verify(root: Path, rec: dict[str, Any]) -> Verdict:
    """Whether ``root/rec["path"]`` is exactly what the record says (see the module docstring).
    The verdict's fingerprint is taken before hashing: `unchanged_since` then sees any write
    made while or after the files were read."""
    entry = rec["path"]
    path = root / entry
    kind = rec.get("kind")
    if kind not in ("file", "folder") or (kind == "folder" and not (
            isinstance(rec.get("files"), dict) and isinstance(rec.get("folders"), list))):
        return Verdict(False, "that run recorded no checksum for it")
    if os.path.realpath(path) != os.path.join(os.path.realpath(root), entry):
        return Verdict(False, "a symbolic link is on its path")
    try:
        shot = snapshot(path)
        reason = _differs(path, rec, shot)
    except OSError as exc:
        return Verdict(False, f"it cannot be checked: {exc.strerror or type(exc).__name__}")
    return Verdict(False, reason) if reason else Verdict(True, fingerprint=shot)


def _differs(path: Path, rec: dict[str, Any], shot: Fingerprint) -> str | None:
    """Why what ``shot`` saw is not what ``rec`` recorded; None when it is."""
    kinds = {rel: mode for rel, mode, *_ in shot}
    sizes = {rel: size for rel, _, _, size, *_ in shot}
    if any(not (stat.S_ISREG(m) or stat.S_ISDIR(m)) for m in kinds.values()):
        odd = next(rel for rel, m in kinds.items() if not (stat.S_ISREG(m) or stat.S_ISDIR(m)))
        return f"{odd!r} in it is a symbolic link or special file" if odd else "it is no longer a regular file or folder"
    if rec["kind"] == "file":
        if not stat.S_ISREG(kinds[""]):
            return "it is a folder now, not the file that run wrote"
        if sizes[""] != rec.get("size") or _hash(path, sizes[""]) != rec.get("sha256"):
            return "its contents changed after that run wrote it"
        return None
    if not stat.S_ISDIR(kinds[""]):
        return "it is a file now, not the folder that run wrote"
    want_files, want_folders = rec["files"], set(rec["folders"])
    files = {rel for rel, m in kinds.items() if stat.S_ISREG(m)}
    folders = {rel for rel, m in kinds.items() if rel and stat.S_ISDIR(m)}
    extra = sorted(files - set(want_files)) or sorted(folders - want_folders)
    if extra:
        return f"it now holds {extra[0]!r}, which that run did not write"
    missing = sorted(set(want_files) - files) or sorted(want_folders - folders)
    if missing:
        return f"{missing[0]!r} in it was removed after that run wrote it"
    for rel in sorted(files):
        meta = want_files[rel]
        if not isinstance(meta, dict) or sizes[rel] != meta.get("size") or _hash(path / rel, sizes[rel]) != meta.get("sha256"):
            return f"{rel!r} in it changed after that run wrote it"
    return None


def _hash(path: Path, size: int) -> str | None:
    try:
        return sha256_regular(path, what="output file", limit=size)
    except UserError:  # replaced meanwhile by something that is not a regular file, or grown
        return None


def unchanged_since(root: Path, entry: str, verdict: Verdict) -> bool:
    """Cheap re-check just before an entry is moved away: nothing under it changed since `verify`."""
    try:
        return snapshot(root / entry) == verdict.fingerprint
    except OSError:
        return False


# -- the manifest -----------------------------------------------------------------------


@dataclass
class Previous:
    """The earlier run's manifest as read: its records by path (format 2), or why none count."""

    data: dict[str, Any] | None  # the manifest, when it is one
    records: dict[str, dict[str, Any]]
    legacy: bool  # no manifest, or one from before records: the results.json/report.md rule applies


def read_manifest(root: Path) -> Previous:
    path = root / STATE_DIR / MANIFEST
    try:
        data = json.loads(read_regular_text(path, what="manifest", limit=MANIFEST_LIMIT))
    except (UserError, ValueError):
        return Previous(None, {}, legacy=True)
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        return Previous(None, {}, legacy=True)
    if data.get("format") != FORMAT:
        return Previous(data, {}, legacy=True)
    records = {}
    for rec in data["entries"]:
        if isinstance(rec, dict) and safe_relative(rec.get("path")) and rec["path"] not in records:
            records[rec["path"]] = rec
    return Previous(data, records, legacy=False)


def legacy_own(root: Path) -> dict[str, Verdict]:
    """results.json and report.md of a run from before records, when they are hf_cost's."""
    own: dict[str, Verdict] = {}
    for name, looks_like_ours in (("results.json", _hf_cost_results), ("report.md", _hf_cost_report)):
        path = root / name
        try:
            if os.path.realpath(path) != os.path.join(os.path.realpath(root), name):
                break
            shot = snapshot(path)
            if not (stat.S_ISREG(shot[0][1]) and looks_like_ours(path)):
                break
        except (UserError, OSError):
            break
        own[name] = Verdict(True, fingerprint=shot)
    return own  # report.md only beside hf_cost's results.json


def _hf_cost_results(path: Path) -> bool:
    try:
        data = json.loads(read_regular_text(path, what="results.json", limit=LIMITS["results"]))
    except ValueError:
        return False
    return isinstance(data, dict) and "hf_cost_version" in data and "schema_version" in data


def _hf_cost_report(path: Path) -> bool:
    return read_regular_bytes(path, what="report.md", limit=LIMITS["card"]).startswith(REPORT_TITLE)


def manifest_data(entries: list[dict[str, Any]], created_utc: str) -> dict[str, Any]:
    return {"format": FORMAT, "writer": "hf_cost", "created_utc": created_utc, "entries": entries}
