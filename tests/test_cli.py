"""End to end through the command line, on a tiny random BERT saved to a tmp dir.

In process through `hf_cost.cli.main`, plus real subprocesses of `python -m hf_cost`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import HF_HOME, REPO_ROOT, TINY_MAX_POSITIONS, write_scenario

from hf_cost.cli import main
from hf_cost.report.schema import SCHEMA_VERSION, RunResult, results_json_schema

SCENARIOS = """\
scenarios:
  - kind: single_stream
    min_duration_s: 0.3
    min_query_count: 64
    warmup_queries: 1
  - kind: offline
    batch_sizes: [1, 4]
    min_duration_s: 0.3
    min_sample_count: 16
"""
INPUTS = "inputs: {kind: synthetic, sequence_length: 16, num_samples: 8}\n"


def suite_text(model: str, inputs: str = INPUTS, scenarios: str = SCENARIOS) -> str:
    return f"name: tiny\nmodel: {model}\n{inputs}{scenarios}"


def leftovers(directory: Path) -> list[str]:
    """Temporary files a writer might leave behind (atomic-write temps, write tests)."""
    return sorted(
        p.name for p in directory.rglob(".*") if p.name.endswith(".tmp") or p.name.startswith(".write-test")
    )


def base_flops(data: dict[str, Any]) -> dict[str, Any]:
    """FLOPs of the scenario file's own checkpoint: the candidate 'base'."""
    return data["candidates"]["base"]["flops"]


@pytest.fixture(scope="module")
def run_in_process(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("cli-run")
    path = write_scenario(tmp, suite_text(f"{{path: {tiny_bert_dir}, device: cpu}}"), "tiny.yaml")
    out = tmp / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["run", str(path), "--output", str(out)])
    return {"code": code, "out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "path": path}


def test_run_exit_code_and_files(run_in_process: dict[str, Any]) -> None:
    r = run_in_process
    assert r["code"] == 0, r["stderr"]
    out = r["out"]
    assert (out / "results.json").is_file()
    assert (out / "report.md").is_file()
    assert leftovers(out) == []
    assert "wrote" in r["stdout"] and str(out / "results.json") in r["stdout"]


def test_run_progress_on_stderr(run_in_process: dict[str, Any]) -> None:
    err = run_in_process["stderr"]
    assert "loading" in err
    assert "warm-up" in err
    assert "offline[bs=4]" in err
    assert "Traceback" not in err


def test_results_json_validates(run_in_process: dict[str, Any], tiny_bert_dir: Path) -> None:
    import torch
    import transformers

    data = json.loads((run_in_process["out"] / "results.json").read_text())
    result = RunResult.model_validate(data)
    assert data["schema_version"] == SCHEMA_VERSION == result.schema_version
    libs = data["environment"]["libraries"]
    assert libs["torch"] == importlib.metadata.version("torch")
    assert torch.__version__.startswith(libs["torch"].split("+")[0])
    assert libs["transformers"] == transformers.__version__
    assert data["environment"]["python"]
    assert data["environment"]["hub_offline"] is True
    assert data["scenario_file"] == str(run_in_process["path"])
    # the fully resolved suite: defaults filled in, path absolute
    assert data["suite"]["name"] == "tiny"
    assert data["suite"]["scenarios"][0]["target_percentile"] == 0.9
    assert data["suite"]["model"]["path"] == str(tiny_bert_dir)
    assert data["inputs"]["num_samples"] == 8 and data["inputs"]["sequence_length"] == 16


def test_results_scenarios_and_raw(run_in_process: dict[str, Any]) -> None:
    data = json.loads((run_in_process["out"] / "results.json").read_text())
    names = [s["name"] for s in data["scenarios"]]
    assert names == ["single_stream", "offline[bs=1]", "offline[bs=4]"]
    ss = data["scenarios"][0]
    n = ss["metrics"]["queries"]
    assert n >= 64
    assert len(ss["raw"]["latencies_ms"]) == n
    assert ss["metrics"]["final_query_issued_s"] >= 0.3
    assert ss["validity"]["early_stopping_satisfied"] is True
    assert ss["validity"]["reduced_settings"] is True
    assert ss["validity"]["result"] == "VALID"
    for off in data["scenarios"][1:]:
        m, raw = off["metrics"], off["raw"]
        assert m["samples"] >= 16
        assert sum(raw["batch_sizes"]) == m["samples"]
        assert m["throughput_samples_per_s"] == pytest.approx(m["samples"] / raw["batch_completed_s"][-1])
        v = off["validity"]
        assert v["min_duration_satisfied"] == (m["duration_s"] >= 0.3)
    for s in data["scenarios"]:
        mem = s["memory"]
        assert mem["peak_rss_mib"] > 0
        assert mem["peak_rss_delta_mib"] >= 0
        assert mem["baseline_rss_mib"] > 0
        assert mem["rss_method"]
        assert s["metrics"]["achieved_gflops_per_s"] > 0
        if data["peak_tflops"] is None:  # no hardware.peak_tflops and no CPU estimate on this machine
            assert s["metrics"]["mfu"] is None
        else:  # MFU = achieved / the CPU estimate (measure/cpu_peak.py)
            assert s["metrics"]["mfu"] == pytest.approx(s["metrics"]["achieved_gflops_per_s"] / 1e3 / data["peak_tflops"])
    assert data["peak_source"] == "peak unknown" or data["peak_source"].startswith("estimate: ")


def test_results_flops_and_model(run_in_process: dict[str, Any], tiny_bert_dir: Path) -> None:
    from transformers import AutoModel

    data = json.loads((run_in_process["out"] / "results.json").read_text())
    flops = base_flops(data)
    assert flops["sequence_length"] == 16 and flops["batch_size"] == 1
    assert flops["analytic_per_sample"] is not None
    assert flops["measured_per_sample"] == pytest.approx(flops["analytic_per_sample"], rel=0.01)
    assert flops["relative_difference"] < 0.01
    assert sum(flops["by_operator"].values()) == flops["measured_per_sample"]
    assert flops["source"] == "measured"
    expected_params = sum(p.numel() for p in AutoModel.from_pretrained(tiny_bert_dir).parameters())
    assert list(data["candidates"]) == ["base"]
    base = data["candidates"]["base"]
    assert base["name"] == "base" and base["origin"] == "base"
    assert base["parent"] is None and base["recipe"] == {}
    assert base["runtime"] == "torch" and base["dtype"] == "float32" and base["device"] == "cpu"
    assert base["parameters"] == expected_params
    assert base["parameter_bytes"] == 4 * expected_params
    assert base["size_on_disk_bytes"] > 0
    assert base["path"] == str(tiny_bert_dir)
    assert base["load_time_s"] > 0 and base["baseline_rss_mib"] > 0
    assert all(s["candidate"] == "base" for s in data["scenarios"])
    info = base["model"]
    assert info["parameters"] == expected_params
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["source"] == "local directory"
    assert info["max_position_embeddings"] == TINY_MAX_POSITIONS
    # achieved compute uses the measured FLOPs
    ss = data["scenarios"][0]["metrics"]
    assert ss["achieved_gflops_per_s"] == pytest.approx(
        flops["measured_per_sample"] * ss["qps_without_overhead"] / 1e9
    )


def test_report_md(run_in_process: dict[str, Any]) -> None:
    md = (run_in_process["out"] / "report.md").read_text()
    assert md.startswith("# hf_cost report: tiny")
    for name in ("single_stream", "offline[bs=1]", "offline[bs=4]"):
        assert name in md
    assert "peak for MFU: " in md and ("peak unknown" in md or "(estimate: " in md)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(HF_HOME), HF_HUB_CACHE=str(HF_HOME / "hub"))
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_run_as_subprocess(tiny_bert_dir: Path, tmp_path: Path) -> None:
    path = write_scenario(tmp_path, suite_text(f"{{path: {tiny_bert_dir}}}"), "tiny.yaml")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "hf_cost", "run", str(path), "--output", str(out)],
        cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loading" in proc.stderr and "warm-up" in proc.stderr  # progress goes to stderr
    assert "Traceback" not in proc.stderr
    assert "loading" not in proc.stdout
    data = json.loads((out / "results.json").read_text())
    RunResult.model_validate(data)
    assert (out / "report.md").is_file()
    assert leftovers(out) == []


def test_help_is_light() -> None:
    code = (
        "import sys\n"
        "from hf_cost.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "run" in proc.stdout and "validate" in proc.stdout


# --- validate -------------------------------------------------------------------------------


def test_validate_loads_no_weights(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import PreTrainedModel

    import hf_cost.models.load

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("validate must not load weights")

    monkeypatch.setattr(hf_cost.models.load, "load_model", refuse)
    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(refuse))
    path = write_scenario(tmp_path, suite_text(f"{{path: {tiny_bert_dir}}}"))
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"{path}: OK" in captured.out
    assert "local directory" in captured.out
    assert "single_stream, offline" in captured.out
    assert list(tmp_path.iterdir()) == [path]  # nothing written beside it


def test_validate_many_files_stops_at_bad_one(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_scenario(tmp_path, suite_text(f"{{path: {tiny_bert_dir}}}"), "good.yaml")
    bad = write_scenario(tmp_path, "model: {path: x}\nscenarios: [{kind: serverless}]\n", "bad.yaml")
    assert main(["validate", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert f"{good}: OK" in captured.out
    assert captured.err.startswith(f"error: {bad}:")


# --- bad inputs -----------------------------------------------------------------------------


def _case(name: str, tiny: Path, tmp: Path) -> tuple[str, str | None, list[str]]:
    """(scenario text, output dir override, fragments the message must contain)."""
    good_model = f"{{path: {tiny}}}"
    if name == "malformed_yaml":
        return "model: {path: x\nscenarios: [\n", None, ["malformed YAML"]
    if name == "unknown_key":
        return suite_text(good_model).replace("min_query_count", "min_querry_count"), None, [
            "scenarios[0].min_querry_count", "did you mean 'min_query_count'"]
    if name == "missing_model_path":
        return suite_text(f"{{path: {tmp / 'nope'}}}"), None, ["model.path", str(tmp / "nope")]
    if name == "hub_id_not_cached":
        return suite_text("{id: acme/not-cached}"), None, ["model.id", "acme/not-cached", "cache import"]
    if name == "sequence_too_long":
        inputs = f"inputs: {{kind: synthetic, sequence_length: {TINY_MAX_POSITIONS + 1}, num_samples: 8}}\n"
        return suite_text(good_model, inputs=inputs), None, ["inputs.sequence_length", str(TINY_MAX_POSITIONS)]
    if name == "output_not_writable":
        blocker = tmp / "file.txt"
        blocker.write_text("a regular file")
        return suite_text(good_model), str(blocker / "out"), ["--output", str(blocker / "out"), "not writable"]
    if name == "unknown_kind":
        return suite_text(good_model, scenarios="scenarios: [{kind: serverless}]\n"), None, [
            "scenarios[0].kind", "unknown kind 'serverless'"]
    if name == "both_id_and_path":
        return suite_text(f"{{id: a/b, path: {tiny}}}"), None, ["model", "exactly one"]
    if name == "missing_file":
        return "", None, ["not found"]
    raise AssertionError(name)


BAD_CASES = [
    "malformed_yaml", "unknown_key", "missing_model_path", "hub_id_not_cached", "sequence_too_long",
    "output_not_writable", "unknown_kind", "both_id_and_path", "missing_file",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_one_line_exit_2(
    case: str, tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("bad input must fail before the run starts")

    monkeypatch.setattr("hf_cost.pipeline.run_suite", refuse)
    text, output, fragments = _case(case, tiny_bert_dir, tmp_path)
    path = tmp_path / "scenario.yaml"
    if case != "missing_file":
        write_scenario(tmp_path, text)
    out = Path(output) if output else tmp_path / "out"
    code = main(["run", str(path), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: ")
    assert "Traceback" not in err
    # the message names the file that is wrong: the scenario file, or the output directory
    assert str(path) in line or (output is not None and output in line), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert not out.exists()  # no output files, not even an empty directory


def test_load_error_names_the_scenario_file(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint with a config but no weights passes `validate` and fails at load time;
    that error must still name the scenario file, like every other user error."""
    import shutil

    ckpt = tmp_path / "no-weights"
    ckpt.mkdir()
    for f in tiny_bert_dir.iterdir():
        if f.suffix not in (".safetensors", ".bin"):
            shutil.copy(f, ckpt / f.name)
    path = write_scenario(tmp_path, suite_text(f"{{path: {ckpt}}}"))
    out = tmp_path / "out"
    assert main(["run", str(path), "--output", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith(f"error: {path}: model"), errors[0]
    assert not out.exists()  # no output files, not even an empty directory


def test_unknown_subcommand_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


# --- cache import ---------------------------------------------------------------------------


def test_cache_import_makes_id_resolve_offline(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from huggingface_hub import constants
    from transformers import AutoConfig, AutoTokenizer

    from hf_cost.pipeline import prepare

    cache = Path(constants.HF_HUB_CACHE)
    assert cache.resolve().is_relative_to(HF_HOME.resolve()), "tests must never touch the user's cache"
    assert main(["cache", "import", str(tiny_bert_dir), "--as", "acme/tiny-bert"]) == 0
    first = capsys.readouterr().out
    folder = cache / "models--acme--tiny-bert"
    snapshots = list((folder / "snapshots").iterdir())
    assert len(snapshots) == 1
    commit = (folder / "refs" / "main").read_text()
    assert snapshots[0].name == commit and len(commit) == 40

    config = AutoConfig.from_pretrained("acme/tiny-bert")
    assert config.hidden_size == 32 and config.max_position_embeddings == TINY_MAX_POSITIONS
    assert len(AutoTokenizer.from_pretrained("acme/tiny-bert")) == 200

    path = write_scenario(tmp_path, suite_text("{id: acme/tiny-bert}"))
    assert main(["validate", str(path)]) == 0
    assert "Hub cache" in capsys.readouterr().out
    prepared = prepare(path)
    assert prepared.checkpoint.source == "Hub cache"
    assert prepared.checkpoint.commit == commit
    assert prepared.checkpoint.reference == "acme/tiny-bert"

    # importing again is a no-op: same snapshot, same ref, no staging left behind
    assert main(["cache", "import", str(tiny_bert_dir), "--as", "acme/tiny-bert"]) == 0
    assert capsys.readouterr().out == first
    assert [p.name for p in (folder / "snapshots").iterdir()] == [commit]
    assert (folder / "refs" / "main").read_text() == commit
    assert leftovers(folder) == [] and not list(folder.rglob(".import-*"))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--as", "not a hub id!"], "not a Hub model id"),
        (["--as", "acme/x/y"], "not a Hub model id"),
    ],
)
def test_cache_import_bad_id(
    tiny_bert_dir: Path, args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache", "import", str(tiny_bert_dir), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and len(err.strip().splitlines()) == 1


def test_cache_import_bad_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "import", str(tmp_path / "absent"), "--as", "acme/absent"]) == 2
    assert main(["cache", "import", str(tmp_path), "--as", "acme/empty"]) == 2  # no config.json
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "config.json" in err[1]


# --- Ctrl-C ---------------------------------------------------------------------------------


def test_keyboard_interrupt_exits_130_without_results(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("hf_cost.pipeline.run_suite", interrupted)
    path = write_scenario(tmp_path, suite_text(f"{{path: {tiny_bert_dir}}}"))
    out = tmp_path / "out"
    assert main(["run", str(path), "--output", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()  # not even an empty output directory


# --- schema ---------------------------------------------------------------------------------


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == results_json_schema()
    assert printed["title"] == "RunResult"
    # every registered kind's metrics model is in the union, building kinds included
    for model in ("SingleStreamMetrics", "DriftMetrics", "TrainingMetrics", "DistillMetrics", "OnnxInt8Metrics",
                  "QuantoMetrics", "PruneMetrics"):
        assert model in printed["$defs"], model


def test_docs_schema_is_current() -> None:
    doc = REPO_ROOT / "docs" / "results.schema.json"
    assert doc.is_file(), "generate it: python -m hf_cost schema > docs/results.schema.json"
    assert json.loads(doc.read_text()) == results_json_schema(), (
        "docs/results.schema.json is stale: python -m hf_cost schema > docs/results.schema.json"
    )
