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


class DistillStep(TrainingStep):
    """Knowledge distillation (Hinton et al. 2015) into a smaller student of the same family.

    loss = alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T)).
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

    @model_validator(mode="after")
    def _layers(self) -> DistillStep:
        layers = self.student_layers or []
        if len(set(layers)) != len(layers):
            raise ValueError(f"student_layers: {layers} names a layer twice")
        if layers != sorted(layers):
            raise ValueError(f"student_layers: {layers} must be in increasing order")
        return self


class OnnxStep(BuildingStep):
    """Export to ONNX Runtime (fp32) through Optimum, so the runtime change is measured apart
    from quantization."""

    kind: Literal["onnx"]


class OnnxInt8Step(BuildingStep):
    """ONNX Runtime int8 through Optimum's ORTQuantizer: weights int8; activations quantized
    at run time (dynamic, default) or from a calibration set (static)."""

    kind: Literal["onnx_int8"]
    isa: Literal["auto", "avx512_vnni", "avx512", "avx2", "arm64"] = Field(
        "auto", description="Quantization config for this instruction set; auto reads the CPU's flags."
    )
    per_channel: bool = False
    mode: Literal["dynamic", "static"] = "dynamic"
    calibration: DatasetSpec | None = Field(None, description="Text to calibrate activations (static mode).")
    calibration_samples: PosInt = 128

    @model_validator(mode="after")
    def _calibration(self) -> OnnxInt8Step:
        if self.mode == "static" and self.calibration is None:
            raise ValueError("calibration: static int8 needs a calibration dataset")
        if self.mode == "dynamic" and self.calibration is not None:
            raise ValueError("calibration: only static int8 uses a calibration set (set mode: static)")
        return self


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
