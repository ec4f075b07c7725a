"""config.lineage: ancestry, train sets, encoder shape and label names of hand-built suites,
checked against values counted by hand (no model, no weights, no network)."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from hf_cost.config.building import OnnxStep
from hf_cost.config.lineage import Lineage, Shape, TrainedOn, label_names
from hf_cost.config.schema import suite_model
from hf_cost.core.registry import step_class
from hf_cost.errors import UserError

# base: 6 layers of 12 heads (72 in all), 1536 FFN neurons per layer
BASE_CONFIG = SimpleNamespace(num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


def data(path: str) -> dict[str, Any]:
    return {"path": path, "label_column": "label"}


def trains(path: str) -> dict[str, Any]:
    return {"train": data(path), "eval": data("eval.csv"), "target": {"value": 0.9}}


def suite(*scenarios: dict[str, Any]) -> Any:
    return suite_model().model_validate({"model": {"id": "org/model"}, "scenarios": list(scenarios)})


def prune(name: str, source: str, **fractions: float) -> dict[str, Any]:
    return {"kind": "prune", "name": name, "from": source, "data": data("p.csv"), **fractions}


def test_distill_then_prune_gives_the_hand_counted_shape():
    s = suite(
        {"kind": "distill", "name": "st", "student_layers": [0, 2, 4], **trains("a.csv")},
        prune("pr", "st", heads_fraction=0.25, ffn_fraction=0.125),
    )
    lineage = Lineage(s, BASE_CONFIG)
    assert lineage.shape("base", "w") == Shape(layers=6, heads=72, intermediate=1536, uniform=True)
    # 3 of 6 layers kept, 12 heads each
    assert lineage.shape("st", "w") == Shape(layers=3, heads=36, intermediate=1536, uniform=True)
    # round(0.25 x 36) = 9 heads go; round(0.125 x 1536) = 192 neurons go in each layer
    assert lineage.shape("pr", "w") == Shape(layers=3, heads=27, intermediate=1344, uniform=False)
    assert lineage.layer_count("pr") == 3


def test_default_student_layers_are_every_other_one():
    s = suite(
        {"kind": "distill", "name": "st", **trains("a.csv")},  # 6 -> layers 0, 2, 4
        {"kind": "distill", "name": "st2", "from": "st", **trains("a.csv")},  # 3 -> layers 0, 2
    )
    lineage = Lineage(s, BASE_CONFIG)
    assert [lineage.layer_count(n) for n in ("base", "st", "st2")] == [6, 3, 2]
    assert lineage.shape("st2", "w") == Shape(layers=2, heads=24, intermediate=1536, uniform=True)


def test_heads_per_layer_are_unknown_once_pruning_made_them_uneven():
    s = suite(
        prune("pr", "base", heads_fraction=0.5),  # round(0.5 x 72) = 36 heads go, unevenly
        {"kind": "distill", "name": "st", "from": "pr", "student_layers": [0, 1], **trains("a.csv")},
    )
    lineage = Lineage(s, BASE_CONFIG)
    assert lineage.shape("pr", "w") == Shape(layers=6, heads=36, intermediate=1536, uniform=False)
    assert lineage.shape("st", "w") == Shape(layers=2, heads=None, intermediate=1536, uniform=False)


def test_exports_keep_the_shape_and_count_layers_but_refuse_a_shape():
    s = suite(
        {"kind": "distill", "name": "st", "student_layers": [1, 3], **trains("a.csv")},
        {"kind": "onnx", "name": "ox", "from": "st"},
        {"kind": "quanto", "name": "q", "from": "st"},
        {"kind": "fine_tune", "name": "ft", "from": "q", **trains("b.csv")},
    )
    lineage = Lineage(s, BASE_CONFIG)
    assert lineage.layer_count("ox") == 2 and lineage.layer_count("ft") == 2
    with pytest.raises(UserError) as exc:
        lineage.shape("ox", "scenarios[9]")
    assert str(exc.value) == ("scenarios[9].from: 'ox' is built by onnx, with no float transformers checkpoint "
                              "to prune: prune first, then export or quantize")
    with pytest.raises(UserError, match=r"^scenarios\[4\]\.from: 'q' is built by quanto"):
        lineage.shape("ft", "scenarios[4]")  # the quantized ancestor, not the fine-tune, is named


def test_training_sets_are_nearest_first_through_an_int8_copy():
    s = suite(
        {"kind": "fine_tune", "name": "ft", **trains("a.csv")},
        {"kind": "single_stream", "name": "lat"},
        {"kind": "distill", "name": "st", "from": "ft", **trains("b.csv")},
        {"kind": "onnx_int8", "name": "int8", "from": "st"},
        {"kind": "onnx_int8", "name": "base8"},
    )
    lineage = Lineage(s)  # no base config: train sets need none
    sets = lineage.training_sets("int8")
    assert [(t.step, t.where, t.train.path) for t in sets] == [
        ("st", "scenarios[2].train", "b.csv"), ("ft", "scenarios[0].train", "a.csv"),
    ]
    assert all(isinstance(t, TrainedOn) for t in sets)
    assert lineage.training_sets("base") == [] and lineage.training_sets("base8") == []
    assert [(i, cfg.name) for i, cfg in lineage.ancestry("int8")] == [(3, "int8"), (2, "st"), (0, "ft")]
    assert lineage.ancestry("base") == []
    with pytest.raises(ValueError, match="no base model config"):
        lineage.layer_count("int8")


def test_an_unknown_name_or_a_measuring_step_is_not_a_candidate():
    lineage = Lineage(suite({"kind": "onnx", "name": "ox"}, {"kind": "single_stream", "name": "lat"}))
    for name in ("nope", "lat"):
        with pytest.raises(KeyError, match=rf"'{name}' is not a candidate of this suite \(candidates: base, ox\)"):
            lineage.ancestry(name)


def test_a_cycle_is_refused_not_followed_forever():
    # a validated Suite cannot have one (`from` names an earlier step); a hand-built one can
    steps = [OnnxStep.model_construct(kind="onnx", name="a", source="b"),
             OnnxStep.model_construct(kind="onnx", name="b", source="a")]
    with pytest.raises(ValueError, match=r"'a' is built from itself: a <- b <- a"):
        Lineage(SimpleNamespace(scenarios=steps)).ancestry("a")


def test_labels_read_the_dict_the_plan_fills():
    found: dict[str, list[str] | None] = {"base": None}
    lineage = Lineage(suite({"kind": "onnx", "name": "ox"}), BASE_CONFIG, found)
    found["ox"] = ["neg", "pos"]  # filled after the Lineage was made: it is the same dict
    assert lineage.labels("base") is None and lineage.labels("ox") == ["neg", "pos"]
    plan = SimpleNamespace(suite=lineage.suite, model_config=BASE_CONFIG, labels=found)
    assert Lineage.of(plan).labels("ox") == ["neg", "pos"]
    with pytest.raises(KeyError, match="no label names known for 'later'"):
        lineage.labels("later")


def test_label_names_follow_the_class_index_not_the_dict_order():
    from transformers import PretrainedConfig

    config = PretrainedConfig.from_dict({"id2label": {"2": "neutral", "0": "neg", "1": "pos"}})
    assert label_names(config) == ["neg", "pos", "neutral"]
    assert label_names(SimpleNamespace(id2label={1: 7, 0: 3}, num_labels=2)) == ["3", "7"]


def test_kinds_that_keep_the_architecture_leave_the_shape_alone():
    shape = Shape(layers=4, heads=40, intermediate=100, uniform=False)
    for kind in ("fine_tune", "onnx", "onnx_int8", "quanto"):
        assert step_class(kind).shape_after(None, shape) is shape


def test_the_module_imports_nothing_heavy():
    code = ("import sys; from hf_cost.config.lineage import Lineage; "
            "assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
