"""Labelled datasets: local files of every supported type, column and label mapping, `where`
filters, seeded stratified train/holdout splits and subsamples, and errors that name the key.

Data files are written into tmp_path at test time; nothing here touches the network.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hf_cost.config.schema import DatasetSpec
from hf_cost.data.labelled import load_labelled
from hf_cost.data.selection import select_rows, split_holdout, subsample
from hf_cost.data.sources import load_split
from hf_cost.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[1]
TICKETS = REPO_ROOT / "data" / "support_tickets" / "tickets.csv"
WHERE = "scenarios[0].dataset"

# 100 rows, labels 60 / 30 / 10, two regions, a pair column and an integer column.
LABEL_CYCLE = ["pos"] * 6 + ["neg"] * 3 + ["neutral"]


def make_rows(n: int = 100) -> dict[str, list[Any]]:
    return {
        "id": list(range(n)),
        "sentence": [f"text number {i}" for i in range(n)],
        "second": [f"pair {i}" for i in range(n)],
        "stars": [LABEL_CYCLE[i % 10] for i in range(n)],
        "region": ["eu" if i % 2 == 0 else ("us" if i % 4 == 1 else "apac") for i in range(n)],
        "year": [2023 if i < n // 2 else 2024 for i in range(n)],
    }


def write_rows(directory: Path, fmt: str, rows: dict[str, list[Any]], name: str = "data") -> Path:
    import pandas as pd

    frame = pd.DataFrame(rows)
    path = directory / f"{name}.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "json":  # one JSON array of records
        path.write_text(json.dumps(frame.to_dict(orient="records")), encoding="utf-8")
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        raise AssertionError(fmt)
    return path


def spec(path: Path | str, **kw: Any) -> DatasetSpec:
    kw.setdefault("text_column", "sentence")
    kw.setdefault("label_column", "stars")
    return DatasetSpec(path=str(path), **kw)


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rows(tmp_path_factory.mktemp("data"), "csv", make_rows())


def ids_of(ds: Any) -> list[int]:
    return list(ds["id"])


# --- local files of every type ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "parquet"])
def test_every_local_file_type_loads_with_columns_and_labels(tmp_path, fmt):
    rows = make_rows(20)
    path = write_rows(tmp_path, fmt, rows)
    ds = load_split(spec(path), WHERE)
    assert len(ds) == 20
    assert {"id", "sentence", "second", "stars", "region", "year"} <= set(ds.column_names)

    data = load_labelled(spec(path, text_pair_column="second"), WHERE, ["neg", "neutral", "pos"])
    assert data.texts == rows["sentence"]
    assert data.pairs == rows["second"]
    index = {"neg": 0, "neutral": 1, "pos": 2}
    assert data.labels == [index[s] for s in rows["stars"]]
    assert data.label_names == ["neg", "neutral", "pos"]
    assert len(data) == 20


def test_upper_case_suffix_is_read_too(tmp_path):
    path = write_rows(tmp_path, "csv", make_rows(10))
    upper = path.rename(tmp_path / "DATA.CSV")
    assert len(load_split(spec(upper), WHERE)) == 10


def test_without_pair_column_pairs_are_none(csv_path):
    data = load_labelled(spec(csv_path), WHERE, ["neg", "neutral", "pos"])
    assert data.pairs is None


# --- label mapping ------------------------------------------------------------------------------


def test_label_names_map_onto_the_models_labels_in_id_order(csv_path):
    model_labels = ["pos", "neutral", "neg"]  # not alphabetical: the model's id order wins
    data = load_labelled(spec(csv_path), WHERE, model_labels)
    assert data.label_names == model_labels
    rows = make_rows()
    assert data.labels == [model_labels.index(s) for s in rows["stars"]]
    assert Counter(data.labels) == {0: 60, 2: 30, 1: 10}


def test_without_model_labels_names_come_from_the_data_sorted(csv_path):
    data = load_labelled(spec(csv_path), WHERE)
    assert data.label_names == ["neg", "neutral", "pos"]
    assert Counter(data.labels) == {2: 60, 0: 30, 1: 10}


def test_model_may_know_more_labels_than_the_data_uses(csv_path):
    data = load_labelled(spec(csv_path), WHERE, ["neg", "neutral", "pos", "spam"])
    assert set(data.labels) == {0, 1, 2}
    assert data.label_names[-1] == "spam"


def test_integer_labels_are_ids(tmp_path):
    rows = {"text": [f"t{i}" for i in range(9)], "label": [i % 3 for i in range(9)]}
    path = write_rows(tmp_path, "csv", rows)
    data = load_labelled(DatasetSpec(path=str(path), label_column="label"), WHERE, ["a", "b", "c"])
    assert data.labels == rows["label"]
    assert data.label_names == ["a", "b", "c"]
    # Without model labels, integer labels name themselves 0..max.
    data = load_labelled(DatasetSpec(path=str(path), label_column="label"), WHERE)
    assert data.label_names == ["0", "1", "2"]
    assert data.labels == rows["label"]


def test_integer_label_out_of_range_names_id_and_key(tmp_path):
    path = write_rows(tmp_path, "csv", {"text": ["a", "b", "c"], "label": [0, 1, 5]})
    with pytest.raises(DataError) as info:
        load_labelled(DatasetSpec(path=str(path), label_column="label"), WHERE, ["a", "b", "c"])
    assert info.value.where == f"{WHERE}.label_column"
    message = str(info.value)
    assert "5" in message and "out of range" in message and "3 labels" in message


def test_negative_integer_label_is_out_of_range(tmp_path):
    path = write_rows(tmp_path, "csv", {"text": ["a", "b"], "label": [0, -1]})
    with pytest.raises(DataError, match="-1"):
        load_labelled(DatasetSpec(path=str(path), label_column="label"), WHERE, ["a", "b"])


def test_unknown_label_names_it_and_lists_the_models_labels(csv_path):
    with pytest.raises(DataError) as info:
        load_labelled(spec(csv_path), WHERE, ["pos", "neg"])
    assert info.value.where == f"{WHERE}.label_column"
    message = str(info.value)
    assert "'neutral'" in message
    assert "pos, neg" in message
    assert "stars" in message  # the column
    assert message.startswith(f"{WHERE}.label_column: ")


def test_classlabel_feature_from_parquet_maps_by_name(tmp_path):
    """A ClassLabel column is ints with names: the names are mapped, not the ints."""
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    ds = datasets.Dataset.from_dict(
        {"text": ["bad", "good", "awful", "great"], "label": [0, 1, 0, 1]}, features=features
    )
    path = tmp_path / "classlabel.parquet"
    ds.to_parquet(str(path))  # parquet keeps the `datasets` features in its metadata
    loaded = load_split(DatasetSpec(path=str(path), label_column="label"), WHERE)
    assert isinstance(loaded.features["label"], datasets.ClassLabel)

    # The model's order differs from the ClassLabel's: 'neg' (ClassLabel 0) is model id 1.
    data = load_labelled(DatasetSpec(path=str(path), label_column="label"), WHERE, ["pos", "neg"])
    assert data.labels == [1, 0, 1, 0]
    with pytest.raises(DataError, match="'neg'"):
        load_labelled(DatasetSpec(path=str(path), label_column="label"), WHERE, ["pos", "other"])


def test_classlabel_on_a_dataset_object():
    """A `datasets.Dataset` in hand goes through the same narrowing and label mapping."""
    import datasets

    from hf_cost.data.labelled import labelled_from_dataset

    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["neg", "neutral", "pos"]),
            "lang": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_dict(
        {
            "text": [f"t{i}" for i in range(30)],
            "label": [i % 3 for i in range(30)],
            "lang": ["en" if i < 15 else "de" for i in range(30)],
        },
        features=features,
    )
    s = DatasetSpec(id="unused/dataset-object", label_column="label", where={"lang": "en"})
    data = labelled_from_dataset(ds, s, WHERE, ["pos", "neutral", "neg"])
    assert data.texts == [f"t{i}" for i in range(15)]
    assert data.labels == [{0: 2, 1: 1, 2: 0}[i % 3] for i in range(15)]


def _classlabel_dataset():
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["zeta", "alpha"])}
    )
    return datasets.Dataset.from_dict(
        {"text": [f"t{i}" for i in range(6)], "label": [0, 1, 0, 1, 0, 1]}, features=features
    )


def test_classlabel_without_model_labels_keeps_the_classlabel_order():
    from hf_cost.data.labelled import labelled_from_dataset

    spec_ = DatasetSpec(id="unused/x", label_column="label")
    data = labelled_from_dataset(_classlabel_dataset(), spec_, WHERE)
    assert data.label_names == ["zeta", "alpha"]  # not sorted alphabetically
    assert data.labels == [0, 1, 0, 1, 0, 1]


def test_where_on_a_classlabel_column_matches_names_and_ids():
    ds = _classlabel_dataset()
    by_name = select_rows(ds, DatasetSpec(id="unused/x", where={"label": "alpha"}), WHERE)
    by_id = select_rows(ds, DatasetSpec(id="unused/x", where={"label": 1}), WHERE)
    assert by_name["text"] == by_id["text"] == ["t1", "t3", "t5"]


# --- where filters --------------------------------------------------------------------------


def test_where_scalar_keeps_matching_rows(csv_path):
    ds = load_split(spec(csv_path), WHERE)
    kept = select_rows(ds, spec(csv_path, where={"region": "eu"}), WHERE)
    assert ids_of(kept) == [i for i in range(100) if i % 2 == 0]


def test_where_list_keeps_rows_matching_any_value(csv_path):
    ds = load_split(spec(csv_path), WHERE)
    kept = select_rows(ds, spec(csv_path, where={"region": ["us", "apac"]}), WHERE)
    assert ids_of(kept) == [i for i in range(100) if i % 2 == 1]


def test_where_integer_value_and_two_columns(csv_path):
    ds = load_split(spec(csv_path), WHERE)
    kept = select_rows(ds, spec(csv_path, where={"year": 2024, "region": "eu"}), WHERE)
    assert ids_of(kept) == [i for i in range(50, 100) if i % 2 == 0]


def test_where_through_load_labelled(csv_path):
    data = load_labelled(spec(csv_path, where={"region": "us"}), WHERE, ["neg", "neutral", "pos"])
    assert data.texts == [f"text number {i}" for i in range(100) if i % 4 == 1]


def test_where_matching_nothing_is_an_error(csv_path):
    with pytest.raises(DataError) as info:
        load_labelled(spec(csv_path, where={"region": "mars"}), WHERE)
    assert info.value.where == f"{WHERE}.where"
    assert "no rows match" in str(info.value) and "mars" in str(info.value)


def test_where_unknown_column_names_it(csv_path):
    with pytest.raises(DataError) as info:
        load_labelled(spec(csv_path, where={"country": "eu"}), WHERE)
    assert info.value.where == f"{WHERE}.where"
    assert "'country'" in str(info.value) and "region" in str(info.value)  # lists the columns


# --- train / holdout ------------------------------------------------------------------------


def select_ids(path: Path, **kw: Any) -> list[int]:
    s = spec(path, **kw)
    return ids_of(select_rows(load_split(s, WHERE), s, WHERE))


def test_train_and_holdout_are_disjoint_and_cover_the_filtered_rows(csv_path):
    train = select_ids(csv_path, where={"region": ["eu", "us"]}, select="train")
    holdout = select_ids(csv_path, where={"region": ["eu", "us"]}, select="holdout")
    filtered = [i for i in range(100) if i % 2 == 0 or i % 4 == 1]
    assert not set(train) & set(holdout)
    assert sorted(train + holdout) == filtered
    assert len(train) == len(set(train)) and len(holdout) == len(set(holdout))


def test_holdout_is_stratified_per_label(csv_path):
    holdout = select_ids(csv_path, select="holdout", holdout_fraction=0.3)
    counts = Counter(LABEL_CYCLE[i % 10] for i in holdout)
    assert counts == {"pos": 18, "neg": 9, "neutral": 3}  # round(0.3 * 60 / 30 / 10)
    train = select_ids(csv_path, select="train", holdout_fraction=0.3)
    assert Counter(LABEL_CYCLE[i % 10] for i in train) == {"pos": 42, "neg": 21, "neutral": 7}


def test_split_is_deterministic_for_a_seed_and_differs_for_another(csv_path):
    a = select_ids(csv_path, select="holdout", seed=3)
    assert a == select_ids(csv_path, select="holdout", seed=3)
    assert a != select_ids(csv_path, select="holdout", seed=4)
    assert len(a) == len(select_ids(csv_path, select="holdout", seed=4))


def test_select_all_keeps_every_row(csv_path):
    assert select_ids(csv_path) == list(range(100))


def test_empty_holdout_part_is_an_error(tmp_path):
    path = write_rows(tmp_path, "csv", make_rows(3))
    with pytest.raises(DataError) as info:
        load_labelled(spec(path, select="holdout", holdout_fraction=0.1), WHERE)
    assert info.value.where == f"{WHERE}.holdout_fraction"


def test_split_holdout_pure_function():
    rows = list(range(40))
    strata = ["a"] * 10 + ["b"] * 30
    train, holdout = split_holdout(rows, strata, 0.25, seed=0)
    assert sorted(train + holdout) == rows and not set(train) & set(holdout)
    assert Counter(strata[i] for i in holdout) == {"a": 2, "b": 8}  # round(2.5) = 2 (banker's)
    assert split_holdout(rows, strata, 0.25, seed=0) == (train, holdout)
    assert split_holdout(rows, strata, 0.25, seed=1) != (train, holdout)
    # Without strata: one group.
    train, holdout = split_holdout(rows, None, 0.25, seed=0)
    assert len(holdout) == 10 and len(train) == 30


# --- max_samples ----------------------------------------------------------------------------


def test_max_samples_is_a_stratified_proportional_subsample(csv_path):
    ids = select_ids(csv_path, max_samples=20)
    assert len(ids) == 20 and len(set(ids)) == 20
    assert Counter(LABEL_CYCLE[i % 10] for i in ids) == {"pos": 12, "neg": 6, "neutral": 2}
    assert ids == select_ids(csv_path, max_samples=20)
    assert ids != select_ids(csv_path, max_samples=20, seed=1)


def test_max_samples_applies_after_the_split(csv_path):
    train = set(select_ids(csv_path, select="train"))
    picked = select_ids(csv_path, select="train", max_samples=40)
    assert len(picked) == 40 and set(picked) <= train
    assert Counter(LABEL_CYCLE[i % 10] for i in picked) == {"pos": 24, "neg": 12, "neutral": 4}


def test_max_samples_larger_than_the_data_keeps_everything(csv_path):
    assert select_ids(csv_path, max_samples=1000) == list(range(100))


def test_subsample_pure_function_largest_remainders():
    rows = list(range(10))
    strata = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    picked = subsample(rows, strata, 5, seed=0)
    counts = Counter(strata[i] for i in picked)
    assert sum(counts.values()) == 5
    # Quotas 2.5 / 1.5 / 1.0: each stratum gets floor or ceil of its quota.
    assert counts["a"] in (2, 3) and counts["b"] in (1, 2) and counts["c"] == 1
    assert picked == sorted(picked) and len(set(picked)) == 5
    assert subsample(rows, strata, 5, seed=0) == picked
    assert len(subsample(rows, None, 7, seed=0)) == 7


def test_select_rows_on_a_dataset_object():
    """The public entry that takes a `datasets.Dataset` object directly is select_rows."""
    import datasets

    ds = datasets.Dataset.from_dict(
        {"id": list(range(50)), "text": ["x"] * 50, "label": ["a"] * 40 + ["b"] * 10}
    )
    s = DatasetSpec(id="in/memory", label_column="label", select="holdout", holdout_fraction=0.2)
    held = select_rows(ds, s, WHERE)
    assert Counter(held["label"]) == {"a": 8, "b": 2}
    trained = select_rows(ds, s.model_copy(update={"select": "train"}), WHERE)
    assert sorted(list(held["id"]) + list(trained["id"])) == list(range(50))
    sub = select_rows(ds, s.model_copy(update={"select": "all", "max_samples": 10}), WHERE)
    assert Counter(sub["label"]) == {"a": 8, "b": 2}


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, key, column",
    [
        ({"text_column": "body"}, "text_column", "body"),
        ({"label_column": "target"}, "label_column", "target"),
        ({"text_pair_column": "other"}, "text_pair_column", "other"),
    ],
)
def test_missing_column_names_the_key_and_column(csv_path, overrides, key, column):
    with pytest.raises(DataError) as info:
        load_labelled(spec(csv_path, **overrides), WHERE)
    assert info.value.where == f"{WHERE}.{key}"
    assert f"'{column}'" in str(info.value)
    assert "sentence" in str(info.value)  # the columns that do exist


def test_wrong_file_type_is_an_error(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("text,label\na,b\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_split(spec(path), WHERE)
    assert info.value.where == f"{WHERE}.path"
    assert "data.txt" in str(info.value) and ".csv" in str(info.value)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(DataError) as info:
        load_labelled(spec(tmp_path / "nope.csv"), WHERE)
    assert info.value.where == f"{WHERE}.path"
    assert "nope.csv" in str(info.value)


@pytest.mark.parametrize("suffix", ["csv", "json", "jsonl", "parquet"])
def test_zero_byte_file_is_a_data_error(tmp_path, suffix):
    """An empty file is a user mistake: a one-line DataError, never a traceback."""
    path = tmp_path / f"empty.{suffix}"
    path.write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_labelled(spec(path), WHERE)
    assert info.value.where is not None and info.value.where.startswith(WHERE)


@pytest.mark.parametrize("suffix, content", [("csv", "sentence,stars\n"), ("json", "[]")])
def test_file_without_rows_is_a_data_error(tmp_path, suffix, content):
    path = tmp_path / f"header.{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_labelled(spec(path), WHERE)
    assert info.value.where is not None and info.value.where.startswith(WHERE)


def test_local_file_with_another_split_name_is_an_error(csv_path):
    with pytest.raises(DataError) as info:
        load_split(spec(csv_path, split="validation"), WHERE)
    assert info.value.where == f"{WHERE}.split"


def test_missing_label_column_setting_is_an_error(csv_path):
    with pytest.raises(DataError) as info:
        load_labelled(DatasetSpec(path=str(csv_path), text_column="sentence"), WHERE)
    assert info.value.where == f"{WHERE}.label_column"


# --- the shipped dataset ----------------------------------------------------------------------


def test_shipped_tickets_2023h1_split_480_120():
    base = dict(path=str(TICKETS), label_column="label", where={"period": "2023-H1"})
    train = load_labelled(DatasetSpec(**base, select="train"), WHERE)
    holdout = load_labelled(DatasetSpec(**base, select="holdout"), WHERE, train.label_names)
    assert (len(train), len(holdout)) == (480, 120)
    assert train.label_names == ["complaint", "praise", "question"]
    # Stratified: 2023-H1 has 200 / 195 / 205 tickets per class.
    assert Counter(holdout.labels) == {0: 40, 1: 39, 2: 41}
    # Disjoint by ticket id, together all of 2023-H1.
    ids = {}
    for part in ("train", "holdout"):
        s = DatasetSpec(**base, select=part)
        ids[part] = ids_of(select_rows(load_split(s, WHERE), s, WHERE))
    assert not set(ids["train"]) & set(ids["holdout"])
    assert len(set(ids["train"]) | set(ids["holdout"])) == 600


# --- the performance sample set narrows rows the same way --------------------------------------


def test_performance_set_from_a_dataset_honours_where(tmp_path, tiny_bert_dir):
    """`inputs.dataset` is a DatasetSpec too: its `where` filter must narrow the timed texts."""
    from transformers import AutoTokenizer

    from hf_cost.config.schema import DatasetInputs
    from hf_cost.data.performance_set import build_performance_set

    words = [w for w in (tiny_bert_dir / "vocab.txt").read_text().split() if not w.startswith("[")]
    keep, drop = words[0], words[1]
    rows = {
        "text": [f"{keep} {keep}" if i % 2 == 0 else f"{drop} {drop}" for i in range(40)],
        "region": ["eu" if i % 2 == 0 else "us" for i in range(40)],
    }
    path = write_rows(tmp_path, "csv", rows)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    inputs = DatasetInputs(
        kind="dataset", dataset=DatasetSpec(path=str(path), where={"region": "eu"}),
        sequence_length=8, num_samples=10,
    )
    pset = build_performance_set(inputs, tokenizer, "cpu")
    ids = set(pset.tensors["input_ids"].flatten().tolist())
    assert tokenizer.convert_tokens_to_ids(keep) in ids
    assert tokenizer.convert_tokens_to_ids(drop) not in ids, "rows outside `where` were timed"
