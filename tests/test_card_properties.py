"""Property-based tests (Hypothesis) for the model-card upsert, hf_cost.cards.card_file (issue 14).

Cards are generated here block by block (front matter, headings, paragraphs, fenced and indented
code, inline code spans, blockquotes, lists, tables, other tools' HTML comments, hf_cost sections),
with LF or CRLF line breaks and non-BMP text. The generator records where it put the live markers,
so "the bytes outside hf_cost's sections" are cut here by construction, never by the module's parser.

Documented behaviour tested (CommonMark, via markdown-it-py): a marker is live only as a top-level
HTML block on its own line; the same text in fenced or indented code, an inline code span, a
blockquote, a list item or inline in a paragraph is the user's text, kept byte for byte and not a
section. A mistyped top-level marker line is refused with CardError and the card left untouched.
Section content holding marker-like text is neutralised, not refused.

Examples write README.md in one scratch folder made here (Hypothesis refuses function-scoped
fixtures such as tmp_path), on tmpfs where there is one: each update fsyncs, and a folder per example
cost more than the update itself.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_cost.cards.card_file import CardError, section_markers
from hf_cost.cards.card_target import read_hf_cost_sections, upsert_card

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ("cost", "drift", "accuracy", "notes-1", "q_2")  # section names a card may hold
ALL_NAMES = (*NAMES, "x", "cost2")  # marker-like text may name these too


def _scratch() -> Path:
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="hf_cost-card-props-",
                                   dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


SCRATCH = _scratch()


def card_file(text: bytes | None) -> Path:
    """SCRATCH/README.md holding `text` (absent for None)."""
    path = SCRATCH / "README.md"
    path.unlink(missing_ok=True)
    if text is not None:
        path.write_bytes(text)
    return path


def begin(name: str) -> str:
    return section_markers(name)[0]


def end(name: str) -> str:
    return section_markers(name)[1]


def normalised(content: str) -> str:
    """What read_hf_cost_sections returns for `content`: "\\n" breaks, no newlines at the ends."""
    return content.replace("\r\n", "\n").replace("\r", "\n").strip("\n")


# --- text -----------------------------------------------------------------------------------

# Words with no Markdown meaning: letters and digits of any plane, some non-BMP on purpose.
_WORD = st.one_of(
    st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8),
    st.sampled_from(["😀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𠀋𠀌", "é", "日本語", "Ω", "naïve", "🇫🇷"]),
)
text_line = st.lists(_WORD, min_size=1, max_size=6).map(" ".join)
# Card text (outside sections) may also mention hf_cost's marker words without being a comment.
_CARD_WORD = _WORD | st.sampled_from(["hf_cost:begin", "hf_cost:end cost", "hf_cost", "(see", "below)", "50%"])
card_line = st.lists(_CARD_WORD, min_size=1, max_size=6).map(" ".join)

MALFORMED = [
    "<!-- hf_cost:begn cost -->", "<!-- hf_cost:begin -->", "<!-- hf_cost:begin Bad Name -->",
    "<!-- hf_cost: -->", "<!-- hf_cost:end drift extra -->", "<!-- hf_cost:BEGIN cost -->",
    "<!-- hf_cost:begin cost! -->", "<!--hf_cost:stop cost-->",
]
marker_like = st.one_of(
    st.sampled_from(ALL_NAMES).flatmap(lambda n: st.sampled_from(section_markers(n))),
    st.sampled_from(MALFORMED),
    st.sampled_from(["<!-- hf_cost:begin cost", "hf_cost:end cost -->", "<!--hf_cost:end cost-->"]),
)


# --- cards ----------------------------------------------------------------------------------


@dataclass
class Card:
    """A generated card: its text as (None, outside) and (name, section inner) segments."""

    nl: str
    segments: list[tuple[str | None, str]] = field(default_factory=list)
    existing: dict[str, str] = field(default_factory=dict)  # name -> what read_hf_cost_sections gives
    body_at: int = 0  # where the body starts (after the front matter and its blank lines)
    mixed: bool = False  # LF and CRLF line breaks both

    @property
    def text(self) -> str:
        return "".join(t for _, t in self.segments)


def _block(kind: str, code_markers: bool, nested_markers: bool):
    """A strategy for the lines of one top-level block (LF-free; joined with the card's NL)."""
    code_line = st.one_of(text_line, marker_like) if code_markers else text_line
    if kind == "heading":
        return st.tuples(st.integers(1, 6), card_line).map(lambda t: ["#" * t[0] + " " + t[1]])
    if kind == "paragraph":  # trailing spaces (a hard line break) or a tab kept as written
        return st.lists(st.tuples(card_line, st.sampled_from(["", "", "  ", " \t"])).map("".join),
                        min_size=1, max_size=3)
    if kind == "fenced":
        @st.composite
        def fenced(draw: st.DrawFn) -> list[str]:
            char = draw(st.sampled_from("`~"))
            fence = char * draw(st.integers(3, 5))
            info = draw(st.sampled_from(["", "text", "html", "markdown"]))
            body = draw(st.lists(code_line, max_size=4))
            if char == "~" and draw(st.booleans()):
                body.append("```")  # another fence's text is content here
            indent = draw(st.sampled_from(["", "  "])) if code_markers else ""
            return [fence + info] + [indent + line for line in body] + [fence]
        return fenced()
    if kind == "inline":
        @st.composite
        def inline(draw: st.DrawFn) -> list[str]:
            ticks = draw(st.sampled_from(["`", "``"]))
            inside = draw(marker_like) if code_markers else draw(text_line)
            before = draw(st.sampled_from(["", "Write ", "The marker "]))
            return [f"{before}{ticks}{inside}{ticks} {draw(text_line)}"]
        return inline()
    if kind == "indented":
        # After a paragraph and a blank line, so it is code even right after a list.
        return st.lists(code_line, min_size=1, max_size=3).map(lambda ls: ["Example:", ""] + ["    " + x for x in ls])
    if kind == "quote":
        line = st.one_of(text_line, marker_like) if nested_markers else text_line
        return st.lists(line, min_size=1, max_size=3).map(lambda ls: ["> " + x for x in ls])
    if kind == "list":
        line = st.one_of(text_line, marker_like) if nested_markers else text_line
        bullet = st.sampled_from(["- ", "* ", "1. "])
        return st.lists(st.tuples(bullet, line), min_size=1, max_size=3).map(lambda ls: [b + x for b, x in ls])
    if kind == "list_nested":  # a marker as an HTML block inside a list item
        return st.tuples(text_line, marker_like).map(lambda t: ["- " + t[0], "", "  " + t[1]])
    if kind == "inline_html":  # a marker inline in a paragraph: inline HTML, not an HTML block
        return st.tuples(text_line, marker_like, text_line).map(lambda t: [f"{t[0]} {t[1]} {t[2]}"])
    if kind == "table":
        return st.just(["| metric | value |", "|---|---|", "| latency | 3 ms |"])
    if kind == "rule":
        return st.just(["***"])
    if kind == "comment":
        return st.sampled_from([["<!-- other:begin -->"], ["<!-- other:end -->"], ["<!-- TODO: a note -->"],
                                ["<!--", "a multi-line note", "-->"], ["<!-- hf_costing notes -->"]])
    raise AssertionError(kind)


_PLAIN_KINDS = ["heading", "paragraph", "fenced", "inline", "indented", "quote", "list", "table", "rule", "comment"]
_NESTED_KINDS = ["quote", "list", "list_nested", "inline_html"]

FRONT_MATTERS = [
    None,
    "---{nl}---{nl}",
    "---{nl}license: apache-2.0{nl}---{nl}",
    "---{nl}license: mit{nl}tags:{nl}- hf-cost{nl}- 日本語 😀{nl}pipeline_tag: text-classification{nl}---{nl}",
    "---{nl}note: '<!-- hf_cost:begin cost -->'{nl}---{nl}",
]
SECTION_SHAPES = ["canonical", "tight", "loose", "empty"]


def _section_inner(content_lines: list[str], shape: str, nl: str) -> str:
    content = nl.join(content_lines)
    if not content or shape == "empty":
        return nl
    return {"canonical": nl * 2 + content + nl * 2, "tight": nl + content + nl,
            "loose": nl * 3 + content + nl}[shape]


@st.composite
def cards(draw: st.DrawFn, code_markers: bool = False, nested_markers: bool = False) -> Card:
    breaks = draw(st.sampled_from(["lf", "crlf", "mixed"]))
    nl = "\r\n" if breaks == "crlf" else "\n"
    card = Card(nl)
    fm = draw(st.sampled_from(FRONT_MATTERS))
    outside = fm.format(nl=nl) if fm else ""
    if draw(st.integers(0, 4)) == 0:
        outside += nl  # blank lines before the body
    card.body_at = len(outside)
    kinds = _PLAIN_KINDS + (_NESTED_KINDS if nested_markers else [])
    names = iter(draw(st.permutations(NAMES)))
    blocks = draw(st.lists(st.sampled_from(kinds + ["section"] * 3), max_size=9))
    for i, kind in enumerate(blocks):
        if i:
            outside += nl * 2
        if kind == "section":
            name = next(names, None)
            if name is None:
                outside += draw(card_line)
                continue
            lines = draw(st.lists(st.one_of(text_line, st.just("| a | b |"), st.just("")), max_size=4))
            inner = _section_inner(lines, draw(st.sampled_from(SECTION_SHAPES)), nl)
            card.segments += [(None, outside + begin(name)), (name, inner)]
            card.existing[name] = normalised(inner)
            outside = end(name)
        else:
            outside += nl.join(draw(_block(kind, code_markers, nested_markers)))
    outside += draw(st.sampled_from(["", nl, nl * 2, " ", "  " + nl, nl + "\t", nl * 3])) if blocks else ""
    card.segments.append((None, outside))
    if breaks == "mixed":  # each line break LF or CRLF at random
        choices = iter(draw(st.lists(st.sampled_from(["\n", "\r\n"]), min_size=card.text.count("\n"),
                                     max_size=card.text.count("\n"))))

        def mix(text: str) -> str:
            return re.sub("\n", lambda _: next(choices), text)

        head = mix(card.segments[0][1][:card.body_at])
        card.segments[0] = (None, head + mix(card.segments[0][1][card.body_at:]))
        card.segments[1:] = [(name, mix(text)) for name, text in card.segments[1:]]
        card.body_at = len(head)
        card.existing = {name: normalised(text) for name, text in card.segments if name}
    text = card.text
    # The card's own line break, as the module documents it: CRLF only where every break is one.
    card.nl = "\r\n" if text.count("\n") and text.count("\n") == text.count("\r\n") == text.count("\r") else "\n"
    card.mixed = "\r\n" in text and card.nl == "\n"
    return card


# --- section content ------------------------------------------------------------------------

_CONTENT_LINE = st.one_of(
    text_line, st.just(""),
    st.sampled_from(["| metric | value |", "|---|---|", "- item", "1. first", "## Sub", "**bold** _it_",
                     "> quoted", "    indented", "```", "```python", "~~~", "x = 1"]),
)


@st.composite
def plain_content(draw: st.DrawFn) -> str:
    """Section content without marker-like text; closed fences only."""
    lines = draw(st.lists(_CONTENT_LINE, max_size=6))
    fences = [i for i, x in enumerate(lines) if x.startswith(("```", "~~~"))]
    for i in fences[::-1]:  # each fence line becomes a closed, empty fenced block
        lines[i:i + 1] = [lines[i], lines[i][:3]]
    brk = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return draw(st.sampled_from(["", "\n", "\n\n", "\r\n"])) + brk.join(lines) + draw(
        st.sampled_from(["", "\n", "\n\n", "\r\n"]))


@st.composite
def marker_content(draw: st.DrawFn) -> tuple[str, list[str]]:
    """Content mixing plain lines with marker-like text; also the plain lines, which must survive."""
    parts = draw(st.lists(st.tuples(st.booleans(), text_line, marker_like), min_size=1, max_size=5))
    lines, plain = [], []
    for as_line, words, marker in parts:
        style = draw(st.integers(0, 3))
        if as_line:
            lines.append(words)
            plain.append(words)
        if style == 0:
            lines.append(marker)
        elif style == 1:
            lines.append(f"{words} {marker} {words}")
        elif style == 2:
            lines += ["```", marker, "```"]
        else:
            lines.append(f"`{marker}`")
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines), plain


@st.composite
def updates(draw: st.DrawFn, content: st.SearchStrategy[str]) -> dict[str, str]:
    """Sections to upsert: some the card may hold already, some new (appended in dict order)."""
    chosen = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    return {name: draw(content) for name in chosen}


# --- helpers --------------------------------------------------------------------------------


def outside_kept(card: Card, names: list[str], new_text: str) -> str | None:
    """Why `new_text` is not `card` with only the sections `names` replaced and the new ones appended
    (each after line breaks only); None when it is. Linear, no regex backtracking: the segment after a
    replaced section starts with its end marker, which the new content cannot hold."""
    pos, replaced = 0, False
    for name, text in card.segments:
        if name in names:
            replaced = True
            continue
        at = new_text.find(text, pos) if replaced else pos
        if at < 0 or not new_text.startswith(text, at):
            return f"{'section ' + repr(name) if name else 'outside text'} {text!r} not intact at offset {pos}"
        pos, replaced = at + len(text), False
    rest = new_text[pos:]
    for name in (n for n in names if n not in card.existing):
        while rest.startswith(card.nl):
            rest = rest[len(card.nl):]
        if not rest.startswith(begin(name)):
            return f"new section {name!r} not appended after line breaks: {rest[:80]!r}"
        close = rest.find(end(name) + card.nl)
        if close < 0:
            return f"new section {name!r}: no end marker followed by the card's line break"
        rest = rest[close + len(end(name) + card.nl):]
    return f"unexpected text at the end: {rest[:80]!r}" if rest else None


def upsert_twice(text: bytes, sections: dict[str, str]) -> tuple[bool, bytes, dict[str, str], bool, bytes]:
    """(changed, bytes after, sections read back, changed on the rerun, bytes after the rerun)."""
    path = card_file(text)
    changed = upsert_card(path, dict(sections))
    after = path.read_bytes()
    read = read_hf_cost_sections(path)
    again = upsert_card(path, dict(sections))
    return changed, after, read, again, path.read_bytes()


def read_sections(text: bytes) -> dict[str, str]:
    return read_hf_cost_sections(card_file(text))


def assert_line_breaks_kept(card: Card, after: str) -> None:
    if card.mixed:  # new text uses LF; what was there is checked byte for byte elsewhere
        assert after.count("\r") == after.count("\r\n"), "a lone \\r appeared"
    elif card.nl == "\r\n":
        assert after.count("\n") == after.count("\r\n") == after.count("\r"), "a CRLF card got a lone \\n or \\r"
    else:
        assert "\r" not in after, "an LF card got a \\r"


def check_update(card: Card, sections: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Every property of one upsert that holds for any content; returns (new text, read back)."""
    original = card.text.encode("utf-8")
    assert read_sections(original) == card.existing, "the generated card does not read as generated"
    changed, after, read, again, rerun = upsert_twice(original, sections)
    new_text = after.decode("utf-8")
    assert changed == (after != original)
    problem = outside_kept(card, list(sections), new_text)
    assert problem is None, (
        f"bytes outside the updated sections changed: {problem}\n--- before\n{card.text!r}\n--- after\n{new_text!r}")
    assert set(read) == set(card.existing) | set(sections)
    for name, content in card.existing.items():
        if name not in sections:
            assert read[name] == content, f"section {name!r} was not asked for but changed"
    assert again is False and rerun == after, "a second identical update changed the card"
    assert_line_breaks_kept(card, new_text)
    return new_text, read


# --- properties -----------------------------------------------------------------------------


@PROPS
@given(data=st.data(), card=cards())
def test_plain_updates_keep_outside_bytes_and_read_back(data: st.DataObject, card: Card) -> None:
    sections = data.draw(updates(plain_content()))
    _, read = check_update(card, sections)
    for name, content in sections.items():
        assert read[name] == normalised(content)


@PROPS
@given(data=st.data(), card=cards(code_markers=True))
def test_markers_in_code_are_the_users_text(data: st.DataObject, card: Card) -> None:
    """Markers in fenced/indented code and inline code spans: not sections, kept byte for byte."""
    sections = data.draw(updates(plain_content()))
    _, read = check_update(card, sections)
    for name, content in sections.items():
        assert read[name] == normalised(content)


@PROPS
@given(data=st.data(), card=cards(nested_markers=True))
def test_markers_in_quotes_lists_and_inline_html_are_not_live(data: st.DataObject, card: Card) -> None:
    sections = data.draw(updates(plain_content()))
    check_update(card, sections)


@PROPS
@given(data=st.data(), card=cards())
def test_marker_like_content_is_neutralised(data: st.DataObject, card: Card) -> None:
    """Content holding marker text is written (neutralised), opens or closes no section, reruns are
    no-ops, and its plain lines survive."""
    chosen = data.draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True))
    given_content = {name: data.draw(marker_content()) for name in chosen}
    sections = {name: c for name, (c, _) in given_content.items()}
    _, read = check_update(card, sections)
    for name, (_, plain) in given_content.items():
        for line in plain:
            assert line in read[name], f"plain line {line!r} lost from section {name!r}: {read[name]!r}"


HOSTILE_LINES = ["```", "~~~~", "````python", "<pre>", "<!-- note", "<script>", "<div>", "<style>", "-->",
                 "<!--", "</pre>", "<?php", "<![CDATA[", "    indented", "[ref]: https://example.org"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(card=cards(), name=st.sampled_from(NAMES),
       lines=st.lists(st.one_of(text_line, st.sampled_from(HOSTILE_LINES)), min_size=1, max_size=5),
       nl=st.sampled_from(["\n", "\r\n"]))
def test_structural_content_never_corrupts_the_card(card: Card, name: str, lines: list[str], nl: str) -> None:
    """Unclosed fences or HTML blocks in content: either refused (card untouched) or the card still
    holds exactly the expected sections, outside bytes unchanged, and a rerun is a no-op."""
    content = nl.join(lines)
    original = card.text.encode("utf-8")
    path = card_file(original)
    try:
        upsert_card(path, {name: content})
    except CardError:
        assert path.read_bytes() == original, "a refused update changed the card"
        return
    check_update(card, {name: content})


OPEN_BLOCKS = [["```"], ["~~~~", "code"], ["<pre>", "text"], ["<!-- a note"], ["<script>"], ["<div>"],
               ["Example:", "", "    code"], ["> quote"], ["- item"], ["<?php"]]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(card=cards(), block=st.sampled_from(OPEN_BLOCKS), ending=st.sampled_from(["", "nl", "nl2"]),
       data=st.data())
def test_card_ending_in_an_open_block(card: Card, block: list[str], ending: str, data: st.DataObject) -> None:
    """The user's card ends inside a block that runs to the end of the document (an unclosed fence,
    <pre>, comment): a new section is either refused (card untouched) or appended live."""
    nl = card.nl
    text = card.text
    if text[card.body_at:]:
        text += nl * max(0, 2 - (len(text) - len(text.rstrip("\r\n"))) // len(nl))
    text += nl.join(block) + {"": "", "nl": nl, "nl2": nl * 2}[ending]
    grown = Card(nl, card.segments[:-1] + [(None, card.segments[-1][1] + text[len(card.text):])], card.existing,
                 card.body_at, card.mixed)
    assert grown.text == text
    sections = data.draw(updates(plain_content()))
    path = card_file(text.encode("utf-8"))
    try:
        upsert_card(path, dict(sections))
    except CardError:
        assert path.read_bytes() == text.encode("utf-8"), "a refused update changed the card"
        return
    check_update(grown, sections)


BROKEN = ["malformed", "lone_begin", "lone_end", "duplicate", "nested"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), card=cards(code_markers=True), how=st.sampled_from(BROKEN), first=st.booleans())
def test_broken_top_level_markers_are_refused(data: st.DataObject, card: Card, how: str, first: bool) -> None:
    """A mistyped, unmatched, repeated or nested top-level marker line: CardError, card untouched."""
    nl = card.nl
    if how == "malformed":
        block = data.draw(st.sampled_from(MALFORMED))
    elif how == "lone_begin":
        block = begin("x")
    elif how == "lone_end":
        block = end("x")
    elif how == "duplicate":
        name = data.draw(st.sampled_from(sorted(card.existing) or ["x"]))
        block = f"{begin(name)}{nl}{nl}dup{nl}{nl}{end(name)}"
        if name not in card.existing:  # twice in the inserted text itself
            block += nl * 2 + block
    else:
        block = f"{begin('x')}{nl}{begin('cost2')}{nl}{end('cost2')}{nl}{end('x')}"
    text = card.text
    if first:  # as the body's first block, after the front matter
        at = card.body_at
        text = text[:at] + block + nl + (nl + text[at:] if text[at:] else "")
    else:  # as the last block, after a blank line
        tail = text[len(text.rstrip(nl)):] if text else ""
        text += (nl * max(0, 2 - tail.count(nl)) if text[card.body_at:] else "") + block + nl
    raw = text.encode("utf-8")
    path = card_file(raw)
    with pytest.raises(CardError):
        read_hf_cost_sections(path)
    with pytest.raises(CardError):
        upsert_card(path, {"cost": "new"})
    assert path.read_bytes() == raw


@settings(max_examples=30, deadline=None)
@given(nl=st.sampled_from(["\n", "\r\n"]), fm=st.sampled_from(["---{nl}---", "---{nl}license: mit{nl}---"]),
       name=st.sampled_from(NAMES), content=plain_content())
def test_front_matter_without_final_line_break(nl: str, fm: str, name: str, content: str) -> None:
    """A card that is only front matter, without a line break after the closing '---'."""
    text = fm.format(nl=nl)
    card = Card(nl, [(None, text)], {})
    _, read = check_update(card, {name: content})
    assert read[name] == normalised(content)


@settings(max_examples=40, deadline=None)
@given(sections=st.dictionaries(st.sampled_from(NAMES), plain_content(), min_size=1, max_size=3))
def test_a_new_card_reads_back(sections: dict[str, str]) -> None:
    path = card_file(None)
    assert upsert_card(path, dict(sections)) is True
    after = path.read_bytes()
    assert read_hf_cost_sections(path) == {n: normalised(c) for n, c in sections.items()}
    assert upsert_card(path, dict(sections)) is False
    assert path.read_bytes() == after
