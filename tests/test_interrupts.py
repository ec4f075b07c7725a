"""Interrupting a run (SIGINT, SIGTERM) and running two at once, through real subprocesses.

A run stages everything it writes under OUT/.hf_cost/staging-*/ and moves it into OUT only
when the whole run has succeeded. So an interrupted run must exit 130 (SIGINT) or 143
(SIGTERM) with one `interrupted (...)` line, and leave OUT byte-identical to what it was:
the earlier run's results.json, report.md and checkpoints/, the user's own files, and no
leftover staging directory. A second run into an OUT that a run holds is refused (exit 2).

Every test copies one "earlier run" output directory (made once per module by a quick
complete run of the shared tiny random BERT) and interrupts a long run over it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, tiny_vocab, write_scenario

pytestmark = pytest.mark.slow

SEQ = 16
WAIT_S = 240.0  # imports, model load and a marker line, on a shared 2-core machine
EXIT_WAIT_S = 60.0  # from the signal to the process having exited
NOTES = "my own notes: hf_cost must never touch this file\n"


# --- helpers -----------------------------------------------------------------------------------


def labelled_csv(path: Path, n: int = 60, seed: int = 0) -> Path:
    """``n`` rows of two vocabulary words with random labels: no model reaches f1_macro 1.0."""
    words = [w for w in tiny_vocab() if not w.startswith("[")]
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for _ in range(n):
            writer.writerow([f"{rng.choice(words)} {rng.choice(words)}", rng.choice(["pos", "neg"])])
    return path


def dataset(path: Path, select: str) -> str:
    return f"{{path: {json.dumps(str(path))}, label_column: label, select: {select}}}"


def fine_tune(data: Path, *, max_steps: int, eval_every: int, max_time_s: float | None = None) -> str:
    budget = f"\n    max_time_s: {max_time_s}" if max_time_s is not None else ""
    return f"""
  - kind: fine_tune
    name: ft
    train: {dataset(data, "train")}
    eval: {dataset(data, "holdout")}
    target: {{metric: f1_macro, value: 1.0}}
    sequence_length: {SEQ}
    batch_size: 8
    eval_batch_size: 32
    learning_rate: 1.0e-3
    max_steps: {max_steps}
    eval_every_steps: {eval_every}{budget}
    runs: 1
"""


def single_stream(min_duration_s: float, min_query_count: int) -> str:
    return f"""
  - kind: single_stream
    name: ss
    min_duration_s: {min_duration_s}
    min_query_count: {min_query_count}
    warmup_queries: 1
"""


def suite(model_dir: Path, scenarios: str) -> str:
    return f"""
name: interrupts
model: {{path: {json.dumps(str(model_dir))}, device: cpu}}
inputs: {{kind: synthetic, sequence_length: {SEQ}, num_samples: 8}}
scenarios:{scenarios}"""


def tree_state(root: Path) -> dict[str, object]:
    """Every file's relative path and bytes (hashed), every directory and symlink, under ``root``."""
    files, dirs, links = {}, [], {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for d in dirnames:
            p = here / d
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                links[rel] = os.readlink(p)
            else:
                dirs.append(rel)
        for f in filenames:
            p = here / f
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                links[rel] = os.readlink(p)
            else:
                files[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return {"files": files, "dirs": sorted(dirs), "links": links}


LOCK = ".hf_cost/lock"


def describe_difference(before: dict, after: dict) -> str:
    lines = []
    for key in ("files", "links"):
        b, a = before[key], after[key]
        lines += [f"{key}: gone {k}" for k in sorted(set(b) - set(a))]
        lines += [f"{key}: new {k}" for k in sorted(set(a) - set(b))]
        lines += [f"{key}: changed {k}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    b, a = set(before["dirs"]), set(after["dirs"])
    lines += [f"dir: gone {k}" for k in sorted(b - a)] + [f"dir: new {k}" for k in sorted(a - b)]
    return "\n".join(lines)


def cli(scenario: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hf_cost", "run", str(scenario), "--output", str(out), *extra]


class Run:
    """`python -m hf_cost run ...` in the background; its stderr read line by line by a thread."""

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=dict(os.environ),  # conftest made it offline, with a private HF_HOME
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.err_lines: list[str] = []
        self.out_lines: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.err_lines), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out_lines), daemon=True),
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _drain(stream, sink: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:  # line by line, as they come
            sink.append(line)  # noqa: PERF402

    @property
    def stderr(self) -> str:
        return "".join(self.err_lines)

    @property
    def stdout(self) -> str:
        return "".join(self.out_lines)

    def wait_for(self, marker: str, timeout: float = WAIT_S) -> str:
        """Block until a stderr line contains ``marker``; fail if the process ends first."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            lines = list(self.err_lines)
            for line in lines[seen:]:
                if marker in line:
                    return line
            seen = len(lines)
            if self.proc.poll() is not None:
                self.finish(5)
                if any(marker in line for line in self.err_lines):
                    return next(line for line in self.err_lines if marker in line)
                pytest.fail(
                    f"the run ended (exit {self.proc.returncode}) before printing {marker!r}:\n{self.stderr}"
                )
            time.sleep(0.05)
        pytest.fail(f"no {marker!r} on stderr after {timeout:.0f} s:\n{self.stderr}")

    def finish(self, timeout: float = EXIT_WAIT_S) -> int:
        """Wait for exit and for the readers to have everything it printed."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {timeout:.0f} s later:\n{self.stderr}")
        for t in self._readers:
            t.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for t in self._readers:  # they end at EOF, now that the process is gone
            t.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def staging_leftovers(out: Path) -> list[str]:
    """What hf_cost's state folder holds besides its lock and manifest (staging, backups)."""
    state = out / ".hf_cost"
    if not state.is_dir():
        return []
    return sorted(p.name for p in state.iterdir() if p.name not in ("lock", "manifest.json"))


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The scenario files, and one complete earlier run's output directory."""
    tmp = tmp_path_factory.mktemp("interrupts")
    data = labelled_csv(tmp / "labelled.csv")
    quick = write_scenario(
        tmp,
        suite(tiny_bert_dir, fine_tune(data, max_steps=4, eval_every=2) + single_stream(0.2, 5)),
        "quick.yaml",
    )
    long_fine_tune = write_scenario(
        tmp,
        suite(tiny_bert_dir, fine_tune(data, max_steps=100000, eval_every=50, max_time_s=60)),
        "long-fine-tune.yaml",
    )
    long_single_stream = write_scenario(tmp, suite(tiny_bert_dir, single_stream(60, 100)), "long-single-stream.yaml")
    loadgen = {kind: write_scenario(tmp, suite(tiny_bert_dir, body), f"long-{kind}.yaml") for kind, body in (
        ("loadgen_single_stream", "\n  - {kind: single_stream, name: ss, engine: loadgen, min_duration_s: 600, "
                                  "warmup_queries: 1}"),
        ("loadgen_offline", "\n  - {kind: offline, name: offl, engine: loadgen, batch_sizes: [2], "
                            "min_duration_s: 600, warmup_batches: 1}"),
        ("multi_stream", "\n  - {kind: multi_stream, name: ms, samples_per_query: 2, min_duration_s: 600, "
                         "warmup_queries: 1}"),
    )}
    # The run that holds OUT while a second one starts: the second one's imports can take a
    # minute on a loaded machine, and the first must still be running when it is interrupted.
    holder = write_scenario(tmp, suite(tiny_bert_dir, single_stream(600, 100)), "holder.yaml")
    earlier = tmp / "earlier"
    done = subprocess.run(
        cli(quick, earlier), cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True,
        timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (earlier / "results.json").is_file() and (earlier / "report.md").is_file()
    assert (earlier / "checkpoints" / "ft" / "config.json").is_file()
    assert staging_leftovers(earlier) == []
    return {
        "quick": quick,
        "fine_tune": long_fine_tune,
        "single_stream": long_single_stream,
        "holder": holder,
        "earlier": earlier,
        **loadgen,
    }


@pytest.fixture
def out_dir(setup: dict[str, Path], tmp_path: Path) -> Path:
    """A fresh copy of the earlier run's output, plus a file of the user's own."""
    out = tmp_path / "out"
    shutil.copytree(setup["earlier"], out, symlinks=True)
    (out / "notes.txt").write_text(NOTES, encoding="utf-8")
    return out


MARKERS = {
    "fine_tune": "[ft] run 1/1",
    "single_stream": "[ss] measuring until 60 s",
    "holder": "[ss] measuring until 600 s",
    "loadgen_single_stream": "[ss] LoadGen SingleStream until 600 s",
    "loadgen_offline": "[offl[bs=2]] LoadGen Offline",
    "multi_stream": "[ms] LoadGen MultiStream",
}


# --- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["fine_tune", "single_stream"])
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupt_leaves_the_earlier_output_byte_identical(
    setup: dict[str, Path], out_dir: Path, phase: str, sig: signal.Signals, code: int
) -> None:
    before = tree_state(out_dir)
    run = Run(cli(setup[phase], out_dir))
    try:
        run.wait_for(MARKERS[phase])
        run.proc.send_signal(sig)
        assert run.finish() == code, run.stderr
    finally:
        run.kill()
    err = run.stderr
    assert last_line(err).startswith(f"interrupted ({sig.name})"), err
    assert "stopped cleanly" in last_line(err)
    assert "Traceback" not in err, err
    assert staging_leftovers(out_dir) == []
    after = tree_state(out_dir)  # every byte, hf_cost's own lock file included
    assert after == before, describe_difference(before, after)
    assert (out_dir / "notes.txt").read_text(encoding="utf-8") == NOTES


def test_interrupted_run_leaves_the_lock_file_as_it_was(setup: dict[str, Path], out_dir: Path) -> None:
    """Byte-identical means every byte under OUT, hf_cost's own lock file included."""
    before = tree_state(out_dir)
    assert LOCK in before["files"]  # type: ignore[operator]
    run = Run(cli(setup["single_stream"], out_dir))
    try:
        run.wait_for(MARKERS["single_stream"])
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 130, run.stderr
    finally:
        run.kill()
    after = tree_state(out_dir)
    assert after == before, describe_difference(before, after)


def test_interrupted_run_into_a_new_directory_leaves_nothing(setup: dict[str, Path], tmp_path: Path) -> None:
    parent = tmp_path / "fresh"
    out = parent / "out"
    run = Run(cli(setup["single_stream"], out))
    try:
        run.wait_for(MARKERS["single_stream"])
        assert (out / ".hf_cost").is_dir()  # the run really did make it, and holds it
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 130, run.stderr
    finally:
        run.kill()
    assert last_line(run.stderr).startswith("interrupted (SIGINT)"), run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert not out.exists(), sorted(p.relative_to(tmp_path).as_posix() for p in out.rglob("*"))
    assert not parent.exists()  # it made both; it removes both
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_second_run_into_the_same_output_is_refused(setup: dict[str, Path], out_dir: Path) -> None:
    before = tree_state(out_dir)
    first = Run(cli(setup["holder"], out_dir))
    second = None
    try:
        first.wait_for(MARKERS["holder"])
        second = Run(cli(setup["quick"], out_dir))
        assert second.finish(timeout=WAIT_S) == 2, second.stderr
        err_lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(err_lines) == 1, second.stderr
        assert err_lines[0].startswith("error: --output: another hf_cost run"), second.stderr
        assert f"(pid {first.proc.pid})" in err_lines[0]
        assert str(out_dir) in err_lines[0]
        assert "Traceback" not in second.stderr
        assert first.proc.poll() is None, "the refused run must not disturb the first one"

        first.proc.send_signal(signal.SIGINT)
        assert first.finish() == 130, first.stderr
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert last_line(first.stderr).startswith("interrupted (SIGINT)"), first.stderr
    assert "Traceback" not in first.stderr, first.stderr
    after = tree_state(out_dir)  # every byte, hf_cost's own lock file included
    assert after == before, describe_difference(before, after)


def test_successful_rerun_replaces_the_earlier_results_and_keeps_user_files(
    setup: dict[str, Path], out_dir: Path
) -> None:
    before = tree_state(out_dir)
    old_results = (out_dir / "results.json").read_bytes()
    run = Run(cli(setup["quick"], out_dir))
    try:
        assert run.finish(timeout=600) == 0, run.stderr
    finally:
        run.kill()
    assert "Traceback" not in run.stderr, run.stderr
    assert f"replaced the earlier results in {out_dir}" in run.stdout, run.stdout
    assert "holds the results of an earlier run" in run.stderr
    assert (out_dir / "notes.txt").read_text(encoding="utf-8") == NOTES
    new_results = (out_dir / "results.json").read_bytes()
    assert new_results != old_results  # a new run: new timestamps and timings
    results = json.loads(new_results)
    saved = Path(next(s for s in results["scenarios"] if s["name"] == "ft")["metrics"]["saved_checkpoint"])
    assert saved == out_dir / "checkpoints" / "ft" and (saved / "config.json").is_file()
    assert (out_dir / "report.md").is_file()
    assert staging_leftovers(out_dir) == []
    after = tree_state(out_dir)
    # Same entries as before (the same scenarios ran), and nothing else appeared or vanished.
    assert sorted(after["files"]) == sorted(before["files"]), describe_difference(before, after)
    assert after["dirs"] == before["dirs"]


# --- signals around the commit -----------------------------------------------------------------
#
# The moment the staged files move into OUT is too short to hit from outside, so these run the
# CLI through a small wrapper script that sends the signal to its own process at that moment.

SIGNAL_IN_COMMIT = """
import os, signal, sys, time
import hf_cost.output as output

real_replace, real_commit, armed = os.replace, output.RunOutput.commit, [False]

def replace(src, dst):
    if armed[0]:  # the first move of the commit
        armed[0] = False
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)  # time for a handler to run, were the signal not held off
    return real_replace(src, dst)

def commit(self, created_utc):
    armed[0] = True
    return real_commit(self, created_utc)

os.replace = replace
output.RunOutput.commit = commit
from hf_cost.cli import main
sys.exit(main(sys.argv[1:]))
"""

SIGNAL_AFTER_COMMIT = """
import os, signal, sys, time
import hf_cost.report.console as console

def print_summary(result):  # runs after the commit: OUT already holds this run's results
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)

console.print_summary = print_summary
from hf_cost.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_wrapped(wrapper: str, tmp: Path, scenario: Path, out: Path) -> subprocess.CompletedProcess[str]:
    script = write_scenario(tmp, wrapper, "wrapper.py")
    return subprocess.run(
        [sys.executable, str(script), "run", str(scenario), "--output", str(out)],
        cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600, check=False,
    )


def test_sigint_during_the_commit_is_held_off(setup: dict[str, Path], out_dir: Path, tmp_path: Path) -> None:
    """Signals are held off while the staged files move in: the run completes."""
    old_results = (out_dir / "results.json").read_bytes()
    done = run_wrapped(SIGNAL_IN_COMMIT, tmp_path, setup["quick"], out_dir)
    assert "Traceback" not in done.stderr, done.stderr
    assert staging_leftovers(out_dir) == [], done.stderr
    # The signal waits for the commit, then ends the run: exit 130, saying the results were kept.
    assert done.returncode == 130, done.stderr
    assert last_line(done.stderr).startswith("interrupted (SIGINT): after the run had completed"), done.stderr
    assert (out_dir / "results.json").read_bytes() != old_results
    assert (out_dir / "notes.txt").read_text(encoding="utf-8") == NOTES


def test_sigint_after_the_commit_does_not_deny_the_results(
    setup: dict[str, Path], out_dir: Path, tmp_path: Path
) -> None:
    old_results = (out_dir / "results.json").read_bytes()
    done = run_wrapped(SIGNAL_AFTER_COMMIT, tmp_path, setup["quick"], out_dir)
    assert "Traceback" not in done.stderr, done.stderr
    assert staging_leftovers(out_dir) == [], done.stderr
    assert (out_dir / "results.json").read_bytes() != old_results  # the commit happened
    assert "nothing this run made was kept" not in done.stderr, done.stderr
    assert last_line(done.stderr).startswith("interrupted (SIGINT): after the run had completed"), done.stderr


@pytest.mark.skipif(__import__("importlib").util.find_spec("mlperf_loadgen") is None,
                    reason='pip install -e ".[loadgen]"')
@pytest.mark.parametrize("phase", ["loadgen_single_stream", "loadgen_offline", "multi_stream"])
def test_ctrl_c_inside_a_loadgen_test_stops_it_within_a_query(setup: dict[str, Path], out_dir: Path,
                                                              phase: str) -> None:
    """LoadGen runs these SUTs on the main thread, inside its C++: the signal is held, the SUT
    completes every later query unserved, and the run ends as any interrupted run does, long
    before the 600 s test would have (and without an exception thrown through LoadGen)."""
    before = tree_state(out_dir)
    run = Run(cli(setup[phase], out_dir))
    try:
        run.wait_for(MARKERS[phase])
        time.sleep(1.0)  # inside the test
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 130, run.stderr
    finally:
        run.kill()
    assert last_line(run.stderr).startswith("interrupted (SIGINT)"), run.stderr
    assert "Traceback" not in run.stderr and "terminate" not in run.stderr, run.stderr
    assert describe_difference(before, tree_state(out_dir)) == ""
