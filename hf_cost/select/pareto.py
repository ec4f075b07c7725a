"""Pick a checkpoint from measured candidates: Pareto frontier, constraints, CI-aware ranking.

The frontier is computed on point values (a dominates b when at least as good on every
objective and strictly better on one). The recommendation is stricter than "best point value":
candidates whose CIs on the deciding metric overlap the best's are a tie, broken only by the
next objective (same rule, among the tied); a tie that survives every objective is reported as
a tie with no winner. Every other candidate gets a one-sentence verdict saying why it lost.
A candidate with a failed step is listed with that step and its reason, never ranked: its
figures are incomplete, so it is on no frontier and never recommended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hf_cost.config.selection import Objective, SelectionSpec, fmt
from hf_cost.select.constraints import check, known, shortfall, violation

_UNITS = {"ms": "ms", "s": "s", "mib": "MiB", "gib": "GiB", "mb": "MB", "gb": "GB", "usd": "USD", "pct": "%"}


@dataclass
class Measure:
    value: float
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def has_ci(self) -> bool:
        return known(self.ci_low) and known(self.ci_high)


@dataclass
class Point:
    name: str
    metrics: dict[str, Measure]
    source: str = ""  # the results file it came from
    environment: str = ""  # hardware summary
    failed: str | None = None  # "in step S: reason" when a step building or measuring it failed

    def measure(self, metric: str) -> Measure | None:
        """The measurement, or None when absent or not finite (treated as not measured)."""
        m = self.metrics.get(metric)
        return m if m is not None and known(m.value) else None


@dataclass
class Selection:
    frontier: list[str]
    feasible: list[str]
    recommended: str | None
    ties: list[str]  # tied with the recommended on the deciding metric; with no winner: all tied
    reason: str
    verdicts: dict[str, str]
    checks: dict[str, list[dict[str, Any]]]
    mixed_hardware: bool
    environments: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # candidates left out of the ranking: a step failed


def dominates(a: Point, b: Point, objectives: list[Objective]) -> bool:
    """a at least as good as b on every objective (point values) and strictly better on one."""
    strictly = False
    for obj in objectives:
        va, vb = a.measure(obj.metric).value, b.measure(obj.metric).value  # type: ignore[union-attr]
        if _better(vb, va, obj):
            return False
        strictly = strictly or _better(va, vb, obj)
    return strictly


def pareto_frontier(points: list[Point], objectives: list[Objective]) -> list[str]:
    """Names of the points no other point dominates (points missing an objective are left out)."""
    ranked = [p for p in points if all(p.measure(o.metric) for o in objectives)]
    return [p.name for p in ranked if not any(dominates(q, p, objectives) for q in ranked if q is not p)]


def select(points: list[Point], spec: SelectionSpec) -> Selection:
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"point names must be unique (qualify them by source): {dupes}")
    everyone, points = points, [p for p in points if not p.failed]
    envs = sorted({p.environment for p in everyone if p.environment})
    objs, cons = spec.objectives, spec.constraints
    checks = {p.name: [check(c, p.metrics.get(c.metric)) for c in cons] for p in points}
    feasible = [p for p in points if all(r["ok"] for r in checks[p.name])]
    missing = {p.name: [o.metric for o in objs if p.measure(o.metric) is None] for p in points}
    candidates = [p for p in feasible if not missing[p.name]]

    tied, lost_at, first_tied = list(candidates), {}, []
    for k, obj in enumerate(objs):
        if len(tied) < 2:
            break
        best = _best(tied, obj)
        keep = [p for p in tied if p is best or _overlap(p, best, obj.metric)]
        lost_at.update({p.name: (k, best) for p in tied if p not in keep})
        tied = keep
        first_tied = first_tied or keep
    winner = tied[0] if len(tied) == 1 else None
    ties = [p.name for p in first_tied if p is not winner]

    verdicts = {}
    for p in everyone:
        if p is winner:
            continue
        if p.failed:
            verdicts[p.name] = f"FAILED {p.failed}"
            continue
        fails = [violation(c, r) for c, r in zip(cons, checks[p.name]) if not r["ok"]]
        said = {c.metric for c, r in zip(cons, checks[p.name]) if r["compared"] is None}
        unranked = [f"{m} not measured" for m in missing[p.name] if m not in said]
        if fails:
            verdicts[p.name] = "; ".join(fails + unranked)
        elif unranked:
            verdicts[p.name] = f"feasible, but {' and '.join(missing[p.name])} not measured, so it cannot be ranked"
        elif p.name in lost_at:
            verdicts[p.name] = _lost(p, *lost_at[p.name], objs)
        else:
            others = _names([q.name for q in tied if q is not p])
            verdicts[p.name] = f"tied with {others} on {_names([o.metric for o in objs])}; no winner"

    reason = _reason(points, candidates, feasible, winner, tied, lost_at, checks, missing, spec)
    failed = [p.name for p in everyone if p.failed]
    if failed:
        reason = (f"no candidate can be ranked: a step failed for {_names(failed)}" if not points
                  else f"{reason}; not ranked, a step failed: {_names(failed)}")
    if len(envs) > 1:
        reason += f"; note: measured on {len(envs)} different environments ({' | '.join(envs)}), so hardware-bound metrics are not like for like"
    return Selection(
        frontier=pareto_frontier(points, objs),
        feasible=[p.name for p in feasible],
        recommended=winner.name if winner else None,
        ties=ties,
        reason=reason,
        verdicts=verdicts,
        checks=checks,
        mixed_hardware=len(envs) > 1,
        environments=envs,
        failed=failed,
    )


def _reason(points, candidates, feasible, winner, tied, lost_at, checks, missing, spec) -> str:
    objs, n = spec.objectives, len(spec.constraints)
    if not points:
        return "no candidates given"
    if not feasible:
        cons = spec.constraints

        def badness(p: Point) -> tuple[int, int, float]:
            res = checks[p.name]
            bad = [(c, r) for c, r in zip(cons, res) if not r["ok"]]
            unmeasured = sum(r["compared"] is None for _, r in bad)
            return len(bad), unmeasured, sum(shortfall(c, r) for c, r in bad if r["compared"] is not None)

        close = min(points, key=badness)
        fails = [violation(c, r) for c, r in zip(cons, checks[close.name]) if not r["ok"]]
        return f"no candidate meets every constraint; closest is {close.name} ({len(fails)} of {n} failed: {'; '.join(fails)})"
    if not candidates:
        gaps = "; ".join(f"{p.name}: {' and '.join(missing[p.name])} not measured" for p in feasible)
        return f"no feasible candidate has every objective measured ({gaps})"
    meets = f"meets all {n} constraints" if n > 1 else ("meets the 1 constraint" if n == 1 else "")
    if winner is None:
        m0 = objs[0].metric
        vals = " vs ".join(_show(p, m0) for p in tied)
        rest = "".join(f" and on {o.metric}" for o in objs[1:])
        return f"tie between {_names([p.name for p in tied])} on {m0} ({vals}){rest}; no winner"
    head = f"{winner.name}: " + (f"{meets} and " if meets else "")
    if len(candidates) == 1:
        only = "feasible candidate" if meets else "candidate"
        return head + f"is the only {only} with every objective measured"
    k = max(stage for stage, _ in lost_at.values())  # the stage that left the winner alone
    obj = objs[k]
    runner = _best([p for p in candidates if lost_at.get(p.name, (-1,))[0] == k], obj)
    word = "lowest" if obj.direction == "min" else "highest"
    decided = f"({_show(winner, obj.metric, unit=True)} vs {_show(runner, obj.metric)} for {runner.name}, {_note(winner, runner, obj.metric)})"
    if k == 0:
        return head + f"has the {word} {obj.metric} {decided}"
    m0 = objs[0].metric
    tied_with = _names([p.name for p in candidates if lost_at.get(p.name, (0,))[0] == k])
    return (
        head + f"is tied on {_names([o.metric for o in objs[:k]])} with {tied_with} "
        f"({_show(winner, m0, unit=True)} vs {_show(runner, m0)} for {runner.name}, CIs overlap) "
        f"and wins the tie-break with the {word} {obj.metric} {decided}"
    )


def _lost(p: Point, k: int, best: Point, objs: list[Objective]) -> str:
    obj = objs[k]
    cmp = f"({_show(p, obj.metric, unit=True)} vs {_show(best, obj.metric)} for {best.name}, {_note(p, best, obj.metric)})"
    if k == 0:
        if dominates(best, p, objs):
            worse = [o.metric for o in objs if _better(best.measure(o.metric).value, p.measure(o.metric).value, o)]
            return f"dominated by {best.name} (worse on {_names(worse)}; on {obj.metric} {cmp[1:]}"
        word = "higher" if obj.direction == "min" else "lower"
        return f"feasible, but {word} {obj.metric} than {best.name} {cmp}"
    earlier = [o.metric for o in objs[:k]]
    if all(_overlap(p, best, m) for m in earlier):
        return f"tied with {best.name} on {_names(earlier)}, lost on the tie-break {obj.metric} {cmp}"
    return f"tied for best on {_names(earlier)}, lost on the tie-break {obj.metric} to {best.name} {cmp}"


def _better(a: float, b: float, obj: Objective) -> bool:
    return a < b if obj.direction == "min" else a > b


def _best(points: list[Point], obj: Objective) -> Point:
    """The best point value; among equal values, the first given."""
    best = points[0]
    for p in points[1:]:
        if _better(p.measure(obj.metric).value, best.measure(obj.metric).value, obj):  # type: ignore[union-attr]
            best = p
    return best


def _overlap(a: Point, b: Point, metric: str) -> bool:
    """A tie: CIs overlap when both are known; otherwise only equal values tie."""
    ma, mb = a.measure(metric), b.measure(metric)
    if ma.has_ci and mb.has_ci:  # type: ignore[union-attr]
        return ma.ci_low <= mb.ci_high and mb.ci_low <= ma.ci_high  # type: ignore[operator,union-attr]
    return ma.value == mb.value  # type: ignore[union-attr]


def _note(a: Point, b: Point, metric: str) -> str:
    if _overlap(a, b, metric):
        return "CIs overlap" if a.measure(metric).has_ci and b.measure(metric).has_ci else "equal values"  # type: ignore[union-attr]
    no_ci = [p.name for p in (a, b) if not p.measure(metric).has_ci]  # type: ignore[union-attr]
    return f"no CI for {_names(no_ci)}, so point values compared" if no_ci else "CIs do not overlap"


def _show(p: Point, metric: str, unit: bool = False) -> str:
    """``12.4 [11.9, 13.0] ms``: value, CI when known, unit from the metric's suffix."""
    m = p.measure(metric)
    text = fmt(m.value) + (f" [{fmt(m.ci_low)}, {fmt(m.ci_high)}]" if m.has_ci else "")  # type: ignore[union-attr]
    _, underscore, last = metric.rpartition("_")
    suffix = _UNITS.get(last.lower()) if underscore else None
    return f"{text} {suffix}" if unit and suffix else text


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
