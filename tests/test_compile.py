"""compile: a torch candidate wrapped in torch.compile, through the CLI on the tiny BERT (conftest)
with backend aot_eager (seconds; inductor compiles C++ and took ~40 s for the tiny BERT on this
shared 2-core machine, so its test is marked slow).

The performance set is natural-length text of 1 and 3 vocabulary words, i.e. 3 and 5 tokens
([CLS] words [SEP]): the warm-up must call the compiled model at exactly those two lengths. With
dynamo's cache cleared first, torch's default (dynamic: null) compiles a static graph at the first
length and recompiles with a symbolic length at the second: 2 frames, 1 recompile.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import write_scenario
from lm_helpers import lm_suite_yaml, save_tiny_llama, tickets_csv
from scenario_helpers import run_cli, word_counts_csv

from hf_cost.cli import main
from hf_cost.steps import compile as compile_step

SS = "{kind: single_stream, candidates: [c], min_duration_s: 0.05, min_query_count: 8, warmup_queries: 1}"


def suite(model_dir: Path, data: Path, steps: str) -> str:
    return f"""
name: compile-test
model: {{path: {json.dumps(str(model_dir))}, device: cpu}}
inputs:
  dataset: {{path: {json.dumps(str(data))}}}
  sequence_length: 16
  num_samples: 4
scenarios:{steps}"""


@pytest.fixture(scope="module")
def data(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return word_counts_csv(tmp_path_factory.mktemp("compile-data") / "t.csv", tiny_bert_dir, [1, 3, 1, 3])


@pytest.fixture(scope="module")
def run(tiny_bert_dir: Path, data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    import torch

    torch._dynamo.reset()  # BertModel.forward's compiled code from any earlier test would be reused
    tmp = tmp_path_factory.mktemp("compile-run")
    path = write_scenario(tmp, suite(tiny_bert_dir, data, f"""
  - {{kind: compile, name: c, backend: aot_eager}}
  - {SS}"""))
    return run_cli(path, tmp / "out")


def _step(res: dict, name: str, kind: str | None = None) -> dict:
    return next(s for s in res["scenarios"] if s["name"] == name and (kind is None or s["kind"] == kind))


def test_warmup_covers_every_length_and_counts_the_compile(run):
    r = _step(run, "c")
    m, raw = r["metrics"], r["raw"]
    assert r["status"] == "ok" and m["backend"] == "aot_eager" and m["dynamic"] is None
    assert m["warmup_lengths"] == [3, 5]  # 1 and 3 words + [CLS] and [SEP]
    assert m["frames_compiled"] == 2 and m["recompiles"] == 1 and m["graph_breaks"] == 0
    assert m["graphs_compiled"] == 2 and m["graphs_compiled_after_warmup"] == 0  # the probe met no new shape
    assert len(raw["eager_s_per_call"]) == len(raw["first_call_s_per_call"]) == 2
    assert m["compile_time_s"] == pytest.approx(sum(raw["first_call_s_per_call"]) - sum(raw["eager_s_per_call"]))
    # tracing and AOT-compiling a graph takes far longer than one eager forward of a 2-layer, 32-wide model
    assert m["compile_time_s"] > 0 and m["first_calls_s_total"] > 10 * m["eager_s_total"]
    assert m["recompile_limit"] >= 1 and "recompiles during it" in " ".join(r["notes"])


def test_outputs_equal_the_eager_source(run):
    """aot_eager runs the traced aten graph eagerly: the same kernels, so the same numbers."""
    m = _step(run, "c")["metrics"]
    assert m["output_compared"] == "hidden_state" and m["probe_samples"] == 4 and m["top1_agreement"] is None
    assert m["max_abs_output_difference"] <= 1e-5


def test_the_comparison_sees_a_difference():
    """_compare on stand-ins whose outputs differ by a known amount: each sample at its own length."""
    import torch

    eager = SimpleNamespace(forward=lambda b: torch.tensor([[1.0, 2.0, 0.5]]) * b["x"])
    shifted = SimpleNamespace(forward=lambda b: torch.tensor([[1.0, 2.25, 3.0]]) * b["x"])
    p = SimpleNamespace(indices=[0, 1], output="logit", perf=SimpleNamespace(one=lambda i: {"x": float(i + 1)}))
    cmp = compile_step._compare(eager, shifted, p)
    # sample 0: |[0, .25, 2.5]| -> 2.5, argmax 1 vs 2; sample 1: x2 -> 5.0
    assert cmp.max_abs_difference_per_sample == [2.5, 5.0] and cmp.top1_agrees_per_sample == [False, False]
    same = compile_step._compare(eager, eager, SimpleNamespace(**{**vars(p), "output": "hidden_state"}))
    assert same.max_abs_difference_per_sample == [0.0, 0.0] and same.top1_agrees_per_sample is None


def flops(s: int, layers: int = 2, h: int = 32, i: int = 37) -> int:
    """Matmul FLOPs of one sample of the bare tiny BERT at length s: L*(8sH^2 + 4s^2H + 4sHI) + pooler 2H^2."""
    return layers * (8 * s * h * h + 4 * s * s * h + 4 * s * h * i) + 2 * h * h


def test_flops_are_the_source_and_the_candidate_is_measured(run):
    c = run["candidates"]["c"]
    counted = {a["sequence_length"]: a["measured_per_sample"] for a in c["flops"]["measured_at_lengths"]}
    assert counted == {3: flops(3), 5: flops(5)} == {3: 81920, 5: 137728}
    assert c["dtype"] == "float32" and c["size_on_disk_bytes"] is None and c["parent"] == "base"
    assert c["model"]["compiled"] == {"backend": "aot_eager", "mode": "default", "dynamic": None}
    measured = [s for s in run["scenarios"] if s["kind"] == "single_stream" and s["candidate"] == "c"]
    assert measured[0]["status"] == "ok" and measured[0]["metrics"]["queries"] >= 8


@pytest.mark.parametrize("counts, dynamic, expected", [
    ([5, 3, 5, 9, 3], None, [3, 5, 9]),
    ([5, 3, 5, 9, 3], False, [3, 5, 9]),
    ([5, 3, 5, 9, 3, 4], True, [3, 5, 9]),  # sorted 3 3 4 5 5 9: min 3, nearest-rank median [6 // 2] = 5, max 9
    ([7, 7], True, [7]),
])
def test_warmup_lengths(counts, dynamic, expected):
    assert compile_step.warmup_lengths(counts, dynamic) == expected


# --- validate refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("steps, key, words", [
    ("\n  - {kind: compile, name: c, backend: aot_eager}\n  - {kind: cast, from: c, dtype: bfloat16}",
     "scenarios[1].from", "torch.compile wrapper"),
    ("\n  - {kind: compile, name: c, backend: aot_eager}\n  - {kind: compile, from: c, name: cc}",
     "scenarios[1].from", "not a transformers checkpoint"),
    ("\n  - {kind: quanto, name: q}\n  - {kind: compile, from: q}", "scenarios[1].from", "quanto"),
    ("\n  - {kind: compile, backend: aot_eager, mode: max-autotune}", "scenarios[0].mode", "inductor mode"),
    ("\n  - {kind: compile, backend: eager}", "scenarios[0].backend", "inductor"),
])
def test_validate_refuses_in_one_line(tiny_bert_dir, data, tmp_path, capsys, steps, key, words):
    path = write_scenario(tmp_path, suite(tiny_bert_dir, data, steps))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and f"{key}:" in err and words in err, err


def test_inductor_without_a_compiler_is_refused(tiny_bert_dir, data, tmp_path, capsys, monkeypatch):
    ok = write_scenario(tmp_path, suite(tiny_bert_dir, data, "\n  - {kind: compile}"))
    assert main(["validate", str(ok)]) == 0  # g++ is on this machine's PATH
    monkeypatch.setenv("CXX", "no-such-compiler-19d")
    assert compile_step.cxx_compiler() is None
    assert main(["validate", str(ok)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scenarios[0].backend:" in err and "no-such-compiler-19d" in err, err
    aot = write_scenario(tmp_path, suite(tiny_bert_dir, data, "\n  - {kind: compile, backend: aot_eager}"), "a.yaml")
    assert main(["validate", str(aot)]) == 0  # aot_eager needs no compiler


def test_causal_lms_are_refused(tmp_path, capsys):
    model, tickets = save_tiny_llama(tmp_path / "llama"), tickets_csv(tmp_path / "tickets.csv", n=8)
    gen = "generation: {prompt: 'classify {text} now', max_new_tokens: 2}"
    path = write_scenario(tmp_path, lm_suite_yaml(model, tickets, "\n  - {kind: compile, backend: aot_eager}", gen))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scenarios[0].kind:" in err and "compile" in err, err


@pytest.mark.slow
def test_inductor_compiles_and_matches_eager(tiny_bert_dir, data, tmp_path):
    """inductor generates and compiles C++ kernels: ~40 s for the tiny BERT on a shared 2-core CPU (less
    when its on-disk FX-graph cache holds the graphs, which the result then says)."""
    import torch

    torch._dynamo.reset()
    path = write_scenario(tmp_path, suite(tiny_bert_dir, data, "\n  - {kind: compile, name: c, dynamic: true}"))
    m = _step(run_cli(path, tmp_path / "out"), "c")["metrics"]
    assert m["backend"] == "inductor" and m["warmup_lengths"] == [3, 5] and m["graphs_compiled_after_warmup"] == 0
    assert m["compile_time_s"] > 0 and m["max_abs_output_difference"] <= 1e-4
    assert m["fx_graph_cache_hits"] + m["fx_graph_cache_misses"] >= 1
    cache = tmp_path / "out" / "checkpoints" / "c" / "inductor-cache"  # its generated code, in the run's output
    assert cache.is_dir() and any(f.is_file() for f in cache.rglob("*"))


def test_inductor_cache_goes_inside_the_run_output(tmp_path, monkeypatch):
    """torch's default cache is a folder under /tmp shared by every run: the build points inductor
    (and triton) at the candidate's own folder inside the run's staging, unless the user chose one."""
    import os
    from types import SimpleNamespace

    from hf_cost.steps import compile as compile_step

    stage = tmp_path / "stage"
    stage.mkdir()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")  # restored after the test
    monkeypatch.setenv("TRITON_CACHE_DIR", "/elsewhere")
    monkeypatch.setattr(compile_step, "USER_INDUCTOR_CACHE", None)
    folder = compile_step.inductor_cache(SimpleNamespace(output=SimpleNamespace(stage=stage)), "c1")
    assert folder == stage / "checkpoints" / "c1" / "inductor-cache" and folder.is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(folder)
    assert os.environ["TRITON_CACHE_DIR"] == str(folder / "triton")

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/users/choice")
    monkeypatch.setattr(compile_step, "USER_INDUCTOR_CACHE", "/users/choice")
    assert compile_step.inductor_cache(SimpleNamespace(output=SimpleNamespace(stage=stage)), "c2") is None
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/users/choice"
    assert not (stage / "checkpoints" / "c2").exists()
