"""Every built-in step kind, one module each, registered here: one line per kind.

Measuring kinds first, then building kinds (the order the scenario schema lists them in).
Adding a kind: its module (config model, metrics model with its report hooks, check, run or
build), one `register` line here, its docs (docs/results.md) and its tests. See
docs/architecture.md.
"""

from hf_cost.core.registry import register
from hf_cost.steps import (
    accuracy,
    cast,
    compare,
    compile,
    distill,
    drift,
    fine_tune,
    free_text,
    lora,
    lora_merge,
    multi_stream,
    offline,
    onnx,
    onnx_int8,
    onnx_optimized,
    perplexity,
    prune,
    quanto,
    server,
    single_stream,
)

register(single_stream.SingleStreamRunner)
register(offline.OfflineRunner)
register(accuracy.AccuracyRunner)
register(compare.CompareRunner)
register(drift.DriftRunner)
register(server.ServerRunner)
register(multi_stream.MultiStreamRunner)
register(perplexity.PerplexityRunner)
register(free_text.FreeTextRunner)
register(fine_tune.FineTuneBuilder)
register(distill.DistillBuilder)
register(onnx.OnnxBuilder)
register(onnx_int8.OnnxInt8Builder)
register(onnx_optimized.OnnxOptimizedBuilder)
register(quanto.QuantoBuilder)
register(cast.CastBuilder)
register(compile.CompileBuilder)
register(prune.PruneBuilder)
register(lora.LoraBuilder)
register(lora_merge.LoraMergeBuilder)
