"""Load a dataset split through `datasets`: a Hub id or local files."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hf_cost.config.schema import DatasetSpec
from hf_cost.errors import DataError, UserError
from hf_cost.safe_files import LIMITS, check_regular

# file suffix -> the `datasets` builder that reads it
LOCAL_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def load_split(spec: DatasetSpec, where: str = "inputs.dataset") -> Any:
    """Return a `datasets.Dataset` for ``spec``; every failure is a one-line DataError."""
    import datasets

    datasets.disable_progress_bars()
    try:
        if spec.path is not None:
            path = Path(spec.path)
            builder = LOCAL_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise DataError(
                    f"cannot read '{path.name}': expected one of {sorted(LOCAL_BUILDERS)}",
                    where=f"{where}.path",
                )
            if not path.exists() and not path.is_symlink():
                raise DataError(f"no data file at {path}", where=f"{where}.path")
            if _regular_file(path, f"{where}.path").st_size == 0:
                raise DataError(f"{path} is empty", where=f"{where}.path")
            if spec.split not in ("train", "data"):  # before reading the file, not after
                raise DataError(
                    "a local file has a single split; drop 'split' or select rows by a column",
                    where=f"{where}.split",
                )
            with _quiet_readers():
                ds = datasets.load_dataset(builder, data_files={"data": str(path)}, split="data")
        else:
            ds = datasets.load_dataset(
                spec.id, spec.config, split=spec.split, revision=spec.revision
            )
    except DataError:
        raise
    except (FileNotFoundError, ValueError, ConnectionError, OSError, StopIteration) as exc:
        raise DataError(f"cannot load dataset: {_first_line(exc)}", where=where) from None
    except Exception as exc:  # datasets raises its own types (DatasetGenerationError, ...)
        if exc.__class__.__module__.startswith("datasets"):
            raise DataError(f"cannot load dataset: {_first_line(exc)}", where=where) from None
        raise
    if len(ds) == 0:
        raise DataError("the split is empty", where=f"{where}.split")
    return ds


MAX_CAUSE_CHARS = 300


def _regular_file(path: Path, where: str) -> os.stat_result:
    """Refuse a FIFO, a device, a folder or a file over LIMITS["dataset"] before `datasets`
    opens it (a FIFO would block it forever, /dev/zero would never end)."""
    try:
        return check_regular(path, what="dataset file", limit=LIMITS["dataset"])
    except UserError as exc:
        reason = str(exc).removeprefix(f"{exc.where}: ").removeprefix("dataset file: ")
        raise DataError(f"{path}: {reason}", where=where) from None


@contextlib.contextmanager
def _quiet_readers() -> Iterator[None]:
    """`datasets`' csv/json readers log a parse error at ERROR before raising it; the error
    line below says the same, so the log record would only print the message twice."""
    logger = logging.getLogger("datasets.packaged_modules")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``, followed by that of its cause when that says more:
    `datasets` wraps a decode or parse error in "An error occurred while generating the
    dataset", which alone does not say what is wrong with the file."""
    text = _line(exc)
    if "corresponds to no data" in text:  # datasets' words for a file with no rows
        return "the file has no rows"
    cause = _cause(exc)
    if cause is not exc:
        line = _line(cause)
        if line not in text:
            text = f"{text}: {line}"
        if isinstance(cause, UnicodeDecodeError):
            text += " (save the file as UTF-8)"
    if len(text) > MAX_CAUSE_CHARS:
        text = text[: MAX_CAUSE_CHARS - 3] + "..."
    return text


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else exc.__class__.__name__


def _cause(exc: BaseException) -> BaseException:
    """The first exception down the ``__cause__`` / ``__context__`` chain that `datasets` did
    not raise (the decode or parse error it wrapped), else the last one. Not the very root:
    below a parse error lie the fallbacks pandas or pyarrow tried while handling it."""
    seen = {id(exc)}
    while exc.__class__.__module__.split(".")[0] == "datasets":
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        exc = nxt
    return exc


def require_columns(ds: Any, columns: dict[str, str | None], where: str) -> None:
    """``columns`` maps a scenario key to the column it names; a missing one is an error."""
    for key, column in columns.items():
        if column is not None and column not in ds.column_names:
            raise DataError(
                f"column '{column}' not in the dataset (columns: {', '.join(ds.column_names)})",
                where=f"{where}.{key}",
            )
