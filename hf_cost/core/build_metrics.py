"""Typed figures of the building kinds: fine_tune (with its runs and scoring), distill
(extending it), quanto, prune, lora, cast and compile (the ONNX kinds' are in
core/onnx_metrics.py). Units in field names, as in core/metrics.py.

Their hooks make a building step's entry the candidate's build row (`build_summary`), give
the cost model the training figures (`training`) and the report its row cells.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from hf_cost.core.bounds import Count, NonNegative, Out, Share
from hf_cost.core.format import dropped, fmt
from hf_cost.core.results import (
    BuildFigures,
    Compute,
    KindMetrics,
    ScenarioResult,
    SummaryCells,
    TrainingFigures,
    TrainingOutcome,
)


class TrainingRun(Out):
    """One training run (one seed) of a fine_tune or distill step."""

    seed: int
    converged: bool
    stop_reason: str
    time_to_target_s: NonNegative | None = Field(description="None when the run did not reach the target")
    wall_s: NonNegative
    eval_s: NonNegative
    steps: Count
    samples: Count
    tokens: Count
    final_quality: float | None
    final_quality_step: Count
    evaluated_after_stop: bool
    train_samples_per_s: NonNegative | None
    peak_rss_delta_mib: float | None


class Scoring(Out):
    """MLPerf Training's olympic scoring over the runs (training/olympic.py)."""

    score_s: NonNegative | None
    valid: bool
    run_count: Count = Field(description="runs scored (schema 3.x called it `runs`)")
    converged_runs: Count
    kept_times_s: list[NonNegative]
    method: str


class TrainingMetrics(KindMetrics):
    """A step that trains a candidate to a quality target (fine_tune; distill extends it)."""

    card_settings: ClassVar[tuple[str, ...] | None] = (
        "learning_rate", "batch_size", "max_steps", "max_time_s", "sequence_length", "runs", "seed")

    time_to_target_s: NonNegative | None
    scoring: Scoring
    converged: bool
    runs: list[TrainingRun]
    train_samples_per_s: NonNegative | None
    train_tokens_per_s: NonNegative | None
    train_flops_per_sample: NonNegative | None
    train_flops_per_sample_3x_forward_estimate: NonNegative | None
    train_flops_total: NonNegative | None
    achieved_train_gflops_per_s: NonNegative | None
    final_quality_median: float | None
    saved_checkpoint: str | None
    saved_step: Count | None
    saved_quality: float | None
    saved_run_index: Count | None
    dropped_rows: dict[str, dict[str, int]] = Field(default_factory=dict, description="train/eval -> column -> rows")

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        headline = (
            f"time to target {fmt(self.time_to_target_s, ' s', 1)}; {fmt(self.train_samples_per_s, ' samples/s', 1)}, "
            f"{fmt(self.train_tokens_per_s, ' tokens/s', 0)}"
        )
        spread = (
            f"{self.scoring.converged_runs}/{self.scoring.run_count} converged; per run "
            + ", ".join(fmt(x.time_to_target_s, " s", 1) for x in self.runs)
            + f"; {self.scoring.method}"
        )
        if self.saved_step is not None and self.saved_quality is not None:
            spread += f"; saved step {self.saved_step}: {self.saved_quality:.4f}"
        n = f"{self.scoring.run_count} run(s), {sum(x.steps for x in self.runs)} steps"
        n += dropped({k: sum(v.values()) for k, v in self.dropped_rows.items() if v})
        return SummaryCells(n=n, headline=headline, spread=spread)

    def compute(self) -> Compute | None:
        if self.achieved_train_gflops_per_s is None:
            return None
        steps = sum(x.steps for x in self.runs)
        return Compute(self.achieved_train_gflops_per_s, None,
                       f"training samples/s (forward + backward) over {steps} steps, evaluation excluded")

    def build_summary(self) -> BuildFigures:
        return BuildFigures(time_s=self.time_to_target_s, train_flops_total=self.train_flops_total)

    def training_outcome(self) -> TrainingOutcome:
        return TrainingOutcome(time_to_target_s=self.time_to_target_s, runs=len(self.runs), converged=self.converged)

    def training(self) -> TrainingFigures | None:
        if not self.train_samples_per_s:
            return None
        return TrainingFigures(
            wall_s_per_run=[x.wall_s for x in self.runs], samples_per_run=[x.samples for x in self.runs],
            steps_per_run=[x.steps for x in self.runs], train_samples_per_s=self.train_samples_per_s,
            train_flops_per_sample=self.train_flops_per_sample,
            train_flops_per_sample_3x_forward_estimate=self.train_flops_per_sample_3x_forward_estimate,
        )


class DistillMetrics(TrainingMetrics):
    """Knowledge distillation into a student with fewer layers: training figures plus the pair's."""

    card_settings: ClassVar[tuple[str, ...] | None] = (
        "student_layers", "alpha", "temperature", "hidden_weight", "attention_weight", "train_to_budget",
        "learning_rate", "batch_size", "max_steps", "max_time_s", "runs", "seed")

    student_layers: list[int]
    teacher_layers: Count
    teacher_parameters: Count
    student_parameters: Count
    student_to_teacher_parameters: NonNegative
    alpha: Share
    temperature: NonNegative
    student_train_step_flops_per_sample: NonNegative | None
    student_forward_flops_per_sample: NonNegative | None
    teacher_forward_flops_per_sample: NonNegative | None
    build_time_s: NonNegative
    train_to_budget: bool = False
    hidden_weight: NonNegative = 0.0
    attention_weight: NonNegative = 0.0
    layer_map: list[int] | None = Field(None, description="teacher layer each student layer imitated (alignment)")
    labelled_rows: Count | None = Field(None, description="training rows with a hard label (CE + KD)")
    augmented_rows: Count = Field(0, description="augmented copies of training rows (KD and alignment only)")
    unlabelled_rows: Count = Field(0, description="rows of `unlabelled` (KD and alignment only)")

    def build_summary(self) -> BuildFigures:
        return BuildFigures(time_s=self.build_time_s, train_flops_total=self.train_flops_total)


class VariantMetrics(KindMetrics):
    """A variant built without training: the row says how long it took and what it changed."""

    build_time_s: NonNegative

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        return SummaryCells(n="1 build", headline=f"built in {fmt(self.build_time_s, ' s', 1)}",
                            spread=result.notes[0] if result.notes else "—")

    def build_summary(self) -> BuildFigures:
        return BuildFigures(time_s=self.build_time_s, train_flops_total=None)


class QuantoMetrics(VariantMetrics):
    """optimum-quanto weight quantization (int8 / int4 / float8)."""

    quantize_s: NonNegative
    weights: str
    weights_qtype: str
    activations_dtype: str
    quantized_linear_layers: Count
    parameters: Count
    parameter_bytes_before: Count
    parameter_bytes_after: Count
    parameter_bytes_ratio: NonNegative
    size_on_disk_bytes: Count | None
    source_size_on_disk_bytes: Count | None
    max_abs_logit_difference: NonNegative | None = Field(None, description="classifiers: max |logit difference|")
    max_abs_hidden_state_difference: NonNegative | None = Field(None, description="no head: last hidden state")
    max_abs_first_token_logit_difference: NonNegative | None = Field(
        None, description="causal LMs: max |difference| of the first new token's logits")
    top1_agreement: Share | None = Field(
        None, description="share of probe samples whose argmax is the source's: a causal LM's greedy next token, "
        "a classifier's predicted label; None for a bare encoder")
    excluded_modules: list[str] = Field(default_factory=list, description="Linear layers left float (an LM's head)")
    flops_per_sample: Count | None
    flops_source: str | None
    flops_counted_on_quantized_per_sample: Count | None
    lm_prefill_flops: Count | None = Field(
        None, description="causal LMs: FLOPs of generate's prefill at the median prompt length, as candidates.*.lm_flops "
        "reports them (inherited from the source when the counter misses quanto's matmuls)")
    lm_prefill_flops_counted_on_quantized: Count | None = Field(
        None, description="causal LMs: the same prefill counted by FlopCounterMode on the quantized model")
    saved_weights: str | None


class PruneMetrics(VariantMetrics):
    """Structured pruning of attention heads and FFN neurons by importance (Michel et al. 2019)."""

    heads_total: Count
    heads_pruned_count: Count
    heads_pruned: list[list[int]] = Field(description="per layer, the pruned heads' ids in the unpruned model")
    heads_per_layer_before: list[Count]
    heads_per_layer_after: list[Count]
    ffn_neurons_pruned_per_layer: Count
    intermediate_size_before: Count
    intermediate_size_after: Count
    parameters_before: Count
    parameters_after: Count
    encoder_parameters_before: Count
    encoder_parameters_after: Count
    sparsity: Share
    flops_per_sample_before: Count
    flops_per_sample_after: Count
    flops_sequence_length: Count
    importance_samples: Count
    saved_checkpoint: str




class LoraMetrics(TrainingMetrics):
    """LoRA on a causal LM (PEFT): fine_tune's time-to-target figures, plus the adapter's size and share.

    Quality is accuracy (or macro F1) by greedy generation on the eval prompts, parsed as the
    accuracy kind parses an LM's answers; throughput counts examples and their real tokens
    (prompt + answer) over training time, evaluation excluded."""

    card_settings: ClassVar[tuple[str, ...] | None] = (
        "r", "alpha", "dropout", "learning_rate", "batch_size", "max_steps", "max_time_s", "runs", "seed")

    trainable_parameters: Count = Field(description="requires_grad parameters: the adapters' A and B")
    total_parameters: Count = Field(description="base + adapter parameters")
    trainable_share: Share
    adapted_modules: Count = Field(description="Linear modules that carry an adapter")
    adapter_parameter_bytes: Count
    adapter_file_bytes: Count | None = Field(description="adapter_model.safetensors on disk; None if not saved")
    train_examples: Count
    eval_examples: Count
    train_answer_tokens_per_s: NonNegative | None = Field(description="tokens the loss is on (answer + EOS)")
    saved_unparseable_share: Share | None = Field(description="eval answers of the saved model naming no label")
    reload_max_abs_logit_difference: NonNegative | None = Field(
        description="the candidate reloaded from its files vs the model trained, on eval prompts")

    def summary_cells(self, result: ScenarioResult) -> SummaryCells:
        cells = super().summary_cells(result)
        adapter = (f"; adapter {self.trainable_parameters:,} trainable parameters "
                   f"({self.trainable_share:.2%}) in {self.adapted_modules} Linears")
        return SummaryCells(n=cells.n, headline=cells.headline, spread=cells.spread + adapter)


class LoraMergeMetrics(VariantMetrics):
    """A LoRA adapter merged into its base weights (PEFT merge_and_unload), checked against the unmerged model."""

    merge_s: NonNegative
    max_abs_logit_difference: NonNegative = Field(description="merged vs unmerged, over every real prompt position")
    greedy_token_agreement: Share = Field(
        description="share of prompt positions where merged and unmerged pick the same next token (argmax)")
    probe_prompts: Count
    probe_positions: Count
    parameters: Count
    parameter_bytes: Count
    size_on_disk_bytes: Count | None
    saved_checkpoint: str | None


class CastMetrics(VariantMetrics):
    """A copy of a torch candidate with its floating-point weights cast to bfloat16 or float16."""

    cast_s: NonNegative
    source_dtype: str
    dtype: str = Field(description="the dtype the matmuls run in (dtype: auto resolved; the reason is in settings)")
    autocast: bool = Field(False, description="true: the float32 weights kept, every forward under torch.autocast(dtype)")
    parameters: Count
    parameter_bytes_before: Count
    parameter_bytes_after: Count
    parameter_bytes_ratio: NonNegative
    size_on_disk_bytes: Count | None = Field(description="the saved checkpoint's weight files")
    source_size_on_disk_bytes: Count | None
    output_compared: str = Field(description="logit | hidden_state | first_token_logit (a causal LM's first new token)")
    max_abs_output_difference: NonNegative = Field(description="max |cast - source| over the probe samples' outputs")
    top1_agreement: Share | None = Field(
        description="share of probe samples whose argmax is the source's: a causal LM's greedy next token, a "
        "classifier's predicted label; None for a bare encoder")
    probe_samples: Count
    saved_checkpoint: str | None


class CompileMetrics(VariantMetrics):
    """A torch candidate wrapped in torch.compile: compile time as a build cost, dynamo's counts, fidelity."""

    backend: str
    mode: str
    dynamic: bool | None
    compile_time_s: float = Field(
        description="sum over the warm-up lengths of (first compiled call - eager call), batch 1; can be slightly "
        "negative when nothing was compiled (noise)")
    warmup_lengths: list[Count] = Field(description="the lengths (tokens) the build called the compiled model at")
    eager_s_total: NonNegative
    first_calls_s_total: NonNegative
    second_calls_s_total: NonNegative = Field(description="a second call at each warm-up length (compiled code)")
    frames_compiled: Count = Field(description="Python frames dynamo compiled in the warm-up (counters frames.total)")
    graphs_compiled: Count = Field(description="FX graphs compiled in the warm-up (counters stats.unique_graphs)")
    graph_breaks: Count
    graph_break_reasons: list[str] = Field(default_factory=list)
    recompiles: Count | None = Field(description="frames compiled after the first; None when graph breaks add frames")
    graphs_compiled_after_warmup: Count = Field(description="graphs the probe comparison still compiled (0: covered)")
    recompile_limit: int = Field(description="torch._dynamo.config.recompile_limit: compiles of one code object "
                                 "before dynamo runs new shapes eagerly")
    fx_graph_cache_hits: Count
    fx_graph_cache_misses: Count
    source_dtype: str
    parameters: Count
    output_compared: str = Field(description="logit | hidden_state")
    max_abs_output_difference: NonNegative = Field(description="max |compiled - eager| over the probe samples")
    top1_agreement: Share | None
    probe_samples: Count
    flops_source: str
