"""Reading a results.json hf_cost did not just write: the one loader `card` and `select` share.

A results file is input like any other: it may be a FIFO or a device, hold NaN or 1e308 where
an accuracy belongs, lack a candidate's `parameters`, be nested thousands of levels deep, or come
from a newer hf_cost. Every such file is refused here in one line naming the file and, where
there is one, the key path, before any figure is read. What passes is a validated `RunResult`
(report/schema.py): every figure in it has the type, and lies in the range (core/metrics.py and
friends: accuracies in [0, 1], latencies and sizes >= 0), the schema states, and every ok entry's
raw samples are what its kind's readers recompute from (`KindMetrics.check_raw`).

Files of schema 3.0 and 3.1 are read by upgrading them to 4.0 first (`upgrade_3x`): the 4.0
changes are names and nulls only (fine_tune/distill `metrics.scoring.runs` is `run_count`, a
failed step's `metrics: {}` and a step's `memory: {}` are null). An error in an upgraded file
names the key as the file wrote it and says which schema it was read as. Older majors are
refused (rerun the scenario), and so are newer versions and 3.x minors no hf_cost wrote.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hf_cost.errors import UserError
from hf_cost.report.schema import SCHEMA_VERSION, RunResult
from hf_cost.safe_files import LIMITS, read_regular_text

# Far above any figure hf_cost writes (a training run's FLOPs are below 1e26), far below where
# arithmetic on it overflows a float (1e308): the numbers a reader may safely scale and compare.
MAX_MAGNITUDE = 1e30
MAX_DIGITS = 30
MAX_DEPTH = 64  # the default run's results.json is 9 levels deep; pydantic gives up near 256
_VERSION = re.compile(r"(\d{1,6})\.(\d{1,6})")
UPGRADABLE = ("3.0", "3.1")  # older schemas read by upgrading them (upgrade_3x)


class UnsupportedResults(UserError):
    """A results file hf_cost cannot read: malformed, implausible or of another schema."""


class _Refused:
    """What the JSON parser puts where a number it refuses stood, so the walk can name the key."""

    def __init__(self, text: str, why: str) -> None:
        self.text, self.why = text, why


def load_results_file(path: str | Path) -> RunResult:
    """The validated results.json at `path` (3.x upgraded to 4.0); UnsupportedResults otherwise."""
    where = str(path)
    text = read_regular_text(path, what="results file", limit=LIMITS["results"])
    data = _parse(text, where)
    given = _check_version(data, where)
    renamed: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    if given in UPGRADABLE:
        data, renamed = upgrade_3x(data, where)
    try:
        result = RunResult.model_validate(data)
    except ValidationError as exc:
        read_as = f" (schema {given}, read as {SCHEMA_VERSION})" if given in UPGRADABLE else ""
        raise UnsupportedResults(f"not a valid hf_cost results file: {_one_line(exc, renamed)}{read_as}",
                                 where=where) from None
    for i, entry in enumerate(result.scenarios):
        problem = _unusable(entry)
        if problem:
            raise UnsupportedResults(f"scenarios[{i}].{problem}", where=where)
    return result


def upgrade_3x(data: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[tuple[Any, ...], tuple[Any, ...]]]:
    """A schema 3.0/3.1 results dict as 4.0 (a new dict; `data` is not changed), and the key
    paths it renamed (new -> as the file wrote it), so an error can name the key the file has.

    It renames and nulls only, and refuses a renamed count that is not an integer (JSON's
    `true` or `"3"` would pass validation's lax int); what else it cannot make valid,
    validation refuses.
    """
    out = {**data, "schema_version": SCHEMA_VERSION}
    renamed: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    scenarios = data.get("scenarios")
    if not isinstance(scenarios, list):
        return out, renamed
    upgraded = []
    for i, entry in enumerate(scenarios):
        if isinstance(entry, dict):
            entry = dict(entry)
            if entry.get("memory") == {}:
                entry["memory"] = None
            if entry.get("status") == "failed" and entry.get("metrics") == {}:
                entry["metrics"] = None
            metrics = entry.get("metrics")
            scoring = metrics.get("scoring") if isinstance(metrics, dict) else None
            if isinstance(scoring, dict) and "runs" in scoring and "run_count" not in scoring:
                runs = scoring["runs"]
                if isinstance(runs, bool) or not isinstance(runs, int):
                    raise UnsupportedResults(f"scenarios[{i}].metrics.scoring.runs: {_clip(json.dumps(runs))} is not "
                                             f"a number of runs (an integer; schema {data['schema_version']})",
                                             where=where)
                entry["metrics"] = {**metrics, "scoring": {("run_count" if k == "runs" else k): v
                                                           for k, v in scoring.items()}}
                at = ("scenarios", i, "metrics", "scoring")
                renamed[(*at, "run_count")] = (*at, "runs")
        upgraded.append(entry)
    out["scenarios"] = upgraded
    return out, renamed


def _unusable(entry: Any) -> str | None:
    """Why an ok entry cannot be read: no figures, or raw samples its kind's readers cannot use."""
    if not entry.ok:
        return None
    if entry.metrics is None:
        return "metrics: an ok step needs its figures (null is only for a failed step)"
    problem = entry.metrics.check_raw(entry.raw)
    return None if problem is None else f"raw.{_clip(problem, 300)}"


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text, parse_constant=lambda c: _Refused(c, "is not a number JSON allows"),
                          parse_int=_int, parse_float=_float)
    except RecursionError:
        raise UnsupportedResults(f"nested deeper than {MAX_DEPTH} levels", where=where) from None
    except ValueError as exc:  # json.JSONDecodeError
        msg = getattr(exc, "msg", str(exc))
        at = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
        raise UnsupportedResults(f"not JSON: {_clip(msg)}{at}", where=where) from None
    _walk(data, where)
    if not isinstance(data, dict):
        raise UnsupportedResults(f"not an hf_cost results.json (the top level is a {type(data).__name__}, "
                                 "not an object)", where=where)
    return data


def _int(s: str) -> Any:
    digits = len(s.lstrip("-"))
    return int(s) if digits <= MAX_DIGITS else _Refused(s, f"has {digits} digits, more than the {MAX_DIGITS} allowed")


def _float(s: str) -> Any:
    x = float(s)
    return x if abs(x) <= MAX_MAGNITUDE else _Refused(s, "is beyond 1e30 in size, the most a results file may hold")


def _walk(data: Any, where: str) -> None:
    """Refuse the first refused number (by key path) or nesting deeper than MAX_DEPTH; no recursion."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, _Refused):
            raise UnsupportedResults(f"{_clip(key_path(loc), 200) or 'the file'}: {_clip(node.text)} {node.why}",
                                     where=where)
        if len(loc) > MAX_DEPTH:
            raise UnsupportedResults(f"{_clip(key_path(loc[:8]), 200)}...: nested deeper than {MAX_DEPTH} levels",
                                     where=where)
        if isinstance(node, dict):
            stack.extend((v, (*loc, k)) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, (*loc, i)) for i, v in reversed(list(enumerate(node))))


def _check_version(data: dict[str, Any], where: str) -> str:
    """The file's schema_version, when this hf_cost reads it (as it is, or upgraded: UPGRADABLE)."""
    ours = _VERSION.fullmatch(SCHEMA_VERSION)
    assert ours is not None
    if "schema_version" not in data:
        raise UnsupportedResults("not an hf_cost results.json (no 'schema_version')", where=where)
    given = data["schema_version"]
    found = _VERSION.fullmatch(given) if isinstance(given, str) else None
    if found is None:
        raise UnsupportedResults(f"schema_version: {_clip(json.dumps(given))} is not a \"MAJOR.MINOR\" string "
                                 f"(this hf_cost writes \"{SCHEMA_VERSION}\")", where=where)
    (major, minor), (our_major, our_minor) = map(int, found.groups()), map(int, ours.groups())
    if (major, minor) > (our_major, our_minor):
        raise UnsupportedResults(f"written by a newer hf_cost (schema {given}); this one reads up to "
                                 f"{SCHEMA_VERSION}", where=where)
    if major == our_major or given in UPGRADABLE:
        return given
    current = SCHEMA_VERSION if our_minor == 0 else f"{our_major}.0 to {SCHEMA_VERSION}"
    readable = f"{', '.join(UPGRADABLE)} (upgraded) and {current}"
    if str(major) in {v.split(".")[0] for v in UPGRADABLE}:
        raise UnsupportedResults(f"schema {given} is no version hf_cost wrote; this one reads schema {readable}",
                                 where=where)
    raise UnsupportedResults(f"written by an older hf_cost (schema {given}); this one reads schema {readable}: "
                             "rerun the scenario", where=where)


def _one_line(exc: ValidationError, renamed: dict[tuple[Any, ...], tuple[Any, ...]] | None = None) -> str:
    """The first error as ``key.path: message (got X)``, and how many more there are; a key an
    upgrade renamed (`renamed`: new path -> the file's) is named as the file wrote it."""
    from hf_cost.core.results import ScenarioResult

    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = tuple(err["loc"])
    # A scenario's typed metrics are validated inside ScenarioResult's own validator, so pydantic
    # reports their errors without the `metrics` key: put it back where the user wrote it.
    if len(loc) > 2 and loc[0] == "scenarios" and loc[2] not in ScenarioResult.model_fields:
        loc = (*loc[:2], "metrics", *loc[2:])
    for new, old in (renamed or {}).items():
        if loc[: len(new)] == new:
            loc = (*old, *loc[len(new):])
    line = f"{key_path(loc)}: {err['msg']}" if loc else err["msg"]
    value = err.get("input")
    if err["type"] != "missing" and (value is None or isinstance(value, (int, float, str, bool))):
        line += f" (got {_clip(json.dumps(value))})"
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more)"
    return _clip(line, 400)


def key_path(loc: tuple[Any, ...]) -> str:
    """('candidates', 'base', 'parameters') -> 'candidates.base.parameters'; indices as [i]."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _clip(text: str, limit: int = 80) -> str:
    """One line, at most `limit` characters: a file's own text never breaks the error line."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
