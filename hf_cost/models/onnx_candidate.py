"""A candidate run by ONNX Runtime through Optimum's ORTModel (CPU execution provider).

The session runs on the CPU only: the installed `onnxruntime` is the CPU build, and a
CUDA provider would need `onnxruntime-gpu` plus I/O binding to be timed honestly (not done).
Its intra-op threads are set to torch's thread count, so torch and ORT candidates of one
run are measured on the same number of cores.

What it weighs is read from the graph file itself (`graph_facts`, without loading external
data): opset, initializer bytes by data type, operator counts (MatMulInteger and
DynamicQuantizeLinear show dynamic int8). FLOPs are not counted on the graph: they are
inherited from the source torch model on the same input shape (`OnnxCandidate.flops`).
"""

from __future__ import annotations

import gc
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_cost.config.lineage import label_names
from hf_cost.core.candidate import Candidate

PROVIDER = "CPUExecutionProvider"
INT8_OPS = ("MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class GraphFacts:
    opset: int | None  # of the default (ai.onnx) domain
    initializer_bytes: int  # every initializer, identical tensors stored once by the exporter
    initializer_elements: int
    bytes_by_dtype: dict[str, int]
    op_counts: dict[str, int]  # operator type -> nodes
    files_bytes: int  # the .onnx file plus any external-data files next to it
    outputs: list[str]


def graph_facts(path: Path) -> GraphFacts:
    import numpy as np
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(str(path), load_external_data=False)
    by_dtype: Counter[str] = Counter()
    elements = 0
    for t in model.graph.initializer:
        n = int(np.prod(t.dims)) if t.dims else 1
        dtype = np.dtype(tensor_dtype_to_np_dtype(t.data_type))
        by_dtype[dtype.name] += n * dtype.itemsize
        elements += n
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    external = {
        e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"
    }
    files = path.stat().st_size + sum((path.parent / f).stat().st_size for f in external)
    return GraphFacts(
        opset=opset, initializer_bytes=sum(by_dtype.values()), initializer_elements=elements,
        bytes_by_dtype=dict(by_dtype), op_counts=dict(Counter(n.op_type for n in model.graph.node)),
        files_bytes=files, outputs=[o.name for o in model.graph.output],
    )


def load_ort(directory: Path, file_name: str, has_head: bool) -> Any:
    """The Optimum ORTModel for ``directory/file_name`` on the CPU provider, torch's threads."""
    from optimum.onnxruntime import ORTModelForFeatureExtraction, ORTModelForSequenceClassification

    cls = ORTModelForSequenceClassification if has_head else ORTModelForFeatureExtraction
    return cls.from_pretrained(directory, file_name=file_name, provider=PROVIDER, session_options=session_options())


def session_options() -> Any:
    """ONNX Runtime session options: intra-op threads = torch's, one inter-op thread."""
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    return options


def source_model(source: Any, has_head: bool, attn_implementation: str | None = None) -> Any:
    """The source torch model (fp32, CPU, eval), as the exporter saw it."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if has_head else AutoModel
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = cls.from_pretrained(source.reference, **source.pretrained_kwargs(), **kwargs)
    return model.eval()


def describe_quantization(cfg: Any) -> tuple[dict[str, Any], str]:
    """An Optimum QuantizationConfig as plain settings, and the candidate's dtype text."""
    short = {"QInt8": "s8", "QUInt8": "u8"}
    w, a = (short.get(t.name, t.name) for t in (cfg.weights_dtype, cfg.activations_dtype))
    per = "per-channel" if cfg.per_channel else "per-tensor"
    settings = {
        "format": cfg.format.name, "mode": cfg.mode.name, "weights_dtype": w, "activations_dtype": a,
        "per_channel": cfg.per_channel, "reduce_range": cfg.reduce_range,
        "operators_to_quantize": list(cfg.operators_to_quantize),
    }
    when = "static (calibrated)" if cfg.is_static else "dynamic"
    return settings, f"int8 weights ({w}, {per}), {when} int8 activations ({a})"


def compare_with_source(candidate: OnnxCandidate, batch: dict[str, Any]) -> tuple[list[float], int]:
    """Max |candidate - source torch model| of each sample of ``batch`` (logits or last hidden
    state), and the source model's parameter count."""
    import torch

    reference = source_model(candidate.source, candidate.label_names is not None, candidate.attn_implementation)
    with torch.inference_mode():
        out = reference(**batch)
    expected = getattr(out, "logits", None)
    expected = expected if expected is not None else out.last_hidden_state
    parameters = sum(p.numel() for p in reference.parameters())
    del reference, out
    gc.collect()
    diff = (candidate.forward(batch).float() - expected.float()).abs().reshape(expected.shape[0], -1).amax(dim=1)
    return [float(d) for d in diff], parameters


class OnnxCandidate(Candidate):
    runtime = "onnxruntime"

    def __init__(
        self, name: str, ort_model: Any, tokenizer: Any, info: Any, source: Any, *,
        int8: bool, attn_implementation: str | None = None,
    ):
        import torch

        self.name = name
        self.ort_model = ort_model
        self.tokenizer = tokenizer
        self.device = torch.device("cpu")
        config = ort_model.config
        has_head = type(ort_model).__name__ == "ORTModelForSequenceClassification"
        self.label_names = label_names(config) if has_head else None
        self.info = info
        self.source = source  # ResolvedCheckpoint of the torch checkpoint it was exported from
        self.int8 = int8
        self.attn_implementation = attn_implementation
        self._inputs = set(ort_model.input_names)

    def forward(self, batch: dict[str, Any]) -> Any:
        out = self.ort_model(**{k: v for k, v in batch.items() if k in self._inputs})
        logits = getattr(out, "logits", None)
        return logits if logits is not None else out.last_hidden_state

    def flops(self, sample: dict[str, Any], config: Any) -> Any:
        """FLOPs of the source torch model on the same sample shape (the graph is its trace)."""
        from hf_cost.measure.flops import torch_flops_info

        model = source_model(self.source, self.label_names is not None, self.attn_implementation)
        notes = []
        base = getattr(model, "base_model", model)
        pooler = getattr(base, "pooler", None) is not None
        if self.label_names is None and pooler:
            base.pooler = None  # the feature-extraction graph outputs last_hidden_state only
            pooler = False
            notes.append("pooler left out: the ONNX feature-extraction graph has no pooler output")
        try:
            counted = torch_flops_info(
                model, sample, self.source.config, with_pooler=pooler,
                num_labels=len(self.label_names) if self.label_names is not None else None,
            )
        finally:
            del model, base
            gc.collect()
        how = (
            "inherited from the source torch model on the same sample shape (the ONNX graph is its "
            "export): " + counted.method
        )
        if self.int8 and "QuantizeLinear" in self.info.model.get("int8_op_counts", {}):
            how += ("; in this graph the matmuls run as int8 ops (static QDQ: QuantizeLinear/DequantizeLinear pairs "
                    "ONNX Runtime fuses into int8 kernels)")
        elif self.int8:
            how += "; in this graph the matmuls run as int8 ops (MatMulInteger after DynamicQuantizeLinear)"
        return counted.model_copy(update={"source": "inherited", "method": "; ".join([how, *notes])})


def candidate_info(
    name: str, facts: GraphFacts, file_name: str, *, dtype: str, parameters: int, details: dict[str, Any]
) -> Any:
    """A CandidateInfo for an ONNX candidate (the store fills name, origin, path, FLOPs later)."""
    from hf_cost.core.candidate_info import CandidateInfo

    model = {
        "file_name": file_name, "provider": PROVIDER, "opset": facts.opset,
        "parameters_counted_from": "the source torch model (sum of its parameters' numel)",
        "parameter_bytes_counted_from": "ONNX graph initializers (identical tensors are stored once)",
        "initializer_bytes_by_dtype": facts.bytes_by_dtype,
        "int8_op_counts": {op: facts.op_counts[op] for op in INT8_OPS if op in facts.op_counts},
        "graph_outputs": facts.outputs,
        **details,
    }
    return CandidateInfo(
        name=name, origin="variant", runtime="onnxruntime", dtype=dtype, device="cpu",
        parameters=parameters, parameter_bytes=facts.initializer_bytes, size_on_disk_bytes=facts.files_bytes,
        path=None, model=model, load_time_s=0.0, baseline_rss_mib=0.0,
    )
