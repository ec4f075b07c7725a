"""Find a checkpoint: a local directory, the Hub cache, the Hub, or an embedded copy.

Nothing here loads weights: `validate` resolves the config only, `run` then loads
the model through the same reference (Hub id + revision, or local path). A GGUF
checkpoint (model.gguf_file) is one file that holds config, tokenizer and weights:
it is looked for instead of config.json, and every from_pretrained gets its name.
"""

from __future__ import annotations

import importlib.util
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hf_cost.config.schema import ModelSpec
from hf_cost.errors import ModelNotFoundError
from hf_cost.models.embedded import EMBEDDED
from hf_cost.models.hub_cache import hub_cache_dir


@dataclass
class ResolvedCheckpoint:
    reference: str  # what from_pretrained receives: a Hub id or a local directory
    revision: str | None  # None for a local directory
    local_dir: Path  # the files on disk (a cache snapshot or the directory itself)
    commit: str | None  # the snapshot's commit hash, when it came through the cache
    source: str  # how it was found, in words
    config: Any  # transformers.PretrainedConfig
    trust_remote_code: bool = False  # model.trust_remote_code: may the checkpoint's own code run
    gguf_file: str | None = None  # model.gguf_file: the file in local_dir holding config, tokenizer, weights

    def pretrained_kwargs(self) -> dict[str, Any]:
        """What every from_pretrained of this checkpoint gets: revision, code consent, the GGUF file."""
        kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.revision is not None:
            kwargs["revision"] = self.revision
        if self.gguf_file is not None:
            kwargs["gguf_file"] = self.gguf_file
        return kwargs


def hub_is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def resolve_checkpoint(spec: ModelSpec, log: Callable[[str], None] = lambda _: None) -> ResolvedCheckpoint:
    gguf_file = checked_gguf_file(getattr(spec, "gguf_file", None))
    if spec.path is not None:
        resolved = _resolve_local(Path(spec.path), spec.trust_remote_code, gguf_file)
    else:
        assert spec.id is not None
        resolved = _resolve_hub(spec.id, spec.revision, spec.trust_remote_code, log, gguf_file)
    resolved.trust_remote_code = spec.trust_remote_code
    resolved.gguf_file = gguf_file
    return resolved


def checked_gguf_file(name: str | None) -> str | None:
    """model.gguf_file: a plain file name ending in .gguf, never a path (it is joined onto a
    directory and handed to the Hub as a file of the repository)."""
    if name is None:
        return None
    if (not isinstance(name, str) or not name.endswith(".gguf") or name.startswith(".") or ".." in name
            or any(c in name for c in "/\\\x00")):
        raise ModelNotFoundError(
            f"{name!r} is not a GGUF file name: a plain name ending in .gguf, no directories, no '..'",
            where="model.gguf_file",
        )
    return name


def _resolve_local(path: Path, trust: bool, gguf_file: str | None = None) -> ResolvedCheckpoint:
    if not path.is_dir():
        raise ModelNotFoundError(f"no checkpoint directory at {path}", where="model.path")
    if gguf_file is not None:  # the one file holds the config: no config.json needed
        try:
            regular = stat.S_ISREG((path / gguf_file).stat().st_mode)  # a symlink counts by its target
        except OSError:
            regular = False
        if not regular:
            raise ModelNotFoundError(f"{path} has no regular file {gguf_file}", where="model.gguf_file")
    elif not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{path} has no config.json: not a transformers checkpoint", where="model.path"
        )
    return ResolvedCheckpoint(
        reference=str(path), revision=None, local_dir=path, commit=None,
        source="local directory", config=_load_config(path, trust, gguf_file), gguf_file=gguf_file,
    )


def _resolve_hub(
    repo_id: str, revision: str, trust: bool, log: Callable[[str], None], gguf_file: str | None = None
) -> ResolvedCheckpoint:
    offline = hub_is_offline()
    wanted = gguf_file or "config.json"
    found = _cached(repo_id, wanted, revision, local_only=offline)
    source = "Hub cache" if offline else "Hub"
    embedded = EMBEDDED.get(repo_id)
    if found is None and offline and embedded is not None and revision == "main" and embedded.provides(gguf_file):
        embedded.import_into_cache(revision, log)
        found = _cached(repo_id, wanted, revision, local_only=True)
        source = embedded.source
    if found is None:
        what = f"'{repo_id}' (revision {revision})" + (f" with {gguf_file}" if gguf_file else "")
        if offline:
            hint = ""
            if embedded is not None:
                hint = f"; hf_cost has an embedded copy of {repo_id} for revision main {embedded.request}"
            raise ModelNotFoundError(
                f"{what} is not in the Hub cache at {hub_cache_dir()} "
                f"and the Hub is offline; import a local copy with "
                f"`python -m hf_cost cache import DIR --as {repo_id}`, or set model.path to a local directory"
                + hint,
                where="model.id",
            )
        raise ModelNotFoundError(
            f"{what} was not found on the Hub: check the id, the revision"
            + (" and model.gguf_file" if gguf_file else "")
            + " (a private or gated repository needs `huggingface-cli login`)",
            where="model.id",
        )
    snapshot = Path(found).parent
    commit = snapshot.name if snapshot.parent.name == "snapshots" else None
    return ResolvedCheckpoint(
        reference=repo_id, revision=revision, local_dir=snapshot, commit=commit,
        source=source, config=_load_config(snapshot, trust, gguf_file), gguf_file=gguf_file,
    )


def _cached(repo_id: str, filename: str, revision: str, local_only: bool) -> str | None:
    """The local path of one file of the repository (downloaded unless ``local_only``), or None."""
    from transformers.utils import cached_file

    try:
        return cached_file(
            repo_id, filename, revision=revision, local_files_only=local_only,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except (OSError, ValueError):
        return None


def _load_config(path: Path, trust_remote_code: bool, gguf_file: str | None = None) -> Any:
    from transformers import AutoConfig

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if gguf_file is not None:
        if importlib.util.find_spec("gguf") is None:
            raise ModelNotFoundError(
                "transformers reads a GGUF checkpoint with the gguf package, which is not installed: "
                "pip install gguf", where="model.gguf_file",
            )
        kwargs["gguf_file"] = gguf_file
    try:
        return AutoConfig.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        if needs_remote_code(exc):
            raise remote_code_error(path) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelNotFoundError(f"cannot read the config in {path}: {first}", where="model") from None


def needs_remote_code(exc: BaseException) -> bool:
    """transformers' refusal to run a checkpoint's own code without consent."""
    return "trust_remote_code" in str(exc)


def remote_code_error(path: Any) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"{path} needs its own Python code to load (a custom architecture); hf_cost runs it only "
        "with consent: set model.trust_remote_code: true if you trust this checkpoint",
        where="model.trust_remote_code",
    )
