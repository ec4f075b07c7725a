"""Energy measurement through codecarbon: a real tracker round, the method mapping on fake hardware
shaped like codecarbon's, energy_per hand cases, and the errors a user can fix."""

from __future__ import annotations

import importlib.resources
import json
import logging
import sys
import threading
import time

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
    assert abs(r.duration_s - wall) < 0.5  # generous: the codecarbon window is the with-body
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
    for t in threading.enumerate():  # codecarbon's timers are cancelled, not left running
        if isinstance(t, threading.Timer):
            t.join(2.0)
    assert not any(isinstance(t, threading.Timer) and t.is_alive() for t in threading.enumerate())


def test_short_interval_gets_energy_at_the_same_rate(in_tmp, capfd):
    pytest.importorskip("codecarbon")
    tracker = EnergyTracker(measure_power_secs=1.0)
    rates = []
    for seconds in (1.0, 0.4):  # the second round ends before the 1 s scheduler ever fires
        with tracker:  # a tracker is reusable, one interval at a time
            _busy(seconds)
        r = tracker.reading
        assert r.energy_kwh is not None and r.energy_kwh > 0
        rates.append(r.energy_kwh / r.duration_s)
    assert 0.7 < rates[1] / rates[0] < 1.3  # a short interval is not under-counted
    assert capfd.readouterr() == ("", "")


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
