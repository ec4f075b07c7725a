"""Side-by-side speed comparisons: interleaved rounds, paired ratios, a CI on the ratio.

Why: on a shared 2-core machine timings swing by about 35% between runs and about 10% between
rounds of one run (frequency scaling, other tenants, thermal state), so candidates measured in
separate runs, or one after the other, differ by drift as much as by speed. A claim such as
"ONNX int8 is 1.4x faster than torch fp32" needs both measured in one run, in many short
alternating rounds, and reported as a ratio with a confidence interval. Method:

1. Schedule (``round_orders``). Every round measures every subject once. Odd rounds run the
   subjects in the given order, even rounds in reverse (ABBA counterbalancing: A,B,C / C,B,A /
   A,B,C / ...). Over each pair of rounds every subject's mean position is (n - 1) / 2, so a drift
   that is linear within a round adds the same amount to every subject and cancels; use an even
   number of rounds. Drift *between* rounds cancels because ratios are formed within a round.
2. Paired ratios (``RatioSummary.from_rounds``). Given one figure per round for a subject and a
   reference (e.g. each round's p50 latency, or each round's throughput), the per-round ratio is
   r_i = subject_i / reference_i. Ratios are summarised on the log scale, where a 2x speed-up and
   a 2x slow-down are symmetric: the estimate is the geometric mean exp(mean(log r)) and the CI is
   exp(mean(log r) +/- t_{(1+level)/2, k-1} * sd(log r) / sqrt(k)) (one-sample Student t on the
   k paired log ratios, i.e. the paired t interval). With k < 2 rounds there is no CI.
3. Orientation. ``from_rounds`` takes ``higher_is_better`` as a required keyword and always
   reports a *speed-up*: reference/subject for lower-is-better figures (latency),
   subject/reference for higher-is-better ones (throughput). A speed-up > 1 always means the
   subject is better. The unoriented subject/reference geometric mean is kept as
   ``raw_ratio_geomean``.
4. Verdict (``claim``). Against a target such as "at least 1.3x": "meets" when the CI's lower
   bound is >= the target, "misses" when its upper bound is < the target, else "inconclusive"
   (also when there is no CI).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Literal

Verdict = Literal["meets", "misses", "inconclusive"]


def round_orders(names: list[str], rounds: int) -> list[list[str]]:
    """Counterbalanced (ABBA) order of each round: forward in odd rounds, reversed in even ones."""
    if not names:
        raise ValueError("round_orders needs at least one subject name")
    if len(set(names)) != len(names):
        raise ValueError(f"subject names must be unique, got {names}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    return [list(names) if i % 2 == 0 else names[::-1] for i in range(rounds)]


def _checked_figures(label: str, values: list[float]) -> list[float]:
    out = [float(v) for v in values]
    for i, v in enumerate(out):
        if not math.isfinite(v) or v <= 0.0:
            raise ValueError(f"{label}[{i}] must be a positive finite number, got {v!r}")
    return out


def log_ratio_ci(
    ratios: list[float], ci_level: float = 0.95
) -> tuple[float, float | None, float | None]:
    """(geometric mean, CI low, CI high) of positive ratios; the CI is None for fewer than 2."""
    from scipy.special import stdtrit  # Student t quantile (lighter than scipy.stats)

    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"ci_level must be in (0, 1), got {ci_level}")
    logs = [math.log(r) for r in _checked_figures("ratios", ratios)]
    if not logs:
        raise ValueError("no ratios to summarise")
    k = len(logs)
    mean_log = statistics.fmean(logs)
    if k < 2:
        return math.exp(mean_log), None, None
    half_width = stdtrit(k - 1, (1.0 + ci_level) / 2.0) * statistics.stdev(logs) / math.sqrt(k)
    return math.exp(mean_log), math.exp(mean_log - half_width), math.exp(mean_log + half_width)


@dataclass(frozen=True)
class RatioSummary:
    """Speed-up of a subject over a reference from paired rounds; > 1 means the subject is better.

    ``ratio_*``, ``ci_*`` and ``per_round`` are speed-ups (see ``orientation``);
    ``raw_ratio_geomean`` is the geometric mean of subject_i / reference_i as measured.
    """

    ratio_geomean: float
    ci_low: float | None  # None when rounds < 2
    ci_high: float | None
    ci_level: float
    rounds: int
    per_round: tuple[float, ...]
    ratio_median: float
    ratio_min: float
    ratio_max: float
    raw_ratio_geomean: float
    higher_is_better: bool
    orientation: str
    method: str

    @classmethod
    def from_rounds(
        cls,
        subject: list[float],
        reference: list[float],
        *,
        higher_is_better: bool,
        ci_level: float = 0.95,
    ) -> RatioSummary:
        """Summarise per-round figures paired by round (subject[i] and reference[i] together)."""
        if not isinstance(higher_is_better, bool):
            raise TypeError("higher_is_better must be True (throughput) or False (latency)")
        subj = _checked_figures("subject", subject)
        ref = _checked_figures("reference", reference)
        if len(subj) != len(ref):
            raise ValueError(
                f"subject and reference must be paired by round: {len(subj)} vs {len(ref)} rounds"
            )
        if not subj:
            raise ValueError("no rounds to compare")
        if higher_is_better:
            per_round = tuple(s / r for s, r in zip(subj, ref))
            orientation = "speed-up = subject / reference per round (higher is better)"
        else:
            per_round = tuple(r / s for s, r in zip(subj, ref))
            orientation = "speed-up = reference / subject per round (lower is better)"
        geomean, low, high = log_ratio_ci(list(per_round), ci_level)
        k = len(per_round)
        method = (
            f"geometric mean of {k} paired per-round ratios; {ci_level:.0%} CI = "
            f"exp(mean(log r) ± t_{{{(1 + ci_level) / 2:g}, {k - 1}}} · sd(log r) / √{k}) "
            "(Student t on log ratios)"
            if k >= 2
            else "single paired round: ratio of that round; no CI (needs at least 2 rounds)"
        )
        return cls(
            ratio_geomean=geomean,
            ci_low=low,
            ci_high=high,
            ci_level=ci_level,
            rounds=k,
            per_round=per_round,
            ratio_median=statistics.median(per_round),
            ratio_min=min(per_round),
            ratio_max=max(per_round),
            raw_ratio_geomean=geomean if higher_is_better else 1.0 / geomean,
            higher_is_better=higher_is_better,
            orientation=orientation,
            method=method,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["per_round"] = list(self.per_round)
        return out


def claim(summary: RatioSummary, threshold: float) -> Verdict:
    """Verdict on "speed-up is at least ``threshold``x", decided by the CI only."""
    if not (math.isfinite(threshold) and threshold > 0.0):
        raise ValueError(f"threshold must be a positive finite number, got {threshold!r}")
    if summary.ci_low is None or summary.ci_high is None:
        return "inconclusive"
    if summary.ci_low >= threshold:
        return "meets"
    if summary.ci_high < threshold:
        return "misses"
    return "inconclusive"


def describe(summary: RatioSummary, threshold: float | None = None) -> str:
    """E.g. '1.42x (95% CI 1.35–1.50, 12 rounds): meets ≥ 1.30x'."""
    rounds = f"{summary.rounds} round{'s' if summary.rounds != 1 else ''}"
    if summary.ci_low is None or summary.ci_high is None:
        body = f"{summary.ratio_geomean:.2f}x (no CI, {rounds})"
    else:
        body = (
            f"{summary.ratio_geomean:.2f}x ({summary.ci_level:.0%} CI "
            f"{summary.ci_low:.2f}–{summary.ci_high:.2f}, {rounds})"
        )
    if threshold is None:
        return body
    verdict = claim(summary, threshold)
    joiner = " for" if verdict == "inconclusive" else ""
    return f"{body}: {verdict}{joiner} ≥ {threshold:.2f}x"


def compare_to_reference(
    per_round: dict[str, list[float]], reference: str, *, higher_is_better: bool
) -> dict[str, RatioSummary]:
    """Speed-up of every other subject over ``reference``, from each subject's per-round figures."""
    if reference not in per_round:
        raise KeyError(f"reference {reference!r} not among subjects {sorted(per_round)}")
    return {
        name: RatioSummary.from_rounds(
            figures, per_round[reference], higher_is_better=higher_is_better
        )
        for name, figures in per_round.items()
        if name != reference
    }
