"""What a GGUF file holds, read from its header only: architecture, file type, tensor types.

The loader quotes this ("weights de-quantised from Q4_1"), so a GGUF checkpoint's figures are
never read as the unquantised release's. `gguf.GGUFReader` would give the same answer but builds
a numpy view for every metadata item, the tokenizer's ~100k strings included: 4.3 s for the
98 MB SmolLM2-135M Q4_1 file on a 2-core VM. This walk reads the same header with `struct`
(0.03 s there, plus 0.3 s to import gguf once) and takes its constants and type names from the `gguf` package, so both
agree on what a type is called (tests/test_embedded_lm.py checks it against GGUFReader).
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections import Counter
from pathlib import Path
from typing import Any

from hf_cost.errors import ModelNotFoundError

_SCALAR = {"UINT8": "B", "INT8": "b", "UINT16": "H", "INT16": "h", "UINT32": "I", "INT32": "i",
           "FLOAT32": "f", "BOOL": "?", "UINT64": "Q", "INT64": "q", "FLOAT64": "d"}
_KEPT = {"general.architecture", "general.file_type", "general.quantization_version"}
_MAX_DIMS = 8  # ggml's GGML_MAX_DIMS is 4; anything past 8 is a corrupt header


def gguf_summary(path: str | Path) -> dict[str, Any]:
    """{"gguf_version", "architecture", "file_type", "tensor_count", "parameters", "tensor_types"}:
    ``tensor_types`` counts tensors by ggml type name, most common first, e.g.
    {"Q4_1": 210, "F32": 61, "Q8_0": 1}. Reads the header, never the tensor data."""
    try:
        import gguf
    except ImportError:
        raise ModelNotFoundError("reading a GGUF file needs the gguf package: pip install gguf",
                                 where="model.gguf_file") from None
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))  # a FIFO must not block
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError("not a regular file")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _walk(buf, gguf)
    except (struct.error, ValueError, OverflowError, RecursionError) as exc:
        raise ModelNotFoundError(f"{path.name} in {path.parent} is not a readable GGUF file: {exc}",
                                 where="model.gguf_file") from None
    except OSError as exc:
        raise ModelNotFoundError(f"cannot read {path}: {exc.strerror or exc}", where="model.gguf_file") from None


def _walk(buf: Any, gguf: Any) -> dict[str, Any]:
    if buf[:4] != struct.pack("<I", gguf.GGUF_MAGIC):
        raise ValueError("no GGUF magic at the start")
    (version,) = struct.unpack_from("<I", buf, 4)
    order = "<"
    if version & 0xFFFF == 0:  # written on a machine of the other byte order, as GGUFReader detects it
        order = ">"
        (version,) = struct.unpack_from(">I", buf, 4)
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} (2 and 3 are read)")
    reader = _Reader(buf, order, gguf.GGUFValueType)
    reader.pos = 8
    tensor_count, kv_count = reader.unpack("QQ")
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = reader.string().decode("utf-8", "replace")
        value = reader.value(reader.unpack("I")[0], keep=key in _KEPT)
        if key in _KEPT:
            metadata[key] = value
    reader.need(tensor_count, 8 + 4 + 4 + 8)  # the smallest tensor entry: no name, no dims
    types: Counter[str] = Counter()
    parameters = 0
    for _ in range(tensor_count):
        reader.string()
        (n_dims,) = reader.unpack("I")
        if n_dims > _MAX_DIMS:
            raise ValueError(f"a tensor with {n_dims} dimensions")
        elements = 1
        for dim in reader.unpack("Q" * n_dims):
            elements *= dim
        raw_type, _offset = reader.unpack("IQ")
        types[_name(gguf.GGMLQuantizationType, raw_type)] += 1
        parameters += elements
    file_type = metadata.get("general.file_type")
    return {
        "gguf_version": version,
        "architecture": metadata.get("general.architecture"),
        "file_type": None if file_type is None else _name(gguf.LlamaFileType, file_type),
        "tensor_count": tensor_count,
        "parameters": parameters,
        "tensor_types": dict(types.most_common()),
    }


def _name(enum: Any, value: Any) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return f"type {value}"


class _Reader:
    """A cursor over the header; every length is checked against the bytes left first."""

    def __init__(self, buf: Any, order: str, value_types: Any):
        self.buf, self.order, self.pos, self.types = buf, order, 0, value_types

    def need(self, count: int, each: int) -> None:
        if count * each > len(self.buf) - self.pos:
            raise ValueError(f"the header announces {count} items of at least {each} bytes past the file's end")

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from(self.order + fmt, self.buf, self.pos)
        self.pos += struct.calcsize(self.order + fmt)
        return values

    def string(self) -> bytes:
        (length,) = self.unpack("Q")
        self.need(length, 1)
        start, self.pos = self.pos, self.pos + length
        return bytes(self.buf[start:self.pos])

    def value(self, raw_type: int, keep: bool, depth: int = 0) -> Any:
        kind = self.types(raw_type).name
        if kind == "STRING":
            text = self.string()
            return text.decode("utf-8", "replace") if keep else None
        if kind in _SCALAR:
            return self.unpack(_SCALAR[kind])[0]
        if kind != "ARRAY" or depth > 2:
            raise ValueError(f"metadata value of type {kind} nested {depth} deep")
        item_type, count = self.unpack("IQ")
        item_kind = self.types(item_type).name
        if item_kind in _SCALAR:  # skipped whole: arrays are never kept
            size = struct.calcsize(self.order + _SCALAR[item_kind])
            self.need(count, size)
            self.pos += count * size
            return None
        self.need(count, 8)  # a string or an array header is at least 8 bytes
        if item_kind == "STRING":  # the tokenizer's vocabulary and merges: the bulk of the header
            length_at, end = struct.Struct(self.order + "Q").unpack_from, len(self.buf)
            for _ in range(count):
                self.pos += 8 + length_at(self.buf, self.pos)[0]
                if self.pos > end:
                    raise ValueError("a string runs past the file's end")
            return None
        for _ in range(count):
            self.value(item_type, keep=False, depth=depth + 1)
        return None
