"""Typed figures of the ONNX Runtime building kinds: onnx (the fp32 export), onnx_int8 (with its
accuracy-aware tuning) and onnx_optimized. Units in field names, as in core/metrics.py."""

from __future__ import annotations

from pydantic import Field

from hf_cost.core.bounds import Count, NonNegative, Out, Share
from hf_cost.core.build_metrics import VariantMetrics
from hf_cost.core.format import fmt
from hf_cost.core.results import ScenarioResult, SummaryCells


class OnnxMetrics(VariantMetrics):
    """An ONNX Runtime export (optimum), fp32."""

    export_time_s: NonNegative
    onnx_file_bytes: Count
    opset: int
    provider: str
    parameters: Count
    initializer_bytes: Count
    session_load_time_s: NonNegative
    max_abs_output_diff_vs_source: NonNegative = Field(
        description="max |difference| vs the source torch model: logits or last hidden state; a causal LM's "
        "logits at the first new token's position")
    next_token_agreement_vs_source: Share | None = Field(
        None, description="causal LMs: share of teacher-forced positions where the graph's argmax is the source "
        "torch model's greedy token")
    next_tokens_compared: Count | None = Field(None, description="causal LMs: positions behind that share")

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        cells = super().summary_cells(result)
        if self.next_token_agreement_vs_source is None:
            return cells
        return SummaryCells(n=cells.n, headline=cells.headline, spread=(
            f"vs the source: max |logit difference| {fmt(self.max_abs_output_diff_vs_source, digits=3)}, greedy next "
            f"token the same at {self.next_token_agreement_vs_source:.0%} of {self.next_tokens_compared} positions; "
            + cells.spread))


class Int8Tuning(Out):
    """Accuracy-aware int8 (models/int8_tuning.py): the nodes kept float, the paired accuracy change of the
    graph kept (int8 - fp32 graph, in points, on the same rows) and what the float nodes cost in speed."""

    float_nodes: list[str] = Field(description="nodes kept float (ORT nodes_to_exclude), most harmful first")
    bound_met: bool = Field(description="the kept graph's CI low end >= min_delta_points; false: the best trial kept")
    min_delta_points: float
    rows: Count = Field(description="labelled rows both graphs were scored on")
    confidence: Share
    fp32_accuracy: Share
    accuracy: Share = Field(description="the kept graph's accuracy on those rows")
    delta_points: float = Field(description="accuracy change of the kept graph vs fp32, points")
    delta_ci_low_points: float
    delta_ci_high_points: float
    full_int8_delta_points: float = Field(description="the same change with every node int8 (trial 0)")
    full_int8_delta_ci_low_points: float
    tuning_trials: Count = Field(description="graphs quantized and scored on every row (trial 0: fully int8)")
    quantizable_nodes: Count
    ranked_nodes: Count = Field(description="nodes quantized alone to rank them (0 when trial 0 met the bound)")
    ranking_samples: Count
    tuning_time_s: NonNegative = Field(description="scoring, ranking and every trial's quantization")
    speedup_vs_full_int8: NonNegative | None = Field(
        None, description="fully int8 p50 / kept graph p50 at batch 1, geometric mean over rounds (< 1: the float "
        "nodes cost speed); None when no node stayed float")
    speedup_ci_low: NonNegative | None = None
    speedup_ci_high: NonNegative | None = None
    speed_rounds: Count | None = None
    speed_queries_per_round: Count | None = None
    full_int8_p50_ms: NonNegative | None = Field(None, description="median over rounds of each round's p50")
    kept_p50_ms: NonNegative | None = None
    speed_method: str | None = None
    kept_trial: Count = Field(description="index of the kept graph in raw.accuracy_aware_trials")


class OnnxInt8Metrics(OnnxMetrics):
    """The ONNX export quantized to int8 by ONNX Runtime (optimum's ORTQuantizer)."""

    quantize_time_s: NonNegative
    fp32_onnx_file_bytes: Count
    size_reduction_vs_fp32_onnx: NonNegative
    calibration_time_s: NonNegative | None = Field(
        None, description="static int8: the fp32 graph run over the calibration rows and the ranges computed "
        "(not in quantize_time_s)")
    calibration_rows: Count | None = Field(None, description="static int8: rows the activation ranges come from")
    accuracy_aware: Int8Tuning | None = Field(None, description="set when the step had an accuracy_aware block")

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        cells = super().summary_cells(result)
        t = self.accuracy_aware
        if t is None:
            return cells
        spread = (f"accuracy-aware: {len(t.float_nodes)} float node(s); change vs fp32 {t.delta_points:+.2f} points "
                  f"[{t.delta_ci_low_points:+.2f}, {t.delta_ci_high_points:+.2f}] on {t.rows} rows, bound >= "
                  f"{t.min_delta_points:g} {'met' if t.bound_met else 'NOT met'}")
        if t.speedup_vs_full_int8 is not None:
            ci = "" if t.speedup_ci_low is None else f" [{t.speedup_ci_low:.2f}, {t.speedup_ci_high:.2f}]"
            spread += f"; speed vs the fully int8 graph {t.speedup_vs_full_int8:.2f}x{ci} at batch 1"
        return SummaryCells(n=cells.n, headline=cells.headline, spread=spread)


class OnnxOptimizedMetrics(OnnxMetrics):
    """The fp32 ONNX export rewritten by ONNX Runtime's graph optimizer (optimum's ORTOptimizer, O1-O3)."""

    optimize_time_s: NonNegative = Field(description="the ORTOptimizer call alone (export excluded)")
    fp32_onnx_file_bytes: Count = Field(description="the fp32 export before optimization")
    file_bytes_ratio_vs_fp32_onnx: NonNegative = Field(description="optimized file bytes / fp32 export's")
    nodes_before: Count
    nodes_after: Count
    op_counts_before: dict[str, Count] = Field(description="operator type -> nodes in the fp32 export")
    op_counts_after: dict[str, Count] = Field(description="operator type -> nodes in the optimized graph")
    fused_op_counts: dict[str, Count] = Field(
        description="operator types the optimized graph has and the export has not (Attention, "
        "SkipLayerNormalization, BiasGelu, FastGelu...), with their nodes")

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        cells = super().summary_cells(result)
        fused = ", ".join(f"{op} x{n}" for op, n in self.fused_op_counts.items()) or "no fused operators"
        return SummaryCells(n=cells.n, headline=cells.headline, spread=(
            f"{result.settings.get('level', '?')}: nodes {self.nodes_before} -> {self.nodes_after}, {fused}; "
            f"max |output difference| vs the source {self.max_abs_output_diff_vs_source:.2g}"))
