"""cast with dtype: auto (picked per device from the CPU flags or the GPU's compute capability) and
autocast: true (float32 weights, every forward under torch.autocast), on the tiny BERT (conftest).

The CPU flags are hand-written (`CpuFlags`), so the tests behave the same on this AMX Xeon and on
a CPU without bfloat16 instructions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_scenario
from lm_helpers import lm_suite_yaml, save_tiny_llama, tickets_csv
from scenario_helpers import run_cli

from hf_cost.cli import main
from hf_cost.measure.cpu_flags import CpuFlags
from hf_cost.steps import cast

SS = "{kind: single_stream, candidates: [%s], min_duration_s: 0.05, min_query_count: 6, warmup_queries: 1}"


def flags(*names: str, readable: bool = True) -> CpuFlags:
    return CpuFlags(machine="x86_64", flags=frozenset(names), readable=readable, source="test cpuinfo")


def suite(model_dir: Path, steps: str) -> str:
    return f"""
model: {{path: {json.dumps(str(model_dir))}, device: cpu}}
inputs: {{kind: synthetic, sequence_length: 16, num_samples: 8}}
scenarios:{steps}"""


# --- the choice, by hand -------------------------------------------------------------------


@pytest.mark.parametrize("cpu, dtype, native, words", [
    (flags("avx2", "avx512_bf16"), "bfloat16", True, "avx512_bf16"),
    (flags("amx_bf16", "amx_int8"), "bfloat16", True, "amx_bf16"),
    (flags("avx2", "avx512f", "avx512_vnni"), None, False, "no native bfloat16 on this CPU"),
    (flags(readable=False), None, False, "cannot be read"),
])
def test_auto_on_the_cpu(cpu, dtype, native, words):
    choice = cast.choose_dtype("auto", True, cpu=cpu)
    assert (choice.dtype, choice.native) == (dtype, native) and words in choice.reason, choice.reason
    if dtype is None:
        assert "set dtype: bfloat16 to measure it anyway" in choice.reason


@pytest.mark.parametrize("capability, dtype", [((9, 0), "bfloat16"), ((8, 0), "bfloat16"), ((7, 5), "float16"),
                                               ((7, 0), "float16"), ((6, 1), None)])
def test_auto_on_a_gpu(capability, dtype):
    choice = cast.choose_dtype("auto", False, capability=capability)
    assert choice.dtype == dtype and f"compute capability {capability[0]}.{capability[1]}" in choice.reason


def test_explicit_dtypes_build_and_say_when_they_run_emulated():
    emulated = cast.choose_dtype("bfloat16", True, cpu=flags("avx2"))
    assert emulated.dtype == "bfloat16" and not emulated.native and "emulated" in emulated.reason
    assert cast.choose_dtype("bfloat16", True, cpu=flags("avx512_bf16")).native
    assert not cast.choose_dtype("float16", True, cpu=flags("avx512_bf16")).native  # no amx_fp16 / avx512_fp16
    assert not cast.choose_dtype("bfloat16", False, capability=(7, 0)).native  # V100: no bfloat16 tensor cores
    assert cast.choose_dtype("float16", False, capability=(7, 0)).native


# --- through validate and run ------------------------------------------------------------------


def test_validate_refuses_auto_without_native_bfloat16(tiny_bert_dir, tmp_path, capsys, monkeypatch):
    path = write_scenario(tmp_path, suite(tiny_bert_dir, "\n  - {kind: cast, dtype: auto}"))
    monkeypatch.setattr(cast, "read_cpu_flags", lambda: flags("avx2", "avx512f"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scenarios[0].dtype:" in err and "no native bfloat16" in err, err
    monkeypatch.setattr(cast, "read_cpu_flags", lambda: flags("avx512_bf16"))
    assert main(["validate", str(path)]) == 0


@pytest.fixture(scope="module")
def bf16_cpu_run(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    patch = pytest.MonkeyPatch()
    patch.setattr(cast, "read_cpu_flags", lambda: flags("avx2", "avx512_bf16"))
    tmp = tmp_path_factory.mktemp("cast-auto")
    try:
        path = write_scenario(tmp, suite(tiny_bert_dir, f"""
  - {{kind: cast, name: bf, dtype: auto}}
  - {{kind: cast, name: ac, dtype: auto, autocast: true}}
  - {SS % "ac, bf"}"""))
        return run_cli(path, tmp / "out"), tmp / "out"
    finally:
        patch.undo()


def _step(res: dict, name: str) -> dict:
    return next(s for s in res["scenarios"] if s["name"] == name)


def test_auto_records_its_choice(bf16_cpu_run):
    res, _ = bf16_cpu_run
    for name in ("bf", "ac"):
        s = _step(res, name)["settings"]
        assert s["dtype_requested"] == "auto" and s["dtype"] == "bfloat16" and s["dtype_native"] is True
        assert s["dtype_reason"] == "CPU flags include avx512_bf16"
    assert _step(res, "bf")["metrics"]["parameter_bytes_ratio"] == 0.5


def test_autocast_keeps_float32_weights_and_saves_nothing(bf16_cpu_run):
    res, out = bf16_cpu_run
    r = _step(res, "ac")
    m = r["metrics"]
    assert m["autocast"] is True and m["dtype"] == "bfloat16" and m["source_dtype"] == "float32"
    assert m["parameter_bytes_after"] == m["parameter_bytes_before"] == 4 * m["parameters"]
    assert m["saved_checkpoint"] is None and m["size_on_disk_bytes"] is None and not (out / "checkpoints/ac").exists()
    # bfloat16 matmul inputs move the hidden states a little, a full bfloat16 copy more
    assert 0 < m["max_abs_output_difference"] < _step(res, "bf")["metrics"]["max_abs_output_difference"]
    c = res["candidates"]["ac"]
    assert c["dtype"] == "bfloat16" and c["model"]["weights_dtype"] == "float32" and c["model"]["autocast"] is True
    assert c["parameter_bytes"] == res["candidates"]["bf"]["parameter_bytes"] * 2
    ss = [s for s in res["scenarios"] if s["kind"] == "single_stream" and s["candidate"] == "ac"]
    assert ss[0]["status"] == "ok" and ss[0]["metrics"]["queries"] >= 6


def test_explicit_bfloat16_without_native_support_builds_with_a_note(tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(cast, "read_cpu_flags", lambda: flags("avx2"))
    path = write_scenario(tmp_path, suite(tiny_bert_dir, "\n  - {kind: cast, name: bf, dtype: bfloat16}"))
    r = _step(run_cli(path, tmp_path / "out"), "bf")
    assert r["status"] == "ok" and r["settings"]["dtype_native"] is False
    assert any("run emulated" in n for n in r["notes"]), r["notes"]


def test_autocast_candidate_runs_bfloat16_matmuls_on_float32_weights(tiny_bert_dir):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from hf_cost.models.torch_candidate import AutocastCandidate, TorchCandidate

    model, tok = AutoModel.from_pretrained(tiny_bert_dir).eval(), AutoTokenizer.from_pretrained(tiny_bert_dir)
    batch = dict(tok(["a b c d e f", "g h"], padding=True, return_tensors="pt"))
    seen = []
    model.encoder.layer[0].attention.self.query.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    reference = TorchCandidate("base", model, tok).forward(batch)
    ac = AutocastCandidate("ac", model, tok, "bfloat16")
    out = ac.forward(batch)
    assert seen == [torch.float32, torch.bfloat16]  # the same Linear, outside then inside autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())
    # bfloat16 keeps 8 significand bits: within a few 2^-8 of the float32 values, and not equal to them
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.02)
    assert not torch.equal(out.float(), reference)
    assert ac.flops({k: v[:1] for k, v in batch.items()}, None).measured_per_sample > 0


@pytest.mark.parametrize("steps, key, words", [
    ("\n  - {kind: cast, name: ac, dtype: bfloat16, autocast: true}\n  - {kind: quanto, from: ac}",
     "scenarios[1].from", "torch.autocast"),
    ("\n  - {kind: cast, name: ac, dtype: bfloat16, autocast: true}\n  - {kind: compile, from: ac, backend: aot_eager}",
     "scenarios[1].from", "not a transformers checkpoint"),
    ("\n  - {kind: cast, name: bf, dtype: bfloat16}\n  - {kind: cast, from: bf, dtype: bfloat16, autocast: true}",
     "scenarios[1].autocast", "not float32"),
])
def test_validate_refuses_what_autocast_cannot_do(tiny_bert_dir, tmp_path, capsys, steps, key, words):
    path = write_scenario(tmp_path, suite(tiny_bert_dir, steps))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{key}:" in err and words in err, err


def test_autocast_is_refused_for_causal_lms(tmp_path, capsys):
    model, tickets = save_tiny_llama(tmp_path / "llama"), tickets_csv(tmp_path / "tickets.csv", n=8)
    gen = "generation: {prompt: 'classify {text} now', max_new_tokens: 2}"
    steps = "\n  - {kind: cast, dtype: bfloat16, autocast: true}"
    path = write_scenario(tmp_path, lm_suite_yaml(model, tickets, steps, gen))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scenarios[0].autocast:" in err, err
