"""Property-based tests (Hypothesis) for the scenario YAML loader, hf_cost.config.loader (issue 14).

Properties: JSON-like documents dumped by yaml.safe_dump read back through load_yaml exactly as
yaml.safe_load reads them; no text or bytes make load_yaml raise anything but ConfigError, or take
long; duplicate keys (equal as Python dict keys) are always refused; nesting deeper than MAX_DEPTH
is always refused (and nesting up to it is read); alias bombs are refused quickly; deep_merge lets
the override win, keeps base-only keys and has {} as its identity.

Every file is written as bytes into one scratch folder made here, on tmpfs where there is one (no
pytest tmp_path: Hypothesis refuses function-scoped fixtures, and a folder per example costs more
than the load); include values point only at missing files, the file itself or directories, never
at devices.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_cost.config.loader import (
    MAX_DEPTH,
    MAX_NODES,
    PATH_KEYS,
    GuardedLoader,
    deep_merge,
    load_yaml,
)
from hf_cost.errors import ConfigError

SLOW = 2.0  # seconds one load may take, refusals included
PROPS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Keys load_yaml treats specially: PATH_KEYS values are made absolute, a top-level include is read.
SPECIAL_KEYS = PATH_KEYS | {"include"}


def _scratch() -> Path:
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="hf_cost-loader-props-",
                                   dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder.resolve()


SCRATCH = _scratch()


def load_text(data: bytes | str) -> tuple[Any, float, Path]:
    """(what load_yaml returned or the exception it raised, seconds taken, the file's directory)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path = SCRATCH / "scenario.yaml"
    path.write_bytes(raw)
    started = time.perf_counter()
    try:
        result: Any = load_yaml(path)
    except Exception as exc:  # noqa: BLE001 - the property is about which exceptions escape
        result = exc
    return result, time.perf_counter() - started, SCRATCH


def only_config_errors(data: bytes | str) -> Any:
    result, took, _ = load_text(data)
    assert took < SLOW, f"load_yaml took {took:.2f} s"
    if isinstance(result, BaseException):
        assert isinstance(result, ConfigError), f"{type(result).__name__} escaped: {result!r}"
        assert "\n" not in str(result), f"multi-line message: {str(result)!r}"
    else:
        assert isinstance(result, dict), result
    return result


def depth(value: Any) -> int:
    """Nested collections, counted as the loader counts them ({'k': []} is 2 deep)."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


# --- strategies -----------------------------------------------------------------------------

keys = st.text(max_size=12).filter(lambda k: k not in SPECIAL_KEYS)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=24)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
documents = st.dictionaries(keys, values, max_size=5)

# Fragments of YAML-ish text: anchors, aliases, flow collections, tags, tabs, NULs, BOMs,
# directives, path keys with odd values and includes of files that cannot be read.
_YAML_KEYS = ["a", "b", "key", "'q'", '"dq"', "? a", "<<", "&x k", "*x", "1", "0x1", "yes", "~", "- a",
              *sorted(PATH_KEYS), "include", "[a, b]", "{a: 1}", "!!str k", "\t", "a\tb", ""]
_YAML_VALUES = [
    "1", "-0", "0x1f", "0o17", "017", "1_000", "1e400", "-.inf", ".nan", "1.5", "yes", "No", "~", "null",
    "2023-02-30", "2001-12-14t21:59:43.10-05:00", "99999-01-01", "!!binary aGk=", "!!binary ???",
    "!!int abc", "!!float x", "!!timestamp x", "!!bool maybe", "!!python/object:os.system x",
    "!!python/name:os.system", "!<tag:yaml.org,2002:str> x", "!local x", "!!set {a, b}", "!!omap [a: 1]",
    "!!pairs [a: 1, a: 2]", "*x", "*missing", "&x [1, *x]", "&x {a: *x}", "&x", "[", "]", "{", "}",
    "[1, [2, *x]]", "{a: 1, a: 2}", "{? a}", "[a: 1]", '"a\\0b"', '"\\x00"', '"\\ud800"', "'unterminated",
    '"unterminated', "|", ">-", "|2", "- ", "--- ", "...", "%YAML 1.1", "%TAG ! tag:x,", "%FOO", "\t",
    "\x00", "\ufeff", "\x85", "\u2028", "#comment", "a: b: c", "~nosuchuser_hfcost/x", "~/x", "/abs",
    "rel/x", "s3://b/k", "", ".", "/", "scenario.yaml", "missing.yaml", "[missing.yaml, 1]",
    "[~nosuchuser_hfcost]", "{train: '~nosuchuser_hfcost/x'}", '{train: "x\\0"}',
]
_INDENTS = ["", " ", "  ", "    ", "\t", " \t"]
_BREAKS = ["\n", "\r\n", "\r"]


@st.composite
def yamlish(draw: st.DrawFn) -> str:
    lines = []
    if draw(st.booleans()):  # mostly well-formed: top-level `key: value` lines
        for _ in range(draw(st.integers(1, 3))):
            lines.append(f"{draw(st.sampled_from(_YAML_KEYS))}: {draw(st.sampled_from(_YAML_VALUES))}")
    for _ in range(draw(st.integers(0, 8) if not lines else st.integers(0, 2))):
        indent = draw(st.sampled_from(_INDENTS))
        shape = draw(st.integers(0, 4))
        key, value = draw(st.sampled_from(_YAML_KEYS)), draw(st.sampled_from(_YAML_VALUES))
        if shape == 0:
            lines.append(f"{indent}{key}: {value}")
        elif shape == 1:
            lines.append(f"{indent}- {value}")
        elif shape == 2:
            lines.append(f"{indent}{key}:")
        elif shape == 3:
            lines.append(f"{indent}{value}")
        else:
            lines.append(f"{indent}{key}: &{draw(st.sampled_from('xyz'))} {value}")
    text = draw(st.sampled_from(_BREAKS)).join(lines)
    if draw(st.booleans()):
        text += draw(st.sampled_from(_BREAKS))
    if draw(st.integers(0, 5)) == 0:
        text = "\ufeff" + text
    return text


# --- round trip -----------------------------------------------------------------------------


@PROPS
@given(
    doc=documents,
    flow=st.sampled_from([None, True, False]),
    allow_unicode=st.booleans(),
    width=st.sampled_from([20, 80, 10**6]),
    sort_keys=st.booleans(),
)
def test_safe_dump_round_trips(doc: dict, flow: bool | None, allow_unicode: bool, width: int, sort_keys: bool) -> None:
    text = yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=allow_unicode, width=width,
                          sort_keys=sort_keys)
    assert depth(doc) <= MAX_DEPTH  # the strategy stays well inside the limits
    result, took, _ = load_text(text)
    assert took < SLOW
    assert not isinstance(result, BaseException), f"{type(result).__name__}: {result}\n{text}"
    assert result == yaml.safe_load(text)
    # Not `== doc`: PyYAML itself does not round-trip every string ({'\x85': None} dumped with
    # allow_unicode=True reads back as {' ': None}); the oracle is yaml.safe_load.


@PROPS
@given(
    rel=st.lists(st.from_regex(r"[a-z0-9_][a-z0-9_.-]{0,7}", fullmatch=True), min_size=1, max_size=3).map("/".join),
    key=st.sampled_from(sorted(PATH_KEYS)),
    shape=st.sampled_from(["str", "list", "dict", "nested"]),
    other=st.sampled_from(["/abs/x", "s3://bucket/key", "", 3, None, True]),
)
def test_path_keys_are_made_absolute(rel: str, key: str, shape: str, other: Any) -> None:
    value: Any = {"str": rel, "list": [rel, other], "dict": {"train": rel, "test": other}}.get(shape, rel)
    doc = {"outer": {"inner": [{key: value}]}} if shape == "nested" else {key: value}
    result, took, base = load_text(yaml.safe_dump(doc))
    assert took < SLOW
    assert not isinstance(result, BaseException), repr(result)
    absolute = str((base / rel).resolve())
    got = result["outer"]["inner"][0][key] if shape == "nested" else result[key]
    kept = other if not isinstance(other, str) or not other or "://" in other or other.startswith("/") else None
    expected = {"str": absolute, "nested": absolute, "list": [absolute, kept],
                "dict": {"train": absolute, "test": kept}}[shape]
    assert got == expected


# --- hostile input --------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_config_error(text: str) -> None:
    only_config_errors(text)


@settings(max_examples=150, deadline=None)
@given(yamlish())
def test_yamlish_text_raises_only_config_error(text: str) -> None:
    only_config_errors(text)


# Double-quoted YAML strings for path-valued keys and include: a user's home that does not exist,
# NUL, a lone surrogate, an over-long name, a file used as a directory, the file itself.
_ODD_PATHS = ['"~nosuchuser_hfcost/x"', '"~nosuchuser_hfcost"', '"a\\0b"', '"\\0"', '"\\ud800"', '"x\\udfff/y"',
              '"' + "x" * 300 + '"', '"' + "d/" * 3000 + '"', '"scenario.yaml/x"', '"scenario.yaml"', '"~"',
              '"."', '""', '"/"', '"//"', '"/tmp/../"', '"s3://b/k"']
path_values = st.sampled_from(_ODD_PATHS) | st.text(max_size=40).map(lambda t: json.dumps(t, ensure_ascii=False))


@settings(max_examples=120, deadline=None)
@given(key=st.sampled_from(sorted(SPECIAL_KEYS)), value=path_values, shape=st.sampled_from(["scalar", "list", "dict"]))
def test_path_and_include_values_raise_only_config_error(key: str, value: str, shape: str) -> None:
    text = {"scalar": f"{key}: {value}\n", "list": f"{key}: [{value}]\n", "dict": f"{key}: {{train: {value}}}\n"}[shape]
    only_config_errors(text)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_config_error(data: bytes) -> None:
    only_config_errors(data)


@settings(max_examples=60, deadline=None)
@given(
    levels=st.integers(1, 14),
    width=st.integers(1, 10),
    mapping=st.booleans(),
    breaks=st.sampled_from(_BREAKS),
)
def test_alias_bombs_are_refused_quickly(levels: int, width: int, mapping: bool, breaks: str) -> None:
    lines = ["a0: &a0 [x, y]"]
    for i in range(1, levels + 1):
        refs = [f"*a{i - 1}"] * width
        inner = ", ".join(f"k{j}: {r}" for j, r in enumerate(refs)) if mapping else ", ".join(refs)
        lines.append(f"a{i}: &a{i} {'{' if mapping else '['}{inner}{'}' if mapping else ']'}")
    result = only_config_errors(breaks.join(lines) + breaks)
    sizes = [3]  # expanded nodes under each anchor, counted as the loader documents it
    for _ in range(levels):
        sizes.append(1 + width * (sizes[-1] + (1 if mapping else 0)))
    total = 1 + sum(1 + s for s in sizes)
    if total > MAX_NODES:
        assert isinstance(result, ConfigError), f"an alias bomb of {total} nodes was read"
        assert "alias bomb" in str(result)
    else:
        assert isinstance(result, dict), f"a document of {total} nodes was refused: {result}"


# --- duplicate keys -------------------------------------------------------------------------

# Spellings of one dict key each (equal and equally hashed in Python: 1 == 1.0 == True).
EQUAL_KEYS = [
    ["key", "'key'", '"key"', "!!str key", '"\\x6bey"'],
    ["1", "0x1", "01", "+1", "0b1", "1.0", "1.00", "true", "True", "yes", "on"],
    ["0", "-0", "0x0", "0.0", "false", "no", "Off"],
    ["~", "null", "Null", "NULL"],
    ["0.5", ".5", "+0.5", "0.50", "5.0e-1"],
    ["2001-12-14", "!!timestamp 2001-12-14"],
]


@settings(max_examples=100, deadline=None)
@given(
    spellings=st.sampled_from(EQUAL_KEYS).flatmap(lambda c: st.tuples(st.sampled_from(c), st.sampled_from(c))),
    nest=st.integers(0, 3),
    flow=st.booleans(),
    in_list=st.booleans(),
    others=st.integers(0, 3),
    order=st.randoms(use_true_random=False),
    breaks=st.sampled_from(_BREAKS),
)
def test_duplicate_keys_are_always_refused(spellings: tuple[str, str], nest: int, flow: bool, in_list: bool,
                                           others: int, order: Any, breaks: str) -> None:
    first, second = spellings
    items = [f"other{i}: {i}" for i in range(others)]
    at = order.randint(0, len(items))
    items[at:at] = [f"{first}: one"]
    items.insert(order.randint(at + 1, len(items)), f"{second}: two")
    if flow:
        inner = "{" + ", ".join(items) + "}"
        text = inner
        for level in range(nest):
            text = f"{{p{level}: {text}}}"
        text = f"top: [{text}]" if in_list else f"top: {text}"
    else:
        pad = "  " * (nest + 1) + ("  " if in_list else "")
        lines = ["top:"] + [f"{'  ' * (lv + 1)}p{lv}:" for lv in range(nest)]
        if in_list:
            lines.append(f"{'  ' * (nest + 1)}-")
        lines += [pad + item for item in items]
        text = breaks.join(lines)
    result = only_config_errors(text + breaks)
    assert isinstance(result, ConfigError), f"duplicate keys {first!r} and {second!r} were read:\n{text}"
    assert "duplicate key" in str(result)


@settings(max_examples=40, deadline=None)
@given(spellings=st.sampled_from(EQUAL_KEYS).flatmap(lambda c: st.tuples(st.sampled_from(c), st.sampled_from(c))))
def test_explicit_key_may_override_a_merged_one(spellings: tuple[str, str]) -> None:
    first, second = spellings
    text = f"base: &b {{{first}: one, other: 1}}\nm:\n  <<: *b\n  {second}: two\n"
    result = only_config_errors(text)
    assert isinstance(result, dict), result
    assert sorted(map(str, result["m"].values())) == ["1", "two"]


# --- nesting --------------------------------------------------------------------------------


def nested(style: str, levels: int) -> str:
    """A mapping document whose deepest collection is `levels` deep (the top mapping is 1)."""
    inner = levels - 1
    if style == "flow_seq":
        return "k: " + "[" * inner + "]" * inner + "\n"
    if style == "flow_map":
        return "k: " + "{a: " * inner + "1" + "}" * inner + "\n" if inner else "k: 1\n"
    if style == "block_map":
        return "".join(f"{'  ' * i}k:\n" for i in range(inner)) + f"{'  ' * inner}k: 1\n"
    if style == "block_seq":
        return "k:\n  " + "- " * inner + "1\n" if inner else "k: 1\n"
    # Through an alias: an anchored collection reused deeper down.
    half = inner // 2
    rest = inner - half
    return f"a: &a {'[' * half}{']' * half}\nb: {'[' * rest}*a{']' * rest}\n" if half else f"b: {'[' * rest}{']' * rest}\n"


@settings(max_examples=120, deadline=None)
@given(
    style=st.sampled_from(["flow_seq", "flow_map", "block_map", "block_seq", "alias"]),
    levels=st.integers(MAX_DEPTH - 4, MAX_DEPTH + 40) | st.integers(2, MAX_DEPTH),
)
def test_nesting_beyond_max_depth_is_refused(style: str, levels: int) -> None:
    result = only_config_errors(nested(style, levels))
    if levels > MAX_DEPTH:
        assert isinstance(result, ConfigError), f"{levels} levels were read"
        assert "deeper than" in str(result), str(result)
    else:
        assert isinstance(result, dict), f"{levels} levels refused: {result}"
        assert depth(result) == levels


@settings(max_examples=30, deadline=None)
@given(style=st.sampled_from(["flow_seq", "flow_map"]), levels=st.integers(MAX_DEPTH + 1, 20_000),
       closed=st.booleans())
def test_very_deep_flow_nesting_is_refused_quickly(style: str, levels: int, closed: bool) -> None:
    text = nested(style, levels)
    if not closed:
        text = text.rstrip("]}\n") + "\n"
    result = only_config_errors(text)
    assert isinstance(result, ConfigError)


def test_guarded_loader_is_a_safe_loader() -> None:
    assert issubclass(GuardedLoader, yaml.SafeLoader)


# --- deep_merge -----------------------------------------------------------------------------

merge_keys = st.sampled_from(["a", "b", "c", "d"])
merge_values = st.recursive(
    st.none() | st.integers(-3, 3) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(merge_keys, inner, max_size=3),
    max_leaves=12,
)
merge_dicts = st.dictionaries(merge_keys, merge_values, max_size=4)


@settings(max_examples=150, deadline=None)
@given(base=merge_dicts, override=merge_dicts)
def test_deep_merge_override_wins_and_base_keys_are_kept(base: dict, override: dict) -> None:
    base_before, override_before = copy.deepcopy(base), copy.deepcopy(override)
    merged = deep_merge(base, override)
    assert base == base_before and override == override_before, "deep_merge changed its inputs"
    assert merged.keys() == base.keys() | override.keys()
    for key, value in merged.items():
        if key not in override:
            assert value == base[key]
        elif isinstance(override[key], dict) and isinstance(base.get(key), dict):
            assert value == deep_merge(base[key], override[key])
        else:
            assert value == override[key]


@settings(max_examples=100, deadline=None)
@given(a=merge_dicts, b=merge_dicts)
def test_deep_merge_identity_and_idempotence(a: dict, b: dict) -> None:
    assert deep_merge(a, {}) == a
    assert deep_merge({}, a) == a
    assert deep_merge(a, a) == a
    once = deep_merge(a, b)
    assert deep_merge(once, b) == once


@settings(max_examples=60, deadline=None)
@given(base=merge_dicts, override=merge_dicts)
def test_include_merges_like_deep_merge(base: dict, override: dict) -> None:
    """A file that includes another reads as deep_merge(included, own)."""
    folder = SCRATCH / "include"
    folder.mkdir(exist_ok=True)
    (folder / "base.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
    (folder / "main.yaml").write_text(yaml.safe_dump({**override, "include": "base.yaml"}), encoding="utf-8")
    assert load_yaml(folder / "main.yaml") == deep_merge(base, override)
