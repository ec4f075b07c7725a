"""Rows with empty cells, single-class training data and unreadable files.

An empty text or label must never reach the tokenizer or the label map as the string
"None": such rows are dropped before the split and counted, or refused with `missing: error`.
A fine-tune's train set with one class is refused (transformers would build a regression
head). A file `datasets` cannot parse is an error line that says why.

Data files are written by hand into tmp_path; nothing here touches the network.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_scenario

from hf_cost.config.schema import DatasetInputs, DatasetSpec
from hf_cost.data.labelled import load_labelled
from hf_cost.data.sources import load_split
from hf_cost.errors import DataError

WHERE = "scenarios[0].train"

# 10 rows: rows 3 and 6 (1-based) have an empty / blank text, row 8 an empty label.
TEN_ROWS = [
    ["alpha one", "pos"],
    ["beta two", "neg"],
    ["", "pos"],
    ["gamma three", "neg"],
    ["delta four", "pos"],
    ["   ", "neg"],
    ["epsilon five", "pos"],
    ["zeta six", ""],
    ["eta seven", "neg"],
    ["theta eight", "pos"],
]
KEPT_TEXTS = [t for t, label in TEN_ROWS if t.strip() and label]


def write_csv(path: Path, rows: list[list[Any]], header: tuple[str, ...] = ("text", "label")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def spec(path: Path, **kw: Any) -> DatasetSpec:
    kw.setdefault("label_column", "label")
    return DatasetSpec(path=str(path), **kw)


@pytest.fixture
def ten_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "tickets.csv", TEN_ROWS)


# --- dropped and counted -----------------------------------------------------------------------


def test_empty_text_and_label_rows_are_dropped_and_counted(ten_csv):
    data = load_labelled(spec(ten_csv), WHERE)
    assert len(data) == 7
    assert data.texts == KEPT_TEXTS
    assert data.dropped == {"text": 2, "label": 1}
    assert data.label_names == ["neg", "pos"]  # no class "None" or ""
    assert "None" not in data.texts
    assert data.description == "tickets.csv (3 rows with empty cells dropped: text 2, label 1)"


def test_a_clean_file_drops_nothing_and_keeps_its_description(tmp_path):
    data = load_labelled(spec(write_csv(tmp_path / "clean.csv", [["a", "x"], ["b", "y"]])), WHERE)
    assert data.dropped == {} and data.description == "clean.csv"


def test_jsonl_nulls_and_blank_strings_count_under_the_first_empty_column(tmp_path):
    records = [
        {"q": "first", "p": "second", "label": "yes"},
        {"q": None, "p": "x", "label": "no"},
        {"q": "x", "p": " \t", "label": "no"},
        {"q": None, "p": None, "label": None},  # counted once, under the text column
        {"q": "x", "p": "y", "label": None},
        {"q": "third", "p": "fourth", "label": "no"},
    ]
    path = write_jsonl(tmp_path / "pairs.jsonl", records)
    data = load_labelled(spec(path, text_column="q", text_pair_column="p"), WHERE)
    assert data.texts == ["first", "third"] and data.pairs == ["second", "fourth"]
    assert data.dropped == {"q": 2, "p": 1, "label": 1}
    assert "4 rows with empty cells dropped" in data.description


def test_pair_column_is_only_checked_when_named(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"text": "a", "other": None, "label": "x"}, {"text": "b", "other": "c", "label": "y"},
    ])
    assert load_labelled(spec(path), WHERE).dropped == {}


def test_integer_labels_with_an_empty_csv_cell_stay_ids(tmp_path):
    """pandas reads an int column with an empty cell as floats; 1.0 must still be the id 1."""
    path = write_csv(tmp_path / "ints.csv", [["a", 0], ["b", 1], ["c", ""], ["d", 2], ["e", 1]])
    data = load_labelled(spec(path), WHERE)
    assert data.labels == [0, 1, 2, 1] and data.label_names == ["0", "1", "2"]
    assert data.dropped == {"label": 1}
    model_labels = load_labelled(spec(path), WHERE, ["neg", "neutral", "pos"])
    assert model_labels.labels == [0, 1, 2, 1]


def test_classlabel_minus_one_means_no_label():
    """`datasets`' ClassLabel stores an unlabelled row as -1 (GLUE test splits): not the last class."""
    import datasets

    from hf_cost.data.labelled import labelled_from_dataset

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    ds = datasets.Dataset.from_dict(
        {"text": ["a", "b", "c", "d"], "label": [0, -1, 1, 0]}, features=features
    )
    data = labelled_from_dataset(ds, DatasetSpec(id="glue", label_column="label"), WHERE)
    assert data.texts == ["a", "c", "d"] and data.labels == [0, 1, 0]
    assert data.dropped == {"label": 1}


def test_rows_are_dropped_before_the_split_and_the_subsample(tmp_path):
    """Split and subsample choose among valid rows only: train + holdout are exactly those."""
    rows = [[f"text {i}" if i % 5 else "", "pos" if i % 2 else "neg", i] for i in range(50)]
    path = write_csv(tmp_path / "d.csv", rows, header=("text", "label", "id"))
    valid = {f"text {i}" for i in range(50) if i % 5}
    train = load_labelled(spec(path, select="train"), WHERE)
    holdout = load_labelled(spec(path, select="holdout"), WHERE, train.label_names)
    assert not set(train.texts) & set(holdout.texts)
    assert set(train.texts) | set(holdout.texts) == valid
    assert len(holdout) == 8  # 20 % of 40 valid rows, per stratum: 4 neg + 4 pos
    assert train.dropped == holdout.dropped == {"text": 10}
    # max_samples equal to the valid rows keeps all of them, never an empty one
    every = load_labelled(spec(path, max_samples=40), WHERE)
    assert set(every.texts) == valid


def test_counts_are_after_the_where_filter(tmp_path):
    rows = [["", "a", "eu"], ["x", "b", "eu"], ["y", "a", "eu"], ["", "b", "us"], ["", "a", "us"]]
    path = write_csv(tmp_path / "d.csv", rows, header=("text", "label", "region"))
    data = load_labelled(spec(path, where={"region": "eu"}), WHERE)
    assert data.dropped == {"text": 1} and len(data) == 2
    assert data.description == "d.csv [region=eu] (1 row with empty cells dropped: text 1)"


def test_every_row_empty_is_a_one_line_error(tmp_path):
    path = write_csv(tmp_path / "d.csv", [["", "a"], [" ", "b"], ["x", ""]])
    with pytest.raises(DataError) as info:
        load_labelled(spec(path), WHERE)
    message = str(info.value)
    assert "\n" not in message and "all 3 rows have an empty cell" in message
    assert info.value.where == f"{WHERE}.text_column"


# --- missing: error ----------------------------------------------------------------------------


def test_missing_error_refuses_with_key_column_count_and_first_row(ten_csv):
    with pytest.raises(DataError) as info:
        load_labelled(spec(ten_csv, missing="error"), WHERE)
    message = str(info.value)
    assert info.value.where == f"{WHERE}.text_column"
    assert message.startswith(f"{WHERE}.text_column: ")
    assert "column 'text'" in message and "2 row" in message and "row 3" in message
    assert "\n" not in message


def test_missing_error_names_the_label_key_when_only_labels_are_empty(tmp_path):
    path = write_csv(tmp_path / "d.csv", [["a", "x"], ["b", "y"], ["c", " "]])
    with pytest.raises(DataError) as info:
        load_labelled(spec(path, missing="error"), WHERE)
    assert info.value.where == f"{WHERE}.label_column"
    assert "column 'label'" in str(info.value) and "row 3" in str(info.value)


def test_missing_error_accepts_a_clean_file(tmp_path):
    path = write_csv(tmp_path / "d.csv", [["a", "x"], ["b", "y"]])
    assert len(load_labelled(spec(path, missing="error"), WHERE)) == 2


# --- at least two classes ----------------------------------------------------------------------


def test_training_data_with_one_class_is_refused(tmp_path):
    path = write_csv(tmp_path / "d.csv", [["a", "x"], ["b", "x"], ["c", "x"]])
    with pytest.raises(DataError) as info:
        load_labelled(spec(path), WHERE)
    assert info.value.where == f"{WHERE}.label_column"
    assert "only 1 class ('x')" in str(info.value) and "at least 2" in str(info.value)


def test_one_class_left_after_dropping_is_refused_too(tmp_path):
    path = write_csv(tmp_path / "d.csv", [["a", "x"], ["b", "x"], ["", "y"]])
    with pytest.raises(DataError, match=r"only 1 class \('x'\)"):
        load_labelled(spec(path), WHERE)


def test_one_integer_class_is_refused_though_ids_imply_more_names(tmp_path):
    path = write_csv(tmp_path / "d.csv", [["a", 1], ["b", 1]])
    with pytest.raises(DataError, match=r"only 1 class \('1'\)"):
        load_labelled(spec(path), WHERE)


def test_one_class_is_fine_against_a_models_labels(tmp_path):
    """Evaluation data may hold a single class; only inferred labels need two."""
    path = write_csv(tmp_path / "d.csv", [["a", "x"], ["b", "x"]])
    data = load_labelled(spec(path), "scenarios[0].dataset", ["x", "y"])
    assert data.labels == [0, 0]


def test_validate_refuses_a_single_class_fine_tune(tmp_path, tiny_bert_dir, capsys):
    from hf_cost.cli import main

    data = write_csv(tmp_path / "one.csv", [[f"text {i}", "x"] for i in range(20)])
    ds = f"{{path: {json.dumps(str(data))}, label_column: label"
    text = f"""\
name: tiny
model: {{path: {json.dumps(str(tiny_bert_dir))}}}
inputs: {{kind: synthetic, sequence_length: 16, num_samples: 8}}
scenarios:
  - kind: fine_tune
    name: ft
    train: {ds}, select: train}}
    eval: {ds}, select: holdout}}
    target: {{metric: accuracy, value: 0.9}}
"""
    path = write_scenario(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "scenarios[0].train.label_column" in err and "only 1 class ('x')" in err


def test_validate_refuses_empty_cells_with_missing_error(tmp_path, tiny_bert_dir, capsys):
    from hf_cost.cli import main

    data = write_csv(tmp_path / "d.csv", [[f"text {i}" if i != 4 else "", "x" if i % 2 else "y"]
                                          for i in range(20)])
    text = f"""\
name: tiny
model: {{path: {json.dumps(str(tiny_bert_dir))}}}
inputs:
  kind: dataset
  sequence_length: 16
  num_samples: 8
  dataset: {{path: {json.dumps(str(data))}, missing: error}}
scenarios:
  - kind: single_stream
"""
    path = write_scenario(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "inputs.dataset.text_column" in err and "row 5" in err


# --- nothing reaches the tokenizer as "None" ---------------------------------------------------


class RecordingTokenizer:
    """Wraps a real tokenizer and keeps every text it was asked to encode."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: list[str] = []

    def __call__(self, texts: list[str], pairs: list[str] | None = None, **kw: Any) -> Any:
        self.seen.extend(texts)
        self.seen.extend(pairs or [])
        return self.inner(texts, pairs, **kw)


def test_no_empty_cell_reaches_the_tokenizer(tmp_path, tiny_bert_dir):
    from transformers import AutoTokenizer

    from hf_cost.data.performance_set import build_performance_set

    records = [{"text": t or None, "pair": f"p{i}" if i != 1 else "", "label": label or None}
               for i, (t, label) in enumerate(TEN_ROWS)]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    tokenizer = RecordingTokenizer(AutoTokenizer.from_pretrained(str(tiny_bert_dir)))

    data = load_labelled(spec(path, text_pair_column="pair"), WHERE)
    data.tokenize(tokenizer, 8)
    inputs = DatasetInputs(
        kind="dataset", dataset=DatasetSpec(path=str(path), text_pair_column="pair"),
        sequence_length=8, num_samples=30,
    )
    pset = build_performance_set(inputs, tokenizer, "cpu")
    assert tokenizer.seen and all(t.strip() and t != "None" for t in tokenizer.seen)
    # the performance set drops empty texts and pairs, not empty labels (it has none)
    assert pset.source.endswith("(3 rows with empty cells dropped: text 2, pair 1)")
    assert pset.describe()["source"] == pset.source
    assert pset.num_samples == 30


def test_performance_set_refuses_empty_texts_with_missing_error(ten_csv, tiny_bert_dir):
    from transformers import AutoTokenizer

    from hf_cost.data.performance_set import build_performance_set

    inputs = DatasetInputs(
        kind="dataset", dataset=DatasetSpec(path=str(ten_csv), missing="error"),
        sequence_length=8, num_samples=4,
    )
    with pytest.raises(DataError) as info:
        build_performance_set(inputs, AutoTokenizer.from_pretrained(str(tiny_bert_dir)), "cpu")
    assert info.value.where == "inputs.dataset.text_column"


# --- files datasets cannot parse: the error says why ------------------------------------------


def load_error(path: Path) -> str:
    with pytest.raises(DataError) as info:
        load_split(DatasetSpec(path=str(path)), WHERE)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    assert message.startswith(f"{WHERE}: cannot load dataset: ")
    return message


def test_csv_with_latin1_bytes_names_the_decode_error(tmp_path, capsys):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\u00e9 au lait,pos\n".encode("latin-1"))
    message = load_error(path)
    assert "'utf-8' codec can't decode byte 0xe9" in message and "UTF-8" in message
    assert "Failed to read file" not in capsys.readouterr().err  # said once, in the error line


def test_ragged_csv_names_the_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("text,label\na,pos\nb,neg,extra\n", encoding="utf-8")
    message = load_error(path)
    assert "Expected 2 fields in line 3, saw 3" in message


def test_jsonl_with_a_bad_line_says_so(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n', encoding="utf-8")
    message = load_error(path)
    assert "JSON parse error" in message


# --- the accuracy result carries the counts ----------------------------------------------------


def test_accuracy_result_reports_dropped_rows(tmp_path):
    from test_accuracy_mode import LABELS, SEQ, accuracy_scenario, context, labelled_csv, save_tiny_classifier

    from hf_cost.config.schema import ModelSpec
    from hf_cost.core.names import BASE
    from hf_cost.data.performance_set import PerformanceSet
    from hf_cost.models.load import load_model
    from hf_cost.models.resolve import resolve_checkpoint
    from hf_cost.models.torch_candidate import TorchCandidate
    from hf_cost.steps.accuracy import AccuracyRunner

    model_spec = ModelSpec(
        path=str(save_tiny_classifier(tmp_path / "clf")), task="sequence-classification", device="cpu"
    )
    loaded = load_model(model_spec, resolve_checkpoint(model_spec))
    candidate = TorchCandidate(BASE, loaded.model, loaded.tokenizer)
    path = labelled_csv(tmp_path / "eval.csv", 12, LABELS)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = "," + lines[2].split(",")[1]  # row 2: empty text
    lines[5] = lines[5].split(",")[0] + ","  # row 5: empty label
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = load_labelled(spec(path), "scenarios[0].dataset", LABELS)
    tensors = data.tokenize(candidate.tokenizer, SEQ)
    pset = PerformanceSet(tensors=tensors, source=data.description, seed=0, sequence_length=SEQ)

    [result] = AccuracyRunner().run(accuracy_scenario(path), context(candidate, pset))
    assert result.metrics.model_dump()["dropped_rows"] == {"text": 1, "label": 1}
    assert result.metrics.model_dump()["n"] == 10 == len(result.raw["references"])
    assert any("2 rows with an empty text or label" in note for note in result.notes)
