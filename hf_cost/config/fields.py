"""Field types shared by the scenario schema: finite numbers that are never booleans, safe
names, bounded batch sizes and seeds. Each refusal says why, in the user's terms."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, NonNegativeInt, PositiveFloat, PositiveInt

# Suite and scenario names become directory names under the output folder.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_BATCH_SIZE = 4096
MAX_SEED = 2**32 - 1  # numpy's seeds (accelerate's set_seed) stop here
# A drift period label names a period in report.md, the plot and the model card.
MAX_PERIOD_LABEL = 64
_MARKERS = ("<!--", "-->")  # report and card sections are delimited by HTML comments
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}  # control, format (bidi overrides, zero-width), line breaks


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


def text_problem(text: str, *, limit: int | None = MAX_PERIOD_LABEL, what: str = "a period label") -> str | None:
    """Why ``text`` cannot be shown as one label in a report, plot or card; None if it can.
    Cheap on any input: the length is checked before a character is looked at."""
    if limit is not None and len(text) > limit:
        return f"is {len(text):,} characters long; {what} is at most {limit}"
    for marker in _MARKERS:
        if marker in text:
            return f"holds '{marker}', which would open or close a section marker of the report or card"
    bad = next((c for c in text if unicodedata.category(c) in _INVISIBLE), None)
    if bad is not None:
        return f"holds the control character U+{ord(bad):04X}"
    return None


def shown(text: str, width: int = 40) -> str:
    """``text`` quoted for an error line: cut to ``width`` characters, control characters escaped."""
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def _period_label(value: str) -> str:
    problem = text_problem(value.strip())
    if problem:
        raise ValueError(f"period label {shown(value)} {problem}")
    return value


def _shown_text(value: str) -> str:
    problem = text_problem(value, limit=None)
    if problem:
        raise ValueError(f"{shown(value)} {problem}")
    return value


NotBool = BeforeValidator(_not_bool)
PosInt = Annotated[PositiveInt, NotBool]
NonNegInt = Annotated[NonNegativeInt, NotBool]
Float = Annotated[float, NotBool]
PosFloat = Annotated[PositiveFloat, NotBool]
BatchSize = Annotated[PositiveInt, NotBool, AfterValidator(_batch_size)]
Seed = Annotated[int, NotBool, AfterValidator(_seed)]
SafeName = Annotated[str, AfterValidator(_safe_name)]
PeriodLabel = Annotated[str, AfterValidator(_period_label)]
ShownText = Annotated[str, AfterValidator(_shown_text)]  # any length, nothing that breaks a report
