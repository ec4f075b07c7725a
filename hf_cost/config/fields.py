"""Field types shared by the scenario schema: finite numbers that are never booleans, safe
names, bounded batch sizes and seeds. Each refusal says why, in the user's terms."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, NonNegativeInt, PositiveFloat, PositiveInt

# Suite and scenario names become directory names under the output folder.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_BATCH_SIZE = 4096
MAX_SEED = 2**32 - 1  # numpy's seeds (accelerate's set_seed) stop here


def _not_bool(value: Any) -> Any:
    """YAML's true/false would pass as 1/0 for an int or float field."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got a boolean ({str(value).lower()})")
    return value


def _safe_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: it names a directory, so use 1 to 64 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def _batch_size(value: int) -> int:
    if value > MAX_BATCH_SIZE:
        raise ValueError(
            f"{value} is more than {MAX_BATCH_SIZE}: a batch's inputs and activations are "
            "allocated at once, so a batch this large is almost certainly a typo"
        )
    return value


def _seed(value: int) -> int:
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"{value} is out of range: a seed is 0 to {MAX_SEED} (numpy's range)")
    return value


NotBool = BeforeValidator(_not_bool)
PosInt = Annotated[PositiveInt, NotBool]
NonNegInt = Annotated[NonNegativeInt, NotBool]
Float = Annotated[float, NotBool]
PosFloat = Annotated[PositiveFloat, NotBool]
BatchSize = Annotated[PositiveInt, NotBool, AfterValidator(_batch_size)]
Seed = Annotated[int, NotBool, AfterValidator(_seed)]
SafeName = Annotated[str, AfterValidator(_safe_name)]
