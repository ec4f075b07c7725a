"""Calibration for static int8 ONNX graphs (steps/onnx_int8.py, `mode: static`).

Rows: the scenario's `calibration` dataset narrowed as every DatasetSpec is (where, select,
max_samples, empty texts dropped), then a seeded sample of `calibration_samples` rows
(`calibration.seed`), kept in file order. Only the text (and text pair) column is read.

Shapes: tokenized with the source's tokenizer and truncated at `inputs.sequence_length`, padded
as the candidate runs: `lengths: fixed` pads every row to the sequence length (the pad tokens'
activations are calibrated too, since they run too); `lengths: natural` keeps each row at its own
length, one row per calibration batch, as single-stream queries run.

The attention-mask path: a node that reads a tensor computed from `attention_mask` alone (by
value: Shape and Size pass no values) holds 0 or float32's lowest (-3.4e38) per position. No 8-bit
range represents both, a histogram over ±3.4e38 cannot be built (entropy and percentile fail), and
a range calibrated on unpadded rows ([0, 0]) would erase the mask of a padded batch. The op types
of those nodes are therefore left out of calibration and quantization (`mask_path_op_types`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_cost.config.base import DatasetSpec

VALUE_BARRIERS = ("Shape", "Size")  # their output depends on a tensor's shape, never on its values
MASK_INPUT = "attention_mask"


@dataclass(frozen=True)
class CalibrationRows:
    texts: list[str]
    pairs: list[str] | None
    available: int  # rows left after narrowing, before the sample
    description: str


def calibration_rows(spec: DatasetSpec, samples: int, where: str) -> CalibrationRows:
    """The calibration texts (a seeded sample of at most ``samples`` narrowed rows, file order)."""
    from hf_cost.data.selection import describe_dropped, narrow_rows
    from hf_cost.data.sources import load_split, require_columns

    ds = load_split(spec, where)
    columns = {"text_column": spec.text_column, "text_pair_column": spec.text_pair_column}
    require_columns(ds, columns, where)
    ds, dropped = narrow_rows(ds, spec, where, columns)
    rows = list(range(len(ds)))
    if len(rows) > samples:
        rows = sorted(random.Random(spec.seed).sample(rows, samples))
    sub = ds.select(rows)
    texts = [str(t) for t in sub[spec.text_column]]
    pairs = [str(t) for t in sub[spec.text_pair_column]] if spec.text_pair_column else None
    description = f"{len(rows)} of {len(ds)} rows of {spec.display_name} (seed {spec.seed})" + describe_dropped(dropped)
    return CalibrationRows(texts=texts, pairs=pairs, available=len(ds), description=description)


def calibration_dataset(rows: CalibrationRows, tokenizer: Any, sequence_length: int, natural: bool,
                        graph_inputs: set[str]) -> Any:
    """A `datasets.Dataset` of the graph's inputs, one row per text, shaped as the candidate runs."""
    from datasets import Dataset

    padding = False if natural else "max_length"
    enc = tokenizer(rows.texts, rows.pairs, truncation=True, max_length=sequence_length, padding=padding)
    return Dataset.from_dict({k: list(v) for k, v in enc.items() if k in graph_inputs})


def graph_input_names(path: Path) -> set[str]:
    import onnx

    return {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}


def mask_path_op_types(path: Path) -> dict[str, list[str]]:
    """Op type -> names of the nodes that read a tensor computed from ``attention_mask`` alone."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inputs = [i.name for i in graph.input]
    if MASK_INPUT not in inputs:
        return {}
    mask_only = _reached(graph, [MASK_INPUT]) - _reached(graph, [n for n in inputs if n != MASK_INPUT])
    found: dict[str, list[str]] = {}
    for node in graph.node:
        if any(t in mask_only for t in node.input):
            found.setdefault(node.op_type, []).append(node.name)
    return found


def _reached(graph: Any, sources: list[str]) -> set[str]:
    """Tensors whose values depend on ``sources`` (nodes are in topological order in ONNX)."""
    seen = set(sources)
    for node in graph.node:
        if node.op_type not in VALUE_BARRIERS and any(t in seen for t in node.input):
            seen.update(node.output)
    return seen


def quantized_node_counts(path: Path, op_types: list[str]) -> dict[str, int]:
    """Op type -> nodes of that type (one of ``op_types``, those the quantizer was given) reading a
    DequantizeLinear output: what a QDQ graph quantized. A node of another type fed by a
    DequantizeLinear (a residual Add after a quantized MatMul) only consumes a quantized tensor."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return dict(Counter(n.op_type for n in graph.node
                        if n.op_type in op_types and any(i in dequantized for i in n.input)))


def range_rows(ranges: Any) -> list[dict[str, Any]]:
    """Each calibrated tensor's range as plain numbers: {tensor, low, high}, sorted by name."""
    import numpy as np

    rows = []
    for name in sorted(ranges.keys()):
        low, high = ranges[name].range_value
        rows.append({"tensor": name, "low": float(np.asarray(low).reshape(-1)[0]),
                     "high": float(np.asarray(high).reshape(-1)[0])})
    return rows
