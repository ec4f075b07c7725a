"""hf_cost.cards.card_file: hand-written bytes survive, reruns are no-ops, bad cards are refused.

Expected texts are written out by hand; "outside the markers" is cut with a regex of its own here
(not the module's parser), and the model-index is read back through huggingface_hub.ModelCard.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from hf_cost.cards.card_file import CardError, section_markers
from hf_cost.cards.card_target import read_hf_cost_sections, upsert_card
from hf_cost.errors import UserError

REV = "bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c"
URL = "https://github.com/hf-cost/hf_cost"

HAND_FM = f"""---
license: apache-2.0
tags:
- text-classification
- hand-tag
widget:
- text: I loved it
model-index:
- name: hand-model
  results:
  - task:
      type: text-classification
    dataset:
      type: glue
      name: GLUE SST-2
      config: sst2
      split: validation
      revision: {REV}
    metrics:
    - type: accuracy
      value: 0.912
      name: Accuracy (leaderboard)
    source:
      name: Some Leaderboard
      url: https://example.org/leaderboard
    x-note: a key huggingface_hub does not know
---
"""
HAND_BODY = """
# Hand model  \t

Intro written by hand, trailing spaces   
and a tab\there.

<!-- hf_cost:begin cost -->
old cost table
<!-- hf_cost:end cost -->

Text between sections.
<!-- other:begin -->
another tool's block
<!-- other:end -->
<!-- hf_cost:begin notes -->
notes hf_cost is not asked to update
<!-- hf_cost:end notes -->
Text after the sections, and no final newline"""

_TASK = {"task_type": "text-classification", "task_name": "Text Classification", "dataset_type": "glue",
         "dataset_name": "GLUE SST-2", "dataset_config": "sst2", "dataset_split": "validation",
         "dataset_revision": REV, "source_url": URL}
OURS = [
    {**_TASK, "metric_type": "accuracy", "metric_value": 0.9105, "metric_name": "accuracy (n=872, 95% CI 0.891-0.929)"},
    {**_TASK, "metric_type": "f1", "metric_value": 0.9093},
]
SECTIONS = {"cost": "| p50 | 1.0 ms |\n|-----|--------|\n", "quality": "\nAccuracy 0.9105 (n=872)\n"}


def _write(tmp_path: Path, text: str, name: str = "README.md") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def _split(data: bytes) -> tuple[dict, bytes]:
    """(front matter, body with every hf_cost section's content cut out)."""
    nl = b"\r\n" if b"\r\n" in data else b"\n"
    end = data.index(nl + b"---" + nl) + len(nl) * 2 + 3
    fm = yaml.safe_load(data[len(b"---" + nl):end - len(nl) - 3])
    cut = re.sub(rb"(<!-- hf_cost:begin ([a-z_-]+) -->).*?(<!-- hf_cost:end \2 -->)", rb"\1\3", data[end:],
                 flags=re.DOTALL)
    return fm, cut


def _card(tmp_path: Path) -> Path:
    return _write(tmp_path, HAND_FM + HAND_BODY)


def test_hand_bytes_survive_and_results_are_added(tmp_path):
    path = _card(tmp_path)
    before = path.read_bytes()
    assert upsert_card(path, SECTIONS, eval_results=OURS) is True
    after = path.read_bytes()
    fm_before, out_before = _split(before)
    fm_after, out_after = _split(after)
    # Outside the markers: the hand bytes, then the new section after one blank line.
    assert out_after == out_before + b"\n\n<!-- hf_cost:begin quality --><!-- hf_cost:end quality -->\n"
    text = after.decode()
    assert "<!-- hf_cost:begin cost -->\n\n| p50 | 1.0 ms |\n|-----|--------|\n\n<!-- hf_cost:end cost -->" in text
    assert "<!-- hf_cost:begin notes -->\nnotes hf_cost is not asked to update\n<!-- hf_cost:end notes -->" in text
    assert text.endswith("<!-- hf_cost:begin quality -->\n\nAccuracy 0.9105 (n=872)\n\n<!-- hf_cost:end quality -->\n")
    # Every hand key is value-equal; the hand result is kept verbatim, unknown key included.
    for key in ("license", "tags", "widget"):
        assert fm_after[key] == fm_before[key]
    hand, ours = fm_after["model-index"][0]["results"]
    assert hand == fm_before["model-index"][0]["results"][0]
    assert fm_after["model-index"][0]["name"] == "hand-model"
    assert ours["source"] == {"name": "hf_cost", "url": URL}
    assert [m["value"] for m in ours["metrics"]] == [0.9105, 0.9093]
    assert read_hf_cost_sections(path) == {"cost": "| p50 | 1.0 ms |\n|-----|--------|",
                                           "notes": "notes hf_cost is not asked to update",
                                           "quality": "Accuracy 0.9105 (n=872)"}


def test_rerun_is_a_no_op_and_new_figures_change_only_hf_cost_bytes(tmp_path):
    path = _card(tmp_path)
    upsert_card(path, SECTIONS, eval_results=OURS)
    first = path.read_bytes()
    assert upsert_card(path, SECTIONS, eval_results=OURS) is False
    assert path.read_bytes() == first

    newer = [dict(OURS[0], metric_value=0.92), OURS[1]]
    sections = {"cost": "| p50 | 1.1 ms |\n|-----|--------|", "quality": "Accuracy 0.9200 (n=872)"}
    assert upsert_card(path, sections, eval_results=newer) is True
    expected = first
    for old, new in [(b"value: 0.9105\n", b"value: 0.92\n"), (b"| p50 | 1.0 ms |", b"| p50 | 1.1 ms |"),
                     (b"Accuracy 0.9105 (n=872)", b"Accuracy 0.9200 (n=872)")]:
        assert expected.count(old) == 1
        expected = expected.replace(old, new)
    assert path.read_bytes() == expected


def test_model_index_round_trips_through_huggingface_hub(tmp_path):
    from huggingface_hub import EvalResult, ModelCard

    path = _card(tmp_path)
    upsert_card(path, SECTIONS, eval_results=OURS)
    got = ModelCard.load(path).data.eval_results
    assert got[1:] == [EvalResult(**r, source_name="hf_cost") for r in OURS]
    assert got[2].metric_value == 0.9093 and got[2].dataset_revision == REV and got[2].dataset_split == "validation"
    # The hand result keeps its own source although it shares task and dataset with ours.
    assert got[0] == EvalResult(task_type="text-classification", dataset_type="glue", dataset_name="GLUE SST-2",
                                dataset_config="sst2", dataset_split="validation", dataset_revision=REV,
                                metric_type="accuracy", metric_value=0.912, metric_name="Accuracy (leaderboard)",
                                source_name="Some Leaderboard", source_url="https://example.org/leaderboard")
    # [] removes hf_cost's results and nothing else.
    assert upsert_card(path, {}, eval_results=[]) is True
    assert ModelCard.load(path).data.eval_results == [got[0]]


BAD_CARDS = {
    "bad_yaml": ("---\nlicense: [mit\ntags: x\n---\nbody\n", "not valid YAML"),
    "unterminated": ("---\nlicense: mit\n\n# Title\n\ntext\n", "no closing '---'"),
    "not_a_mapping": ("---\n- a\n- b\n---\nbody\n", "YAML mapping"),
    "model_index_without_dataset": (
        ("---\nmodel-index:\n- name: m\n  results:\n  - task:\n      type: t\n    metrics:\n"
         "    - type: acc\n      value: 1\n---\nbody\n"), "rejected by huggingface_hub"),
    "source_name_without_url": (
        ("---\nmodel-index:\n- name: m\n  results:\n  - task: {type: t}\n    dataset: {type: d, name: D}\n"
         "    metrics: [{type: acc, value: 1}]\n    source: {name: x}\n---\nbody\n"), "rejected by huggingface_hub"),
    "lone_begin": ("---\nlicense: mit\n---\n\n<!-- hf_cost:begin cost -->\nx\n", "line 5: section 'cost'"),
    "lone_end": ("text\n<!-- hf_cost:end cost -->\n", "line 2: section 'cost': end marker without"),
    "duplicate": (("<!-- hf_cost:begin cost -->\n<!-- hf_cost:end cost -->\n\n"
                   "<!-- hf_cost:begin cost -->\n<!-- hf_cost:end cost -->\n"), "line 4: section 'cost' appears twice"),
    "nested": (("<!-- hf_cost:begin cost -->\n<!-- hf_cost:begin quality -->\n<!-- hf_cost:end quality -->\n"
                "<!-- hf_cost:end cost -->\n"), "line 2: section 'quality': marker nested inside section 'cost'"),
    "crossed": (("<!-- hf_cost:begin cost -->\n<!-- hf_cost:begin quality -->\n<!-- hf_cost:end cost -->\n"
                 "<!-- hf_cost:end quality -->\n"), "line 2"),
    "malformed_marker": ("<!-- hf_cost:begin Cost -->\n<!-- hf_cost:end Cost -->\n", "line 1: malformed"),
}


@pytest.mark.parametrize("case", sorted(BAD_CARDS))
def test_malformed_cards_are_refused_and_left_byte_identical(tmp_path, case):
    text, message = BAD_CARDS[case]
    path = _write(tmp_path, text)
    before = path.read_bytes()
    with pytest.raises(CardError) as err:
        upsert_card(path, {"cost": "new"}, eval_results=OURS[:1], co2_eq_emissions={"emissions": 1.0})
    assert isinstance(err.value, UserError)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    assert message in str(err.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["README.md"]


def test_crlf_card_keeps_its_crlf_bytes(tmp_path):
    text = (HAND_FM + HAND_BODY).replace("\n", "\r\n")
    path = _write(tmp_path, text)
    before = path.read_bytes()
    assert upsert_card(path, SECTIONS, eval_results=OURS, co2_eq_emissions={"emissions": 12.5}) is True
    after = path.read_bytes()
    _, out_before = _split(before)
    fm_after, out_after = _split(after)
    assert out_after == out_before + b"\r\n\r\n<!-- hf_cost:begin quality --><!-- hf_cost:end quality -->\r\n"
    assert re.search(rb"(?<!\r)\n", after) is None  # no bare LF anywhere, front matter included
    assert b"<!-- hf_cost:begin cost -->\r\n\r\n| p50 | 1.0 ms |\r\n|-----|--------|\r\n\r\n<!--" in after
    assert fm_after["co2_eq_emissions"] == {"emissions": 12.5}
    assert upsert_card(path, SECTIONS, eval_results=OURS) is False
    assert path.read_bytes() == after


def test_new_card_is_created_with_title_and_sections(tmp_path):
    path = tmp_path / "out" / "README.md"
    with pytest.raises(CardError, match="does not exist"):  # a new card, but never a new folder
        upsert_card(path, {"cost": "x"})
    assert not path.parent.exists()
    path.parent.mkdir()
    assert upsert_card(path, {"cost": "a\nb", "quality": ""}, new_card_title="My model") is True
    assert path.read_bytes() == (b"# My model\n\n<!-- hf_cost:begin cost -->\n\na\nb\n\n<!-- hf_cost:end cost -->\n\n"
                                 b"<!-- hf_cost:begin quality -->\n<!-- hf_cost:end quality -->\n")
    assert upsert_card(path, {"cost": "a\nb", "quality": ""}, new_card_title="My model") is False
    bare = tmp_path / "bare.md"
    assert upsert_card(bare, {"cost": "x"}) is True
    assert bare.read_bytes() == b"<!-- hf_cost:begin cost -->\n\nx\n\n<!-- hf_cost:end cost -->\n"


def test_new_card_metadata_and_co2_kept_when_none(tmp_path):
    from huggingface_hub import ModelCard

    path = tmp_path / "README.md"
    co2 = {"emissions": 3.2, "source": "hf_cost (CodeCarbon-style estimate)", "training_type": "fine-tuning",
           "geographical_location": "unknown", "hardware_used": "1 x NVIDIA H200"}
    upsert_card(path, {"cost": "x"}, eval_results=[dict(OURS[0], metric_value=np.float64(0.5))],
                co2_eq_emissions=co2, new_card_title="tiny-bert")
    text = path.read_text()
    assert text.startswith("---\n") and "\n---\n# tiny-bert\n\n<!-- hf_cost:begin cost -->" in text
    card = ModelCard.load(path)
    assert card.data.model_name == "tiny-bert" and card.data.co2_eq_emissions == co2
    value = card.data.eval_results[0].metric_value
    assert value == 0.5 and type(value) is float
    assert set(yaml.safe_load(text.split("---\n")[1])) == {"model-index", "co2_eq_emissions"}
    assert upsert_card(path, {"cost": "y"}, eval_results=OURS[:1]) is True
    assert ModelCard.load(path).data.co2_eq_emissions == co2
    assert read_hf_cost_sections(path) == {"cost": "y"}


def test_failed_write_leaves_original_and_no_temp_file(tmp_path, monkeypatch):
    path = _card(tmp_path)
    path.chmod(0o640)
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(CardError, match="disk full; the file was not changed"):
        upsert_card(path, SECTIONS, eval_results=OURS)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["README.md"]
    monkeypatch.undo()
    assert upsert_card(path, SECTIONS, eval_results=OURS) is True
    assert path.stat().st_mode & 0o777 == 0o640 and os.listdir(tmp_path) == ["README.md"]


def test_card_without_front_matter_gets_one_and_keeps_its_body(tmp_path):
    path = _write(tmp_path, "\n# Hand\n\ntext\n")
    upsert_card(path, {}, eval_results=OURS[:1])
    text = path.read_text()
    assert text.startswith("---\n") and text.endswith("\n---\n\n# Hand\n\ntext\n")
    from huggingface_hub import ModelCard

    assert ModelCard.load(path).data.eval_results[0].metric_value == 0.9105


def test_bad_arguments_are_programming_errors(tmp_path):
    path = _card(tmp_path)
    before = path.read_bytes()
    for name in ("Cost", "1cost", "a b", "", "cost -->"):
        with pytest.raises(ValueError):
            section_markers(name)
    assert section_markers("cost_v2") == ("<!-- hf_cost:begin cost_v2 -->", "<!-- hf_cost:end cost_v2 -->")
    with pytest.raises(ValueError, match="source_url"):
        upsert_card(path, {}, eval_results=[{k: v for k, v in OURS[0].items() if k != "source_url"}])
    with pytest.raises(ValueError, match="source_name"):
        upsert_card(path, {}, eval_results=[dict(OURS[0], source_name="someone else")])
    with pytest.raises(ValueError, match="EvalResult"):
        upsert_card(path, {}, eval_results=[dict(OURS[0], metric="typo")])
    with pytest.raises(ValueError, match="differ in task_name"):  # one model-index entry holds both
        upsert_card(path, {}, eval_results=[OURS[0], dict(OURS[1], task_name="Other name")])
    assert path.read_bytes() == before
    # Marker text in a section's content is neutralised, never live: the card keeps one whole section.
    assert upsert_card(path, {"cost": "a <!-- hf_cost:end cost --> b\n<!-- hf_cost:begin x -->"}) is True
    assert read_hf_cost_sections(path)["cost"] == "a &lt;!-- hf_cost:end cost --&gt; b\n&lt;!-- hf_cost:begin x --&gt;"
    assert upsert_card(path, {"cost": "a <!-- hf_cost:end cost --> b\n<!-- hf_cost:begin x -->"}) is False


def test_front_matter_bytes_kept_when_its_content_does_not_change(tmp_path):
    fm = "---\n# a hand comment\nlicense: mit   # trailing comment\ntags: [a, b]\n---\n"
    path = _write(tmp_path, fm + "body\n")
    assert upsert_card(path, {"cost": "x"}) is True
    assert path.read_text() == fm + "body\n\n<!-- hf_cost:begin cost -->\n\nx\n\n<!-- hf_cost:end cost -->\n"
    upsert_card(path, {"cost": "x"}, eval_results=OURS[:1])
    edited = path.read_text().replace("---\n", "---\n# added by hand later\n", 1)
    path.write_text(edited)
    assert upsert_card(path, {"cost": "x"}, eval_results=OURS[:1]) is False  # same content: comment stays
    assert path.read_text() == edited


def test_hf_cost_results_are_replaced_in_place(tmp_path):
    path = _card(tmp_path)
    upsert_card(path, {}, eval_results=OURS[:1])
    fm, _ = _split(path.read_bytes())
    results = fm["model-index"][0]["results"]
    results.reverse()  # hf_cost's result first, the leaderboard's after it
    path.write_text(HAND_FM.split("model-index:")[0] + yaml.safe_dump({"model-index": fm["model-index"]},
                                                                      sort_keys=False) + "---\nbody\n")
    assert upsert_card(path, {}, eval_results=[dict(OURS[0], metric_value=0.5)]) is True
    fm, _ = _split(path.read_bytes())
    first, second = fm["model-index"][0]["results"]
    assert first["source"]["name"] == "hf_cost" and first["metrics"][0]["value"] == 0.5
    assert second["source"]["name"] == "Some Leaderboard" and second["x-note"].startswith("a key")
