"""Energy and CO2-eq of a measured interval, through codecarbon's offline tracker.

Why: kWh per 1k inferences must say whether it was *measured* (RAPL / NVML) or *estimated*.

How (codecarbon 3.3.2, read from its source): ``OfflineEmissionsTracker(tracking_mode="process")``
with ``output_methods=[]`` (the non-deprecated form of ``save_to_file=False``), no HTTP endpoint,
Electricity Maps token ``""`` (offline table only), ``allow_multiple_runs=True`` (no lock file) and
a throw-away ``output_dir``: no files, no network. Its logger is captured while a tracker runs
(nothing reaches stdout/stderr). ``start()`` starts its scheduler once; on exit we stop it under a
lock (no double-counted in-flight sample), take a final sample, then ``stop()``: 0.5 s still counts.

Power source: read from ``tracker._hardware``, classified by class name as codecarbon's hardware
cache does. ``CPU._mode`` is ``intel_rapl`` / ``windows_emi`` / ``intel_power_gadget`` (RAPL
counters), ``cpu_load`` (``_tdp`` W x CPU share; ``_is_generic_tdp`` when no TDP was found) or
``constant``; ``GPU.devices.devices`` hold ``NvidiaGPUDevice`` (NVML energy counter); ``RAM`` is
always a model. Found on the 2-core AMD EPYC VM (no /sys/class/powercap, no GPU): ``_hardware ==
[RAM(), CPU(Cpu Load)]``, ``_mode == "cpu_load"``, ``_tdp == 8``, ``_is_generic_tdp == False``, but
"AMD EPYC" is not in its cpu_power.csv (``TDP._get_cpu_power_from_registry`` -> None): 8 W is its
4 W-per-thread fallback x 2 threads, so "estimate (constant power)". RAM's DIMM model has a 10 W
floor on x86. The label names the measured parts; others (RAM always) are estimates, see detail.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hf_cost.errors import ConfigError, UserError

METHODS = ("measured (RAPL)", "measured (NVML)", "measured (RAPL + NVML)",
           "estimate (TDP model)", "estimate (constant power)")
_COUNTER_MODES = {"intel_rapl": "RAPL (Linux powercap)", "windows_emi": "RAPL (Windows EMI)",
                  "intel_power_gadget": "RAPL (Intel Power Gadget)"}


@dataclass
class EnergyReading:
    energy_kwh: float | None  # all energy codecarbon attributes to this process over the interval
    cpu_energy_kwh: float | None
    gpu_energy_kwh: float | None
    ram_energy_kwh: float | None
    emissions_kg_co2eq: float | None
    duration_s: float
    method: str  # one of METHODS
    detail: str
    region: str
    carbon_intensity_g_per_kwh: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # str / float / None only: JSON-ready


def classify_hardware(hardware: Sequence[object], *, cpu_in_tdp_table: bool | None = None,
                      forced_cpu_power: float | None = None) -> tuple[str, str]:
    """(method label, "CPU: ...; GPU: ...; RAM: ...") from codecarbon's hardware objects."""
    cpu_counter = gpu_counter = False
    label, cpu, gpu, ram = "estimate (constant power)", "CPU: no power source", "GPU: none", "RAM: none"
    for hw in hardware:
        kind, mode, tdp, model = (type(hw).__name__, getattr(hw, "_mode", None),
                                  getattr(hw, "_tdp", None), getattr(hw, "_model", None))
        if kind in ("AppleSiliconChip", "Raspberry"):  # on-chip counters; no RAPL/NVML slot for them
            part, text = getattr(hw, "chip_part", "CPU"), f"{kind} power counter (counted as measured)"
            ram = f"RAM: {kind} power counter" if part == "RAM" else ram
            gpu_counter, gpu = (True, f"GPU: {text}") if part == "GPU" else (gpu_counter, gpu)
            cpu_counter, cpu = (True, f"CPU: {text}, {model!r}") if part == "CPU" else (cpu_counter, cpu)
        elif kind == "CPU" and mode in _COUNTER_MODES:
            cpu_counter, cpu = True, f"CPU: {_COUNTER_MODES[mode]} energy counters, {model!r}"
        elif kind == "CPU" and mode == "cpu_load":
            share = "machine load" if getattr(hw, "_tracking_mode", "process") == "machine" else "process CPU share"
            if forced_cpu_power is not None:
                label, why = "estimate (TDP model)", f"user-set TDP {tdp} W"
            elif getattr(hw, "_is_generic_tdp", False) or cpu_in_tdp_table is False:
                why = f"generic fallback TDP {tdp} W ({model!r} not in codecarbon's CPU TDP table)"
            else:
                label, why = "estimate (TDP model)", f"TDP {tdp} W from codecarbon's table for {model!r}"
            cpu = f"CPU: cpu_load model, {why} x {share}"
        elif kind == "CPU":
            cpu = f"CPU: constant 50 % of {tdp} W TDP, {model!r}"
        elif kind == "GPU":
            devices = list(getattr(getattr(hw, "devices", None), "devices", None) or [])
            if devices:
                apis = "+".join(sorted({"AMD SMI" if "AMD" in type(d).__name__ else "NVML" for d in devices}))
                gpu_counter, gpu = True, f"GPU: {apis} energy counter, {len(devices)} device(s), whole device"
        elif kind == "RAM":
            forced, floor = getattr(hw, "_force_ram_power", None), 3 if getattr(hw, "is_arm_cpu", False) else 10
            ram = (f"RAM: user-set {forced} W" if forced is not None else
                   f"RAM: codecarbon DIMM model on {getattr(hw, '_tracking_mode', 'process')} memory (floor {floor} W)")
    if cpu_counter or gpu_counter:
        label = ("measured (RAPL + NVML)" if cpu_counter and gpu_counter
                 else "measured (RAPL)" if cpu_counter else "measured (NVML)")
    return label, f"{cpu}; {gpu}; {ram}"


@functools.lru_cache(maxsize=8)
def _cpu_in_tdp_table(model: str) -> bool | None:
    try:
        from codecarbon.core import cpu, hardware_cache

        return hardware_cache.get_cached_tdp(cpu)._get_cpu_power_from_registry(model) is not None
    except Exception:  # noqa: BLE001 - unknown is an honest answer
        return None


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:  # skip the notice allow_multiple_runs causes
        text = record.getMessage().strip()
        if text and "Multiple instances" not in text and len(self.messages) < 50:
            self.messages.append(text.splitlines()[0][:200])


class EnergyTracker:
    """``with EnergyTracker() as t: work()`` then ``t.reading``. Reusable one interval at a time."""

    def __init__(self, *, country_iso_code: str = "USA", region: str | None = None,
                 measure_power_secs: float = 1.0):
        try:
            import codecarbon
        except ImportError:
            raise UserError("codecarbon is not installed; pip install 'hf_cost[energy]'", where="energy") from None
        from codecarbon.input import DataSource
        self._cc_version = codecarbon.__version__
        self.country_iso_code = str(country_iso_code).upper()
        if self.country_iso_code not in DataSource().get_global_energy_mix_data():
            raise ConfigError(f"country_iso_code: {country_iso_code!r} is not in codecarbon's offline energy-mix "
                              "table (use a 3-letter ISO code such as 'USA', 'FRA')", where="energy")
        if not (isinstance(measure_power_secs, (int, float)) and 0 < measure_power_secs < float("inf")):
            raise ConfigError(f"measure_power_secs: must be > 0 s, got {measure_power_secs!r}", where="energy")
        self.region, self.measure_power_secs, self._cc = region, float(measure_power_secs), None
        self.reading: EnergyReading | None = None
        self.codecarbon_log: list[str] = []  # codecarbon's warnings/errors in the last interval

    def __enter__(self) -> EnergyTracker:
        if self._cc is not None:
            raise RuntimeError("EnergyTracker is already running; use a second tracker to nest")
        from codecarbon import OfflineEmissionsTracker

        self.reading, self._capture, self._closing, self._window_s = None, _Capture(), False, None
        self._lock, self._tmp = threading.Lock(), tempfile.TemporaryDirectory(prefix="hf_cost_energy_")
        log = logging.getLogger("codecarbon")
        self._saved_log = (log.handlers[:], log.level, log.propagate)
        log.handlers, log.propagate = [self._capture], False
        try:
            self._cc = cc = OfflineEmissionsTracker(
                country_iso_code=self.country_iso_code, region=self.region, cloud_provider=None,
                cloud_region=None, country_2letter_iso_code=None, tracking_mode="process",
                output_methods=[], output_handlers=[], emissions_endpoint=None, api_call_interval=-1,
                electricitymaps_api_token="", allow_multiple_runs=True, log_level="error",
                measure_power_secs=self.measure_power_secs, output_dir=self._tmp.name,
                project_name="hf_cost", force_carbon_intensity_g_co2e_kwh=None, pue=1.0, wue=0.0,
                logging_logger=None, metadata=None)
            log.handlers = [self._capture]  # drop the stderr handler its __init__ added
            log.setLevel(logging.WARNING)
            scheduler, measure = getattr(cc, "_scheduler", None), getattr(cc, "_measure_power_and_energy", None)
            if scheduler is not None and measure is not None:  # codecarbon's __init__ may have failed
                def guarded() -> None:  # the lock lets __exit__ wait out an in-flight sample
                    with self._lock:
                        if not self._closing:
                            measure()
                scheduler.function = guarded
            cc.start()  # codecarbon's start(): hardware set-up, then its one scheduler start
        except BaseException:
            self._cc = None
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        cc, self._cc = self._cc, None
        try:
            schedulers = [s for s in (getattr(cc, n, None) for n in ("_scheduler", "_scheduler_monitor_power")) if s]
            with self._lock:
                self._closing = True
                for s in schedulers:
                    s.stop()
                try:  # final sample, up to now; never mask the with-body's own exception
                    if (started := getattr(cc, "_start_time", None)) is not None:
                        cc._measure_power_and_energy()
                        self._window_s = cc._last_measured_time - started  # what the energy covers
                except Exception as e:  # noqa: BLE001 - codecarbon's stop() still reports what it has
                    self._capture.messages.append(f"final sample failed: {e!r}"[:200])
            cc.stop()
            for s in schedulers:  # PeriodicScheduler._run can re-arm a timer that fired during stop()
                if not s._stopped:
                    s.stop()
            self.reading = self._read(cc)
        finally:
            self._release()

    def _release(self) -> None:
        log, (log.handlers, level, log.propagate) = logging.getLogger("codecarbon"), self._saved_log
        log.setLevel(level)
        self.codecarbon_log = list(self._capture.messages)
        self._tmp.cleanup()

    def _read(self, cc: Any) -> EnergyReading:
        hardware = list(getattr(cc, "_hardware", None) or [])
        cpu = next((h for h in hardware if type(h).__name__ == "CPU"), None)
        model = getattr(cpu, "_model", None)
        in_table = _cpu_in_tdp_table(model) if model and getattr(cpu, "_mode", None) == "cpu_load" else None
        method, sources = classify_hardware(hardware, cpu_in_tdp_table=in_table,
                                            forced_cpu_power=getattr(cc, "_force_cpu_power", None))
        head = f"codecarbon {self._cc_version}, tracking_mode=process, offline; {sources}"
        place = self.country_iso_code + (f"/{self.region.lower()}" if self.region else "")
        data = getattr(cc, "final_emissions_data", None)
        if data is None:
            why = self._capture.messages[0] if self._capture.messages else "no codecarbon message"
            return EnergyReading(None, None, None, None, None, self._window_s or 0.0, method,
                                 f"{head}; codecarbon produced no reading ({why})", place, None)
        dur = float(self._window_s if self._window_s is not None else data.duration)
        parts = (("CPU", data.cpu_energy), ("GPU", data.gpu_energy), ("RAM", data.ram_energy))
        powers = ", ".join(f"{k} {e * 3.6e6 / dur:.2f} W" for k, e in parts) if dur > 0 else "n/a"
        note = "" if data.energy_consumed > 0 else "; codecarbon attributed 0 kWh to this interval"
        intensity, country = self._intensity(cc, regional=True), self._intensity(cc, regional=False)
        scope = ("country value" if not self.region else f"regional value for {self.region.lower()!r}"
                 if intensity is not None and intensity != country
                 else f"country value (no distinct figure for region {self.region.lower()!r})")
        region = f"{place}: {scope} from codecarbon {self._cc_version}'s offline default carbon-intensity table"
        return EnergyReading(float(data.energy_consumed), float(data.cpu_energy), float(data.gpu_energy),
                             float(data.ram_energy), float(data.emissions), dur, method,
                             f"{head}; average {powers}{note}", f"{region} (no grid API)", intensity)

    @staticmethod
    def _intensity(cc: Any, *, regional: bool) -> float | None:
        """codecarbon's own g CO2-eq per kWh: its emissions function applied to 1 kWh."""
        try:
            from codecarbon.core.units import Energy

            fn = cc._emissions.get_private_infra_emissions if regional else cc._emissions.get_country_emissions
            return float(fn(Energy.from_energy(kWh=1.0), cc._geo)) * 1000.0
        except Exception:  # noqa: BLE001 - unknown is an honest answer
            return None


def energy_per(reading: EnergyReading, count: int, per: int = 1000) -> float | None:
    """kWh per ``per`` items (e.g. per 1k inferences); None when energy is unknown or count is 0."""
    if count < 0 or per <= 0:
        raise ValueError(f"count must be >= 0 and per > 0, got count={count}, per={per}")
    if reading.energy_kwh is None or count == 0:
        return None
    return reading.energy_kwh * per / count
