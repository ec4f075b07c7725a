"""Zero-shot classification with a generative model: map its free-text answer to a label, score by exact match.

The prompt asks for one of the dataset's label names; the model answers in free text. An
``AnswerParser`` maps that text to one label, or to None when it cannot (unparseable: scored as
wrong, and the share of such answers is reported).

Parsing rules:

- Default (no ``regex``): the label whose name occurs first (leftmost) in the answer as a whole
  word, compared case-insensitively (both sides ``str.casefold``-ed, so "STRASSE" finds "straße").
  "Whole word": the characters either side of the occurrence are not word characters (``\\w``, or a
  combining diacritical mark U+0300..U+036F), so "questionable" does not contain "question" and
  "C++" is found in "answer: C++.". Whitespace inside a label name matches any run of whitespace.
  When two labels start at the same leftmost position ("not" and "not sure" in "not sure, maybe"),
  the longer label wins.
- With ``regex`` (exactly one capturing group): the regex's first match in the answer
  (``re.search``, compiled as written: add ``(?i)`` for a case-insensitive wrapper); the group's text,
  stripped, inner whitespace runs made single spaces and casefolded, must equal a label name so
  normalised, else None. A match whose group did not take part, or no match, is None too.

Labels must be non-blank and distinct once normalised (whitespace runs collapsed, casefolded).

``check_parser`` refuses, at validate time, a regex that cannot work: one that does not compile, has
no capturing group or more than one, or can parse none of the label names at all. The last test
tries every label (as written, lower case, upper case, capitalised) in probe texts and accepts the
regex when at least one probe parses to a label; a regex that reaches only some labels is
accepted. The probes: the regex's own shape with the label in its group (the shortest text its
literals, classes and repeats suggest: ``(?i)label:\\s*\\[(.*)\\]`` gives "label:[praise]"; built from
the stdlib's regex parser, and skipped when that fails), then the label alone and inside typical
wrappers (``_PROBES``: "Answer: {label}", "The answer is {label}.", "**{label}**", ...).

``score_answers`` compares parsed labels with the references through the bundled ``exact_match``
evaluate module (strip + casefold on both sides; an unparseable answer is passed as "", so it never
matches) and adds a percentile bootstrap CI (``scoring.bootstrap_ci``) over examples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from hf_cost.quality.metric_loader import load_metric
from hf_cost.quality.scoring import bootstrap_ci

# Characters that continue a word: \w plus the combining diacritical marks (which \w leaves out).
_WORD_CHARS = r"\w\u0300-\u036f"

# Texts a regex is tried on, at check time, to see whether it can parse any label at all.
_PROBES = (
    "{label}",
    "{label}.",
    "Answer: {label}",
    "Answer:{label}",
    "answer: {label}",
    "ANSWER: {label}",
    "Answer: {label}.",
    "The answer is {label}.",
    "The answer is: {label}",
    "Label: {label}",
    "label: {label}",
    "Category: {label}",
    "Sentiment: {label}",
    "Output: {label}",
    "**{label}**",
    '"{label}"',
    "'{label}'",
    "[{label}]",
    "({label})",
    "<answer>{label}</answer>",
)


def match_key(text: str) -> str:
    """How exact match compares strings: ``text.strip().casefold()``."""
    return text.strip().casefold()


def label_key(text: str) -> str:
    """How a label name is compared with parsed text: whitespace runs made one space, stripped, casefolded."""
    return " ".join(text.split()).casefold()


def check_parser(labels: Sequence[str], regex: str | None = None) -> None:
    """Refuse labels or a regex no parser can use: ValueError with one line; None when fine.

    Labels: a non-empty sequence of non-blank strings, distinct after ``label_key``. Regex (when not
    None): compiles, has exactly one capturing group, and parses at least one of the probe texts
    (each label alone or in a typical wrapper, see the module docstring) to a label.
    """
    _check_labels(labels)
    if regex is None:
        return
    compiled = _compile(regex)
    keys = {label_key(label): label for label in labels}
    for label in labels:
        for spelling in dict.fromkeys((label, label.lower(), label.upper(), label.capitalize())):
            shaped = _shaped_probe(regex, spelling)
            for probe in ((shaped,) if shaped is not None else ()) + tuple(p.format(label=spelling) for p in _PROBES):
                if _parse_with_regex(compiled, keys, probe) is not None:
                    return
    shown = ", ".join(repr(label) for label in list(labels)[:5]) + (", ..." if len(labels) > 5 else "")
    raise ValueError(
        f"regex {regex!r} parses none of the {len(labels)} labels ({shown}), alone or in wrappers "
        "such as 'Answer: {label}': its capturing group must capture a label name"
    )


class AnswerParser:
    """Map a free-text answer to one of ``labels`` (as spelled there), or None. See the module docstring."""

    def __init__(self, labels: Sequence[str], regex: str | None = None) -> None:
        check_parser(labels, regex)
        self.labels: tuple[str, ...] = tuple(labels)
        self.regex = regex
        self._keys = {label_key(label): label for label in self.labels}
        self._compiled = re.compile(regex) if regex is not None else None
        # Longest label first, so that at one position the alternation tries the longer name first.
        by_length = sorted(range(len(self.labels)), key=lambda i: (-len(label_key(self.labels[i])), i))
        alternatives = [f"(?P<l{i}>{_label_body(self.labels[i])})" for i in by_length]
        self._default = re.compile(
            f"(?<![{_WORD_CHARS}])(?:{'|'.join(alternatives)})(?![{_WORD_CHARS}])"
        )

    def parse(self, text: str) -> str | None:
        """The label ``text`` answers, or None when it names none (or the regex finds no label)."""
        if self._compiled is not None:
            return _parse_with_regex(self._compiled, self._keys, text)
        found = self._default.search(text.casefold())
        if found is None:
            return None
        return self.labels[int(found.lastgroup[1:])]

    def __repr__(self) -> str:
        return f"AnswerParser(labels={list(self.labels)!r}, regex={self.regex!r})"


def score_answers(
    answers: Sequence[str],
    references: Sequence[str],
    parser: AnswerParser,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Parse each answer, score exact match against the reference labels, with a bootstrap CI.

    ``references`` are label names (each equal to one of ``parser.labels`` after strip + casefold).
    Returns::

        {"n": int,
         "parsed": [label or None, ...],           # one per answer, in order
         "exact_match": {"value", "ci_low", "ci_high": float, "ci_level": float, "n": int, "method": str},
         "unparseable": {"count": int, "share": float}}

    The value comes from the bundled ``exact_match`` evaluate module (unparseable answers passed as
    ""); the interval is a percentile bootstrap over examples (``scoring.bootstrap_ci``). Raises
    ValueError on lengths that differ, no examples, or a reference that is not a label.
    """
    if not isinstance(parser, AnswerParser):
        raise TypeError(f"parser must be an AnswerParser, got {type(parser).__name__}")
    for what, seq in (("answers", answers), ("references", references)):
        if isinstance(seq, str):
            raise ValueError(f"{what} must be a sequence of strings, not one string")
    if len(answers) != len(references):
        raise ValueError(f"answers and references differ in length: {len(answers)} != {len(references)}")
    if not answers:
        raise ValueError("no examples: answers and references are empty")
    known = {match_key(label) for label in parser.labels}
    for i, ref in enumerate(references):
        if not isinstance(ref, str) or match_key(ref) not in known:
            raise ValueError(f"references[{i}] = {ref!r} is not one of the labels {list(parser.labels)}")

    parsed = [parser.parse(answer) for answer in answers]
    predictions = ["" if label is None else label for label in parsed]
    refs = list(references)
    value = float(load_metric("exact_match").compute(predictions=predictions, references=refs)["exact_match"])
    correct = np.array([match_key(p) == match_key(r) for p, r in zip(predictions, refs)], dtype=np.float64)
    n = len(parsed)
    low, high = bootstrap_ci(
        lambda idx: correct[idx].mean(axis=-1), n, n_resamples=n_resamples, seed=seed, confidence=confidence
    )
    unparseable = sum(label is None for label in parsed)
    return {
        "n": n,
        "parsed": parsed,
        "exact_match": {
            "value": value,
            "ci_low": float(low),
            "ci_high": float(high),
            "ci_level": confidence,
            "n": n,
            "method": f"percentile bootstrap over examples, {n_resamples} resamples, seed {seed}",
        },
        "unparseable": {"count": unparseable, "share": unparseable / n},
    }


def _check_labels(labels: Sequence[str]) -> None:
    if isinstance(labels, str):
        raise ValueError("labels must be a sequence of label names, not one string")
    if len(labels) == 0:
        raise ValueError("labels is empty: need at least one label name")
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            raise ValueError(f"labels[{i}] = {label!r} is not a string")
        key = label_key(label)
        if not key:
            raise ValueError(f"labels[{i}] = {label!r} is blank")
        if key in seen:
            j = seen[key]
            raise ValueError(
                f"labels[{i}] = {label!r} duplicates labels[{j}] = {labels[j]!r} "
                "(labels are compared case-insensitively)"
            )
        seen[key] = i


def _compile(regex: str) -> re.Pattern[str]:
    if not isinstance(regex, str):
        raise ValueError(f"regex must be a string, got {type(regex).__name__}")
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        raise ValueError(f"regex {regex!r} does not compile: {exc}") from None
    if compiled.groups != 1:
        which = "no capturing group" if compiled.groups == 0 else f"{compiled.groups} capturing groups"
        raise ValueError(
            f"regex {regex!r} has {which}; it needs exactly one, around the label "
            r"(e.g. 'Answer:\s*(\w+)'; use (?:...) for other groups)"
        )
    return compiled


def _parse_with_regex(compiled: re.Pattern[str], keys: dict[str, str], text: str) -> str | None:
    found = compiled.search(text)
    if found is None or found.group(1) is None:
        return None
    return keys.get(label_key(found.group(1)))


def _shaped_probe(regex: str, fill: str) -> str | None:
    """The shortest text ``regex``'s shape suggests, with ``fill`` as its capturing group; None if unsure.

    A heuristic, checked afterwards by running the real regex on the text: literals are copied,
    a character class gives one character it likely allows, a repeat its minimum count, an
    alternation its first branch; anchors and lookarounds give nothing.
    """
    try:
        try:
            from re import _parser as sre_parse  # Python 3.11+
        except ImportError:  # pragma: no cover - Python 3.10
            import sre_parse  # type: ignore[no-redef]
        return _shape(sre_parse.parse(regex), sre_parse, fill)
    except Exception:  # noqa: BLE001 - a private parser that may change: no probe, not an error
        return None


def _shape(items: Any, sre: Any, fill: str) -> str:
    c = sre  # the opcode names live on the parser module (imported from its constants)
    out = []
    for op, arg in items:
        if op is c.LITERAL:
            out.append(chr(arg))
        elif op is c.NOT_LITERAL:
            out.append("a" if arg != ord("a") else "b")
        elif op is c.ANY:
            out.append("a")
        elif op is c.IN:
            out.append(_class_char(arg, c))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)):
            low, _high, sub = arg
            out.append(_shape(sub, sre, fill) * low)
        elif op is c.SUBPATTERN:
            group, sub = arg[0], arg[-1]
            out.append(fill if group == 1 else _shape(sub, sre, fill))
        elif op is c.BRANCH:
            out.append(_shape(arg[1][0], sre, fill))
        elif op is getattr(c, "ATOMIC_GROUP", None):
            out.append(_shape(arg, sre, fill))
        elif op is c.GROUPREF_EXISTS:
            out.append(_shape(arg[1], sre, fill))
        elif op in (c.AT, c.ASSERT, c.ASSERT_NOT, c.GROUPREF):
            continue
        else:
            raise ValueError(f"no shape for {op}")
    return "".join(out)


def _class_char(items: Any, c: Any) -> str:
    """One character a character class [...] likely allows."""
    categories = {
        c.CATEGORY_SPACE: " ", c.CATEGORY_NOT_SPACE: "a", c.CATEGORY_DIGIT: "0", c.CATEGORY_NOT_DIGIT: "a",
        c.CATEGORY_WORD: "a", c.CATEGORY_NOT_WORD: " ",
    }
    if items and items[0][0] is c.NEGATE:
        excluded = {chr(arg) for op, arg in items[1:] if op is c.LITERAL}
        return next(ch for ch in "a0 x-" if ch not in excluded)
    op, arg = items[0]
    if op is c.LITERAL:
        return chr(arg)
    if op is c.RANGE:
        return chr(arg[0])
    if op is c.CATEGORY:
        return categories[arg]
    raise ValueError(f"no character for {op}")


def _label_body(label: str) -> str:
    """The label, casefolded, as a regex: its words escaped, any whitespace run between them."""
    return r"\s+".join(re.escape(word) for word in label_key(label).split(" "))
