"""Chained builds under `accelerate launch --num_processes 2 --cpu`: a training step `from:` a
candidate built earlier in the same file runs on both processes, whether that candidate was
trained by both (fine_tune) or built by the main process alone (prune). The other process
learns the staged checkpoint from the main one after each building step (steps/base.py)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from launch_helpers import launch_failure, launch_run, tiny_classifier
from scenario_helpers import SEQ, by_name, dataset_yaml, easy_csv, fine_tune_yaml, suite_yaml

from hf_cost.errors import UserError


def _prune_then_fine_tune(tmp_path: Path, tiny_bert_dir: Path, prune: str = "", **fine_tune: Any) -> Path:
    """A scenario file: prune 'pr' from a tiny classifier, then fine_tune 'rec' from 'pr'."""
    base = tiny_classifier(tiny_bert_dir, tmp_path / "classifier")
    data = easy_csv(tmp_path / "easy.csv", tiny_bert_dir, n=40)
    scenarios = f"""
  - kind: prune
    name: pr
    from: base
    data: {dataset_yaml(data, "train")}
    heads_fraction: 0.5{prune}
""" + fine_tune_yaml(data, name="rec", extra="\n    from: pr", **fine_tune)
    path = tmp_path / "chain.yaml"
    path.write_text(suite_yaml(base, scenarios).replace("device: cpu}", "device: cpu, task: sequence-classification}"),
                    encoding="utf-8")
    return path


# --- the lifecycle, in one process: what a non-main process records after each building step --


@pytest.fixture
def prune_then_recover(tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A prepared prune -> fine_tune file, and a non-main RunState that hears the main process
    through a faked broadcast (``heard[0]`` is what the main process's store shares)."""
    from hf_cost import distributed
    from hf_cost.models.store import CandidateStore
    from hf_cost.pipeline import prepare
    from hf_cost.progress import Progress
    from hf_cost.steps.base import RunState, StepEnergy

    prepared = prepare(_prune_then_fine_tune(tmp_path, tiny_bert_dir))
    main = CandidateStore(prepared, Progress(enabled=False))
    other = RunState(prepared=prepared, output=None, progress=Progress(enabled=False), store=None,
                     energy=StepEnergy(None), main_process=False)
    other.store = CandidateStore(prepared, other.progress)
    heard: list[Any] = []

    def from_main(value: Any, *, cpu: bool) -> Any:
        assert value is None and cpu  # a non-main process passes nothing; the suite's device is the CPU
        heard.append(main.shared("pr"))
        return pickle.loads(pickle.dumps(heard[-1]))  # what broadcast_object_list does to it

    monkeypatch.setattr(distributed, "process_count", lambda: 2)
    monkeypatch.setattr(distributed, "from_main", from_main)
    return prepared, main, other, heard


def test_a_candidate_the_main_process_built_alone_is_recorded_by_the_others(prune_then_recover, tiny_bert_dir):
    from hf_cost.core.registry import step_class
    from hf_cost.steps.base import Built

    prepared, main, other, heard = prune_then_recover
    staged = tiny_classifier(tiny_bert_dir, prepared.path.parent / "staging" / "pr")
    main.add(Built(name="pr", parent="base", origin="variant", recipe={"kind": "prune"}, checkpoint_dir=staged), None)
    # prune runs on the main process only: elsewhere its lifecycle builds nothing and listens
    assert step_class("prune")().execute(prepared.suite.scenarios[0], other, "scenarios[0]") == []
    assert heard == [{"name": "pr", "origin": "variant", "parent": "base", "recipe": {"kind": "prune"},
                      "checkpoint_dir": str(staged), "final_path": str(staged), "keeps_dtype": False}]
    assert other.store.names() == ["base", "pr"] and other.store.failed("pr") is None
    assert other.store.checkpoint_of("pr").local_dir == staged == main.checkpoint_of("pr").local_dir
    assert other.store.checkpoint_of("pr").config.num_labels == 2


def test_a_step_the_main_process_failed_fails_the_same_way_on_the_others(prune_then_recover):
    from hf_cost.core.registry import step_class

    prepared, main, other, heard = prune_then_recover
    main.fail("pr", "RuntimeError: out of memory")
    other.store.fail("pr", "a reason of this process's own")  # the main process's outcome wins
    assert step_class("prune")().execute(prepared.suite.scenarios[0], other, "scenarios[0]") == []
    assert heard == [{"name": "pr", "failed": "RuntimeError: out of memory"}]
    assert other.store.failed("pr") == "RuntimeError: out of memory" and other.store.names() == ["base"]
    for store in (main, other.store):  # the recovery fine-tune stops here, before any collective
        with pytest.raises(UserError, match=r"candidate 'pr' was not built \(RuntimeError: out of memory\)"):
            store.checkpoint_of("pr")


def test_a_single_process_run_shares_nothing():
    from hf_cost.distributed import from_main, process_count

    assert process_count() == 1
    value = object()
    assert from_main(value, cpu=True) is value  # no process group started, nothing pickled


# --- two real processes -----------------------------------------------------------------------


def _ok_on_two_processes(results: dict, name: str, source: str) -> dict:
    step = by_name(results)[name]
    assert step["status"] == "ok", step["error"]
    assert step["settings"]["num_processes"] == 2 and step["settings"]["from"] == source
    return step


@pytest.mark.slow
def test_distill_from_a_fine_tune_of_the_same_file(tmp_path, tiny_bert_dir):
    data = easy_csv(tmp_path / "easy.csv", tiny_bert_dir, n=40)
    scenarios = fine_tune_yaml(data, name="teacher", max_steps=2, eval_every=2) + f"""
  - kind: distill
    name: student
    from: teacher
    train: {dataset_yaml(data, "train")}
    eval: {dataset_yaml(data, "holdout")}
    target: {{metric: accuracy, value: 0.95}}
    sequence_length: {SEQ}
    batch_size: 8
    max_steps: 2
    eval_every_steps: 2
"""
    scenario = tmp_path / "chain.yaml"
    scenario.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    proc = launch_run(scenario, tmp_path / "out")
    assert proc.returncode == 0, launch_failure(proc)
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    _ok_on_two_processes(results, "teacher", "base")
    student = _ok_on_two_processes(results, "student", "teacher")
    assert student["metrics"]["teacher_layers"] == 2 and student["metrics"]["student_layers"] == [0]
    assert Path(student["metrics"]["saved_checkpoint"]).is_dir()


@pytest.mark.slow
def test_recovery_fine_tune_from_a_prune_step_built_by_the_main_process_alone(tmp_path, tiny_bert_dir):
    scenario = _prune_then_fine_tune(tmp_path, tiny_bert_dir, prune="\n    ffn_fraction: 0.5\n    batch_size: 16",
                                     max_steps=2, eval_every=2)
    proc = launch_run(scenario, tmp_path / "out")
    assert proc.returncode == 0, launch_failure(proc)
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert by_name(results)["pr"]["status"] == "ok"
    rec = _ok_on_two_processes(results, "rec", "pr")
    config = json.loads((Path(rec["metrics"]["saved_checkpoint"]) / "config.json").read_text(encoding="utf-8"))
    assert config["intermediate_size"] == 37 - 19  # trained from the pruned checkpoint: round(0.5 x 37) gone
