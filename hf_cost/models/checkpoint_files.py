"""Check a checkpoint's files before any weights load, so `validate` catches what `run` would die on.

Weights: a safetensors file's header is read and its byte ranges checked against the file
size (a truncated or corrupt file is found without loading a tensor); a pickled
`.bin` must be a readable zip archive (torch's format since 1.6). Tokenizer: it is
loaded (cheap), with the same code consent as the model.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

from hf_cost.errors import ModelNotFoundError, UserError

_MAX_HEADER_BYTES = 100 * 2**20  # the safetensors format's own limit
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLE = ("model.safetensors", "pytorch_model.bin")


def check_checkpoint_files(resolved: Any) -> Any:
    """Raise a one-line UserError for missing or corrupt weights, or a tokenizer that won't load;
    return the tokenizer (later checks read it).

    A checkpoint on the Hub (online) whose files are not downloaded yet is checked for
    its tokenizer only; its weights are fetched, and checked, when the run loads them. A GGUF
    file's header is read (its tensors are checked when transformers de-quantises them).
    """
    directory = Path(resolved.local_dir)
    gguf_file = getattr(resolved, "gguf_file", None)
    if gguf_file is not None:
        from hf_cost.models.gguf_info import gguf_summary

        try:
            gguf_summary(directory / gguf_file)
        except (OSError, ValueError) as exc:
            raise _corrupt(directory / gguf_file, str(exc).splitlines()[0] if str(exc) else "unreadable") from None
    elif resolved.source != "Hub":
        for file in weight_files(directory):
            check_weight_file(file)
    return check_tokenizer(resolved)


def weight_files(directory: Path) -> list[Path]:
    """The weight files from_pretrained would read: an index's shards, else the single file."""
    for index_name in _INDEXES:
        index = directory / index_name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise _corrupt(index, f"unreadable index ({exc.__class__.__name__})") from None
            missing = [s for s in shards if not (directory / s).is_file()]
            if missing:
                raise _corrupt(index, f"shard {missing[0]} is missing ({len(missing)} of {len(shards)})")
            return [directory / s for s in shards]
    for name in _SINGLE:
        if (directory / name).is_file():
            return [directory / name]
    raise ModelNotFoundError(
        f"{directory} has no weights (model.safetensors, pytorch_model.bin or a sharded index)",
        where="model",
    )


def check_weight_file(path: Path) -> None:
    if path.suffix == ".safetensors":
        _check_safetensors(path)
    elif path.suffix == ".bin" and not zipfile.is_zipfile(path):
        raise _corrupt(path, "not a readable torch archive (truncated or not a checkpoint)")


def _check_safetensors(path: Path) -> None:
    """The header is 8 bytes of little-endian length, then JSON with each tensor's byte range."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise _corrupt(path, f"{size} bytes: too short to be safetensors")
        (n,) = struct.unpack("<Q", head)
        if n > min(_MAX_HEADER_BYTES, size - 8):
            raise _corrupt(path, f"header length {n} does not fit a {size}-byte file")
        try:
            header = json.loads(fh.read(n))
        except (ValueError, UnicodeDecodeError):
            raise _corrupt(path, "the header is not valid JSON") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "the header is not a mapping")
    ends = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise _corrupt(path, f"tensor '{name}' has no valid data_offsets")
        ends.append(offsets[1])
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        raise _corrupt(path, f"the header describes {expected} bytes but the file has {size} (truncated?)")


def check_tokenizer(resolved: Any) -> Any:
    from transformers import AutoTokenizer

    from hf_cost.models.load import load_error

    try:
        return AutoTokenizer.from_pretrained(resolved.reference, **resolved.pretrained_kwargs())
    except Exception as exc:  # noqa: BLE001 - any failure is the checkpoint's, said in one line
        err = load_error(resolved.reference, exc)
        if err.where == "model":
            raise UserError(f"no usable tokenizer: {str(err).removeprefix('model: ')}", where="model") from None
        raise err from None


def _corrupt(path: Path, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"{path.name} in {path.parent} is corrupt: {why}", where="model")
