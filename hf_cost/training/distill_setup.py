"""What a distill step sets up beyond the KD loss: the intermediate-layer alignment (which
teacher layer each student layer imitates) and the rows that carry only soft labels
(augmented copies and unlabelled text), checked at validate and assembled at run time, and
the notes that say how they were used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hf_cost.config.building import DistillStep
from hf_cost.errors import UserError
from hf_cost.training.teacher import Alignment


@dataclass
class SoftLabelRows:
    """How many training rows of each kind a run saw."""

    labelled: int
    augmented: int
    unlabelled: int

    def describe(self) -> str:
        return (f"{self.labelled} labelled rows + {self.augmented} augmented + {self.unlabelled} unlabelled "
                "(soft labels only)")


def alignment_of(step: DistillStep, teacher_config: Any, layers: list[int], where: str) -> Alignment:
    """The step's alignment, its layer map checked against the loaded teacher (default: TinyBERT's uniform map)."""
    from hf_cost.training.student import attention_heads_error, layer_map_error, uniform_layer_map

    n = int(teacher_config.num_hidden_layers)
    layer_map = list(step.layer_map or uniform_layer_map(n, len(layers)))
    problem = layer_map_error(layer_map, len(layers), n)
    if problem:
        raise UserError(f"teacher '{step.source}': {problem}", where=f"{where}.layer_map")
    if step.attention_weight > 0:
        problem = attention_heads_error(teacher_config, layers, layer_map)
        if problem:
            raise UserError(problem, where=f"{where}.layer_map")
    return Alignment(step.hidden_weight, step.attention_weight, layer_map)


def check_soft_label_rows(step: DistillStep, where: str, teacher_layers: int) -> None:
    """Validate-time checks: the layer map against the teacher's layer count, text pairs (not
    augmented), and the unlabelled dataset (loaded: its file, columns and filters)."""
    from hf_cost.training.augment import load_texts
    from hf_cost.training.student import default_layers, layer_map_error

    if step.layer_map is not None:
        student = len(step.student_layers or default_layers(teacher_layers))
        problem = layer_map_error(step.layer_map, student, teacher_layers)
        if problem:
            raise UserError(f"teacher '{step.source}': {problem}", where=f"{where}.layer_map")
    if step.train.text_pair_column and (step.augment.copies or step.unlabelled):
        key = "augment.copies" if step.augment.copies else "unlabelled"
        raise UserError("soft-label rows are single texts: the training data has text pairs "
                        f"(text_pair_column '{step.train.text_pair_column}')", where=f"{where}.{key}")
    if step.unlabelled is not None:
        if step.unlabelled.text_pair_column:
            raise UserError("unlabelled rows are single texts", where=f"{where}.unlabelled.text_pair_column")
        if not load_texts(step.unlabelled, f"{where}.unlabelled"):
            raise UserError("no rows left after where/select", where=f"{where}.unlabelled")


def soft_label_rows(step: DistillStep, where: str, setup: Any) -> SoftLabelRows:
    """Append the augmented and unlabelled rows to ``setup.data`` (label NO_LABEL) and count them."""
    from hf_cost.training.augment import augment_texts, load_texts, mask_token_of, with_soft_label_rows

    aug = step.augment
    augmented = augment_texts(setup.train.texts, aug.copies, mask_token_of(setup.data.tokenizer), aug.mask_prob,
                              aug.ngram_prob, aug.seed) if aug.copies else []
    unlabelled = load_texts(step.unlabelled, f"{where}.unlabelled") if step.unlabelled is not None else []
    setup.data = with_soft_label_rows(setup.data, augmented + unlabelled, setup.seq)
    return SoftLabelRows(len(setup.train), len(augmented), len(unlabelled))


def distill_notes(step: DistillStep, alignment: Alignment, rows: SoftLabelRows) -> list[str]:
    """How the options beyond the KD loss were used, one note each (none when off)."""
    notes = []
    if step.train_to_budget:
        notes.append("train_to_budget: each run trained on to max_steps / max_time_s after meeting the target; "
                     "time_to_target_s is the clock at the first evaluation that met it, the final model is kept "
                     "and scored (no best-on-eval pick, which would make the eval figure optimistic)")
    if alignment.hidden_weight > 0:
        notes.append(f"hidden_weight {alignment.hidden_weight}: + weight x MSE over real tokens between the student's "
                     f"hidden states and the teacher's (embeddings to embeddings, student layer j to teacher layer "
                     f"{alignment.layer_map}[j]), averaged over the pairs (TinyBERT, Jiao et al. 2020)")
    if alignment.attention_weight > 0:
        notes.append(f"attention_weight {alignment.attention_weight}: + weight x KL(teacher || student) of the "
                     f"attention distributions per head and real query token, student layer j against teacher "
                     f"layer {alignment.layer_map}[j] (MiniLM, Wang et al. 2020); teacher and student ran eager "
                     "attention during training and the student's attention dropout was 0")
    if rows.augmented or rows.unlabelled:
        notes.append(f"training rows: {rows.describe()}; rows without a hard label get the KD and alignment "
                     f"losses, never CE (Tang et al. 2019 augmentation: mask_prob {step.augment.mask_prob}, "
                     f"ngram_prob {step.augment.ngram_prob}, seed {step.augment.seed})")
    return notes
