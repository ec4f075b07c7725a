"""Steps that build a candidate from an earlier one: fine_tune, distill, onnx, onnx_int8, quanto,
prune. Each has its builder in hf_cost/variants/ (one registry: variants/registry.py).

A building step's `name` names the candidate it makes; `from` names the candidate it starts
from ('base' or an earlier step's name).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hf_cost.config.base import BuildingStep, DatasetSpec, Strict
from hf_cost.config.fields import MAX_SEED, BatchSize, Float, NonNegInt, PosFloat, PosInt, Seed


class QualityTarget(Strict):
    metric: Literal["accuracy", "f1_macro"] = "accuracy"
    value: Float = Field(gt=0.0, le=1.0)


class TrainingStep(BuildingStep):
    """What a step that trains needs: data, a quality target, a budget (fine_tune, distill)."""

    train: DatasetSpec
    eval: DatasetSpec
    target: QualityTarget
    sequence_length: PosInt | None = Field(None, description="Defaults to inputs.sequence_length.")
    batch_size: BatchSize = Field(16, description="Per process.")
    eval_batch_size: BatchSize = 64
    learning_rate: PosFloat = 5e-5
    weight_decay: Float = Field(0.01, ge=0.0)
    warmup_steps: NonNegInt = 0
    max_steps: PosInt = 200
    max_time_s: PosFloat | None = Field(None, description="Budget per run, evaluation included.")
    eval_every_steps: PosInt = 20
    runs: PosInt = Field(1, description="Repeats with seeds seed, seed+1, ...; olympic scoring.")
    seed: Seed = 0
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="auto: bf16 (or fp16) on GPU, none on CPU."
    )


    def activation_batches(self) -> list[tuple[str, int, bool]]:
        return [("batch_size", self.batch_size, True), ("eval_batch_size", self.eval_batch_size, False)]
    @model_validator(mode="after")
    def _labels(self) -> TrainingStep:
        for key in ("train", "eval"):
            if getattr(self, key).label_column is None:
                raise ValueError(f"{key}.label_column is required to train")
        return self

    @model_validator(mode="after")
    def _budget(self) -> TrainingStep:
        if self.warmup_steps > self.max_steps:
            raise ValueError(
                f"warmup_steps: {self.warmup_steps} is more than max_steps ({self.max_steps}), "
                "so the learning rate would never finish warming up"
            )
        if self.seed + self.runs - 1 > MAX_SEED:
            last = self.seed + self.runs - 1
            raise ValueError(f"runs: the runs' seeds {self.seed} to {last} go past {MAX_SEED}")
        return self




class FineTuneScenario(TrainingStep):
    """MLPerf-Training style: train until the quality target or the budget, timed end to end."""

    kind: Literal["fine_tune"]


class AugmentSettings(Strict):
    """Extra training texts made from the training rows (Tang et al. 2019, "Distilling
    task-specific knowledge from BERT into simple neural networks", section 3.2): each word is
    replaced by the tokenizer's mask token (its unk token if it has none) with probability
    `mask_prob`; then, with probability `ngram_prob`, only a random n-gram (n from 1 to 5) of
    the text is kept. The copies carry no hard label: they get the teacher's soft labels and
    the alignment losses only."""

    copies: NonNegInt = Field(0, description="Augmented texts per training row (0: none).")
    mask_prob: Float = Field(0.1, ge=0.0, lt=1.0, description="Chance of masking each word.")
    ngram_prob: Float = Field(0.25, ge=0.0, le=1.0, description="Chance of keeping only an n-gram (n in 1..5).")
    seed: Seed = 0


class DistillStep(TrainingStep):
    """Knowledge distillation (Hinton et al. 2015) into a smaller student of the same family.

    loss = alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))
         + hidden_weight * MSE(student hidden states, mapped teacher hidden states)   (TinyBERT)
         + attention_weight * KL(teacher attention || student attention)               (MiniLM)
    The teacher is the `from` candidate (it needs a classification head). The student keeps the
    teacher's embeddings and the encoder layers named in `student_layers` (DistilBERT-style
    initialisation, Sanh et al. 2019); default: every other layer (0, 2, 4, ...).
    """

    kind: Literal["distill"]
    student_layers: list[NonNegInt] | None = Field(
        None, min_length=1, description="Teacher layers copied into the student, in order. Default: every other."
    )
    alpha: Float = Field(0.5, ge=0.0, le=1.0, description="Weight of the hard-label cross-entropy.")
    temperature: PosFloat = Field(2.0, description="Softmax temperature of the soft targets.")
    train_to_budget: bool = Field(
        False, description="Train for the whole budget (max_steps / max_time_s) after the target is met; the "
        "time to target is still the first evaluation that met it, and the final model is kept.")
    hidden_weight: Float = Field(
        0.0, ge=0.0, description="Weight of the hidden-state MSE against the mapped teacher layers (TinyBERT).")
    attention_weight: Float = Field(
        0.0, ge=0.0, description="Weight of the attention-distribution KL against the mapped teacher layers "
        "(MiniLM); trains with eager attention.")
    layer_map: list[NonNegInt] | None = Field(
        None, min_length=1, description="The teacher layer each student layer imitates (hidden_weight, "
        "attention_weight). Default: TinyBERT's uniform map, student layer j -> teacher layer (j+1)*L_t/L_s - 1.")
    augment: AugmentSettings = Field(default_factory=AugmentSettings)
    unlabelled: DatasetSpec | None = Field(
        None, description="Extra text rows trained on with soft labels only (their label column is ignored).")

    @model_validator(mode="after")
    def _layers(self) -> DistillStep:
        layers = self.student_layers or []
        if len(set(layers)) != len(layers):
            raise ValueError(f"student_layers: {layers} names a layer twice")
        if layers != sorted(layers):
            raise ValueError(f"student_layers: {layers} must be in increasing order")
        return self

    @model_validator(mode="after")
    def _alignment(self) -> DistillStep:
        if self.layer_map is None:
            return self
        if self.hidden_weight == 0 and self.attention_weight == 0:
            raise ValueError("layer_map: only hidden_weight or attention_weight use it; set one of them above 0")
        if self.student_layers is not None and len(self.layer_map) != len(self.student_layers):
            raise ValueError(f"layer_map: {self.layer_map} names {len(self.layer_map)} teacher layer(s) for "
                             f"{len(self.student_layers)} student layer(s); give one per student layer")
        return self


class OnnxStep(BuildingStep):
    """Export to ONNX Runtime (fp32) through Optimum, so the runtime change is measured apart
    from quantization."""

    kind: Literal["onnx"]


class AccuracyAware(Strict):
    """Accuracy-aware int8 (models/int8_tuning.py, after Intel Neural Compressor's tuning): the
    int8 graph is scored against the fp32 graph on labelled rows; while the paired accuracy
    change's CI low end is below `min_delta_points`, the most harmful quantized nodes are kept
    in float (ORT `nodes_to_exclude`) and the graph is quantized again."""

    data: DatasetSpec = Field(description="Labelled rows both graphs are scored on (its max_samples caps them).")
    min_delta_points: Float = Field(
        ge=-100.0, le=0.0, description="Bound on the paired accuracy change int8 - fp32, in points: its CI low "
        "end must be at least this (e.g. -1.0).")
    max_float_nodes: PosInt = Field(
        12, description="Most nodes kept in float; when the bound is still not met, the trial with the highest "
        "CI low end is kept and the result says bound_met: false.")
    ranking_samples: PosInt = Field(
        32, description="Rows on which each node, quantized alone, is ranked by mean |logit change|.")
    sequence_length: PosInt | None = Field(None, description="Defaults to inputs.sequence_length.")
    batch_size: BatchSize = Field(
        1, description="Rows per scoring run. Dynamic int8 scales each activation over the whole batch, so "
        "predictions depend on it; 1 scores each row alone, as single_stream serves it.")
    confidence: Float = Field(0.95, gt=0.0, lt=1.0)
    resamples: PosInt = Field(1000, description="Paired bootstrap resamples of the accuracy change.")
    seed: Seed = 0
    speed_rounds: PosInt = Field(
        6, description="Alternating rounds timing the fully int8 and the tuned graph at batch 1.")
    speed_queries: PosInt = Field(20, description="Queries per graph per round; each round's p50 is compared.")

    @model_validator(mode="after")
    def _labels(self) -> AccuracyAware:
        if self.data.label_column is None:
            raise ValueError("data: data.label_column is required: the accuracy change is scored on labels")
        return self


class OnnxInt8Step(BuildingStep):
    """ONNX Runtime int8 through Optimum's ORTQuantizer: weights int8; activations quantized
    at run time (dynamic, default) or from a calibration set (static)."""

    kind: Literal["onnx_int8"]
    isa: Literal["auto", "avx512_vnni", "avx512", "avx2", "arm64"] = Field(
        "auto", description="Quantization config for this instruction set; auto reads the CPU's flags."
    )
    per_channel: bool = False
    mode: Literal["dynamic", "static"] = "dynamic"
    calibration: DatasetSpec | None = Field(
        None, description="Static mode: rows whose text (and text pair) calibrate the activation ranges; labels "
        "unused.")
    calibration_samples: PosInt | None = Field(
        None, description="Static mode (default 128): calibration rows used, a seeded sample (calibration.seed) of "
        "the rows left after where/select/max_samples.")
    calibration_method: Literal["minmax", "entropy", "percentile"] | None = Field(
        None, description="Static mode (default minmax): each activation's range from the min and max seen, the "
        "histogram threshold of least KL divergence (entropy), or the percentiles of a histogram (percentile).")
    percentile: Float | None = Field(
        None, gt=50.0, le=100.0, description="calibration_method: percentile only (default 99.999): the range is "
        "the (100 - p)th to p-th percentile of each activation's values.")
    accuracy_aware: AccuracyAware | None = Field(
        None, description="Keep the nodes that cost most accuracy in float until the paired accuracy change's "
        "CI low end meets a bound (models/int8_tuning.py).")

    @model_validator(mode="after")
    def _calibration(self) -> OnnxInt8Step:
        if self.mode == "static" and self.calibration is None:
            raise ValueError("calibration: static int8 needs a calibration dataset")
        if self.mode == "dynamic" and self.calibration is not None:
            raise ValueError("calibration: only static int8 uses a calibration set (set mode: static)")
        # None: not asked for (a resolved suite written to results.json validates again the same way);
        # results files written before static int8 existed hold the old default calibration_samples: 128
        for key in ("calibration_samples", "calibration_method", "percentile"):
            value = getattr(self, key)
            if self.mode == "dynamic" and value is not None and (key, value) != ("calibration_samples", 128):
                raise ValueError(f"{key}: only static int8 calibrates (set mode: static)")
        if self.percentile is not None and self.calibration_method != "percentile":
            raise ValueError(f"percentile: only calibration_method: percentile uses it (this step's method is "
                             f"{self.calibration_method or 'minmax'})")
        return self

    @property
    def calibration_rows_asked(self) -> int:
        return self.calibration_samples or 128

    @property
    def calibration_method_used(self) -> str:
        return self.calibration_method or "minmax"


class QuantoStep(BuildingStep):
    """optimum-quanto weight quantization of a torch candidate, an encoder or a causal LM
    (activations stay float)."""

    kind: Literal["quanto"]
    weights: Literal["int8", "int4", "float8"] = Field(
        "int8", description="int8 / float8 e4m3: one byte a weight and a float scale per output row; int4: "
        "two weights a byte, a float scale and shift per row (or per group of up to 128 inputs)")


class PruneStep(BuildingStep):
    """Structured pruning: remove attention heads and/or FFN neurons of lowest importance.

    Importance is |dL/d mask| accumulated over a labelled set (Michel et al. 2019), normalised
    per layer. Heads are pruned across the model, lowest first (at least one head stays in
    each layer); FFN neurons are pruned by the same fraction in every layer. For a recovery
    fine-tune, add a `fine_tune` step with `from:` this step's name.
    """

    kind: Literal["prune"]
    data: DatasetSpec = Field(description="Labelled data whose loss gradients rank heads and neurons.")
    heads_fraction: Float = Field(0.0, ge=0.0, lt=1.0, description="Share of all attention heads removed.")
    ffn_fraction: Float = Field(0.0, ge=0.0, lt=1.0, description="Share of FFN neurons removed in each layer.")
    batch_size: BatchSize = 16
    sequence_length: PosInt | None = Field(None, description="Defaults to inputs.sequence_length.")

    @model_validator(mode="after")
    def _something(self) -> PruneStep:
        if self.heads_fraction == 0.0 and self.ffn_fraction == 0.0:
            raise ValueError("heads_fraction: set heads_fraction or ffn_fraction above 0, or there is nothing to prune")
        if self.data.label_column is None:
            raise ValueError("data: data.label_column is required: importance comes from the loss on labels")
        return self
