"""The noise sentinel (hf_cost/measure/machine_load.py): /proc/stat parsed on hand-written
samples with hand-computed answers, the busy decision at its threshold, a real reading while a
background process burns a core, and a tiny run whose results.json, report.md and console say
the machine was busy when the threshold is forced low.

The machine is shared (other test runs may be going on), so real readings are asserted only in
the robust direction: a burner shows a clear excess. No test puts an upper bound on an "idle"
figure, which other people's processes can raise at any time.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from scenario_helpers import run_cli

from hf_cost.core.readings import MachineLoad
from hf_cost.core.results import ScenarioResult
from hf_cost.errors import UserError
from hf_cost.measure import machine_load
from hf_cost.measure.machine_load import (
    CpuTicks,
    MachineLoadSentinel,
    busy_threshold_cores,
    is_busy,
    load_between,
    parse_proc_stat,
)

needs_proc_stat = pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="no /proc/stat (not Linux)")

# Two samples of a 2-CPU machine one second apart (USER_HZ 100: 200 ticks in all). Fields:
# user nice system idle iowait irq softirq steal guest guest_nice.
BEFORE = """\
cpu  1000 20 300 5000 40 5 6 7 8 9
cpu0 500 10 150 2500 20 2 3 4 4 5
cpu1 500 10 150 2500 20 3 3 3 4 4
intr 123 0 0 5
ctxt 456
btime 1700000000
processes 789
procs_running 3
procs_blocked 0
softirq 10 1 2 3 4 5 6 7 8 9 0
"""
# +130 user, +0 nice, +20 system, +40 idle, +2 iowait, +1 irq, +1 softirq, +6 steal, +5 guest
AFTER = """\
cpu  1130 20 320 5040 42 6 7 13 13 9
cpu0 565 10 160 2520 21 3 3 7 7 5
cpu1 565 10 160 2520 21 3 4 6 6 4
intr 999 0 0 5
ctxt 4560
"""


def test_the_all_cpu_line_is_parsed_guest_not_counted_twice() -> None:
    # busy = user + nice + system + irq + softirq = 1000 + 20 + 300 + 5 + 6 = 1331;
    # total = busy + idle + iowait + steal = 1331 + 5000 + 40 + 7 = 6378; guest (8, 9) is inside user/nice.
    assert parse_proc_stat(BEFORE) == CpuTicks(busy=1331, steal=7, total=6378, cpus=2)
    # 1130 + 20 + 320 + 6 + 7 = 1483; 1483 + 5040 + 42 + 13 = 6578
    assert parse_proc_stat(AFTER) == CpuTicks(busy=1483, steal=13, total=6578, cpus=2)


def test_an_old_kernels_four_fields_count_the_rest_as_zero() -> None:
    # Linux 2.4: "cpu user nice system idle" only; no per-CPU lines here.
    assert parse_proc_stat("cpu  10 2 3 85\n") == CpuTicks(busy=15, steal=0, total=100, cpus=0)


@pytest.mark.parametrize("text", ["", "intr 1 2\nctxt 3\n", "cpu  1 2\n"])
def test_a_text_without_the_all_cpu_line_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="cpu"):
        parse_proc_stat(text)


def test_other_processes_cpu_and_steal_between_two_samples() -> None:
    # busy 1483 - 1331 = 152 ticks = 1.52 s; this process used 0.5 s of it: (1.52 - 0.5) / 1 s
    # = 1.02 cores. Steal 6 of 200 ticks = 3 %. Resolution 2 CPUs / (100 Hz x 1 s) = 0.02 cores.
    r = load_between(parse_proc_stat(BEFORE), parse_proc_stat(AFTER), own_s=0.5, interval_s=1.0, hz=100,
                     threshold_cores=0.25)
    assert r.other_processes_cores == pytest.approx(1.02)
    assert r.steal_share == pytest.approx(0.03)
    assert (r.busy_cpu_s, r.steal_cpu_s, r.total_cpu_s) == pytest.approx((1.52, 0.06, 2.0))
    assert r.resolution_cores == pytest.approx(0.02) and r.cpus == 2 and r.interval_s == 1.0
    assert r.busy is True and r.method.startswith("/proc/stat")
    assert r.warning() == "machine busy: 1.0 cores used by other processes, steal 3 %"


def test_this_process_using_more_than_the_counters_saw_is_not_negative_load() -> None:
    # The counters saw 1.52 s busy; os.times said 1.6 s (tick sampling): others used 0, not -0.08.
    r = load_between(parse_proc_stat(BEFORE), parse_proc_stat(AFTER), own_s=1.6, interval_s=1.0, hz=100,
                     threshold_cores=0.25)
    assert r.other_processes_cores == 0.0 and r.busy is False and r.warning() is None


def test_the_busy_decision_at_the_threshold() -> None:
    # Flagged only above threshold + resolution: 0.5 - 0.25 = 0.25 is not above 0.25; 0.75 - 0.25 is.
    kw = {"threshold_cores": 0.25, "steal_threshold": 0.0625}  # binary-exact: no rounding at the edge
    assert is_busy(0.5, 0.0, 0.25, 2, **kw) is False
    assert is_busy(0.75, 0.0, 0.25, 2, **kw) is True
    assert is_busy(0.25, 0.0, 0.0, 2, **kw) is False  # exactly at the threshold, exact counters
    assert is_busy(0.2578125, 0.0, 0.0, 2, **kw) is True  # just above it
    # Steal: its resolution is the cores' one shared over the CPUs, 0.25 / 2 = 0.125.
    assert is_busy(0.0, 0.1875, 0.25, 2, **kw) is False  # 0.1875 - 0.125 = 0.0625, not above
    assert is_busy(0.0, 0.25, 0.25, 2, **kw) is True  # 0.25 - 0.125 = 0.125 > 0.0625


def test_the_threshold_comes_from_the_environment_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(machine_load.ENV_BUSY_CORES, raising=False)
    assert busy_threshold_cores() == machine_load.BUSY_CORES == 0.25
    monkeypatch.setenv(machine_load.ENV_BUSY_CORES, "1.5")
    assert busy_threshold_cores() == 1.5 and MachineLoadSentinel().threshold_cores == 1.5
    for bad in ("lots", "-0.1", "nan", "inf"):
        monkeypatch.setenv(machine_load.ENV_BUSY_CORES, bad)
        with pytest.raises(UserError, match=machine_load.ENV_BUSY_CORES):
            busy_threshold_cores()


def test_without_proc_stat_the_figures_are_none_and_the_method_says_why(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    monkeypatch.setattr(machine_load, "PROC_STAT", tmp_path / "no-such-stat")
    with MachineLoadSentinel(threshold_cores=0.25) as s:
        pass
    r = s.reading
    assert r is not None and r.method.startswith("not measured:") and "no-such-stat" in r.method
    assert r.other_processes_cores is None and r.steal_share is None and r.busy is None
    assert r.own_cpu_s >= 0 and r.warning() is None


def test_a_file_without_machine_load_still_loads() -> None:
    old = {"name": "s", "kind": "accuracy", "candidate": "base", "status": "failed", "error": "x",
           "settings": {}, "metrics": None, "raw": {}}
    assert ScenarioResult.model_validate(old).machine_load is None
    reading = load_between(parse_proc_stat(BEFORE), parse_proc_stat(AFTER), own_s=0.5, interval_s=1.0,
                           hz=100, threshold_cores=0.25)
    back = ScenarioResult.model_validate({**old, "machine_load": reading.model_dump(mode="json")})
    assert back.machine_load == reading


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@needs_proc_stat
def test_a_process_burning_a_core_shows_as_other_processes_cpu() -> None:
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started and spinning before the reading begins
        with MachineLoadSentinel(threshold_cores=0.25) as s:
            time.sleep(1.0)
    finally:
        burner.kill()
        burner.wait()  # reaped after the reading: its CPU is another process's, not ours
    r = s.reading
    assert r is not None and r.cpus is not None and r.cpus >= 1
    assert r.other_processes_cores is not None and r.other_processes_cores > 0.5, r
    assert r.busy is True
    assert r.warning() is not None and r.warning().startswith("machine busy: ")  # type: ignore[union-attr]


@needs_proc_stat
def test_this_process_burning_cpu_is_its_own_time_not_others() -> None:
    # Robust direction only: our spin is in own_cpu_s, and the machine's busy time includes it.
    # (No upper bound on other_processes_cores: others may be loading the machine right now.)
    with MachineLoadSentinel(threshold_cores=0.25) as s:
        _spin(1.0)
    r = s.reading
    assert r is not None and r.own_cpu_s > 0.3
    assert r.busy_cpu_s is not None and r.resolution_cores is not None
    assert r.busy_cpu_s >= r.own_cpu_s - r.resolution_cores * r.interval_s - 0.05
    assert r.other_processes_cores is not None and r.other_processes_cores >= 0
    assert r.interval_s == pytest.approx(1.0, abs=0.5)


SCENARIO = """\
name: noisy
model: {{path: {model}, device: cpu}}
inputs: {{kind: synthetic, sequence_length: 16, num_samples: 8}}
scenarios:
  - {{kind: single_stream, min_duration_s: 0.2, min_query_count: 16, warmup_queries: 1}}
  - {{kind: offline, batch_sizes: [1, 4], min_duration_s: 0.1, min_sample_count: 8}}
"""


@pytest.fixture(scope="module")
def noisy_run(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny run with the threshold forced below any reading: every measured result is flagged."""
    tmp = tmp_path_factory.mktemp("machine-load")
    path = tmp / "noisy.yaml"
    path.write_text(SCENARIO.format(model=json.dumps(str(tiny_bert_dir))), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(machine_load.ENV_BUSY_CORES, raising=False)
        mp.setattr(machine_load, "BUSY_CORES", -1.0)  # below 0 cores minus any resolution under 1
        console = io.StringIO()
        with contextlib.redirect_stdout(console):
            results = run_cli(path, tmp / "out")
    return {"out": tmp / "out", "results": results, "console": console.getvalue()}


@needs_proc_stat
def test_a_busy_run_says_so_in_results_json(noisy_run: dict[str, Any]) -> None:
    entries = noisy_run["results"]["scenarios"]
    assert [e["name"] for e in entries] == ["single_stream", "offline[bs=1]", "offline[bs=4]"]
    for e in entries:
        m = MachineLoad.model_validate(e["machine_load"])
        assert m.busy is True and m.threshold_cores == -1.0 and m.other_processes_cores is not None
        assert m.interval_s > 0 and m.cpus and m.method.startswith("/proc/stat")
    # one reading per measurement: the offline sweep's points share theirs
    assert entries[1]["machine_load"] == entries[2]["machine_load"] != entries[0]["machine_load"]


@needs_proc_stat
def test_a_busy_run_says_so_in_the_report_and_console(noisy_run: dict[str, Any]) -> None:
    report = (noisy_run["out"] / "report.md").read_text(encoding="utf-8")
    table = report.split("## Results", 1)[1].split("\n\n")[1].splitlines()[2:]
    rows = [line for line in table if line.startswith(("| single_stream", "| offline"))]
    assert len(rows) == 3 and all("· machine busy |" in row for row in rows)
    section = report.split("## Machine load", 1)[1]
    assert "- single_stream (base): machine busy: " in section and "cores used by other processes, steal " in section
    assert "- offline[bs=4] (base): machine busy: " in section
    console = " ".join(noisy_run["console"].split())
    assert "single_stream (base): machine busy: " in console
    assert "cores used by other processes" in console


@needs_proc_stat
def test_the_results_loader_reads_the_reading_back(noisy_run: dict[str, Any]) -> None:
    from hf_cost.report.results_file import load_results_file

    run = load_results_file(noisy_run["out"] / "results.json")
    assert all(isinstance(s.machine_load, MachineLoad) and s.machine_load.busy for s in run.scenarios)
