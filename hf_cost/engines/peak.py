"""The search for the highest load that stays VALID, one full run per probe (server's find_peak).

From ``start``: while probes are VALID, double; while they are INVALID (the first one was),
halve; once one VALID and one INVALID load bracket the boundary, bisect it until it is within
``precision`` (relative to the VALID end) of the VALID end. Never more than ``max_probes``
probes in all: the search ends there, and says so. A probe's outcome is taken as given; load is
not monotone in a noisy machine, so the answer is the highest VALID load *probed*, not a proof
that every lower load holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PRECISION = 0.05  # bisect until (INVALID - VALID) <= 5 % of the VALID load


@dataclass(frozen=True)
class PeakSearch:
    probed: list[tuple[float, bool]]  # (load, VALID) in the order probed
    peak: float | None  # the highest VALID load probed; None: none was
    bracket: tuple[float | None, float | None]  # (highest VALID, lowest INVALID above it)
    stopped: str  # why the search ended


def find_peak(
    probe: Callable[[float], bool], start: float, max_probes: int, *, precision: float = PRECISION,
    ceiling: float | None = None, floor: float | None = None,
) -> PeakSearch:
    """Probe ``probe(load) -> VALID?`` as described above; ``max_probes`` >= 1. Doubling stops
    before it would pass ``ceiling``, halving before it would go below ``floor``."""
    if max_probes < 1:
        raise ValueError(f"max_probes must be at least 1, got {max_probes}")
    probed: list[tuple[float, bool]] = []

    def run(load: float) -> bool:
        ok = probe(load)
        probed.append((load, ok))
        return ok

    valid, invalid = (start, None) if run(start) else (None, start)
    stopped = ""
    while not stopped:
        if len(probed) >= max_probes:
            stopped = f"the probe budget ({max_probes} probes) ran out"
        elif invalid is None and ceiling is not None and valid * 2 > ceiling:
            stopped = f"doubling again would pass the ceiling of {ceiling:g}"
        elif invalid is None:
            if run(valid * 2):
                valid *= 2
            else:
                invalid = valid * 2
        elif valid is None and floor is not None and invalid / 2 < floor:
            stopped = f"halving again would go below the floor of {floor:g}"
        elif valid is None:
            if run(invalid / 2):
                valid = invalid / 2
            else:
                invalid /= 2
        elif invalid - valid <= precision * valid:
            stopped = f"bracketed within {precision:.0%}"
        else:
            mid = (valid + invalid) / 2
            if run(mid):
                valid = mid
            else:
                invalid = mid
    return PeakSearch(probed=probed, peak=valid, bracket=(valid, invalid), stopped=stopped)
