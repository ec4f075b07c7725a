"""One row per scenario result: the figures both report.md and the console table show.

Each row carries its n, spread and validity, so no printed number stands alone. The cells come
from the kind's own metrics model (`summary_cells`), so this module knows no kind. A result
measured while other processes used the CPU (its `machine_load.busy`) says so in its validity
cell ("VALID · machine busy"); the figure itself is in report.md's "Machine load" note and under
the console table (`busy_warnings`).
"""

from __future__ import annotations

from hf_cost.core.results import ScenarioResult

COLUMNS = ("scenario", "n", "headline", "spread", "validity", "peak RSS Δ")


def summary_row(r: ScenarioResult) -> dict[str, str]:
    if not r.ok:
        return {"scenario": r.label, "n": "—", "headline": f"FAILED: {r.error}", "spread": "—",
                "validity": "FAILED", "peak RSS Δ": "—"}
    cells = r.metrics.summary_cells(r)
    validity = "—"
    if r.validity is not None:
        validity = r.validity.result + (" (reduced)" if r.validity.reduced_settings else "")
    if r.machine_load is not None and r.machine_load.busy:  # measured while others used the CPU
        validity = "machine busy" if validity == "—" else f"{validity} · machine busy"
    mem = None if r.memory is None else r.memory.peak_rss_delta_mib
    return {
        "scenario": r.label,
        "n": cells.n,
        "headline": cells.headline,
        "spread": cells.spread,
        "validity": validity,
        "peak RSS Δ": "—" if mem is None else f"{mem:.0f} MiB",
    }


def busy_warnings(results: list[ScenarioResult]) -> list[str]:
    """'LABEL: machine busy: 1.6 cores used by other processes, steal 3 %' per busy result."""
    out = []
    for r in results:
        warning = None if r.machine_load is None else r.machine_load.warning()
        if warning is not None:
            out.append(f"{r.label}: {warning}")
    return out
