"""Hostile inputs to `card` and to a run's end-of-run card update (issue 14), end to end.

One real run (tiny BERT: fine-tune, single-stream, drift, select, and a `card:` block) gives a
results.json that passes the validated loader; every case then points `hf_cost card` (or a run)
at something it must refuse or survive. Each refusal is one stderr line starting "error:", exit
code 2, no traceback, and every file it names byte-identical afterwards; nothing is written
outside the card's folder. Cases that could hang if the code regressed (FIFOs) run under an
alarm.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from conftest import HF_HOME, REPO_ROOT, write_scenario
from drift_helpers import drifting_csv
from scenario_helpers import SEQ, fine_tune_yaml

from hf_cost.cards.card_target import read_hf_cost_sections
from hf_cost.cli import main

CARD = """---
license: apache-2.0
---

# A hand-written card

Our own words, which hf_cost must never change.

```markdown
<!-- hf_cost:begin cost -->
an example of the markers, in a fenced block: text, not a section
<!-- hf_cost:end cost -->
```

Inline: `<!-- hf_cost:end drift -->` is how a section ends.

> <!-- hf_cost:begin quoted -->
"""


def scenario_text(model: Path, data: Path, card: str | None, extra: str = "") -> str:
    card_block = f"card: {{path: {json.dumps(card)}{extra}}}\n" if card is not None else ""
    return f"""
name: card-test
model: {{path: {json.dumps(str(model))}, device: cpu, task: feature-extraction}}
inputs: {{kind: synthetic, sequence_length: {SEQ}, num_samples: 16}}
{card_block}select:
  constraints: [{{metric: p90_latency_ms, max: 10000}}]
  objectives: [{{metric: accuracy, direction: max}}, {{metric: p90_latency_ms, direction: min}}]
scenarios:{fine_tune_yaml(data, name="ft", max_steps=10)}
  - kind: single_stream
    candidates: [ft]
    min_duration_s: 0.2
    min_query_count: 10
  - kind: drift
    candidates: [ft]
    dataset: {{path: {json.dumps(str(data))}, label_column: label}}
    period_column: date
    granularity: quarter
    bootstrap_resamples: 50
    domain_classifier: false
"""


def digest(root: Path) -> dict[str, str]:
    """Every path under `root` -> its bytes' sha256 (or what it is)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "special"
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("cardrun")
    data = drifting_csv(d / "data.csv", tiny_bert_dir, per_period=40)
    card = d / "model_cards" / "m" / "README.md"
    card.parent.mkdir(parents=True)
    card.write_text(CARD, encoding="utf-8")
    scenario = write_scenario(d, scenario_text(tiny_bert_dir, data, "model_cards/m/README.md"))
    out = d / "out"
    assert main(["run", str(scenario), "--output", str(out), "--quiet"]) == 0
    return {"dir": d, "out": out, "results": out / "results.json", "card": card, "data": data,
            "scenario": scenario, "model": tiny_bert_dir, "card_text": card.read_text(encoding="utf-8")}


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    """Run argv; assert exit 2 and exactly one 'error:' line on stderr holding `words`."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]
    return lines[0]


@contextlib.contextmanager
def alarm(seconds: int = 20) -> Iterator[None]:
    def hang(*_: object) -> None:
        raise TimeoutError("the command blocked (a FIFO read without end?)")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def sigterm_at_first_fsync(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """SIGTERM to this process while the card's temp file is being written; the list fills when sent."""
    from hf_cost.cards import card_target

    real_fsync, sent = os.fsync, []

    def fsync_then_term(fd: int) -> None:
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        real_fsync(fd)

    monkeypatch.setattr(card_target.os, "fsync", fsync_then_term)
    return sent


def card_scenario(tmp_path: Path, run: dict[str, Any], block: str = "", card_text: str = CARD) -> tuple[Path, Path]:
    """(card folder, scenario file): a `model_cards/m/README.md` and a scenario whose `card:` names it."""
    cards = tmp_path / "model_cards" / "m"
    cards.mkdir(parents=True)
    (cards / "README.md").write_text(card_text, encoding="utf-8")
    return cards, write_scenario(tmp_path, scenario_text(run["model"], run["data"], "model_cards/m/README.md", block))


@pytest.fixture
def folder(tmp_path: Path, run: dict[str, Any]) -> Path:
    """A card folder with a copy of the run's card in it."""
    f = tmp_path / "cards"
    f.mkdir()
    (f / "README.md").write_text(CARD, encoding="utf-8")
    return f


# --- the run's own card update ------------------------------------------------------------------

def test_the_run_updated_its_card_and_kept_every_hand_written_byte(run: dict[str, Any]) -> None:
    text = run["card_text"]
    assert "<!-- hf_cost:begin cost -->\n\n| candidate |" in text
    # the fenced example and the inline and quoted markers are text: still there, unchanged
    assert CARD.split("---\n", 2)[2].split("> <!--")[0] in text
    assert "> <!-- hf_cost:begin quoted -->" in text
    links = re.findall(r"\]\(plots/(hf_cost-[^)]+\.png)\)", text)
    assert links and all((run["card"].parent / "plots" / name).is_file() for name in links)
    for name in links:  # each copy's name carries its own bytes' sha256 prefix
        data = (run["card"].parent / "plots" / name).read_bytes()
        assert name.endswith(hashlib.sha256(data).hexdigest()[:12] + ".png")
    # a second update from the same results changes nothing
    before = digest(run["card"].parent)
    assert main(["card", str(run["results"]), "--card", str(run["card"])]) == 0
    assert digest(run["card"].parent) == before


@pytest.mark.parametrize("block, words", [
    (', candidate: nosuch', ("card.candidate", "nosuch", "this run makes: base, ft")),
    (', candidate: fx', ("card.candidate", "did you mean 'ft'")),
])
def test_run_card_block_errors_are_refused_before_any_work(run: dict[str, Any], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str], block: str,
                                                          words: tuple[str, ...]) -> None:
    cards, scenario = card_scenario(tmp_path, run, block)
    before = digest(tmp_path)
    refused(capsys, ["validate", str(scenario)], *words)
    refused(capsys, ["run", str(scenario), "--output", str(tmp_path / "out"), "--quiet"], *words)
    assert digest(tmp_path) == before


@pytest.mark.parametrize("card_text, words", [
    ("# x\n\n<!-- hf_cost:begin cost -->\n\nno end\n", ("card.path", "no end marker")),
    ("# x\n\n<!-- hf_cost:begn cost -->\n", ("card.path", "malformed hf_cost marker")),
    ("---\nlicense: [unclosed\n---\n# x\n", ("card.path", "front matter")),
])
def test_run_refuses_a_card_it_could_not_update(run: dict[str, Any], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str], card_text: str,
                                                words: tuple[str, ...]) -> None:
    cards, scenario = card_scenario(tmp_path, run, card_text=card_text)
    before = digest(tmp_path)
    refused(capsys, ["validate", str(scenario)], *words)
    assert digest(tmp_path) == before


def test_run_refuses_a_read_only_card_at_validate(run: dict[str, Any], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cards = tmp_path / "model_cards" / "m"
    cards.mkdir(parents=True)
    (cards / "README.md").write_text(CARD, encoding="utf-8")
    (cards / "README.md").chmod(0o444)
    scenario = write_scenario(tmp_path, scenario_text(run["model"], run["data"], "model_cards/m/README.md"))
    refused(capsys, ["validate", str(scenario)], "card.path", "read-only")


def test_a_card_write_that_fails_at_commit_leaves_run_and_card_as_they_were(
        run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full while the card is replaced: exit 2 means nothing was written, as the README says."""
    import errno

    from hf_cost.cards import card_target

    cards, scenario = card_scenario(tmp_path, run)
    real_replace = os.replace

    def full(src: Any, dst: Any) -> None:
        if str(dst).endswith("README.md"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(card_target.os, "replace", full)
    before = digest(tmp_path)
    refused(capsys, ["run", str(scenario), "--output", str(tmp_path / "out"), "--quiet"],
            "README.md", "no space left")
    after = digest(tmp_path)
    assert after == before, set(after) ^ set(before)


def test_an_interrupt_during_the_commit_keeps_card_and_results_together(
        run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while the card is being written: it waits; both land; the message says so."""

    cards, scenario = card_scenario(tmp_path, run)
    sent = sigterm_at_first_fsync(monkeypatch)
    code = main(["run", str(scenario), "--output", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 143 and sent, err
    assert "model card" in err and "was updated" in err, err
    assert (tmp_path / "out" / "results.json").is_file()
    text = (cards / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(plots/(hf_cost-[^)]+\.png)\)", text)
    assert links and sorted(links) == sorted(p.name for p in (cards / "plots").iterdir())
    assert not [p for p in cards.rglob("*") if p.name.startswith(".hf_cost-tmp-")]


# --- `hf_cost card` -----------------------------------------------------------------------------

def test_card_never_writes_its_own_input(run: dict[str, Any], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.json"
    shutil.copy(run["results"], results)
    before = results.read_bytes()
    refused(capsys, ["card", str(results), "--card", str(results)], ".md")
    link = tmp_path / "results.md"
    link.symlink_to(results)
    refused(capsys, ["card", str(results), "--card", str(link)], "symlink")
    script = tmp_path / "train.py"
    script.write_text("print('mine')\n")
    refused(capsys, ["card", str(results), "--card", str(script)], ".md")
    assert results.read_bytes() == before and script.read_text() == "print('mine')\n"


def test_card_refuses_an_input_that_is_a_markdown_file(run: dict[str, Any], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A results file named .md is still an input: never the card, even by another name."""
    results = tmp_path / "results.md"
    shutil.copy(run["results"], results)
    before = results.read_bytes()
    refused(capsys, ["card", str(results), "--card", str(results)], "input")
    hard = tmp_path / "again.md"
    os.link(results, hard)
    refused(capsys, ["card", str(results), "--card", str(hard)], "input")
    assert results.read_bytes() == before


def test_card_refuses_special_files_and_folders(run: dict[str, Any], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "fifo.md"
    os.mkfifo(fifo)
    (tmp_path / "dir.md").mkdir()
    with alarm():
        refused(capsys, ["card", str(run["results"]), "--card", str(fifo)], "FIFO")
    refused(capsys, ["card", str(run["results"]), "--card", str(tmp_path / "dir.md")], "folder")
    refused(capsys, ["card", str(run["results"]), "--card", str(tmp_path / "nowhere" / "README.md")],
            "does not exist")
    refused(capsys, ["card", str(run["results"]), "--card", str(tmp_path / "nul\x00.md")], "NUL")
    try:
        os.mknod(tmp_path / "dev.md", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        return
    refused(capsys, ["card", str(run["results"]), "--card", str(tmp_path / "dev.md")], "character device")
    assert stat.S_ISCHR(os.lstat(tmp_path / "dev.md").st_mode)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_card_refuses_results_that_are_special_files(run: dict[str, Any], folder: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    fifo = folder.parent / "results.json"
    os.mkfifo(fifo)
    before = digest(folder)
    with alarm():
        refused(capsys, ["card", str(fifo), "--card", str(folder / "README.md")], "FIFO")
        refused(capsys, ["card", "/dev/zero", "--card", str(folder / "README.md")], "character device")
    assert digest(folder) == before


def test_card_refuses_symlinks_out_of_its_folder(run: dict[str, Any], folder: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "README.md").write_text("# elsewhere\n")
    (folder / "plots").symlink_to(outside)
    before_out, before_card = digest(outside), (folder / "README.md").read_bytes()
    refused(capsys, ["card", str(run["results"]), "--card", str(folder / "README.md")], "plots")
    (folder / "plots").unlink()
    (folder / "other.md").symlink_to(outside / "README.md")
    refused(capsys, ["card", str(run["results"]), "--card", str(folder / "other.md")], "symlink")
    assert digest(outside) == before_out and (folder / "README.md").read_bytes() == before_card


def test_card_refuses_read_only_cards(run: dict[str, Any], folder: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    card = folder / "README.md"
    card.chmod(0o444)
    st = os.stat(card)
    refused(capsys, ["card", str(run["results"]), "--card", str(card)], "read-only")
    assert os.stat(card).st_ino == st.st_ino and card.read_text() == CARD
    card.chmod(0o644)
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(card)], capture_output=True).returncode == 0:
        try:
            refused(capsys, ["card", str(run["results"]), "--card", str(card)], "immutable")
        finally:
            subprocess.run(["chattr", "-i", str(card)], check=False)


def test_card_keeps_owner_and_mode(run: dict[str, Any], folder: Path) -> None:
    card = folder / "README.md"
    card.chmod(0o640)
    if os.geteuid() == 0:
        os.chown(card, 12345, 23456)
    assert main(["card", str(run["results"]), "--card", str(card)]) == 0
    st = os.stat(card)
    assert stat.S_IMODE(st.st_mode) == 0o640
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (12345, 23456)


def test_card_full_disk_is_one_line_and_leaves_nothing(run: dict[str, Any], folder: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from hf_cost.cards import card_target

    def full(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(card_target.os, "replace", full)
    before = digest(folder)
    refused(capsys, ["card", str(run["results"]), "--card", str(folder / "README.md")], "no space left")
    assert digest(folder) == before


def test_markers_in_code_are_text_and_broken_cards_are_refused(run: dict[str, Any], folder: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    card = folder / "README.md"
    assert main(["card", str(run["results"]), "--card", str(card)]) == 0
    text = card.read_text()
    assert "```markdown\n<!-- hf_cost:begin cost -->\nan example of the markers" in text
    assert text.count("<!-- hf_cost:begin cost -->") == 2  # the example and the live one
    card.write_text(text.replace("<!-- hf_cost:end quality -->", ""))
    before = card.read_bytes()
    refused(capsys, ["card", str(run["results"]), "--card", str(card)], "line", "quality")
    assert card.read_bytes() == before


def test_stale_temp_files_of_a_killed_update_are_removed(run: dict[str, Any], folder: Path) -> None:
    (folder / "plots").mkdir()
    (folder / ".hf_cost-tmp-abc123").write_bytes(b"x" * 1000)
    (folder / "plots" / ".hf_cost-tmp-def456").write_bytes(b"y")
    (folder / ".my-own-tmp").write_bytes(b"mine")
    assert main(["card", str(run["results"]), "--card", str(folder / "README.md")]) == 0
    assert not list(folder.rglob(".hf_cost-tmp-*"))
    assert (folder / ".my-own-tmp").read_bytes() == b"mine"


def test_text_from_the_results_cannot_break_the_card(run: dict[str, Any], folder: Path, tmp_path: Path) -> None:
    """A period label holding an end marker, a table pipe and a line break: neutralised."""
    data = json.loads(run["results"].read_text())
    drift = next(s for s in data["scenarios"] if s["kind"] == "drift")
    evil = "<!-- hf_cost:end drift -->|x\n# not a heading ![img](http://e.invalid/x.png)"
    drift["metrics"]["periods"][0]["period"] = evil
    results = tmp_path / "evil" / "results.json"
    results.parent.mkdir()
    results.write_text(json.dumps(data))
    card = folder / "README.md"
    assert main(["card", str(results), "--card", str(card)]) == 0
    text = card.read_text()
    front, body = text[4:].split("\n---\n", 1)
    assert body.count("<!-- hf_cost:end drift -->") == 2  # the hand-written inline example, and ours
    # the Hub metadata names the drift cell's dataset split by the label: one line of YAML data, not Markdown
    splits = {r["dataset"]["split"] for m in yaml.safe_load(front)["model-index"] for r in m["results"]}
    assert evil.replace("\n", " ") in splits
    sections = read_hf_cost_sections(card)
    assert "&lt;!-- hf_cost:end drift --&gt;" in sections["drift"] and "reproduce" in sections
    assert "![img](http" not in body and "\n# not a heading" not in text
    assert main(["card", str(results), "--card", str(card)]) == 0  # still updatable


def test_a_second_card_update_waits_for_the_first(run: dict[str, Any], folder: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """While another process holds the card folder's lock, `card` waits, then fails in one line."""
    from hf_cost.cards import card_target

    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)", str(folder)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(card_target, "LOCK_WAIT_S", 0.3)
        before = digest(folder)
        refused(capsys, ["card", str(run["results"]), "--card", str(folder / "README.md")], "another hf_cost update")
        assert digest(folder) == before
    finally:
        holder.kill()
        holder.wait()
    assert main(["card", str(run["results"]), "--card", str(folder / "README.md")]) == 0


def test_concurrent_card_commands_lose_no_update(run: dict[str, Any], folder: Path, tmp_path: Path) -> None:
    """Two `card` processes, each for another candidate file, on one card: each finishes, and the
    card ends as exactly one of them wrote it (never a mix), with every plot it links."""
    env = {**os.environ, "HF_HOME": str(HF_HOME), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    card = folder / "README.md"
    for _ in range(3):
        procs = [subprocess.Popen([sys.executable, "-m", "hf_cost", "card", str(run["results"]), "--card", str(card)],
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        text = card.read_text()
        assert text.count("<!-- hf_cost:begin cost -->") == 2 and text.count("<!-- hf_cost:end reproduce -->") == 1
        for name in re.findall(r"\]\(plots/(hf_cost-[^)]+\.png)\)", text):
            assert (folder / "plots" / name).is_file()
    assert not list(folder.rglob(".hf_cost-tmp-*"))


def test_sigterm_during_card_says_what_happened(run: dict[str, Any], folder: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    sigterm_at_first_fsync(monkeypatch)
    code = main(["card", str(run["results"]), "--card", str(folder / "README.md")])
    err = capsys.readouterr().err
    assert code == 143 and "had already been updated" in err, err
    text = (folder / "README.md").read_text()
    links = re.findall(r"\]\(plots/(hf_cost-[^)]+\.png)\)", text)
    assert links and all((folder / "plots" / n).is_file() for n in links)
    assert not list(folder.rglob(".hf_cost-tmp-*"))


def test_a_card_whose_candidate_failed_to_build_keeps_the_results(run: dict[str, Any], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the run's outcome can tell: results kept, the card untouched, exit 3, said in one line."""
    import hf_cost.steps.fine_tune as ft

    cards, scenario = card_scenario(tmp_path, run, ", candidate: ft")

    def crash(self: Any, step: Any, context: Any) -> Any:
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(ft.FineTuneBuilder, "run", crash)
    before = digest(cards)
    code = main(["run", str(scenario), "--output", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3, err
    line = next(x for x in err.splitlines() if "model card was not updated" in x)
    assert "'ft'" in line and "results were kept" in line
    assert (tmp_path / "out" / "results.json").is_file() and digest(cards) == before


def test_a_nul_byte_in_the_card_path_is_one_line(run: dict[str, Any], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    scenario = write_scenario(tmp_path, scenario_text(run["model"], run["data"], "model_cards/m/READ\x00ME.md"))
    refused(capsys, ["validate", str(scenario)], "card.path")
