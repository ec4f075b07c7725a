"""Fine-tuning: olympic scoring, time to a quality target end to end through the CLI, the
fine-tuned checkpoint measured by later scenarios, and two processes under `accelerate launch`.

The model is the shared tiny random BERT (no head: fine_tune adds a fresh one); the data is a
trivially easy synthetic set generated into tmp_path from the tiny tokenizer's vocabulary.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scenario_helpers import SEQ, by_name, dataset_yaml, easy_csv, fine_tune_yaml, run_cli, suite_yaml

from hf_cost.cli import main
from hf_cost.config.schema import load_suite
from hf_cost.errors import ConfigError
from hf_cost.training.olympic import olympic_score

REPO_ROOT = Path(__file__).resolve().parents[1]


# --- olympic scoring ------------------------------------------------------------------------


def test_olympic_five_runs_drop_fastest_and_slowest():
    out = olympic_score([5.0, 1.0, 3.0, 9.0, 4.0])
    assert out["valid"] is True
    assert out["score_s"] == pytest.approx((3.0 + 4.0 + 5.0) / 3)
    assert out["kept_times_s"] == [3.0, 4.0, 5.0]
    assert out["run_count"] == 5 and out["converged_runs"] == 5
    assert "olympic" in out["method"]


def test_olympic_one_failed_run_counts_as_the_slowest():
    out = olympic_score([5.0, None, 3.0, 9.0, 4.0])
    assert out["valid"] is True
    assert out["score_s"] == pytest.approx((4.0 + 5.0 + 9.0) / 3)  # 3.0 dropped as fastest
    assert out["converged_runs"] == 4


def test_olympic_two_failed_runs_are_invalid():
    out = olympic_score([5.0, None, 3.0, None, 4.0])
    assert out["valid"] is False and out["score_s"] is None
    assert out["converged_runs"] == 3


def test_olympic_three_runs_keep_the_middle_one():
    assert olympic_score([3.0, 1.0, 2.0])["score_s"] == pytest.approx(2.0)
    out = olympic_score([3.0, None, 2.0])
    assert out["valid"] is True and out["score_s"] == pytest.approx(3.0)


@pytest.mark.parametrize(
    "times, score, valid",
    [
        ([2.0], 2.0, True),
        ([2.0, 4.0], 3.0, True),
        ([None], None, False),
        ([2.0, None], None, False),
    ],
)
def test_one_or_two_runs_are_a_plain_mean_valid_only_if_all_converged(times, score, valid):
    out = olympic_score(times)
    assert out["valid"] is valid
    assert out["score_s"] == (pytest.approx(score) if score is not None else None)
    assert "olympic" in out["method"] and "at least 3" in out["method"]


def test_olympic_without_runs_is_an_error():
    with pytest.raises(ValueError):
        olympic_score([])


# --- fine-tune end to end -------------------------------------------------------------------


@pytest.fixture(scope="module")
def converged_run(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import hf_cost.steps.offline as offline

    tmp = tmp_path_factory.mktemp("fine-tune")
    data = easy_csv(tmp / "easy.csv", tiny_bert_dir)
    scenarios = fine_tune_yaml(data) + f"""
  - kind: accuracy
    name: acc-ft
    candidates: [ft]
    dataset: {dataset_yaml(data, "holdout")}
    batch_size: 16
    bootstrap_resamples: 100
  - kind: offline
    name: off-ft
    candidates: [ft]
    batch_sizes: [4]
    warmup_batches: 1
    min_duration_s: 0.05
    min_sample_count: 16
""" + fine_tune_yaml(  # from ft, with a learning rate too small to move it: it starts at ft's quality
        data, name="ft2", max_steps=1, eval_every=1, learning_rate=1e-9, extra="\n    from: ft"
    ) + f"""
  - kind: accuracy
    name: acc-ft2
    candidates: [ft2]
    dataset: {dataset_yaml(data, "holdout")}
    batch_size: 16
    bootstrap_resamples: 10
"""
    path = tmp / "ft.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    saved = offline.CALIBRATION_S
    offline.CALIBRATION_S = 0.05  # calibrating 1 s is for real models
    try:
        results = run_cli(path, tmp / "out")
    finally:
        offline.CALIBRATION_S = saved
    return {"results": results, "out": tmp / "out"}


def test_fine_tune_reaches_the_target(converged_run):
    ft = by_name(converged_run["results"])["ft"]
    m = ft["metrics"]
    assert ft["kind"] == "fine_tune"
    assert m["converged"] is True
    assert m["time_to_target_s"] is not None and m["time_to_target_s"] > 0
    [run] = m["runs"]
    assert run["converged"] is True and run["stop_reason"] == "target reached"
    assert run["seed"] == 0
    steps = run["steps"]
    assert 0 < steps <= 100
    assert steps % 10 == 0  # it stops at the evaluation that reached the target
    assert run["time_to_target_s"] == pytest.approx(m["time_to_target_s"])
    assert run["final_quality"] >= 0.95
    assert ft["validity"]["result"] == "VALID"
    assert ft["validity"]["convergence_satisfied"] is True
    assert ft["validity"]["reduced_settings"] is True  # one run: no olympic scoring


def test_fine_tune_curves_are_raw_and_ordered(converged_run):
    ft = by_name(converged_run["results"])["ft"]
    steps = ft["metrics"]["runs"][0]["steps"]
    [quality] = ft["raw"]["quality_curves"]
    [loss] = ft["raw"]["loss_curves"]
    assert quality[-1][0] == steps and quality[-1][2] >= 0.95
    assert [q[0] for q in quality] == list(range(10, steps + 1, 10))
    assert all(q[2] < 0.95 for q in quality[:-1])  # it stopped at the first hit
    assert [row[0] for row in loss] == list(range(1, steps + 1))
    times = [row[1] for row in loss]
    assert times == sorted(times) and times[0] > 0
    assert all(math.isfinite(row[2]) and row[2] >= 0 for row in loss)
    assert quality[-1][1] <= ft["metrics"]["time_to_target_s"] + 1e-9


def test_fine_tune_throughput_and_flops(converged_run):
    m = by_name(converged_run["results"])["ft"]["metrics"]
    run = m["runs"][0]
    assert run["samples"] == run["steps"] * 8  # 160 training rows: every batch is full
    assert m["train_samples_per_s"] > 0 and m["train_tokens_per_s"] > 0
    forward = m["train_flops_per_sample_3x_forward_estimate"] / 3
    assert forward > 0
    assert 2.5 * forward <= m["train_flops_per_sample"] <= 3.5 * forward
    assert m["train_flops_total"] == pytest.approx(m["train_flops_per_sample"] * run["samples"])


def test_fine_tune_saves_a_checkpoint_with_the_label_names(converged_run):
    ft = by_name(converged_run["results"])["ft"]
    saved = Path(ft["metrics"]["saved_checkpoint"])
    assert saved.is_dir()
    assert saved == converged_run["out"] / "checkpoints" / "ft"
    config = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert ft["settings"]["labels"] == ["neg", "pos"]
    assert ft["settings"]["num_processes"] == 1
    assert any(p.name.startswith("tokenizer") or p.name == "vocab.txt" for p in saved.iterdir())


def test_later_scenarios_measure_the_fine_tuned_checkpoint(converged_run):
    results = converged_run["results"]
    scenarios = by_name(results)
    acc = scenarios["acc-ft"]
    assert acc["candidate"] == "ft"
    assert acc["settings"]["labels"] == ["neg", "pos"]
    # The fine-tune stopped when the same holdout reached 0.95; accuracy mode agrees.
    assert acc["metrics"]["accuracy"]["value"] >= 0.95
    assert acc["metrics"]["n"] == 40
    assert scenarios["off-ft[bs=4]"]["candidate"] == "ft"
    # Only measured candidates are described: base was never measured.
    assert list(results["candidates"]) == ["ft", "ft2"]
    assert [(s["name"], s["candidate"]) for s in results["scenarios"]] == [
        ("ft", "ft"), ("acc-ft", "ft"), ("off-ft[bs=4]", "ft"), ("ft2", "ft2"), ("acc-ft2", "ft2")
    ]


def test_a_fine_tune_from_another_starts_from_its_checkpoint(converged_run):
    """ft2 (`from: ft`) trains one step at a learning rate too small to move any weight: it
    reaches the target at its first evaluation only because it starts from ft's trained
    weights and head (from base, a fresh random head would sit near chance)."""
    results = converged_run["results"]
    scenarios = by_name(results)
    ft, ft2 = scenarios["ft"]["metrics"], scenarios["ft2"]
    assert ft["converged"] is True and ft["saved_quality"] >= 0.95
    [run] = ft2["metrics"]["runs"]
    assert run["converged"] is True and run["steps"] == 1 and run["final_quality"] >= 0.95
    assert ft2["candidate"] == "ft2"
    assert ft2["settings"]["labels"] == ["neg", "pos"]
    saved = Path(ft2["metrics"]["saved_checkpoint"])
    assert saved == converged_run["out"] / "checkpoints" / "ft2" and saved.is_dir()
    info = results["candidates"]["ft2"]
    assert info["origin"] == "fine-tuned" and info["parent"] == "ft"
    assert info["recipe"]["kind"] == "fine_tune" and info["recipe"]["from"] == "ft"
    assert info["path"] == str(saved)
    assert scenarios["acc-ft2"]["metrics"]["accuracy"]["value"] >= 0.95


def test_a_fine_tuned_candidate_is_described_in_results(converged_run):
    results = converged_run["results"]
    info = results["candidates"]["ft"]
    saved = converged_run["out"] / "checkpoints" / "ft"
    assert info["name"] == "ft" and info["origin"] == "fine-tuned" and info["parent"] == "base"
    assert info["recipe"]["kind"] == "fine_tune" and info["recipe"]["name"] == "ft"
    assert info["recipe"]["from"] == "base" and info["recipe"]["max_steps"] == 100
    assert info["runtime"] == "torch" and info["dtype"] == "float32" and info["device"] == "cpu"
    assert info["path"] == str(saved) == by_name(results)["ft"]["metrics"]["saved_checkpoint"]
    assert info["size_on_disk_bytes"] == sum(
        p.stat().st_size for p in saved.iterdir() if p.suffix in (".safetensors", ".bin")
    )
    assert info["parameter_bytes"] == 4 * info["parameters"] > 0
    assert info["model"]["model_class"] == "BertForSequenceClassification"
    assert info["flops"]["source"] == "measured" and info["flops"]["measured_per_sample"] > 0
    md = (converged_run["out"] / "report.md").read_text(encoding="utf-8")
    assert "- **ft** (fine-tuned from base by fine_tune" in md
    assert "- **ft2** (fine-tuned from ft by fine_tune" in md


def test_a_fine_tuned_candidates_loader_details_name_its_final_directory(converged_run):
    info = converged_run["results"]["candidates"]["ft"]
    assert info["model"]["path"] == info["path"]


def test_a_fine_tune_results_settings_name_from_as_written(converged_run):
    settings = by_name(converged_run["results"])["ft2"]["settings"]
    assert settings["from"] == "ft" and "source" not in settings


# --- the candidate seam: default candidates -----------------------------------------------------


@pytest.fixture(scope="module")
def defaulted_run(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A bare-encoder base, a short fine_tune, then single_stream and accuracy naming no candidates."""
    tmp = tmp_path_factory.mktemp("defaulted")
    data = easy_csv(tmp / "easy.csv", tiny_bert_dir, n=60)
    scenarios = fine_tune_yaml(data, max_steps=2, eval_every=2) + f"""
  - kind: single_stream
    warmup_queries: 1
    min_duration_s: 0.02
    min_query_count: 8
  - kind: accuracy
    dataset: {dataset_yaml(data, "holdout")}
    batch_size: 16
    bootstrap_resamples: 10
"""
    path = tmp / "defaulted.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    return {"results": run_cli(path, tmp / "out"), "out": tmp / "out"}


def test_a_measurement_without_candidates_measures_every_candidate_built_so_far(defaulted_run):
    results = defaulted_run["results"]
    assert [(s["name"], s["candidate"]) for s in results["scenarios"]] == [
        ("ft", "ft"), ("single_stream", "base"), ("single_stream", "ft"), ("accuracy", "ft")
    ]
    for r in results["scenarios"][1:3]:
        assert r["metrics"]["queries"] >= 8
    cands = results["candidates"]
    assert list(cands) == ["base", "ft"]
    assert cands["base"]["origin"] == "base" and cands["base"]["parent"] is None
    assert cands["base"]["recipe"] == {} and cands["base"]["model"]["model_class"] == "BertModel"
    assert cands["ft"]["origin"] == "fine-tuned" and cands["ft"]["parent"] == "base"
    assert cands["ft"]["recipe"]["kind"] == "fine_tune"
    assert cands["ft"]["model"]["model_class"] == "BertForSequenceClassification"
    # The head adds FLOPs: each candidate's own were counted.
    assert cands["ft"]["flops"]["measured_per_sample"] > cands["base"]["flops"]["measured_per_sample"]
    md = (defaulted_run["out"] / "report.md").read_text(encoding="utf-8")
    assert "single_stream (base)" in md and "single_stream (ft)" in md


def test_accuracy_without_candidates_scores_only_those_with_a_head(defaulted_run):
    [acc] = [s for s in defaulted_run["results"]["scenarios"] if s["kind"] == "accuracy"]
    assert acc["candidate"] == "ft"
    assert acc["settings"]["labels"] == ["neg", "pos"]
    assert acc["settings"]["candidates"] is None  # as written: defaulted
    assert acc["metrics"]["n"] == 12


def test_fine_tune_that_cannot_reach_its_target_is_invalid(tiny_bert_dir, tmp_path):
    data = easy_csv(tmp_path / "noise.csv", tiny_bert_dir, n=60, random_labels=True)
    scenario = tmp_path / "fail.yaml"
    scenario.write_text(
        suite_yaml(tiny_bert_dir, fine_tune_yaml(data, name="fail", target=1.0, max_steps=5, eval_every=5, runs=3)),
        encoding="utf-8",
    )
    ft = by_name(run_cli(scenario, tmp_path / "out"))["fail"]
    m = ft["metrics"]
    assert m["converged"] is False
    assert m["time_to_target_s"] is None
    assert [r["seed"] for r in m["runs"]] == [0, 1, 2]
    assert all(r["converged"] is False and r["time_to_target_s"] is None for r in m["runs"])
    assert all(r["steps"] == 5 and r["stop_reason"] == "max_steps reached" for r in m["runs"])
    assert "olympic" in m["scoring"]["method"]
    assert m["scoring"]["run_count"] == 3 and m["scoring"]["converged_runs"] == 0
    v = ft["validity"]
    assert v["result"] == "INVALID" and v["convergence_satisfied"] is False
    assert v["reduced_settings"] is False  # three runs are enough for olympic scoring
    assert any("max_steps" in r and "target" in r for r in v["recommendations"])
    assert len(ft["raw"]["loss_curves"]) == 3 and len(ft["raw"]["quality_curves"]) == 3
    # Nothing converged: the last run's model is kept, still saved for later scenarios.
    assert m["saved_run_index"] == 2 and Path(m["saved_checkpoint"]).is_dir()


def test_a_run_stopped_by_its_time_budget_reports_the_quality_of_the_saved_model(tiny_bert_dir, tmp_path):
    """max_time_s ends the run between evaluations: the reported quality must be that of the
    model that was saved (scored again after the stop), checked here by accuracy mode on it."""
    data = easy_csv(tmp_path / "noise.csv", tiny_bert_dir, n=60, random_labels=True)
    scenarios = fine_tune_yaml(
        data, name="budget", target=1.0, max_steps=1000, eval_every=1000, extra="\n    max_time_s: 0.001"
    ) + f"""
  - kind: accuracy
    name: acc-saved
    candidates: [budget]
    dataset: {dataset_yaml(data, "holdout")}
    sequence_length: {SEQ}
    bootstrap_resamples: 10
"""
    scenario = tmp_path / "budget.yaml"
    scenario.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    results = by_name(run_cli(scenario, tmp_path / "out"))
    m = results["budget"]["metrics"]
    [run] = m["runs"]
    assert run["stop_reason"] == "max_time_s reached"
    assert results["budget"]["raw"]["quality_curves"] == [[]]  # no evaluation ran in the loop
    assert run["evaluated_after_stop"] is True
    assert run["final_quality_step"] == run["steps"] == m["saved_step"]
    assert m["saved_quality"] == run["final_quality"]
    assert run["final_quality"] == pytest.approx(results["acc-saved"]["metrics"]["accuracy"]["value"])


# --- scenario validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "order, key, ref, built",
    [
        ("accuracy-first", "scenarios[0].candidates[0]", "ft", "base"),  # the fine_tune comes later
        ("unknown", "scenarios[1].candidates[0]", "nope", "base, ft"),  # no such scenario
        ("not-a-building-step", "scenarios[2].candidates[0]", "acc", "base, ft"),  # acc builds nothing
        ("later-in-the-list", "scenarios[0].candidates[1]", "ft", "base"),  # base is fine, ft is not
        ("from-later", "scenarios[0].from", "ft2", "base"),  # a fine_tune from one built after it
        ("from-itself", "scenarios[0].from", "ft", "base"),  # its own name is built by this step
        ("from-not-a-building-step", "scenarios[2].from", "acc", "base, ft"),
        ("baseline-is-not-base", "scenarios[1].candidates[0]", "baseline", "base, ft"),
    ],
)
def test_a_reference_must_name_a_candidate_built_earlier(tmp_path, tiny_bert_dir, order, key, ref, built):
    data = tmp_path / "d.csv"
    accuracy = f"""
  - kind: accuracy
    name: acc
    candidates: [{ref if order == "accuracy-first" else "ft"}]
    dataset: {dataset_yaml(data, "holdout")}
"""
    offline = f"""
  - kind: offline
    candidates: [{ref}]
"""
    if order == "accuracy-first":
        scenarios = accuracy + fine_tune_yaml(data)
    elif order in ("unknown", "baseline-is-not-base"):
        scenarios = fine_tune_yaml(data) + offline
    elif order == "not-a-building-step":
        scenarios = fine_tune_yaml(data) + accuracy + offline
    elif order == "later-in-the-list":
        scenarios = f"""
  - kind: offline
    candidates: [base, {ref}]
""" + fine_tune_yaml(data)
    elif order == "from-later":
        scenarios = fine_tune_yaml(data, extra=f"\n    from: {ref}") + fine_tune_yaml(data, name=ref)
    elif order == "from-itself":
        scenarios = fine_tune_yaml(data, extra=f"\n    from: {ref}")
    else:
        scenarios = fine_tune_yaml(data) + accuracy + fine_tune_yaml(data, name="ft2", extra=f"\n    from: {ref}")
    path = tmp_path / "bad.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert "\n" not in message
    assert f"{key}: '{ref}' is not a candidate built before this step (built so far: {built})" in message
    assert message.startswith(f"{path}: ")


def test_references_to_base_and_earlier_candidates_are_accepted(tmp_path, tiny_bert_dir):
    data = tmp_path / "d.csv"
    scenarios = (
        "\n  - {kind: single_stream, candidates: [base]}\n"
        + fine_tune_yaml(data)
        + fine_tune_yaml(data, name="ft2", extra="\n    from: ft")
        + fine_tune_yaml(data, name="ft3", extra="\n    from: base")
        + "\n  - {kind: offline, candidates: [ft3, base, ft2, ft]}\n"
    )
    path = tmp_path / "ok.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    suite = load_suite(path)
    assert [getattr(sc, "source", None) for sc in suite.scenarios] == [None, "base", "ft", "base", None]
    assert suite.scenarios[0].candidates == ["base"]
    assert suite.scenarios[-1].candidates == ["ft3", "base", "ft2", "ft"]
    # `from` is written back under its own name (the resolved suite in results.json).
    dumped = suite.model_dump(mode="json", by_alias=True)["scenarios"]
    assert [sc.get("from") for sc in dumped] == [None, "base", "ft", "base", None]


@pytest.mark.parametrize("name", ["base", "Base", "BASE"])
def test_base_is_reserved_as_a_scenario_name(tmp_path, tiny_bert_dir, name):
    data = tmp_path / "d.csv"
    for scenarios in (fine_tune_yaml(data, name=name), f"\n  - {{kind: offline, name: {name}}}\n"):
        path = tmp_path / "bad.yaml"
        path.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_suite(path)
        message = str(info.value)
        assert "scenarios[0].name: " in message and "'base'" in message and "\n" not in message
        assert "own model" in message


def test_an_empty_candidates_list_is_refused(tmp_path, tiny_bert_dir):
    path = tmp_path / "bad.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, "\n  - {kind: offline, candidates: []}\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert "scenarios[0].candidates" in str(info.value)


def test_reference_error_through_validate_exits_2(tmp_path, tiny_bert_dir, capsys):
    data = tmp_path / "d.csv"
    scenarios = """
  - kind: single_stream
    candidates: [ft]
""" + fine_tune_yaml(data)
    path = tmp_path / "bad.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scenarios[0].candidates[0]" in err, err


def _refuse_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    import hf_cost.models.load as load

    monkeypatch.setattr(load, "load_model", lambda *a, **k: pytest.fail("weights loaded"))


@pytest.mark.parametrize(
    "candidates, key",
    [
        ("\n    candidates: [base]", "scenarios[0].candidates[0]"),
        ("\n    candidates: [ft, base]", "scenarios[1].candidates[1]"),
        ("", "scenarios[0].candidates"),  # defaulted: no candidate so far has a head
    ],
)
def test_accuracy_on_a_candidate_without_a_head_is_refused_by_validate(
    tmp_path, tiny_bert_dir, capsys, monkeypatch, candidates, key
):
    """The tiny base is a bare encoder (model.task: feature-extraction): accuracy cannot score
    it, and `validate` says so in one line naming the key, before any weights load."""
    _refuse_weights(monkeypatch)
    data = easy_csv(tmp_path / "d.csv", tiny_bert_dir)
    accuracy = f"""
  - kind: accuracy{candidates}
    dataset: {dataset_yaml(data, "holdout")}
"""
    scenarios = fine_tune_yaml(data) + accuracy if "ft" in candidates else accuracy
    path = tmp_path / "bad.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert f"{key}:" in err and "classification head" in err, err
    if candidates:
        assert "'base'" in err


def test_accuracy_defaults_to_the_candidates_with_a_head(tmp_path, tiny_bert_dir, monkeypatch):
    """Preflight knows each candidate's labels: the bare base has none, a fine_tune's are its data's."""
    _refuse_weights(monkeypatch)
    from hf_cost.pipeline import prepare

    data = easy_csv(tmp_path / "d.csv", tiny_bert_dir)
    scenarios = fine_tune_yaml(data) + f"""
  - kind: accuracy
    dataset: {dataset_yaml(data, "holdout")}
"""
    path = tmp_path / "ok.yaml"
    path.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    assert prepare(path).labels == {"base": None, "ft": ["neg", "pos"]}


def test_validate_checks_datasets_labels_and_metrics_before_any_weights_load(
    tmp_path, tiny_bert_dir, capsys, monkeypatch
):
    """Fail fast: a wrong column, a label the fine-tuned model will not know, or an unknown
    metric is reported by `validate` (no weights loaded, no training) naming the key."""
    _refuse_weights(monkeypatch)
    data = easy_csv(tmp_path / "d.csv", tiny_bert_dir)
    other = tmp_path / "other.csv"
    other.write_text("text,label\nhello,maybe\n", encoding="utf-8")
    cases = {
        "scenarios[1].dataset.label_column": f"""
  - kind: accuracy
    candidates: [ft]
    dataset: {{path: {json.dumps(str(other))}, label_column: label}}""",
        "scenarios[1].extra_metrics[0]": f"""
  - kind: accuracy
    candidates: [ft]
    dataset: {dataset_yaml(data, "holdout")}
    extra_metrics: [no_such_metric_anywhere]""",
        "scenarios[1].dataset.text_column": f"""
  - kind: accuracy
    candidates: [ft]
    dataset: {{path: {json.dumps(str(data))}, label_column: label, text_column: body}}""",
    }
    for key, accuracy in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(suite_yaml(tiny_bert_dir, fine_tune_yaml(data) + accuracy), encoding="utf-8")
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and key in err, err


# --- two processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_count_every_processs_samples(tiny_bert_dir, tmp_path):
    data = easy_csv(tmp_path / "easy.csv", tiny_bert_dir)
    scenario = tmp_path / "ddp.yaml"
    scenarios = fine_tune_yaml(data, name="ddp", max_steps=10, eval_every=5) + f"""
  - kind: accuracy
    name: acc-ddp
    candidates: [ddp]
    dataset: {dataset_yaml(data, "holdout")}
    bootstrap_resamples: 50
"""
    scenario.write_text(suite_yaml(tiny_bert_dir, scenarios), encoding="utf-8")
    out = tmp_path / "out"
    launcher = Path(sys.executable).with_name("accelerate")
    if launcher.is_file():  # the `accelerate` console script of this interpreter
        cmd = [str(launcher), "launch"]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    cmd += [
        "--num_processes", "2", "--cpu", "--main_process_port", str(free_port()),
        "-m", "hf_cost", "run", str(scenario), "--output", str(out), "--quiet",
    ]
    env = dict(os.environ)  # conftest made it offline, with a private HF_HOME
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(  # cwd tmp_path: a stray default results/ would be seen below
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    ft = by_name(results)["ddp"]
    assert ft["settings"]["num_processes"] == 2
    run = ft["metrics"]["runs"][0]
    # Throughput is total samples over wall time: both processes' samples count.
    assert run["samples"] == 2 * run["steps"] * 8
    assert 0 < run["steps"] <= 10
    assert ft["metrics"]["train_samples_per_s"] > 0
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("results.json")) == [
        Path("out/results.json")
    ]
    assert Path(ft["metrics"]["saved_checkpoint"]).is_dir()
    # Scenarios after the fine-tune run once, on the main process.
    assert [(s["name"], s["candidate"]) for s in results["scenarios"]] == [
        ("ddp", "ddp"), ("acc-ddp", "ddp")
    ]

