"""Update hf_cost's parts of a model card (README.md) and leave every other byte alone.

hf_cost owns (1) body sections between ``<!-- hf_cost:begin NAME -->`` and ``<!-- hf_cost:end
NAME -->``, holding exactly ``NL NL content NL NL`` (``NL`` alone if empty): the content with
``\\n`` stripped at both ends, in the card's own line break NL (CRLF stays CRLF). A new section is
appended to the body after enough NLs for one blank line (no byte is removed), then NL. (2) The
model-index results whose source name is `source_name` (replaced at the place of the first old
one) and ``co2_eq_emissions`` when given. Front matter is rewritten only when its parsed content
changes, so a rerun leaves the file byte-identical.

Markers are found as CommonMark sees the card (markdown-it-py): a marker is live only as an HTML
block of its own line at the top level. The same text inside a fenced or indented code block,
an inline code span, a blockquote or a list item is the user's text and is never touched. A
top-level one-line comment that mentions ``hf_cost:`` but is not a well-formed marker is
refused, so a mistyped marker is not silently ignored. Section content is neutralised: every
``<!--`` and ``-->`` in it is escaped, so no text can open or close a section.

`render_card` is the pure part (text in, text out); writing, locking and the checks on the
card's path live in cards/card_target.py. A card that cannot be updated safely raises
CardError and is left untouched.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import yaml

from hf_cost.errors import UserError

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
# A live marker's whole line (CommonMark allows up to 3 spaces of indentation before an HTML block).
_MARKER_LINE = re.compile(r"^ {0,3}(<!--[ \t]*hf_cost:(begin|end)[ \t]+([a-z][a-z0-9_-]*)[ \t]*-->)[ \t]*$")
_BREAK = re.compile(r"\r\n|\r|\n")  # the line breaks markdown-it normalises, so its line numbers match
_FM_START = re.compile(r"\A\s*---[\r\n]")  # huggingface_hub's opening, without its closing
_EMPTY_FM = re.compile(r"\A\s*---(?:\r\n|\n|\r)---(?:\r\n|\n|\r|\Z)")


class CardError(UserError):
    """A model card that cannot be safely updated (the file is left untouched)."""


def section_markers(name: str) -> tuple[str, str]:
    """The begin and end markers of section `name`."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"section name must match ^[a-z][a-z0-9_-]*$, got {name!r}")
    return f"<!-- hf_cost:begin {name} -->", f"<!-- hf_cost:end {name} -->"


def decode_card(data: bytes, where: str) -> str:
    """A card's bytes as text: UTF-8 without a byte-order mark."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CardError(f"not UTF-8 text (byte {e.start})", where=where) from None
    if text.startswith("\ufeff"):
        raise CardError("starts with a byte-order mark (huggingface_hub then sees no front matter)", where)
    return text


def _front_matter(text: str, where: str) -> tuple[int, dict]:
    """(offset where the body starts, parsed front matter); (0, {}) without front matter."""
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    m = REGEX_YAML_BLOCK.search(text)
    if m is None:
        if empty := _EMPTY_FM.match(text):
            return empty.end(), {}
        if _FM_START.match(text):
            line = 1 + text.count("\n", 0, text.index("---"))
            raise CardError(f"front matter starts at line {line} but has no closing '---' line", where)
        return 0, {}
    try:
        data = yaml.safe_load(m.group(2))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = 1 + text.count("\n", 0, m.start(2)) + (mark.line if mark is not None else 0)
        problem = " ".join(str(getattr(e, "problem", None) or e).split())[:200]
        raise CardError(f"front matter is not valid YAML (line {line}): {problem}", where) from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise CardError(f"front matter must be a YAML mapping, got a {type(data).__name__}", where)
    try:  # never ignore_metadata_errors: it silently drops a bad model-index
        ModelCardData(**copy.deepcopy(data))
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # TypeError: also non-str keys
        raise CardError(f"metadata rejected by huggingface_hub: {' '.join(str(e).split())[:200]}", where) from None
    return m.end(), data


def _markers(text: str, start: int, where: str) -> list[tuple[str, str, int, int, int]]:
    """The live markers of the body text[start:]: (begin|end, name, start, end, line), in order."""
    from markdown_it import MarkdownIt

    body = text[start:]
    if "hf_cost:" not in body:
        return []
    lines = [0] + [m.end() for m in _BREAK.finditer(body)]
    first_line = 1 + len(_BREAK.findall(text[:start]))
    found = []
    for tok in MarkdownIt("commonmark").parse(body):
        if tok.type != "html_block" or tok.level != 0 or "hf_cost:" not in tok.content or tok.map is None:
            continue
        if not tok.content.lstrip(" ").startswith("<!--") or tok.map[1] - tok.map[0] != 1:
            continue  # a larger HTML block that mentions hf_cost: the user's text
        at = lines[tok.map[0]]
        end = lines[tok.map[0] + 1] if tok.map[0] + 1 < len(lines) else len(body)
        line_text = body[at:end].rstrip("\r\n")
        m = _MARKER_LINE.match(line_text)
        line = first_line + tok.map[0]
        if m is None:
            shown = line_text.strip()[:80]
            raise CardError(f"line {line}: malformed hf_cost marker {shown!r} (expected "
                            "'<!-- hf_cost:begin NAME -->' or '<!-- hf_cost:end NAME -->' on its own line)", where)
        found.append((m.group(2), m.group(3), start + at + m.start(1), start + at + m.end(1), line))
    return found


def _sections(text: str, start: int, where: str) -> dict[str, tuple[int, int]]:
    """name -> (start, end) offsets of the text between its markers; CardError when broken."""
    spans: dict[str, tuple[int, int]] = {}
    open_: tuple[str, int, int] | None = None  # name, end of its begin marker, line
    for marker, name, m_start, m_end, line in _markers(text, start, where):
        bad = None
        if open_ is not None and (marker == "begin" or open_[0] != name):
            bad = f"section {name!r}: marker nested inside section {open_[0]!r} (begun at line {open_[2]})"
        elif name in spans:
            bad = f"section {name!r} appears twice"
        elif marker == "end" and open_ is None:
            bad = f"section {name!r}: end marker without a begin marker"
        if bad:
            raise CardError(f"line {line}: {bad}", where)
        if marker == "begin":
            open_ = (name, m_end, line)
        else:
            spans[name], open_ = (open_[1], m_start), None
    if open_ is not None:
        raise CardError(f"line {open_[2]}: section {open_[0]!r} has a begin marker but no end marker", where)
    return spans


def neutralise_comments(text: str) -> str:
    """`text` with every HTML comment opener and closer escaped: it can open or close no section."""
    return text.replace("<!--", "&lt;!--").replace("-->", "--&gt;")


def _inner(content: str, nl: str) -> str:
    text = neutralise_comments(content.replace("\r\n", "\n").replace("\r", "\n").strip("\n"))
    return nl + nl + text.replace("\n", nl) + nl + nl if text else nl


def _plain(value: Any) -> Any:
    """Plain YAML-safe values: numpy scalars -> float/int, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    item = getattr(value, "item", None)
    return _plain(item()) if type(value) not in (str, bool, int, float) and callable(item) else value


def _equal(a: Any, b: Any) -> bool:
    """Parsed-YAML equality, strict on types (1 vs 1.0 vs true), with nan == nan."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return bool(a == b) or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def _merge(data: dict, eval_results: list[dict] | None, co2: dict | None, source_name: str,
           source_url: str | None, title: str | None) -> dict:
    """The front matter with hf_cost's metadata applied (a deep copy; `data` is not changed).

    Results are edited as raw model-index entries, not through ModelCardData: huggingface_hub
    regroups results by task and dataset (merging sources) and drops keys it does not know.
    """
    from huggingface_hub import EvalResult
    from huggingface_hub.repocard_data import eval_results_to_model_index

    new = copy.deepcopy(data)
    if co2 is not None:
        new["co2_eq_emissions"] = _plain(co2)
    if eval_results is None:
        return new
    index = new.get("model-index") or []
    first: tuple[int, int] | None = None  # (entry, position) of the first old hf_cost result
    emptied: list[bool] = []  # entries that held only hf_cost results are dropped
    for i, entry in enumerate(index):
        ours = [j for j, r in enumerate(entry["results"])
                if isinstance(r.get("source"), dict) and r["source"].get("name") == source_name]
        first = first or ((i, ours[0]) if ours else None)
        entry["results"] = [r for j, r in enumerate(entry["results"]) if j not in ours]
        emptied.append(bool(ours) and not entry["results"])
    objs, shared = [], {}  # results on one task+dataset share one model-index entry's fields
    for given in eval_results:
        d = {"source_name": source_name, **({"source_url": source_url} if source_url else {}), **_plain(dict(given))}
        if d["source_name"] != source_name or not d.get("source_url"):
            raise ValueError(f"eval result needs source_name {source_name!r} and a source_url, got {given!r}")
        value = d.get("metric_value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CardError(f"eval result {d.get('metric_name')!r} has no finite metric_value ({value!r})")
        try:
            o = EvalResult(**d)
        except TypeError as e:
            raise ValueError(f"not EvalResult fields: {e}") from None
        if shared.setdefault(o.unique_identifier, k := (o.task_name, o.dataset_name, o.dataset_args, o.source_url)) != k:
            raise ValueError(f"eval results on {o.unique_identifier} differ in task_name/dataset_name/args/source_url")
        objs.append(o)
    name = str(data.get("model_name") or title or "model")
    if objs:
        groups = eval_results_to_model_index(name, objs)[0]["results"]
        if not index:
            index.append({"name": name, "results": []})
            emptied.append(False)
        at, pos = first or (0, len(index[0]["results"]))
        index[at]["results"][pos:pos] = groups
        emptied[at] = False
    index = [entry for entry, gone in zip(index, emptied) if not gone]
    if index:
        new["model-index"] = index
    elif data.get("model-index"):
        del new["model-index"]
    return new


def render_card(text: str | None, sections: dict[str, str], *, eval_results: list[dict] | None = None,
                co2_eq_emissions: dict | None = None, source_name: str = "hf_cost",
                new_card_title: str | None = None, source_url: str | None = None,
                where: str = "README.md") -> str | None:
    """The card `text` (None: no card yet) with `sections` and hf_cost's metadata written in;
    None when nothing changes.

    `eval_results`: dicts of EvalResult fields; source_name defaults to `source_name`, source_url
    to `source_url` (the Hub needs a url with a name). None leaves the model-index alone, []
    removes hf_cost's results. `co2_eq_emissions` None keeps the card's value.
    """
    markers = {name: section_markers(name) for name in sections}
    if new_card_title is not None and ("\n" in new_card_title or "\r" in new_card_title):
        raise ValueError("new_card_title must be one line")
    exists = text is not None
    text = text or ""
    lf = text.count("\n")  # CRLF where every break is one, as huggingface_hub decides ("\r" alone: "\n")
    nl = "\r\n" if lf and lf == text.count("\r\n") == text.count("\r") else "\n"
    body_at, data = _front_matter(text, where)
    spans = _sections(text, body_at, where)
    new_data = _merge(data, eval_results, co2_eq_emissions, source_name, source_url, new_card_title)
    head = text[:body_at]
    if not _equal(new_data, data):  # serialised as ModelCardData.to_yaml does
        from huggingface_hub.utils import yaml_dump

        head = f"---{nl}{yaml_dump(new_data, sort_keys=False, line_break=nl).strip()}{nl}---{nl}"
    title = neutralise_comments(new_card_title) if new_card_title else None
    body = text[body_at:] if exists else (f"# {title}{nl}" if title else "")
    for name, (s, e) in sorted(((n, spans[n]) for n in sections if n in spans), key=lambda x: -x[1][0]):
        body = body[:s - body_at] + _inner(sections[name], nl) + body[e - body_at:]
    if any(n not in spans for n in sections) and not body and head and not head.endswith(("\n", "\r")):
        body = nl  # front matter ending without a line break: a marker must not join its '---' line
    for n in (n for n in sections if n not in spans):  # appended after one blank line
        tail = body[len(body.rstrip("\r\n")):]
        breaks = tail.count("\n") + tail.count("\r") - tail.count("\r\n") if body else 2
        body += nl * max(0, 2 - breaks) + markers[n][0] + _inner(sections[n], nl) + markers[n][1] + nl
    new_text = head + body
    if exists and new_text == text:
        return None
    # Read back as huggingface_hub and a CommonMark reader will: nothing lost, every section whole.
    check_at, check = _front_matter(new_text, where)
    got = _sections(new_text, check_at, where)
    want = {n: _inner(c, nl) for n, c in sections.items()}
    if not _equal(check, new_data) or set(got) != set(spans) | set(sections) \
            or any(new_text[s:e] != want[n] for n, (s, e) in got.items() if n in want):
        raise CardError("the updated card would not read back as written (a section's text would change "
                        "how the card parses); the card was not changed", where)
    return new_text


def hf_cost_sections(text: str, where: str) -> dict[str, str]:
    """Section name -> content of the card `text` (blank lines around it removed, "\\n" breaks)."""
    body_at, _ = _front_matter(text, where)
    return {name: text[s:e].replace("\r\n", "\n").replace("\r", "\n").strip("\n")
            for name, (s, e) in _sections(text, body_at, where).items()}
