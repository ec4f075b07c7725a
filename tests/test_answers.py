"""Answers parsed from generated text (quality/answers.py), scored by the bundled `exact_match` module.

Hand-computed cases for the default rule (leftmost whole word, case-insensitive, longest at a tie)
and the regex rule, the validate-time refusals of check_parser, score_answers on a hand-built list,
and one Hypothesis property: a label written alone between fillers parses back to itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_cost.quality.answers import AnswerParser, check_parser, label_key, score_answers
from hf_cost.quality.metric_loader import load_metric
from hf_cost.quality.scoring import bootstrap_ci

LABELS = ["praise", "complaint", "question"]


# --- default rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is Complaint.", "complaint"),
        ("praise or complaint?", "praise"),  # leftmost wins
        ("complaint, not praise", "complaint"),
        ("questionable", None),  # whole words only
        ("This is questionable praise.", "praise"),
        ("QUESTION!", "question"),
        ("(complaint)", "complaint"),
        ("complaints", None),
        ("", None),
        ("I cannot tell.", None),
    ],
)
def test_default_rule(text, expected):
    assert AnswerParser(LABELS).parse(text) == expected


def test_default_rule_returns_the_label_as_spelled_and_prefers_the_longer_label_at_a_tie():
    parser = AnswerParser(["Positive", "not", "not sure", "C++"])
    assert parser.parse("NEGATIVE or positive") == "Positive"
    assert parser.parse("Not sure, maybe positive") == "not sure"  # same start: the longer label
    assert parser.parse("not\n  sure") == "not sure"  # any whitespace run inside a label
    assert parser.parse("not at all") == "not"
    assert parser.parse("I'd say C++.") == "C++"  # labels ending in a non-word character
    assert parser.parse("notable") is None


# --- regex rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Let me think: praise or complaint. Answer: Complaint", "complaint"),
        ("Answer:praise", "praise"),
        ("Answer:   question  ", "question"),
        ("Answer: maybe", None),  # the group's text is not a label
        ("praise", None),  # no match: no fallback to the default rule
        ("answer: praise", None),  # the regex is compiled as written (case-sensitive here)
    ],
)
def test_regex_rule(text, expected):
    assert AnswerParser(LABELS, regex=r"Answer:\s*(\w+)").parse(text) == expected


def test_regex_group_is_compared_case_insensitively_and_stripped():
    parser = AnswerParser(["not sure", "yes"], regex=r"(?i)label:\s*\[([^\]]*)\]")
    assert parser.parse("LABEL: [ Not   Sure ]") == "not sure"
    assert parser.parse("label: []") is None


# --- check_parser --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "regex", "message"),
    [
        (LABELS, r"Answer:\s*\w+", "has no capturing group"),
        (LABELS, r"(Answer):\s*(\w+)", "has 2 capturing groups"),
        (LABELS, r"Answer:\s*(\w+", "does not compile"),
        (LABELS, r"(yes|no)", "parses none of the 3 labels"),
        (LABELS, r"Answer: (\d+)", "parses none of the 3 labels"),
        ([], None, "labels is empty"),
        (["praise", "Praise"], None, "duplicates labels"),
        (["praise", "  "], None, "is blank"),
        ("praise", None, "not one string"),
        (["praise", 3], None, "is not a string"),
    ],
)
def test_check_parser_refusals(labels, regex, message):
    with pytest.raises(ValueError, match=message) as info:
        check_parser(labels, regex)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=message):
        AnswerParser(labels, regex)


@pytest.mark.parametrize(
    "regex",
    [
        r"(\w+)",
        r"Answer:\s*(\w+)",
        r"(?i)label:\s*(\w+)",
        r"\*\*(.+?)\*\*",
        r"(praise)",  # reaches one label only: accepted (documented)
        r"(?:Answer: )?(\w+)",
        r"^<verdict>\s*([^<]+?)\s*</verdict>$",  # no wrapper in the list: the regex's own shape
        r"(?:Final|Overall) verdict is (\w+)\.",
    ],
)
def test_check_parser_accepts_regexes_that_reach_a_label(regex):
    check_parser(LABELS, regex)


# --- score_answers and the exact_match module --------------------------------------------------------


def test_score_answers_hand_built():
    answers = [
        "Praise!",  # praise    vs praise     right
        "I think it's a complaint.",  # complaint vs complaint  right
        "no idea",  # None      vs question   unparseable, wrong
        "question or praise",  # question  vs praise     wrong (leftmost)
        "COMPLAINT",  # complaint vs Complaint  right (casefolded)
        "",  # None      vs praise     unparseable, wrong
        "questionable praise",  # praise    vs praise     right
        "praise",  # praise    vs complaint  wrong
    ]
    references = ["praise", "complaint", "question", "praise", "Complaint", "praise", "praise", "complaint"]
    report = score_answers(answers, references, AnswerParser(LABELS), n_resamples=300, seed=7)
    assert report["parsed"] == ["praise", "complaint", None, "question", "complaint", None, "praise", "praise"]
    assert report["n"] == 8
    em = report["exact_match"]
    assert em["value"] == 4 / 8
    assert report["unparseable"] == {"count": 2, "share": 2 / 8}
    assert em["ci_low"] <= 0.5 <= em["ci_high"] and 0.0 <= em["ci_low"] < em["ci_high"] <= 1.0
    assert em["ci_level"] == 0.95 and em["n"] == 8 and "300 resamples, seed 7" in em["method"]
    correct = np.array([1, 1, 0, 0, 1, 0, 1, 0], dtype=float)  # the same helper, the same draws
    low, high = bootstrap_ci(lambda idx: correct[idx].mean(axis=-1), 8, n_resamples=300, seed=7)
    assert (em["ci_low"], em["ci_high"]) == (float(low), float(high))


@pytest.mark.parametrize(
    ("answers", "references", "message"),
    [
        (["praise"], ["praise", "praise"], "differ in length"),
        ([], [], "no examples"),
        (["praise"], ["compliment"], r"references\[0\] = 'compliment' is not one of the labels"),
    ],
)
def test_score_answers_refusals(answers, references, message):
    with pytest.raises(ValueError, match=message):
        score_answers(answers, references, AnswerParser(LABELS))


def test_exact_match_module_strips_and_casefolds():
    metric = load_metric("exact_match")
    got = metric.compute(
        predictions=["Praise", " complaint\n", "", "question", "STRASSE"],
        references=["praise", "complaint", "question", "questions", "straße"],
    )
    assert got == {"exact_match": 3 / 5}  # "straße".casefold() == "strasse"


# --- property ------------------------------------------------------------------------------------

_word = st.text(st.characters(categories=["Lu", "Ll", "Lt", "Lo", "Nd"]), min_size=1, max_size=6)
_label = st.lists(_word, min_size=1, max_size=3).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), labels=st.lists(_label, min_size=1, max_size=6, unique_by=label_key))
def test_a_label_alone_between_fillers_parses_to_itself(data, labels):
    label = data.draw(st.sampled_from(labels))
    parser = AnswerParser(labels)
    assert parser.parse(f"... {label} ...") == label
    if label_key(label.upper()) == label_key(label):  # not so for every letter: "ı".upper() is "I"
        assert parser.parse(f"...{label.upper()}...") == label
