"""A distillation student made from its teacher, DistilBERT-style (Sanh et al. 2019).

The student is the teacher's own class and config with ``num_hidden_layers = len(layers)``.
Every weight is copied from the teacher: embeddings, pooler, classifier, and, for student
layer j, teacher layer ``layers[j]`` (default every other layer: 0, 2, 4, ...). It works for
BERT-family models whose base model keeps its layers in ``encoder.layer`` (a ModuleList);
other layouts are refused. Heads a pruned teacher removed stay removed in the copied layers.

`layout_error` answers the layout question from a config alone (the model is built on the
meta device: no weights), so `validate` can refuse a teacher before any weights load.
"""

from __future__ import annotations

import copy
from typing import Any

LAYOUT = "encoder.layer"  # where the base model keeps its transformer layers


def default_layers(num_layers: int) -> list[int]:
    """Every other layer, from the first: 6 layers -> [0, 2, 4]; 4 -> [0, 2]; 1 -> [0]."""
    return list(range(0, num_layers, 2))


def layers_error(layers: list[int], num_layers: int) -> str | None:
    """Why ``layers`` cannot be taken from a teacher with ``num_layers`` layers (None: they can)."""
    if not layers:
        return "names no layer: the student needs at least one"
    if len(set(layers)) != len(layers):
        return f"{layers} names a layer twice"
    out = [i for i in layers if not 0 <= i < num_layers]
    if out:
        return (f"layer {out[0]} is out of range: the teacher has {num_layers} layer(s), "
                f"numbered 0 to {num_layers - 1}")
    return None


def uniform_layer_map(num_teacher: int, num_student: int) -> list[int]:
    """TinyBERT's uniform mapping (Jiao et al. 2020, section 3.3): student layer j (from 0)
    imitates teacher layer (j + 1) * L_t // L_s - 1, so the last imitates the last:
    6 -> 3 layers: [1, 3, 5]; 4 -> 2: [1, 3]; 6 -> 4: [0, 2, 3, 5]."""
    return [(j + 1) * num_teacher // num_student - 1 for j in range(num_student)]


def layer_map_error(layer_map: list[int], num_student: int, num_teacher: int) -> str | None:
    """Why ``layer_map`` cannot map a student of ``num_student`` layers onto ``num_teacher`` (None: it can)."""
    if len(layer_map) != num_student:
        return (f"{layer_map} names {len(layer_map)} teacher layer(s) for {num_student} student layer(s); "
                "give one per student layer")
    out = [i for i in layer_map if not 0 <= i < num_teacher]
    if out:
        return (f"layer {out[0]} is out of range: the teacher has {num_teacher} layer(s), "
                f"numbered 0 to {num_teacher - 1}")
    return None


def attention_heads_error(config: Any, layers: list[int], layer_map: list[int]) -> str | None:
    """Why student layer j (teacher layer layers[j]) cannot imitate the attention of teacher layer
    layer_map[j]: a pruned teacher can leave them with different head counts (None: same counts)."""
    pruned = {int(k): len(v) for k, v in (getattr(config, "pruned_heads", None) or {}).items()}
    for j, (own, imitated) in enumerate(zip(layers, layer_map)):
        if pruned.get(own, 0) != pruned.get(imitated, 0):
            heads = config.num_attention_heads
            return (f"student layer {j} (teacher layer {own}, {heads - pruned.get(own, 0)} heads) cannot imitate the "
                    f"attention of teacher layer {imitated} ({heads - pruned.get(imitated, 0)} heads)")
    return None


def encoder_layer_list(model: Any) -> tuple[str, Any] | None:
    """(dotted name, ModuleList) of the model's transformer layers, or None for another layout."""
    import torch

    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        return None
    for name, module in model.named_modules():
        if module is layers:
            return name, layers
    return None


def layout_error(config: Any, trust_remote_code: bool = False) -> str | None:
    """Why a classifier of this config cannot be distilled layer by layer (None: it can)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model_type = getattr(config, "model_type", type(config).__name__)
    if not isinstance(getattr(config, "num_hidden_layers", None), int):
        return f"the {model_type!r} config has no num_hidden_layers"
    try:
        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)
    except (ValueError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return f"no sequence-classification model for the {model_type!r} architecture ({first})"
    if encoder_layer_list(model) is None:
        return (f"{type(model).__name__} does not keep its layers in base_model.{LAYOUT}; "
                "only BERT-family encoders can be distilled layer by layer")
    return None


def build_student(teacher: Any, layers: list[int], **config_changes: Any) -> Any:
    """A new model of the teacher's class with its embeddings, head and layers ``layers`` copied;
    ``config_changes`` are set on the student's config (e.g. attention_probs_dropout_prob=0.0)."""
    found = encoder_layer_list(teacher)
    if found is None:
        raise ValueError(f"{type(teacher).__name__} does not keep its layers in base_model.{LAYOUT}")
    path, teacher_layers = found
    problem = layers_error(layers, len(teacher_layers))
    if problem:
        raise ValueError(f"student_layers: {problem}")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    for key, value in config_changes.items():
        setattr(config, key, value)
    pruned = {int(k): list(v) for k, v in (getattr(teacher.config, "pruned_heads", None) or {}).items()}
    config.pruned_heads = {j: pruned[i] for j, i in enumerate(layers) if pruned.get(i)}
    student = type(teacher)(config)
    source = teacher.state_dict()
    prefix = path + "."
    mapped = {}
    for key in student.state_dict():
        if key.startswith(prefix):
            j, rest = key[len(prefix):].split(".", 1)
            key_in_teacher = f"{prefix}{layers[int(j)]}.{rest}"
        else:
            key_in_teacher = key
        mapped[key] = source[key_in_teacher].detach().clone()
    student.load_state_dict(mapped, strict=True)
    first = next(teacher.parameters())
    return student.to(device=first.device, dtype=first.dtype)


def parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
