"""Load a dataset split through `datasets`: a Hub id or local files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_cost.config.schema import DatasetSpec
from hf_cost.errors import DataError

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
            if not path.is_file():
                raise DataError(f"no data file at {path}", where=f"{where}.path")
            if path.stat().st_size == 0:
                raise DataError(f"{path} is empty", where=f"{where}.path")
            if spec.split not in ("train", "data"):  # before reading the file, not after
                raise DataError(
                    "a local file has a single split; drop 'split' or select rows by a column",
                    where=f"{where}.split",
                )
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if "corresponds to no data" in text:  # datasets' words for a file with no rows
        return "the file has no rows"
    return text.splitlines()[0] if text else exc.__class__.__name__


def require_columns(ds: Any, columns: dict[str, str | None], where: str) -> None:
    """``columns`` maps a scenario key to the column it names; a missing one is an error."""
    for key, column in columns.items():
        if column is not None and column not in ds.column_names:
            raise DataError(
                f"column '{column}' not in the dataset (columns: {', '.join(ds.column_names)})",
                where=f"{where}.{key}",
            )
