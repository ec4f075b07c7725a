"""Issue 14's hostile cases against the real CLI, as a new user would try them; a tally at the end.

    python benchmarks/hostile_probe.py --results results/bert-minilm-cpu/results.json

Each case runs `python -m hf_cost ...` in a subprocess (with a timeout, so a hang is a failed
case, not a stuck probe) inside a scratch folder, and checks what the issue promises: exit code
2 (or 0 where the input is legal), exactly one `error:` line on stderr, no traceback, and every
file the case names unchanged (or, for interrupts, the card whole: old text with old plots or
new with new). Needs a finished run's results.json (the default run's is fine) and the shipped
scenarios/bert.yaml (validate only: no weights are loaded). Not a test: the same classes are
pinned by tests/test_hostile_{cards,select,files}.py; this is the tally a reviewer asks for.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
RESULTS: list[tuple[str, str, bool, str]] = []  # class, case, held, detail


def hf_cost(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, "-m", "hf_cost", *args], capture_output=True, text=True,
                              timeout=timeout, env=ENV, cwd=cwd)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, -999, "", f"TIMEOUT after {timeout} s")


def sha(path: Path) -> str:
    if path.is_symlink():
        return "-> " + os.readlink(path)
    if path.is_dir():
        return "dir:" + ",".join(sorted(f"{p.name}={sha(p)}" for p in path.iterdir()))
    if not path.exists():
        return "absent"
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        return f"special:{stat.S_IFMT(st.st_mode)}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(p: subprocess.CompletedProcess[str], code: int = 2) -> str:
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    problems = []
    if p.returncode != code:
        problems.append(f"exit {p.returncode} (want {code})")
    if "Traceback" in p.stderr:
        problems.append("traceback")
    if code != 0 and not (len(lines) >= 1 and lines[-1].startswith("error: ")):
        problems.append(f"stderr not ending in one error line: {p.stderr[-300:]!r}")
    errors = [x for x in lines if x.startswith("error: ")]
    if code == 2 and len(errors) != 1:
        problems.append(f"{len(errors)} error lines")
    return "; ".join(problems)


def case(cls: str, name: str, fn: Callable[[], str]) -> None:
    try:
        problem = fn()
    except Exception as exc:  # the probe's own failure counts against the case
        problem = f"probe raised {type(exc).__name__}: {exc}"
    RESULTS.append((cls, name, not problem, problem))
    print(f"[{'hold' if not problem else 'FAIL'}] {cls} {name}{'' if not problem else ': ' + problem}", flush=True)


def refused(args: list[str], *unchanged: Path, code: int = 2, words: tuple[str, ...] = (),
            timeout: float = 120) -> Callable[[], str]:
    def run() -> str:
        before = {p: sha(p) for p in unchanged}
        p = hf_cost(*args, timeout=timeout)
        problem = one_line_error(p, code)
        changed = [str(x) for x in unchanged if sha(x) != before[x]]
        if changed:
            problem += f"; changed: {changed}"
        missing = [w for w in words if w.lower() not in p.stderr.lower()]
        if missing:
            problem += f"; message lacks {missing}: {p.stderr.strip()[-200:]!r}"
        return problem.strip("; ")
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=REPO / "results" / "bert-minilm-cpu" / "results.json")
    ap.add_argument("--tries", type=int, default=10, help="tries per interrupt / concurrency case")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="hf_cost-probe-"))
    try:
        run_cases(args.results.resolve(), scratch, args.tries)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    held = sum(r[2] for r in RESULTS)
    print(f"\n{held} of {len(RESULTS)} hostile cases hold")
    for cls in dict.fromkeys(r[0] for r in RESULTS):
        mine = [r for r in RESULTS if r[0] == cls]
        print(f"  {cls}: {sum(r[2] for r in mine)}/{len(mine)}")
    return 0 if held == len(RESULTS) else 1


def run_cases(results: Path, d: Path, tries: int) -> None:
    R = d / "run" / "results.json"
    R.parent.mkdir()
    shutil.copy(results, R)
    if (results.parent / "plots").is_dir():
        shutil.copytree(results.parent / "plots", R.parent / "plots")
    data = json.loads(R.read_text())
    cards = d / "cards"
    cards.mkdir()
    card = cards / "README.md"
    hand = ("---\nlicense: apache-2.0\n---\n# Mine\n\n```\n<!-- hf_cost:begin cost -->\nexample\n"
            "<!-- hf_cost:end cost -->\n```\n\nQuoted: `<!-- hf_cost:end drift -->`.\n")
    card.write_text(hand)

    def variant(name: str, edit: Callable[[dict], None]) -> Path:
        v = json.loads(json.dumps(data))
        edit(v)
        p = d / f"{name}.json"
        p.write_text(json.dumps(v))
        return p

    # 1. writers never overwrite what they must not touch
    c = "1 writers"
    case(c, "card --card RESULTS", refused(["card", str(R), "--card", str(R)], R))
    py = d / "train.py"
    py.write_text("print('mine')\n")
    case(c, "card --card train.py", refused(["card", str(R), "--card", str(py)], py))
    try:
        os.mknod(d / "dev.md", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        case(c, "card --card <char device>.md", refused(["card", str(R), "--card", str(d / "dev.md")], d / "dev.md"))
    except PermissionError:
        pass
    case(c, "select --json RESULTS", refused(["select", str(R), "--json", str(R)], R))
    case(c, "select --plot RESULTS", refused(["select", str(R), "--plot", str(R)], R))
    user = d / "mine.json"
    user.write_text('{"mine": true}\n')
    case(c, "select --json <user's file>", refused(["select", str(R), "--json", str(user)], user))
    outside = d / "outside"
    outside.mkdir()
    sym = d / "symcards"
    sym.mkdir()
    (sym / "README.md").write_text(hand)
    (sym / "plots").symlink_to(outside)
    case(c, "card whose plots/ is a symlink out", refused(["card", str(R), "--card", str(sym / "README.md")],
                                                          outside, sym / "README.md"))
    ro = d / "ro"
    ro.mkdir()
    (ro / "README.md").write_text(hand)
    (ro / "README.md").chmod(0o444)
    case(c, "read-only card", refused(["card", str(R), "--card", str(ro / "README.md")], ro / "README.md"))

    # 2. special and huge files
    c = "2 special files"
    inc = d / "inc.yaml"
    inc.write_text("include: /dev/zero\n")
    case(c, "include: /dev/zero", refused(["validate", str(inc)], words=("character device",), timeout=30))
    fifo = d / "fifo.yaml"
    os.mkfifo(fifo)
    case(c, "scenario file is a FIFO", refused(["validate", str(fifo)], words=("FIFO",), timeout=30))
    inc2 = d / "inc2.yaml"
    inc2.write_text(f"include: {fifo}\n")
    case(c, "include is a FIFO", refused(["validate", str(inc2)], words=("FIFO",), timeout=30))
    fifo_md = d / "fifo.md"
    os.mkfifo(fifo_md)
    case(c, "card is a FIFO", refused(["card", str(R), "--card", str(fifo_md)], timeout=30))
    fifo_json = d / "fifo.json"
    os.mkfifo(fifo_json)
    case(c, "results is a FIFO (card)", refused(["card", str(fifo_json), "--card", str(card)], card, timeout=30))
    case(c, "results is a FIFO (select)", refused(["select", str(fifo_json)], timeout=30))
    case(c, "results is /dev/zero", refused(["card", "/dev/zero", "--card", str(card)], card, timeout=30))

    def zero_dataset(v: dict) -> None:
        for s in v["suite"]["scenarios"]:
            for key in ("dataset", "train", "eval"):
                if isinstance(s.get(key), dict) and s[key].get("path"):
                    s[key]["path"] = "/dev/zero"
    zr = variant("zero-dataset", zero_dataset)
    zcards = d / "zcards"
    zcards.mkdir()
    (zcards / "README.md").write_text(hand)
    case(c, "results naming /dev/zero as its dataset", refused(["card", str(zr), "--card", str(zcards / "README.md")],
                                                               code=0, timeout=60))
    big = d / "big-label.csv"
    with big.open("w") as fh:
        fh.write("date,text,label\n")
        fh.write("P" * (10 * 2**20) + ",hello there,a\n")
        for i in range(40):
            fh.write(f"p{i % 2},text {i},{'ab'[i % 2]}\n")
    bigs = d / "big.yaml"
    tiny = _tiny_classifier(d / "tiny-model")
    bigs.write_text(_drift_yaml(tiny, big, "label", "[p0]"))
    case(c, "10 MiB period label", refused(["validate", str(bigs)], words=("64",), timeout=60))

    # 3. text from data
    c = "3 text from data"
    mark = d / "marker-label.csv"
    mark.write_text("date,text,label\n" + "".join(f"{'<!-- hf_cost:end drift -->' if i < 20 else 'B'},t {i},{'ab'[i % 2]}\n"
                                                  for i in range(40)))
    ms = d / "marker.yaml"
    ms.write_text(_drift_yaml(tiny, mark, "label", "[B]"))
    case(c, "period label holding an end marker", refused(["validate", str(ms)], words=("<!--",)))
    mc = d / "model_cards" / "m"
    mc.mkdir(parents=True)
    (mc / "README.md").write_text("# x\n\n<!-- hf_cost:begin cost -->\nno end\n")
    bad_card = d / "badcard.yaml"
    bad_card.write_text(f"include: {REPO / 'scenarios' / 'bert.yaml'}\ncard: {{path: model_cards/m/README.md}}\n")
    case(c, "run's card with a broken marker", refused(["validate", str(bad_card)], mc / "README.md",
                                                       words=("card.path",)))
    (mc / "README.md").write_text(hand)
    nosuch = d / "nosuch.yaml"
    nosuch.write_text(f"include: {REPO / 'scenarios' / 'bert.yaml'}\n"
                      "card: {path: model_cards/m/README.md, candidate: nosuch}\n")
    case(c, "card: {candidate: nosuch}", refused(["validate", str(nosuch)], words=("card.candidate",)))

    def markers_in_code() -> str:
        p = hf_cost("card", str(R), "--card", str(card))
        text = card.read_text()
        problem = one_line_error(p, 0)
        if "```\n<!-- hf_cost:begin cost -->\nexample\n<!-- hf_cost:end cost -->\n```" not in text:
            problem += "; the fenced example changed"
        if "Quoted: `<!-- hf_cost:end drift -->`." not in text:
            problem += "; the quoted marker changed"
        p2 = hf_cost("card", str(R), "--card", str(card))
        if p2.returncode != 0 or "unchanged" not in p2.stdout:
            problem += f"; second update not a no-op: {p2.stdout.strip()} {p2.stderr.strip()}"
        return problem
    case(c, "markers in fenced and inline code are text", markers_in_code)

    def evil_label() -> str:
        def edit(v: dict) -> None:
            for s in v["scenarios"]:
                if s["kind"] == "drift" and s.get("status") == "ok":
                    s["metrics"]["periods"][0]["period"] = "<!-- hf_cost:end drift -->|x\n# h ![i](http://e.invalid/a.png)"
        ev = variant("evil", edit)
        ec = d / "ecards"
        ec.mkdir()
        (ec / "README.md").write_text(hand)
        p = hf_cost("card", str(ev), "--card", str(ec / "README.md"))
        text = (ec / "README.md").read_text()
        problem = one_line_error(p, 0)
        if "![i](http" in text or "\n# h" in text or text.count("<!-- hf_cost:end drift -->") != 2:
            problem += "; the label acted in the card"
        return problem
    case(c, "results text with markers, pipes, images", evil_label)

    # 4. file-system errors
    c = "4 file-system errors"
    (d / "afolder.md").mkdir()
    case(c, "--card names a folder", refused(["card", str(R), "--card", str(d / "afolder.md")]))
    case(c, "--plot /tmp", refused(["select", str(R), "--plot", "/tmp"]))
    case(c, "--json /proc/x.json", refused(["select", str(R), "--json", "/proc/hf_cost.json"]))
    case(c, "--card in a missing folder", refused(["card", str(R), "--card", str(d / "nope" / "README.md")]))
    nul = d / "nul.yaml"
    nul.write_text(f"include: {REPO / 'scenarios' / 'bert.yaml'}\ncard: {{path: \"model_cards/m/READ\\0ME.md\"}}\n")
    case(c, "NUL byte in card.path", refused(["validate", str(nul)], words=("NUL",)))
    imm = d / "imm"
    imm.mkdir()
    (imm / "README.md").write_text(hand)
    if subprocess.run(["chattr", "+i", str(imm / "README.md")], capture_output=True).returncode == 0:
        case(c, "immutable card", refused(["card", str(R), "--card", str(imm / "README.md")], imm / "README.md",
                                          words=("immutable",)))
        subprocess.run(["chattr", "-i", str(imm / "README.md")], capture_output=True)
    small = d / "tinyfs"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True).returncode == 0:
        try:
            (small / "README.md").write_text(hand)
            try:  # fill what is left: every further write fails with ENOSPC
                with (small / "filler").open("wb") as fh:
                    while True:
                        fh.write(b"\0" * 1024)
                        fh.flush()
            except OSError:
                pass
            case(c, "full disk (card)", refused(["card", str(R), "--card", str(small / "README.md")],
                                                small / "README.md", words=("space",)))
            case(c, "full disk (select --plot)", refused(["select", str(R), "--plot", str(small / "s.png")],
                                                         words=("space",)))
        finally:
            subprocess.run(["umount", str(small)], capture_output=True)

    # 5. interrupted and concurrent updates
    c = "5 interrupts"

    def consistent(folder: Path, texts: set[str]) -> str:
        text = (folder / "README.md").read_text()
        if text not in texts:
            return "the card is neither the old nor the new text"
        links = re.findall(r"\]\(plots/(hf_cost-[^)]+\.png)\)", text)
        missing = [n for n in links if not (folder / "plots" / n).is_file()]
        return f"card links missing plots {missing}" if missing else ""

    def interrupt(sig: int) -> Callable[[], str]:
        def run() -> str:
            rng = random.Random(sig)
            f = d / f"int{int(sig)}"
            f.mkdir()
            (f / "README.md").write_text(hand)
            assert hf_cost("card", str(R), "--card", str(f / "README.md")).returncode == 0
            new = (f / "README.md").read_text()
            problems = []
            for i in range(tries):
                (f / "README.md").write_text(hand)
                proc = subprocess.Popen([sys.executable, "-m", "hf_cost", "card", str(R), "--card", str(f / "README.md")],
                                        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                time.sleep(rng.uniform(0.5, 4.0))
                proc.send_signal(sig)
                _, err = proc.communicate(timeout=60)
                if "Traceback" in err:
                    problems.append(f"try {i}: traceback")
                if why := consistent(f, {hand, new}):
                    problems.append(f"try {i}: {why}")
                if sig != signal.SIGKILL and list(f.rglob(".hf_cost-tmp-*")):
                    problems.append(f"try {i}: temp files left")
                if sig != signal.SIGKILL and "interrupted" in err and ("not changed" in err) == ((f / "README.md").read_text() == new):
                    problems.append(f"try {i}: the message does not match the card: {err.strip()[-120:]!r}")
            p = hf_cost("card", str(R), "--card", str(f / "README.md"))
            if p.returncode != 0 or list(f.rglob(".hf_cost-tmp-*")):
                problems.append("the next update failed or left temp files")
            return "; ".join(problems)
        return run
    case(c, f"SIGTERM during card ({tries} tries)", interrupt(signal.SIGTERM))
    case(c, f"SIGINT during card ({tries} tries)", interrupt(signal.SIGINT))
    case(c, f"SIGKILL during card, next update cleans up ({tries} tries)", interrupt(signal.SIGKILL))

    def concurrent() -> str:
        f = d / "conc"
        f.mkdir()
        (f / "README.md").write_text(hand)
        problems = []
        for i in range(tries):
            procs = [subprocess.Popen([sys.executable, "-m", "hf_cost", "card", str(R), "--card", str(f / "README.md")],
                                      env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2)]
            codes = [p.wait(timeout=120) for p in procs]
            if codes != [0, 0]:
                problems.append(f"try {i}: exits {codes}")
            text = (f / "README.md").read_text()
            if text.count("<!-- hf_cost:end reproduce -->") != 1 or "# Mine" not in text:
                problems.append(f"try {i}: card damaged")
            (f / "README.md").write_text(hand)
        return "; ".join(problems)
    case(c, f"two concurrent card commands ({tries} tries)", concurrent)

    # 6. results files are trusted no more
    c = "6 results files"
    case(c, "no schema_version", refused(["card", str(variant("nover", lambda v: v.pop("schema_version"))),
                                          "--card", str(card)], card, words=("schema_version",)))
    case(c, "NaN accuracy", refused(["select", str(variant("nan", _set_accuracy("NaN")))]))
    case(c, "accuracy 1e308", refused(["card", str(variant("huge", _set_accuracy(1e308))), "--card", str(card)], card))
    big_params = d / "params.json"
    big_params.write_text(_params_text(data))
    case(c, "parameters 10**400", refused(["card", str(big_params), "--card", str(card)], card))
    case(c, "candidate without parameters", refused(["select", str(variant("noparams", _drop_parameters))],
                                                    words=("parameters",)))

    def select_nan_json() -> str:
        out = d / "sel.json"
        p = hf_cost("select", str(variant("nan2", _set_accuracy("NaN"))), "--json", str(out))
        problem = one_line_error(p)
        if p.stdout.strip():
            problem += "; printed before failing"
        if out.exists():
            problem += "; wrote the JSON"
        return problem
    case(c, "select --json with NaN: nothing printed or written", select_nan_json)

    def reference_failed(v: dict) -> None:
        ref = v["comparison"]["reference"]
        v["candidates"].pop(ref)
        v["comparison"]["rows"] = [r for r in v["comparison"]["rows"] if r["candidate"] != ref]
        v["selection"] = None
    case(c, "card when the run's reference failed", refused(
        ["card", str(variant("reffailed", reference_failed)), "--card", str(card)], card, words=("reference",)))

    # 7. select's metric names
    c = "7 select metrics"
    for bad, good in (("p90_latency_msec", "p90_latency_ms"), ("acuracy", "accuracy")):
        cons = d / f"{bad}.yaml"
        cons.write_text(f"objectives: [{{metric: {bad}, direction: max}}]\n")
        case(c, f"unknown metric {bad}", refused(["select", str(R), "--constraints", str(cons)],
                                                words=(f"did you mean '{good}'",)))

    # 8. smaller ones
    c = "8 smaller"
    one = d / "one-row.csv"
    one.write_text("date,text,label\n2023-01-05,only row,a\n" + "".join(
        f"2023-0{4 + i % 3}-05,text {i},{'ab'[i % 2]}\n" for i in range(40)))
    ow = d / "onerow.yaml"
    ow.write_text(_drift_yaml(tiny, one, "quarter", "[2023-Q1]"))
    case(c, "one-row training window", refused(["validate", str(ow)], words=("training_window",)))
    dup = d / "dup.yaml"
    dup.write_text(f"include: {REPO / 'scenarios' / 'bert.yaml'}\n"
                   "scenarios: [{kind: compare, candidates: [base, base]}]\n")
    case(c, "compare lists a candidate twice", refused(["validate", str(dup)], words=("twice",)))


def _tiny_classifier(directory: Path) -> Path:
    """A random 2-layer BERT with a 2-class head (labels a, b) and its tokenizer, for validate."""
    from transformers import AutoModelForSequenceClassification, BertConfig, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(95)]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt")).save_pretrained(directory)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                        vocab_size=len(vocab), max_position_embeddings=64, id2label={0: "a", 1: "b"},
                        label2id={"a": 0, "b": 1})
    AutoModelForSequenceClassification.from_config(config).save_pretrained(directory)
    return directory


def _drift_yaml(model: Path, csv: Path, granularity: str, window: str) -> str:
    return (f"name: probe\nmodel: {{path: {json.dumps(str(model))}, task: sequence-classification, device: cpu}}\n"
            "inputs: {kind: synthetic, sequence_length: 16, num_samples: 8}\n"
            f"scenarios:\n  - kind: drift\n    name: d\n    candidates: [base]\n"
            f"    dataset: {{path: {json.dumps(str(csv))}, label_column: label}}\n    period_column: date\n"
            f"    granularity: {granularity}\n    training_window: {window}\n")


def _set_accuracy(value: object) -> Callable[[dict], None]:
    def edit(v: dict) -> None:
        v["comparison"]["rows"][0]["quality"][0]["accuracy"] = value
    return edit


def _drop_parameters(v: dict) -> None:
    v["candidates"][next(iter(v["candidates"]))].pop("parameters")


def _params_text(data: dict) -> str:
    text = json.dumps(data)
    name = next(iter(data["candidates"]))
    old = f'"parameters": {data["candidates"][name]["parameters"]}'
    return text.replace(old, '"parameters": 1' + "0" * 400, 1)


if __name__ == "__main__":
    sys.exit(main())
