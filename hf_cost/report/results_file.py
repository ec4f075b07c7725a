"""Reading a results.json hf_cost did not just write: the one loader `card` and `select` share.

A results file is input like any other: it may be a FIFO or a device, hold NaN or 1e308 where
an accuracy belongs, lack a candidate's `parameters`, be nested thousands of levels deep, or come
from a newer hf_cost. Every such file is refused here in one line naming the file and, where
there is one, the key path, before any figure is read. What passes is the schema's own dump
(`RunResult.model_dump(mode="json")`), so readers keep using plain dicts and every figure in
them has the type, and lies in the range (report/metrics.py and friends: accuracies in [0, 1],
latencies and sizes >= 0), the schema states.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hf_cost.errors import UserError
from hf_cost.safe_files import LIMITS, read_regular_text

# Far above any figure hf_cost writes (a training run's FLOPs are below 1e26), far below where
# arithmetic on it overflows a float (1e308): the numbers a reader may safely scale and compare.
MAX_MAGNITUDE = 1e30
MAX_DIGITS = 30
MAX_DEPTH = 64  # the default run's results.json is 9 levels deep; pydantic gives up near 256
_VERSION = re.compile(r"(\d{1,6})\.(\d{1,6})")


class UnsupportedResults(UserError):
    """A results file hf_cost cannot read: malformed, implausible or of another schema."""


class _Refused:
    """What the JSON parser puts where a number it refuses stood, so the walk can name the key."""

    def __init__(self, text: str, why: str) -> None:
        self.text, self.why = text, why


def load_results_file(path: str | Path) -> dict[str, Any]:
    """The validated results.json at `path`, as the schema dumps it; UnsupportedResults otherwise."""
    from hf_cost.report.schema import RunResult

    where = str(path)
    text = read_regular_text(path, what="results file", limit=LIMITS["results"])
    data = _parse(text, where)
    _check_version(data, where)
    try:
        result = RunResult.model_validate(data)
    except ValidationError as exc:
        raise UnsupportedResults(f"not a valid hf_cost results file: {_one_line(exc)}", where=where) from None
    out = result.model_dump(mode="json")
    problem = _implausible(out)
    if problem:
        raise UnsupportedResults(problem, where=where)
    return out


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


def _check_version(data: dict[str, Any], where: str) -> None:
    from hf_cost.report.schema import SCHEMA_VERSION

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
    if major < our_major:
        raise UnsupportedResults(f"written by an older hf_cost (schema {given}); this one reads schema "
                                 f"{our_major}.0 to {SCHEMA_VERSION}: rerun the scenario", where=where)


def _implausible(data: dict[str, Any]) -> str | None:
    """What the schema leaves untyped but readers use: a measured stream's raw latencies."""
    for i, s in enumerate(data["scenarios"]):
        if s["kind"] != "single_stream" or s["status"] != "ok":
            continue
        lat = s["raw"].get("latencies_ms")
        loc = f"scenarios[{i}].raw.latencies_ms"
        if not isinstance(lat, list) or not lat:
            return f"{loc}: a measured single_stream needs its raw latencies (a non-empty list)"
        bad = next((j for j, x in enumerate(lat) if isinstance(x, bool) or not isinstance(x, (int, float))
                    or not math.isfinite(x) or x < 0), None)
        if bad is not None:
            return f"{loc}[{bad}]: {_clip(json.dumps(lat[bad]))} is not a latency (a number >= 0)"
    return None


def _one_line(exc: ValidationError) -> str:
    """The first error as ``key.path: message (got X)``, and how many more there are."""
    from hf_cost.report.schema import ScenarioResult

    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = tuple(err["loc"])
    # A scenario's typed metrics are validated inside ScenarioResult's own validator, so pydantic
    # reports their errors without the `metrics` key: put it back where the user wrote it.
    if len(loc) > 2 and loc[0] == "scenarios" and loc[2] not in ScenarioResult.model_fields:
        loc = (*loc[:2], "metrics", *loc[2:])
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
