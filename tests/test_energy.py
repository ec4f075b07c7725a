"""Energy measurement through codecarbon: a real tracker round, the method mapping on fake hardware
shaped like codecarbon's, energy_per hand cases, and the errors a user can fix."""

from __future__ import annotations

import importlib.resources
import json
import logging
import sys
import threading
import time
import types
from typing import ClassVar

import pytest

from hf_cost.errors import ConfigError, UserError
from hf_cost.measure.energy import (
    EnergyReading,
    EnergyTracker,
    classify_hardware,
    energy_per,
)

# The five labels, written out here rather than imported, so a renamed label fails the test.
LABELS = {"measured (RAPL)", "measured (NVML)", "measured (RAPL + NVML)",
          "estimate (TDP model)", "estimate (constant power)"}


def _busy(seconds: float) -> float:
    start = time.perf_counter()
    x = 0
    while time.perf_counter() - start < seconds:
        x += 1
    return time.perf_counter() - start


def _codecarbon_table(path: str) -> dict:
    return json.loads(importlib.resources.files("codecarbon").joinpath(path).read_text())


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_busy_cpu_interval_is_measured_quietly(in_tmp, capfd):
    pytest.importorskip("codecarbon")
    log = logging.getLogger("codecarbon")
    handlers_before, level_before = list(log.handlers), log.level
    tracker = EnergyTracker()
    with tracker:
        wall = _busy(1.0)
    r = tracker.reading
    assert isinstance(r, EnergyReading)
    assert r.energy_kwh is not None and r.energy_kwh > 0
    assert r.method in LABELS
    # The energy window opens in start() before the body and closes at the final sample after
    # it, on the same clock (perf_counter): it covers the body, however loaded the machine.
    assert r.duration_s >= wall
    # The parts add up to the total (codecarbon sums CPU, GPU and RAM deltas).
    assert r.cpu_energy_kwh + r.gpu_energy_kwh + r.ram_energy_kwh == pytest.approx(r.energy_kwh, rel=1e-9)
    # Intensity is the USA row of codecarbon's own offline table (read here from the data file) ...
    usa = _codecarbon_table("data/private_infra/global_energy_mix.json")["USA"]["carbon_intensity"]
    assert r.carbon_intensity_g_per_kwh == pytest.approx(usa, rel=1e-9)
    # ... and codecarbon's accumulated emissions are energy x that intensity (g -> kg).
    assert r.emissions_kg_co2eq == pytest.approx(r.energy_kwh * usa / 1000.0, rel=0.01)
    assert r.region.startswith("USA") and "offline default" in r.region
    assert "codecarbon" in r.detail and "\n" not in r.detail and "tracking_mode=process" in r.detail
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert list(in_tmp.iterdir()) == []  # no emissions.csv, no lock, no power-gadget log
    assert log.handlers == handlers_before and log.level == level_before
    # codecarbon's timers are cancelled, not left running. A cancelled Timer ends as soon as it
    # is scheduled and one that fired ends with its function, so join() needs no time limit; a
    # scheduler left running re-arms itself, and its new Timer is alive after the joins.
    for t in threading.enumerate():
        if isinstance(t, threading.Timer):
            t.join()
    assert not any(isinstance(t, threading.Timer) and t.is_alive() for t in threading.enumerate())


def test_short_interval_on_real_codecarbon_is_counted(in_tmp, capfd):
    """A round that ends before codecarbon's 1 s scheduler first fires still gets energy, over a
    window that covers it; the tracker is reusable. (The rate itself: the fake-clock tests below.)"""
    pytest.importorskip("codecarbon")
    tracker = EnergyTracker(measure_power_secs=1.0)
    for seconds in (0.4, 0.2):  # a tracker is reusable, one interval at a time
        with tracker:
            wall = _busy(seconds)
        r = tracker.reading
        assert r.energy_kwh is not None and r.energy_kwh > 0
        assert r.duration_s >= wall >= seconds
    assert capfd.readouterr() == ("", "")


# --- the tracker's own logic on a fake codecarbon driven by a fake clock --------------------------
#
# FakeCodecarbon has the parts of codecarbon 3.3.2's OfflineEmissionsTracker that EnergyTracker
# uses (read from its source): start() sets _start_time and _last_measured_time and takes a
# sample; _measure_power_and_energy() adds power x (now - _last_measured_time) for each part and
# moves _last_measured_time to now; _scheduler.function is what its Timer calls each interval
# (here: `tick`); stop() stops the schedulers, samples again only if the last sample is 50 ms
# old or more (_measure_power_and_energy_if_stale) and sets final_emissions_data, whose
# duration runs from start() to then.
# Power is constant (CPU 30 W, RAM 10 W), so every figure below is exact and load-free.

CPU_W, RAM_W = 30.0, 10.0


def kwh(watts: float, seconds: float) -> float:
    return watts * seconds / 3.6e6


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0  # any origin: only differences count

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeScheduler:
    def __init__(self, function) -> None:
        self.function, self._stopped = function, True

    def start(self) -> None:
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True

    def tick(self) -> None:
        """What codecarbon's Timer does when the interval is up, even one that fires late."""
        self.function()


class FakeCodecarbon:
    instances: ClassVar[list[FakeCodecarbon]] = []

    def __init__(self, clock: FakeClock, **kwargs) -> None:
        self.clock, self.kwargs, self.samples = clock, kwargs, []
        self._hardware = [type("CPU", (), {"_mode": "intel_rapl", "_model": "Fake CPU", "_tdp": None})(),
                          type("RAM", (), {"_force_ram_power": None, "_tracking_mode": "process"})()]
        self._scheduler = FakeScheduler(self._measure_power_and_energy)
        self._scheduler_monitor_power = FakeScheduler(lambda: None)
        self._start_time = self.final_emissions_data = None
        self._last_measured_time = clock()
        self.cpu = self.ram = 0.0
        self.before_last_sample = lambda: None  # a test may make stop() take time here
        FakeCodecarbon.instances.append(self)

    def start(self) -> None:
        self._last_measured_time = self._start_time = self.clock()
        self._scheduler.start()
        self._scheduler_monitor_power.start()
        self._measure_power_and_energy()

    def _measure_power_and_energy(self) -> None:
        dt = self.clock() - self._last_measured_time
        self.cpu += kwh(CPU_W, dt)
        self.ram += kwh(RAM_W, dt)
        self._last_measured_time = self.clock()
        self.samples.append(self.clock())

    def stop(self) -> None:
        self._scheduler.stop()
        self._scheduler_monitor_power.stop()
        self.before_last_sample()
        if self.clock() - self._last_measured_time >= 0.05:  # _measure_power_and_energy_if_stale()
            self._measure_power_and_energy()
        total = self.cpu + self.ram
        self.final_emissions_data = types.SimpleNamespace(
            energy_consumed=total, cpu_energy=self.cpu, gpu_energy=0.0, ram_energy=self.ram,
            emissions=total * 0.4, duration=self.clock() - self._start_time)


@pytest.fixture()
def fake_cc(monkeypatch):
    """(clock, the FakeCodecarbon instances made) with codecarbon's tracker replaced by the fake."""
    codecarbon = pytest.importorskip("codecarbon")  # EnergyTracker() still checks its settings with it
    clock = FakeClock()
    FakeCodecarbon.instances = []
    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", lambda **kw: FakeCodecarbon(clock, **kw))
    return clock, FakeCodecarbon.instances


def test_energy_covers_exactly_the_interval_long_or_short(fake_cc):
    """1.2 s with a scheduler tick at 0.7 s, then 0.4 s ending before any tick: each reading is
    the constant power times its own interval, so both have the same rate (nothing under-counted
    for lack of a tick, nothing carried over from the previous round)."""
    clock, made = fake_cc
    tracker = EnergyTracker(measure_power_secs=1.0)
    with tracker:
        clock.advance(0.7)
        made[-1]._scheduler.tick()
        clock.advance(0.5)
    long = tracker.reading
    with tracker:
        clock.advance(0.4)
    short = tracker.reading
    assert len(made) == 2  # one codecarbon tracker per interval
    for r, seconds in ((long, 1.2), (short, 0.4)):
        assert r.duration_s == pytest.approx(seconds, rel=1e-12)
        assert r.cpu_energy_kwh == pytest.approx(kwh(CPU_W, seconds), rel=1e-9)
        assert r.ram_energy_kwh == pytest.approx(kwh(RAM_W, seconds), rel=1e-9)
        assert r.gpu_energy_kwh == 0.0
        assert r.energy_kwh == pytest.approx(kwh(CPU_W + RAM_W, seconds), rel=1e-9)
        assert r.method == "measured (RAPL)"
        assert "average CPU 30.00 W, GPU 0.00 W, RAM 10.00 W" in r.detail
    assert long.energy_kwh / long.duration_s == pytest.approx(short.energy_kwh / short.duration_s, rel=1e-9)
    assert made[1].kwargs["measure_power_secs"] == 1.0 and made[1].kwargs["tracking_mode"] == "process"


def test_duration_is_the_window_the_energy_covers(fake_cc):
    """codecarbon's own duration runs to its stop(); its energy only to its last sample. Time in
    between (here 40 ms, under its 50 ms re-sample threshold) is in the one and not the other,
    so the reading's duration is the window of its energy: the tracker's final sample."""
    clock, made = fake_cc
    tracker = EnergyTracker()
    with tracker:
        clock.advance(0.5)
        made[-1].before_last_sample = lambda: clock.advance(0.04)
    r, cc = tracker.reading, made[-1]
    assert cc.final_emissions_data.duration == pytest.approx(0.54, rel=1e-12)
    assert r.duration_s == pytest.approx(0.5, rel=1e-12)
    assert r.energy_kwh == pytest.approx(kwh(CPU_W + RAM_W, 0.5), rel=1e-9)
    assert r.energy_kwh / r.duration_s * 3.6e6 == pytest.approx(CPU_W + RAM_W, rel=1e-9)


def test_a_tick_that_fires_after_the_interval_closed_is_not_counted(fake_cc):
    clock, made = fake_cc
    tracker = EnergyTracker()
    with tracker:
        clock.advance(0.3)
    cc, reading = made[-1], tracker.reading
    samples = list(cc.samples)
    clock.advance(5.0)
    cc._scheduler.tick()  # a Timer that had already fired when __exit__ stopped the scheduler
    assert cc.samples == samples
    assert cc._scheduler._stopped and cc._scheduler_monitor_power._stopped
    assert tracker.reading is reading and reading.duration_s == pytest.approx(0.3, rel=1e-12)


def test_the_with_bodys_error_propagates_and_its_interval_is_still_read(fake_cc):
    clock, _ = fake_cc
    tracker = EnergyTracker()
    with pytest.raises(ZeroDivisionError), tracker:
        clock.advance(0.25)
        1 / 0  # noqa: B018
    assert tracker.reading.energy_kwh == pytest.approx(kwh(CPU_W + RAM_W, 0.25), rel=1e-9)
    with tracker:  # and the tracker is free for the next interval
        clock.advance(0.1)
    assert tracker.reading.duration_s == pytest.approx(0.1, rel=1e-12)


def test_region_uses_codecarbons_regional_row(in_tmp):
    pytest.importorskip("codecarbon")
    tracker = EnergyTracker(country_iso_code="usa", region="California")
    with tracker:
        time.sleep(0.2)
    # usa_emissions.json is in lbs/MWh; 1 lb = 453.59237 g, 1 MWh = 1000 kWh.
    lbs = _codecarbon_table("data/private_infra/2023/usa_emissions.json")["california"]["emissions"]
    assert tracker.reading.carbon_intensity_g_per_kwh == pytest.approx(lbs * 453.59237 / 1000, rel=1e-6)
    assert tracker.reading.region.startswith("USA/california: regional value")


def test_nesting_one_tracker_is_refused():
    pytest.importorskip("codecarbon")
    tracker = EnergyTracker()
    with tracker, pytest.raises(RuntimeError, match="already running"):
        tracker.__enter__()


def test_energy_per_hand_cases():
    def reading(kwh):
        return EnergyReading(kwh, None, None, None, None, 1.0, "estimate (TDP model)", "", "USA", None)

    assert energy_per(reading(0.002), 500) == pytest.approx(0.004)  # 0.002 / 500 * 1000
    assert energy_per(reading(0.002), 500, per=1) == pytest.approx(4e-6)
    assert energy_per(reading(0.002), 0) is None
    assert energy_per(reading(None), 500) is None
    with pytest.raises(ValueError):
        energy_per(reading(0.002), -1)


def test_missing_codecarbon_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    with pytest.raises(UserError, match=r"^energy: codecarbon is not installed; pip install 'hf_cost\[energy\]'"):
        EnergyTracker()


def test_bad_settings_are_config_errors():
    pytest.importorskip("codecarbon")
    with pytest.raises(ConfigError, match="country_iso_code: 'XYZ'"):
        EnergyTracker(country_iso_code="XYZ")
    with pytest.raises(ConfigError, match="measure_power_secs"):
        EnergyTracker(measure_power_secs=0)


# --- method mapping on fakes shaped like codecarbon's hardware objects (classified by class name) ---

def _fake(kind: str, **attrs):
    return type(kind, (), attrs)()


def _cpu(mode, tdp=65, generic=False, model="Intel Xeon X"):
    return _fake("CPU", _mode=mode, _tdp=tdp, _is_generic_tdp=generic, _model=model, _tracking_mode="process")


def _gpu(n=1, vendor="NvidiaGPUDevice"):
    return _fake("GPU", devices=_fake("AllGPUDevices", devices=[_fake(vendor) for _ in range(n)]))


RAM = _fake("RAM", _force_ram_power=None, _tracking_mode="process", is_arm_cpu=False)


@pytest.mark.parametrize(("hardware", "kwargs", "label"), [
    ([RAM, _cpu("intel_rapl")], {}, "measured (RAPL)"),
    ([RAM, _cpu("windows_emi")], {}, "measured (RAPL)"),
    ([RAM, _cpu("cpu_load"), _gpu()], {"cpu_in_tdp_table": True}, "measured (NVML)"),
    ([RAM, _cpu("intel_rapl"), _gpu(2)], {}, "measured (RAPL + NVML)"),
    ([RAM, _cpu("cpu_load")], {"cpu_in_tdp_table": True}, "estimate (TDP model)"),
    ([RAM, _cpu("cpu_load", tdp=8)], {"cpu_in_tdp_table": False}, "estimate (constant power)"),
    ([RAM, _cpu("cpu_load", tdp=85, generic=True)], {}, "estimate (constant power)"),
    ([RAM, _cpu("cpu_load", tdp=120)], {"cpu_in_tdp_table": False, "forced_cpu_power": 120.0},
     "estimate (TDP model)"),
    ([RAM, _cpu("constant")], {}, "estimate (constant power)"),
    ([RAM, _cpu("cpu_load"), _gpu(0)], {"cpu_in_tdp_table": True}, "estimate (TDP model)"),  # no device
    ([], {}, "estimate (constant power)"),
])
def test_method_mapping(hardware, kwargs, label):
    method, sources = classify_hardware(hardware, **kwargs)
    assert method == label
    assert sources.startswith("CPU: ") and "; GPU: " in sources and "; RAM: " in sources


def test_mapping_detail_names_source_and_tdp():
    _, sources = classify_hardware([RAM, _cpu("cpu_load", tdp=8, model="AMD EPYC")], cpu_in_tdp_table=False)
    assert "generic fallback TDP 8 W" in sources and "'AMD EPYC'" in sources
    _, sources = classify_hardware([RAM, _cpu("intel_rapl"), _gpu(2)])
    assert "RAPL (Linux powercap)" in sources and "NVML" in sources and "2 device(s)" in sources
    assert "DIMM model" in sources


def test_fakes_have_the_shape_of_real_codecarbon_objects():
    hardware = pytest.importorskip("codecarbon.external.hardware")
    ram_mod = pytest.importorskip("codecarbon.external.ram")
    cpu = hardware.CPU(output_dir=".", mode="cpu_load", model="Intel Xeon X", tdp=65, tracking_mode="process")
    ram = ram_mod.RAM(tracking_mode="process")
    for attr in ("_mode", "_tdp", "_is_generic_tdp", "_model", "_tracking_mode"):
        assert hasattr(cpu, attr)
    assert hasattr(ram, "_force_ram_power") and hasattr(ram, "is_arm_cpu")
    method, sources = classify_hardware([ram, cpu], cpu_in_tdp_table=True)
    assert method == "estimate (TDP model)" and "TDP 65 W" in sources
