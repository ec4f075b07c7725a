"""Hostile inputs from the security review, end to end through the command line.

Every case must end in exactly one stderr line ``error: <file or flag>: <key>: ...``, exit
code 2, no traceback, and nothing written: the tree under tmp_path is hashed before and
after (only the files the test itself wrote may be there), a sentinel directory outside
the output directory is hashed too, and `--output` must not exist afterwards (or be
byte-identical when it existed before).

The table runs in process through `hf_cost.cli.main` (fast); a few cases run as real
subprocesses of `python -m hf_cost`, to prove that no traceback or library log line
reaches a real terminal, and that a checkpoint's own code never runs without consent.

Message assertions are loose on purpose: the file (or flag) and the key path, plus a
word or two of the cause; the wording is free.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import HF_HOME, REPO_ROOT, TINY_MAX_POSITIONS, write_scenario

from hf_cost.cli import main

# --- helpers --------------------------------------------------------------------------------

INPUTS = "inputs: {kind: synthetic, sequence_length: 16, num_samples: 8}\n"
QUICK_OFFLINE = (
    "  - {kind: offline, batch_sizes: [1], warmup_batches: 1, min_duration_s: 0.05, min_sample_count: 4}\n"
)
TIMED_LIMIT_S = 2.0  # guards against a ~55 s pathology; the promise is "under 1 s"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` (relative) -> a digest of what it is; {} if ``root`` is absent."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "symlink -> " + os.readlink(p)
        elif p.is_dir():
            out[rel + "/"] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def tree_diff(before: dict[str, str], after: dict[str, str]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"added {added[:10]}, removed {removed[:10]}, changed {changed[:10]}"


def refused_line(
    code: int, err: str, names: str, fragments: list[str] | tuple[str, ...] = (),
    any_of: list[str] | tuple[str, ...] = (), forbidden: list[str] | tuple[str, ...] = (),
) -> str:
    """Exit 2 and exactly one non-empty stderr line 'error: ...' naming ``names`` and every fragment."""
    assert code == 2, f"exit code {code}, expected 2; stderr:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}:\n{err[-3000:]}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert names in line, f"{names!r} not named in {line!r}"
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    if any_of:
        low = line.lower()
        assert any(f.lower() in low for f in any_of), f"none of {list(any_of)!r} in {line!r}"
    for fragment in forbidden:
        assert fragment not in line, f"{fragment!r} should not be in {line!r}"
    return line


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(HF_HOME), HF_HUB_CACHE=str(HF_HOME / "hub"))
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_subprocess(args: list[str], cwd: Path = REPO_ROOT, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hf_cost", *args], cwd=cwd, env=_env(), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def csv_rows(rows: list[tuple[str, str]], header: str = "text,label") -> bytes:
    return (header + "\n" + "".join(f"{t},{lab}\n" for t, lab in rows)).encode()


GOOD_ROWS = [(f"word{i} word{i + 1} word{i + 2}", "a" if i % 2 else "b") for i in range(1, 17)]


@dataclass
class Env:
    """What every case may use: the tmp dir, the tiny BERT, good data files, a sentinel."""

    tmp: Path
    tiny: Path
    sentinel: Path
    train: Path
    eval: Path

    def copy_checkpoint(self, name: str, drop: tuple[str, ...] = ()) -> Path:
        target = self.tmp / name
        shutil.copytree(self.tiny, target)
        for f in drop:
            (target / f).unlink(missing_ok=True)
        return target

    def suite(self, scenarios: str, model: str | None = None, inputs: str = INPUTS, head: str = "") -> str:
        model = model if model is not None else f"model: {{path: {self.tiny}, device: cpu}}\n"
        return f"{head}{model}{inputs}scenarios:\n{scenarios}"

    def fine_tune(self, extra: str = "", train: Path | None = None, eval: Path | None = None,
                  train_extra: str = "", eval_extra: str = "") -> str:
        """A fine_tune scenario quick enough to run for real (2 steps on 16 rows)."""
        return (
            "  - kind: fine_tune\n"
            f"    train: {{path: {train or self.train}, label_column: label{train_extra}}}\n"
            f"    eval: {{path: {eval or self.eval}, label_column: label{eval_extra}}}\n"
            "    target: {value: 0.99}\n"
            "    sequence_length: 16\n"
            "    batch_size: 4\n"
            "    eval_batch_size: 8\n"
            "    eval_every_steps: 1\n"
            + ("    max_steps: 2\n" if "max_steps" not in extra else "")
            + extra
        )


@dataclass
class Case:
    text: str  # the scenario file
    fragments: list[str]  # every one must be in the error line
    any_of: list[str] = field(default_factory=list)  # at least one (case-insensitive)
    forbidden: list[str] = field(default_factory=list)
    cmd: str = "run"  # run | validate
    real_run: bool = False  # let run_suite run for real (a miss must still not touch the sentinel)
    no_output_flag: bool = False  # run without --output from tmp/cwd (suite-name cases)
    output: Path | None = None  # --output override (default tmp/out)
    names: str | None = None  # what the line must name (default: the scenario file)
    timed: bool = False
    raw: bytes | None = None  # the scenario file as bytes instead of text
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None


def _name_case(env: Env, name: str) -> Case:
    text = env.suite(env.fine_tune(f"    name: {name}\n") + QUICK_OFFLINE)
    return Case(text, ["scenarios[0].name"], real_run=True)


def _suite_name_case(env: Env, name: str) -> Case:
    text = env.suite(QUICK_OFFLINE, head=f"name: {name}\n")
    return Case(text, [], real_run=True, no_output_flag=True)  # checked: '<file>: name'


def billion_laughs(levels: int = 9) -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def build_case(case: str, env: Env) -> Case:  # noqa: C901 - one branch per case, flat on purpose
    tmp = env.tmp
    data = tmp / "data"
    # 1. names that are paths ------------------------------------------------------------
    if case == "ft_name_abs_sentinel":
        return _name_case(env, f"'{env.sentinel}'")
    if case == "ft_name_dotdot":
        return _name_case(env, "'..'")
    if case == "ft_name_dot":
        return _name_case(env, "'.'")
    if case == "ft_name_slash":
        return _name_case(env, "'a/b'")
    if case == "suite_name_traversal":
        return _suite_name_case(env, "../../x")
    if case == "suite_name_space":
        return _suite_name_case(env, "'my suite'")
    if case == "suite_name_empty":
        return _suite_name_case(env, "''")
    # 2. non-finite numbers --------------------------------------------------------------
    if case == "peak_tflops_inf":
        return Case(env.suite(QUICK_OFFLINE, inputs=INPUTS + "hardware: {peak_tflops: .inf}\n"),
                    ["hardware.peak_tflops"])
    if case == "peak_tflops_nan":
        return Case(env.suite(QUICK_OFFLINE, inputs=INPUTS + "hardware: {peak_tflops: .nan}\n"),
                    ["hardware.peak_tflops"])
    if case == "peak_tflops_neg_inf":
        return Case(env.suite(QUICK_OFFLINE, inputs=INPUTS + "hardware: {peak_tflops: -.inf}\n"),
                    ["hardware.peak_tflops"])
    if case == "min_duration_nan":
        return Case(env.suite("  - {kind: single_stream, min_duration_s: .nan}\n"),
                    ["scenarios[0].min_duration_s"])
    # 3. booleans for numbers ------------------------------------------------------------
    if case == "bool_min_query_count":
        return Case(env.suite("  - {kind: single_stream, min_duration_s: 0.05, min_query_count: true}\n"),
                    ["scenarios[0].min_query_count"])
    if case == "bool_batch_sizes":
        return Case(env.suite("  - {kind: offline, min_duration_s: 0.05, batch_sizes: [true]}\n"),
                    ["scenarios[0].batch_sizes"])
    if case == "bool_max_steps":
        return Case(env.suite(env.fine_tune("    max_steps: false\n")), ["scenarios[0].max_steps"])
    # 4. budgets that contradict each other ----------------------------------------------
    if case == "max_duration_below_min":
        return Case(env.suite("  - {kind: single_stream, max_duration_s: 1, min_duration_s: 5}\n"),
                    ["scenarios[0]", "max_duration_s", "min_duration_s"])
    if case == "warmup_beyond_max_steps":
        return Case(env.suite(env.fine_tune("    max_steps: 2\n    warmup_steps: 5\n")),
                    ["scenarios[0]", "warmup_steps", "max_steps"])
    # 5. a batch too large, refused before any weights load ------------------------------
    if case == "batch_size_huge":
        return Case(env.suite("  - {kind: offline, min_duration_s: 0.05, batch_sizes: [100000]}\n"),
                    ["scenarios[0].batch_sizes"], cmd="validate")
    # 6. checkpoint files ----------------------------------------------------------------
    if case == "ckpt_truncated_safetensors":
        ckpt = env.copy_checkpoint("truncated")
        weights = ckpt / "model.safetensors"
        blob = weights.read_bytes()
        weights.write_bytes(blob[: len(blob) // 2])
        return Case(env.suite(QUICK_OFFLINE, model=f"model: {{path: {ckpt}, device: cpu}}\n"),
                    ["model"], real_run=True)
    if case == "ckpt_no_tokenizer":
        ckpt = env.copy_checkpoint("no-tokenizer", drop=TOKENIZER_FILES)
        return Case(env.suite(QUICK_OFFLINE, model=f"model: {{path: {ckpt}, device: cpu}}\n"),
                    ["model"], any_of=["tokenizer"], cmd="validate")
    if case == "ckpt_no_tokenizer_run":
        ckpt = env.copy_checkpoint("no-tokenizer", drop=TOKENIZER_FILES)
        return Case(env.suite(QUICK_OFFLINE, model=f"model: {{path: {ckpt}, device: cpu}}\n"),
                    ["model"], any_of=["tokenizer"], real_run=True)
    if case == "ckpt_no_weights":
        ckpt = env.copy_checkpoint("no-weights", drop=("model.safetensors", "pytorch_model.bin"))
        return Case(env.suite(QUICK_OFFLINE, model=f"model: {{path: {ckpt}, device: cpu}}\n"),
                    ["model"], any_of=["weights", "safetensors", "pytorch_model.bin"], cmd="validate")
    # 7. YAML ----------------------------------------------------------------------------
    if case == "dup_model_key":
        text = env.suite(QUICK_OFFLINE) + f"model: {{path: {env.tiny}}}\n"
        return Case(text, ["model"], any_of=["duplicate"])
    if case == "dup_min_duration":
        text = env.suite("  - kind: single_stream\n    min_duration_s: 1\n    min_duration_s: 2\n")
        return Case(text, ["min_duration_s"], any_of=["duplicate"])
    if case == "recursive_alias":
        return Case(env.suite(QUICK_OFFLINE) + "loop: &l [*l]\n", [], any_of=["alias", "recurs"],
                    timed=True, cmd="validate")
    if case == "deep_nesting_5000":
        text = env.suite(QUICK_OFFLINE, inputs=INPUTS).replace(
            "scenarios:\n", "junk: " + "[" * 5000 + "]" * 5000 + "\nscenarios:\n")
        return Case(text, [], any_of=["nest", "deep", "depth"], timed=True, cmd="validate")
    if case == "deep_nesting_5000_run":
        text = "scenarios: " + "[" * 5000 + "]" * 5000 + "\n"
        return Case(text, [], any_of=["nest", "deep", "depth"], timed=True)
    if case == "billion_laughs":
        text = billion_laughs(9)
        assert len(text.encode()) < 1024
        return Case(text, [], any_of=["alias", "nodes"], timed=True, cmd="validate")
    if case == "billion_laughs_in_suite":
        text = env.suite(QUICK_OFFLINE) + billion_laughs(9)
        return Case(text, [], any_of=["alias", "nodes"], timed=True)
    # 8. trust_remote_code: see test_remote_code_never_runs_without_consent (a subprocess)
    # 9. typos ---------------------------------------------------------------------------
    if case == "typo_scenarois":
        text = env.suite(QUICK_OFFLINE).replace("scenarios:", "scenarois:")
        return Case(text, ["scenarios"], any_of=["did you mean"])
    if case == "key_of_other_kind":
        text = env.suite("  - {kind: offline, min_duration_s: 0.05, min_query_count: 5}\n")
        return Case(text, ["min_query_count", "offline"], forbidden=["did you mean 'min_query_count'"])
    # 10. datasets -----------------------------------------------------------------------
    if case == "csv_latin1":
        rows = csv_rows(GOOD_ROWS)
        bad = write_bytes(data / "latin1.csv", rows + b"caf\xe9 word1,a\n")
        return Case(env.suite(env.fine_tune(train=bad)), ["scenarios[0].train"],
                    any_of=["utf-8", "utf8", "decode", "codec", "encoding"])
    if case == "csv_latin1_accuracy":
        bad = write_bytes(data / "latin1.csv", b"text,label\ncaf\xe9 word1,LABEL_0\nword2,LABEL_1\n")
        scen = f"  - {{kind: accuracy, batch_size: 4, dataset: {{path: {bad}, label_column: label}}}}\n"
        model = f"model: {{path: {env.tiny}, device: cpu, task: sequence-classification}}\n"
        return Case(env.suite(scen, model=model), ["scenarios[0].dataset"],
                    any_of=["utf-8", "utf8", "decode", "codec", "encoding"])
    if case == "jsonl_malformed_line":
        lines = [f'{{"text": "{t}", "label": "{lab}"}}\n'.encode() for t, lab in GOOD_ROWS]
        lines.insert(5, b'{"text": "word3 word4", "label": \n')  # one line cut short
        bad = write_bytes(data / "broken.jsonl", b"".join(lines))
        return Case(env.suite(env.fine_tune(train=bad)), ["scenarios[0].train"],
                    any_of=["parse", "expect", "invalid", "decode", "malformed", "column("])
    if case == "csv_ragged":
        body = csv_rows(GOOD_ROWS[:4]) + b"word9 word10,a,extra\n" + b"".join(f"{t},{lab}\n".encode() for t, lab in GOOD_ROWS[4:])
        bad = write_bytes(data / "ragged.csv", body)
        return Case(env.suite(env.fine_tune(train=bad)), ["scenarios[0].train"],
                    any_of=["expected", "fields", "tokeniz", "column"])
    if case == "empty_labels_missing_error":
        rows = list(GOOD_ROWS)
        rows[3] = (rows[3][0], "")
        bad = write_bytes(data / "holes.csv", csv_rows(rows))
        return Case(env.suite(env.fine_tune(train=bad, train_extra=", missing: error")),
                    ["scenarios[0].train"], any_of=["missing", "label_column", "'label'", "empty"])
    if case == "single_class_train":
        bad = write_bytes(data / "one-class.csv", csv_rows([(t, "a") for t, _ in GOOD_ROWS]))
        return Case(env.suite(env.fine_tune(train=bad)), ["scenarios[0].train"], any_of=["class"])
    # 12. README promises not already in tests/test_cli.py -------------------------------
    if case == "wrong_type_duration":
        return Case(env.suite("  - {kind: single_stream, min_duration_s: fast}\n"),
                    ["scenarios[0].min_duration_s"])
    if case == "wrong_type_scenarios_mapping":
        return Case(env.suite("  {kind: offline}\n"), ["scenarios"])
    if case == "zero_sequence_length":
        return Case(env.suite(QUICK_OFFLINE, inputs="inputs: {kind: synthetic, sequence_length: 0, num_samples: 8}\n"),
                    ["inputs.sequence_length"])
    if case == "negative_num_samples":
        return Case(env.suite(QUICK_OFFLINE, inputs="inputs: {kind: synthetic, sequence_length: 16, num_samples: -5}\n"),
                    ["inputs.num_samples"])
    if case == "zero_batch_size":
        return Case(env.suite("  - {kind: offline, min_duration_s: 0.05, batch_sizes: [0]}\n"),
                    ["scenarios[0].batch_sizes"])
    if case == "negative_min_query_count":
        return Case(env.suite("  - {kind: single_stream, min_duration_s: 0.05, min_query_count: -1}\n"),
                    ["scenarios[0].min_query_count"])
    if case == "missing_model_key":
        return Case(f"{INPUTS}scenarios:\n{QUICK_OFFLINE}", ["model"])
    if case == "ft_sequence_too_long":
        text = env.suite(env.fine_tune().replace("sequence_length: 16", f"sequence_length: {TINY_MAX_POSITIONS + 1}"))
        return Case(text, ["scenarios[0].sequence_length", str(TINY_MAX_POSITIONS)])
    if case == "missing_text_column":
        return Case(env.suite(env.fine_tune(train_extra=", text_column: body")),
                    ["scenarios[0].train.text_column", "body"])
    if case == "unknown_eval_label":
        bad = write_bytes(data / "zebra.csv", csv_rows(GOOD_ROWS[:6] + [("word40 word41", "zebra")]))
        return Case(env.suite(env.fine_tune(eval=bad)), ["scenarios[0].eval", "zebra"])
    if case == "output_is_a_file":
        blocker = tmp / "not-a-dir.txt"
        blocker.write_text("a regular file\n")
        return Case(env.suite(QUICK_OFFLINE), [], output=blocker, names="--output", real_run=True)
    if case == "output_read_only_dir":
        parent = tmp / "read-only"
        parent.mkdir()

        def lock() -> None:
            parent.chmod(0o500)

        def unlock() -> None:
            parent.chmod(0o700)

        return Case(env.suite(QUICK_OFFLINE), [], output=parent / "out", names="--output", real_run=True,
                    setup=lock, teardown=unlock)
    if case == "scenario_not_utf8":
        raw = env.suite(QUICK_OFFLINE).encode() + b"# caf\xe9\n"
        return Case("", [], raw=raw, any_of=["utf-8", "utf8", "decode", "encoding", "byte"])
    raise AssertionError(case)


CASES = [
    # 1. names that would be paths
    "ft_name_abs_sentinel", "ft_name_dotdot", "ft_name_dot", "ft_name_slash",
    "suite_name_traversal", "suite_name_space", "suite_name_empty",
    # 2. non-finite numbers
    "peak_tflops_inf", "peak_tflops_nan", "peak_tflops_neg_inf", "min_duration_nan",
    # 3. booleans for numbers
    "bool_min_query_count", "bool_batch_sizes", "bool_max_steps",
    # 4. contradictory budgets
    "max_duration_below_min", "warmup_beyond_max_steps",
    # 5. batch too large
    "batch_size_huge",
    # 6. checkpoint files
    "ckpt_truncated_safetensors", "ckpt_no_tokenizer", "ckpt_no_tokenizer_run", "ckpt_no_weights",
    # 7. YAML
    "dup_model_key", "dup_min_duration", "recursive_alias", "deep_nesting_5000", "deep_nesting_5000_run",
    "billion_laughs", "billion_laughs_in_suite",
    # 9. typos
    "typo_scenarois", "key_of_other_kind",
    # 10. datasets
    "csv_latin1", "csv_latin1_accuracy", "jsonl_malformed_line", "csv_ragged",
    "empty_labels_missing_error", "single_class_train",
    # 12. README promises missing from tests/test_cli.py
    "wrong_type_duration", "wrong_type_scenarios_mapping", "zero_sequence_length", "negative_num_samples",
    "zero_batch_size", "negative_min_query_count", "missing_model_key", "ft_sequence_too_long",
    "missing_text_column", "unknown_eval_label", "output_is_a_file", "output_read_only_dir",
    "scenario_not_utf8",
]


@pytest.fixture
def env(tiny_bert_dir: Path, tmp_path: Path) -> Env:
    sentinel = tmp_path / "sentinel_dir"
    (sentinel / "nested").mkdir(parents=True)
    (sentinel / "keep.txt").write_text("must survive\n")
    (sentinel / "nested" / "also.bin").write_bytes(os.urandom(64))
    train = write_bytes(tmp_path / "data" / "train.csv", csv_rows(GOOD_ROWS))
    eval_ = write_bytes(tmp_path / "data" / "eval.csv", csv_rows(GOOD_ROWS[:8]))
    return Env(tmp=tmp_path, tiny=tiny_bert_dir, sentinel=sentinel, train=train, eval=eval_)


@pytest.fixture(scope="module", autouse=True)
def _warm_imports() -> None:
    """Import what a refusal may touch, so the timed cases time the refusal, not imports."""
    import transformers  # noqa: F401

    import hf_cost.data.preflight  # noqa: F401
    import hf_cost.hub_access  # noqa: F401
    import hf_cost.measure.memory_estimate  # noqa: F401
    import hf_cost.models.checkpoint_files  # noqa: F401
    import hf_cost.pipeline  # noqa: F401


@pytest.mark.parametrize("case", CASES)
def test_hostile_input_is_refused_in_one_line(
    case: str, env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if case == "output_read_only_dir" and hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    spec = build_case(case, env)
    path = env.tmp / "scenario.yaml"
    if spec.raw is not None:
        write_bytes(path, spec.raw)
    else:
        write_scenario(env.tmp, spec.text)

    if not spec.real_run:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"{case}: bad input must be refused before the run starts")

        monkeypatch.setattr("hf_cost.pipeline.run_suite", refuse)
    if spec.cmd == "validate" or case == "batch_size_huge":
        def no_weights(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"{case}: no weights may load")

        monkeypatch.setattr("hf_cost.models.load.load_model", no_weights)

    out = spec.output if spec.output is not None else env.tmp / "out"
    if spec.cmd == "validate":
        argv = ["validate", str(path)]
    elif spec.no_output_flag:
        cwd = env.tmp / "cwd"
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        argv = ["run", str(path)]
    else:
        argv = ["run", str(path), "--output", str(out)]
    if spec.real_run and spec.cmd == "run":
        argv.append("--quiet")  # progress lines are not errors; the error itself must be one line

    sentinel_before = tree(env.sentinel)
    before = tree(env.tmp)
    out_existed = out.exists()
    if spec.setup:
        spec.setup()
    capsys.readouterr()
    try:
        started = time.perf_counter()
        code = main(argv)
        elapsed = time.perf_counter() - started
    finally:
        if spec.teardown:
            spec.teardown()
    err = capsys.readouterr().err

    assert tree(env.sentinel) == sentinel_before, "the sentinel directory outside the output was touched"
    after = tree(env.tmp)
    assert after == before, f"files changed under tmp_path: {tree_diff(before, after)}"
    if not out_existed:
        assert not out.exists(), f"{out} was created"
    names = spec.names or str(path)
    line = refused_line(code, err, names, spec.fragments, spec.any_of, spec.forbidden)
    if case.startswith("suite_name"):
        assert f"{path}: name" in line, line
    if spec.timed:
        assert elapsed < TIMED_LIMIT_S, f"refusal took {elapsed:.2f} s (promised under 1 s)"


# --- cache import ---------------------------------------------------------------------------


# unchecked, each of these would land inside HF_HOME/hub (never outside it), where the snapshot sees it
@pytest.mark.parametrize("revision", ["..", "../x", "../../x", "main/../..", "."])
def test_cache_import_refuses_path_like_revision(
    revision: str, tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = HF_HOME / "hub"
    sentinel = tmp_path / "sentinel_dir"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("must survive\n")
    hub_before, tmp_before, src_before = tree(hub), tree(tmp_path), tree(tiny_bert_dir)
    capsys.readouterr()
    code = main(["cache", "import", str(tiny_bert_dir), "--as", "acme/hostile-rev", "--revision", revision])
    err = capsys.readouterr().err
    assert tree(hub) == hub_before, f"the Hub cache changed: {tree_diff(hub_before, tree(hub))}"
    assert tree(tmp_path) == tmp_before
    assert tree(tiny_bert_dir) == src_before
    refused_line(code, err, "--revision")


# --- real subprocesses ----------------------------------------------------------------------


def _remote_code_checkpoint(directory: Path, sentinel_file: Path) -> Path:
    import json

    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({
        "model_type": "custom-thing",
        "architectures": ["CustomModel"],
        "auto_map": {
            "AutoConfig": "configuration_custom.CustomConfig",
            "AutoModel": "modeling_custom.CustomModel",
        },
        "hidden_size": 32,
    }))
    payload = f"open({str(sentinel_file)!r}, 'w').write('ran')\n"
    (directory / "configuration_custom.py").write_text(
        payload
        + "from transformers import PretrainedConfig\n\n\n"
        "class CustomConfig(PretrainedConfig):\n    model_type = 'custom-thing'\n"
    )
    (directory / "modeling_custom.py").write_text(
        payload
        + "from transformers import PreTrainedModel\n"
        "from .configuration_custom import CustomConfig\n\n\n"
        "class CustomModel(PreTrainedModel):\n    config_class = CustomConfig\n"
    )
    return directory


def test_remote_code_never_runs_without_consent(tmp_path: Path) -> None:
    ran = tmp_path / "REMOTE_CODE_RAN"
    ckpt = _remote_code_checkpoint(tmp_path / "custom-ckpt", ran)
    path = write_scenario(tmp_path, f"model: {{path: {ckpt}, device: cpu}}\n{INPUTS}scenarios:\n{QUICK_OFFLINE}")
    before = tree(tmp_path)
    # stdin is /dev/null and there is a timeout: a "run the custom code? [y/N]" prompt fails, never hangs
    proc = run_subprocess(["validate", str(path)], cwd=tmp_path, timeout=120)
    assert not ran.exists(), "the checkpoint's own code ran without model.trust_remote_code"
    assert tree(tmp_path) == before, tree_diff(before, tree(tmp_path))
    refused_line(proc.returncode, proc.stderr, str(path), ["model.trust_remote_code"])


def test_ragged_csv_in_a_real_terminal(tmp_path: Path, tiny_bert_dir: Path) -> None:
    """`datasets` logs the parse error at ERROR before raising it: that must not reach stderr."""
    env = Env(tmp=tmp_path, tiny=tiny_bert_dir, sentinel=tmp_path, train=tmp_path, eval=tmp_path)
    env.eval = write_bytes(tmp_path / "data" / "eval.csv", csv_rows(GOOD_ROWS[:8]))
    body = csv_rows(GOOD_ROWS[:4]) + b"word9 word10,a,extra\n" + b"".join(f"{t},{lab}\n".encode() for t, lab in GOOD_ROWS[4:])
    bad = write_bytes(tmp_path / "data" / "ragged.csv", body)
    path = write_scenario(tmp_path, env.suite(env.fine_tune(train=bad)))
    out = tmp_path / "out"
    before = tree(tmp_path)
    proc = run_subprocess(["run", str(path), "--output", str(out)], cwd=tmp_path)
    assert tree(tmp_path) == before, tree_diff(before, tree(tmp_path))
    refused_line(proc.returncode, proc.stderr, str(path), ["scenarios[0].train"],
                 any_of=["expected", "fields", "tokeniz", "column"])
    assert proc.stdout == "", proc.stdout
