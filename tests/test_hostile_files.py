"""Hostile files and values, end to end through `hf_cost.cli.main` (issue 14).

Special files where a scenario names a file (a FIFO blocks open() forever, /dev/zero never
ends, a folder, a file over its limit), drift period labels a report cannot show, a training
window too small to split, a candidate listed twice, and an output folder whose earlier
results the user changed. Each must end in exactly one stderr line ``error: ...``, exit 2, no
traceback, and nothing written (every path under tmp_path lstat'ed and hashed before and
after; FIFOs and devices are never opened by the check itself).

Every case runs under a deadline (SIGALRM): a regression that blocks on a FIFO fails the test
instead of hanging the suite. A read of /dev/zero never returns to Python (no signal handler
runs while it grows), so those cases run in a subprocess with a memory limit and a timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import write_scenario
from test_accuracy_mode import save_tiny_classifier
from test_drift_mode import dated_csv, drift_step, fine_tune_step, quarter_rows, suite
from test_hostile_inputs import _env, refused_line

from hf_cost.cli import main
from hf_cost.safe_files import LIMITS

DEADLINE_S = 60  # imports and a tiny model on a shared 2-core machine; a hang is forever
QUICK = "  - {kind: offline, batch_sizes: [1], warmup_batches: 1, min_duration_s: 0.05, min_sample_count: 4}\n"
INPUTS = "inputs: {kind: synthetic, sequence_length: 16, num_samples: 8}\n"
SUBPROCESS_MEMORY = 4 * 1024**3  # address space: torch's imports fit; a read of /dev/zero does not


class Hung(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: int = DEADLINE_S) -> Iterator[None]:
    """Fail (never hang) if the block runs past ``seconds``: SIGALRM interrupts a blocked open()."""
    def alarm(signum: int, frame: Any) -> None:
        raise Hung(f"still running after {seconds} s: blocked on a special file?")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root``: a regular file's hash, else what it is (never opened)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = p.relative_to(root).as_posix()
            if stat.S_ISREG(st.st_mode):
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = "-> " + os.readlink(p)
            else:
                out[rel] = stat.filemode(st.st_mode)
    return out


def refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], names: str, fragments: list[str],
    any_of: list[str] | tuple[str, ...] = (),
) -> str:
    """Run ``argv`` under a deadline: exit 2, one 'error:' line naming ``names`` and every fragment,
    no traceback, nothing under tmp_path changed or added."""
    before = tree(tmp_path)
    capsys.readouterr()
    with deadline():
        code = main(argv)
    err = capsys.readouterr().err
    assert tree(tmp_path) == before, "files changed under tmp_path"
    return refused_line(code, err, names, fragments, any_of)


def refused_in_subprocess(tmp_path: Path, argv: list[str], names: str, fragments: list[str]) -> str:
    """`refused` for cases whose regression would eat memory: `python -m hf_cost` with its
    address space limited and a timeout."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (SUBPROCESS_MEMORY, SUBPROCESS_MEMORY))

    before = tree(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "hf_cost", *argv], cwd=tmp_path, env=_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=DEADLINE_S * 3,
                          preexec_fn=limit, check=False)
    assert tree(tmp_path) == before, "files changed under tmp_path"
    return refused_line(proc.returncode, proc.stderr, names, fragments)


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal comes before any weights load or any step runs."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("bad input must be refused before weights load or the run starts")

    monkeypatch.setattr("hf_cost.pipeline.run_suite", refuse)
    monkeypatch.setattr("hf_cost.models.load.load_model", refuse)


def quick_suite(model: Path, extra: str = "") -> str:
    return f"{extra}model: {{path: {json.dumps(str(model))}, device: cpu}}\n{INPUTS}scenarios:\n{QUICK}"


# ------------------------------------------------------------ B. the scenario file and its includes

@pytest.mark.parametrize("command", ["validate", "run"])
def test_include_dev_zero(command: str, tmp_path: Path, tiny_bert_dir: Path) -> None:
    path = write_scenario(tmp_path, quick_suite(tiny_bert_dir, "include: /dev/zero\n"))
    argv = ["validate", str(path)] if command == "validate" else ["run", str(path), "--output", str(tmp_path / "out")]
    refused_in_subprocess(tmp_path, argv, str(path), ["include /dev/zero", "character device"])


def test_include_a_fifo(tmp_path: Path, tiny_bert_dir: Path, no_run: None, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(tmp_path / "common.yaml")
    path = write_scenario(tmp_path, quick_suite(tiny_bert_dir, "include: common.yaml\n"))
    refused(capsys, tmp_path, ["validate", str(path)], str(path), ["include", "common.yaml", "FIFO"])


def test_the_scenario_file_itself_a_fifo(tmp_path: Path, no_run: None, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "scenario.yaml"
    os.mkfifo(fifo)
    refused(capsys, tmp_path, ["run", str(fifo), "--output", str(tmp_path / "out")], str(fifo), ["FIFO"])


def test_include_a_folder(tmp_path: Path, tiny_bert_dir: Path, no_run: None, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "shared.yaml").mkdir()
    path = write_scenario(tmp_path, quick_suite(tiny_bert_dir, "include: shared.yaml\n"))
    refused(capsys, tmp_path, ["validate", str(path)], str(path), ["include", "shared.yaml", "folder"])


def test_an_include_over_the_limit(tmp_path: Path, tiny_bert_dir: Path, no_run: None, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(LIMITS, "scenario", 4096)
    write_scenario(tmp_path, "# padding\n" * 500, "big.yaml")  # 5,000 bytes of comments
    path = write_scenario(tmp_path, quick_suite(tiny_bert_dir, "include: big.yaml\n"))
    refused(capsys, tmp_path, ["validate", str(path)], str(path), ["include", "big.yaml", "5,000 bytes", "4 KiB"])


# ------------------------------------------------------------ B. local dataset files

def fine_tune(train: Path, eval_: Path) -> str:
    return (
        "  - kind: fine_tune\n"
        f"    train: {{path: {json.dumps(str(train))}, label_column: label}}\n"
        f"    eval: {{path: {json.dumps(str(eval_))}, label_column: label}}\n"
        "    target: {value: 0.99}\n    sequence_length: 16\n    batch_size: 4\n    max_steps: 2\n"
    )


@pytest.mark.parametrize("kind", ["fifo", "dev zero", "folder"])
def test_a_dataset_that_is_not_a_regular_file(kind: str, tmp_path: Path, tiny_bert_dir: Path, no_run: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "eval.csv"
    good.write_text("text,label\n" + "".join(f"word{i} word{i + 1},{'ab'[i % 2]}\n" for i in range(1, 17)))
    bad = tmp_path / "train.csv"
    if kind == "fifo":
        os.mkfifo(bad)
    elif kind == "dev zero":
        bad.symlink_to("/dev/zero")
    else:
        bad.mkdir()
    text = f"model: {{path: {json.dumps(str(tiny_bert_dir))}, device: cpu}}\n{INPUTS}scenarios:\n{fine_tune(bad, good)}"
    path = write_scenario(tmp_path, text)
    what = {"fifo": "FIFO", "dev zero": "character device", "folder": "folder"}[kind]
    fragments = ["scenarios[0].train.path", str(bad), what]
    if kind == "dev zero":
        refused_in_subprocess(tmp_path, ["validate", str(path)], str(path), fragments)
    else:
        refused(capsys, tmp_path, ["validate", str(path)], str(path), fragments)


# ------------------------------------------------------------ C. drift period labels, windows

@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("hostile-classifier"))


def labelled_quarters(path: Path, bad_label: str, bad_row: int) -> Path:
    """24 rows labelled Q1/Q2 in column 'quarter'; data row ``bad_row`` (from 1) holds ``bad_label``."""
    dates, quarters = quarter_rows({"Q1": 12, "Q2": 12})
    quarters[bad_row - 1] = bad_label
    return dated_csv(path, dates, quarters)


LABEL_EXTRA = "\n    training_window: [Q1]"


@pytest.mark.parametrize("label, fragments", [
    ("Q" * (10 * 1024 * 1024), ["10,485,760 characters", "at most 64"]),
    ("Q" * 65, ["65 characters"]),
    ("<!-- hf_cost:end drift -->", ["'<!--'"]),
    ("Q3 -->", ["'-->'"]),
    ("Q3\u202e", ["U+202E"]),  # a bidi override: the report would show the line reversed
    ("Q3\x1b[31m", ["U+001B"]),  # a terminal escape
], ids=["10 MiB", "65 chars", "end marker", "comment close", "bidi override", "escape"])
def test_a_period_label_a_report_cannot_show(
    label: str, fragments: list[str], tmp_path: Path, classifier_dir: Path, no_run: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = labelled_quarters(tmp_path / "data.csv", label, bad_row=17)
    path = write_scenario(tmp_path, suite(classifier_dir, drift_step(data, LABEL_EXTRA, "quarter", "label")))
    started = time.perf_counter()
    line = refused(capsys, tmp_path, ["validate", str(path)], str(path),
                   ["scenarios[0]", "column 'quarter'", "data row 17", *fragments])
    assert len(line) < 600, line[:600]  # the label is cut short in the message
    assert time.perf_counter() - started < 30


def test_a_period_label_in_the_train_data_of_a_fine_tune(
    tmp_path: Path, tiny_bert_dir: Path, no_run: None, capsys: pytest.CaptureFixture[str],
) -> None:
    """The window is read from the fine-tune's train rows: their labels end up in the report too."""
    dates, quarters = quarter_rows({"Q1": 12, "Q2": 12})
    train = dated_csv(tmp_path / "train.csv", dates, ["Q1 -->"] * 12 + quarters[12:])  # whichever rows `select: train` keeps
    data = labelled_quarters(tmp_path / "data.csv", "Q2", bad_row=17)
    steps = fine_tune_step(train, where="") + drift_step(data, "", "quarter", "label")
    path = write_scenario(tmp_path, suite(tiny_bert_dir, steps))
    refused(capsys, tmp_path, ["validate", str(path)], str(path),
            ["scenarios[1]", "the train data of step 'ft' (scenarios[0].train)", "label 'Q1 -->' (data row", "'-->'"])


@pytest.mark.parametrize("key", ["order", "training_window"])
def test_a_period_label_in_the_scenario_file_is_checked_too(
    key: str, tmp_path: Path, classifier_dir: Path, no_run: None, capsys: pytest.CaptureFixture[str],
) -> None:
    data = labelled_quarters(tmp_path / "data.csv", "Q2", bad_row=17)
    extra = f"\n    {key}: [Q1, 'Q2 <!-- hf_cost:end drift -->']" + ("\n    training_window: [Q1]" if key == "order" else "")
    path = write_scenario(tmp_path, suite(classifier_dir, drift_step(data, extra, "quarter", "label")))
    refused(capsys, tmp_path, ["validate", str(path)], str(path), [f"scenarios[0].{key}[1]", "'<!--'"])


def test_a_one_row_training_window_is_refused_at_validate(
    tmp_path: Path, classifier_dir: Path, no_run: None, capsys: pytest.CaptureFixture[str],
) -> None:
    """A given window and no training step: half its rows are the reference, half are scored."""
    dates, quarters = quarter_rows({"Q1": 1, "Q2": 12})
    data = dated_csv(tmp_path / "data.csv", dates, quarters)
    path = write_scenario(tmp_path, suite(classifier_dir, drift_step(data, "\n    training_window: [2023-Q1]")))
    refused(capsys, tmp_path, ["validate", str(path)], str(path),
            ["scenarios[0].training_window", "candidate 'base'", "2023-Q1", "1 row", "at least 2 rows"])


# ------------------------------------------------------------ C. a candidate listed twice

@pytest.mark.parametrize("step", [
    "  - {kind: compare, candidates: [base, base], rounds: 2, round_duration_s: 0.05}\n",
    "  - {kind: offline, candidates: [base, base], batch_sizes: [1], min_duration_s: 0.05}\n",
], ids=["compare", "offline"])
def test_a_candidate_listed_twice(step: str, tmp_path: Path, tiny_bert_dir: Path, no_run: None,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    text = f"model: {{path: {json.dumps(str(tiny_bert_dir))}, device: cpu}}\n{INPUTS}scenarios:\n{step}"
    path = write_scenario(tmp_path, text)
    refused(capsys, tmp_path, ["validate", str(path)], str(path),
            ["scenarios[0].candidates", "'base' is listed twice", "candidates[0] and candidates[1]"])


# ------------------------------------------------------------ A. an output folder the user changed

@pytest.fixture
def earlier_run(tmp_path: Path, tiny_bert_dir: Path) -> tuple[Path, Path]:
    path = write_scenario(tmp_path, quick_suite(tiny_bert_dir))
    out = tmp_path / "out"
    with deadline(300):
        assert main(["run", str(path), "--output", str(out), "--quiet"]) == 0
    return path, out


def test_a_run_refuses_to_replace_a_report_the_user_edited(
    earlier_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path, out = earlier_run
    with (out / "report.md").open("a", encoding="utf-8") as fh:
        fh.write("\nMy notes on this run.\n")
    refused(capsys, tmp_path, ["run", str(path), "--output", str(out), "--quiet"], "--output",
            [str(out / "report.md"), "was not written by an earlier hf_cost run", "changed after"])


def test_a_hand_edited_manifest_does_not_give_a_run_the_users_file(
    earlier_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    path, out = earlier_run
    (out / "notes.txt").write_text("mine\n")
    manifest = out / ".hf_cost" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["entries"] += ["notes.txt", {"path": "notes.txt", "kind": "file", "size": 5, "sha256": "0" * 64}]
    manifest.write_text(json.dumps(data))
    old_results = (out / "results.json").read_bytes()
    with deadline(300):
        assert main(["run", str(path), "--output", str(out), "--quiet"]) == 0
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "results.json").read_bytes() != old_results  # its own entries were replaced
    assert "notes.txt" not in manifest.read_text()


@pytest.mark.parametrize("label, words", [("L" * 200, "200 characters"), ("a<!--b", "<!--"), ("a\x1bb", "U+001B")])
def test_class_labels_from_the_data_are_bounded_and_inert(tmp_path: Path, label: str, words: str) -> None:
    """Class names a fine-tune takes from its data become the model's labels, shown in report.md
    and the card: too long, a comment marker or a control character is refused by name."""
    from hf_cost.config.schema import DatasetSpec
    from hf_cost.data.labelled import load_labelled
    from hf_cost.errors import DataError

    csv = tmp_path / "d.csv"
    csv.write_text("text,label\n" + "".join(f"t {i},{chr(34) + label + chr(34) if i % 2 else 'ok'}\n" for i in range(10)))
    with pytest.raises(DataError) as err:
        load_labelled(DatasetSpec(path=str(csv), label_column="label"), "train")
    assert "class label" in str(err.value) and words in str(err.value) and "\n" not in str(err.value)


def test_a_lock_file_planted_as_a_symlink_is_never_followed(tmp_path: Path) -> None:
    """OUT/.hf_cost/lock pointing at another file: the run refuses; the file is not truncated."""
    from hf_cost.errors import UserError
    from hf_cost.output import RunOutput

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    (out / ".hf_cost").mkdir(parents=True)
    (out / ".hf_cost" / "lock").symlink_to(victim)
    with pytest.raises(UserError, match="not writable"):
        RunOutput.open(out)
    assert victim.read_text() == "precious\n" and (out / ".hf_cost" / "lock").is_symlink()
