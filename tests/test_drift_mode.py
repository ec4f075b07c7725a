"""End-to-end tests of the `drift` scenario kind, through the CLI (`hf_cost.cli.main`).

One fine-tune-then-drift run (module fixture) is checked against figures recomputed here from
the CSV and from results.json's raw predictions with numpy / sklearn, independently of the code
under test. Smaller runs on a tiny random base classifier (no training step) cover a given
training window, empty date cells and time-zone binning; refused inputs must exit 2 with one
`error:` line and write nothing.
"""

from __future__ import annotations

import csv
import itertools
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_scenario
from drift_helpers import drifting_csv
from scenario_helpers import run_cli
from test_accuracy_mode import LABELS, WORDS, save_tiny_classifier

from hf_cost.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- builders

def q(path: Path) -> str:
    return json.dumps(str(path))


def suite(model: Path, steps: str, name: str = "drift-test") -> str:
    """A scenario file; a model directory with a classification head is loaded as a classifier."""
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    task = ", task: sequence-classification" if "id2label" in config and config.get("architectures", [""])[0].endswith(
        "ForSequenceClassification") else ""
    return (f"name: {name}\nmodel: {{path: {q(model)}, device: cpu{task}}}\n"
            f"inputs: {{kind: synthetic, sequence_length: 16, num_samples: 32}}\nscenarios:{steps}")


def fine_tune_step(train_csv: Path, where: str = "{quarter: Q1}") -> str:
    narrowed = f", where: {where}" if where else ""
    return f"""
  - kind: fine_tune
    name: ft
    train: {{path: {q(train_csv)}, label_column: label{narrowed}, select: train}}
    eval: {{path: {q(train_csv)}, label_column: label{narrowed}, select: holdout}}
    target: {{metric: accuracy, value: 0.95}}
    sequence_length: 16
    batch_size: 8
    learning_rate: 1.0e-3
    max_steps: 60
    eval_every_steps: 10"""


def drift_step(data: Path, extra: str = "", column: str = "date", granularity: str = "quarter",
               dataset_extra: str = "") -> str:
    return f"""
  - kind: drift
    dataset: {{path: {q(data)}, label_column: label{dataset_extra}}}
    period_column: {column}
    granularity: {granularity}
    bootstrap_resamples: 200{extra}"""


def dated_csv(path: Path, dates: list[str], quarters: list[str] | None = None, seed: int = 0) -> Path:
    """One row per date (columns date, quarter, text, label): texts of WORDS, labels cycling
    through the classifier's LABELS."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["date", "quarter", "text", "label"])
        for i, day in enumerate(dates):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10)))
            writer.writerow([day, (quarters or [""] * len(dates))[i], text, LABELS[i % len(LABELS)]])
    return path


def quarter_rows(counts: dict[str, int]) -> tuple[list[str], list[str]]:
    """Dates and quarter labels for ``counts`` rows per quarter of 2023 (Q1 .. Q4)."""
    days = {"Q1": "2023-02-10", "Q2": "2023-05-10", "Q3": "2023-08-10", "Q4": "2023-11-10"}
    dates, quarters = [], []
    for name, n in counts.items():
        dates += [days[name]] * n
        quarters += [name] * n
    return dates, quarters


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def only_drift(results: dict[str, Any]) -> dict[str, Any]:
    drifts = [s for s in results["scenarios"] if s["kind"] == "drift"]
    assert len(drifts) == 1, [(s["name"], s["candidate"]) for s in drifts]
    return drifts[0]


def periods_of(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["period"]: p for p in result["metrics"]["periods"]}


def refused(capsys: pytest.CaptureFixture[str], scenario: Path, out: Path, fragments: list[str],
            command: str = "run") -> str:
    """Exit 2, exactly one stderr line 'error: ...' naming the file and every fragment, and
    nothing written (``out`` not created)."""
    argv = ["run", str(scenario), "--output", str(out), "--quiet"] if command == "run" else ["validate", str(scenario)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, f"exit code {code}, expected 2; stderr:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{err[-3000:]}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert str(scenario) in line, f"the scenario file is not named in {line!r}"
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    if command == "run":
        assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    return line


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("drift-classifier"))


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Any]:
    """Fine-tune on Q1 of the drifting CSV, then drift by quarter: run once, checked many times."""
    d = tmp_path_factory.mktemp("drift-e2e")
    data = drifting_csv(d / "data.csv", tiny_bert_dir)
    scenario = write_scenario(d, suite(tiny_bert_dir, fine_tune_step(data) + drift_step(data)))
    out = d / "out"
    results = run_cli(scenario, out)
    result = only_drift(results)
    rows = read_csv(data)
    raw = result["raw"]
    labels = result["settings"]["labels"]
    # Per-period accuracy recomputed from the raw predictions, independently of the analysis code.
    periods = np.asarray(raw["periods"])
    correct = np.asarray(raw["predictions"]) == np.asarray(raw["references"])
    order = [p["period"] for p in result["metrics"]["periods"]]
    acc = {p: float(correct[periods == p].mean()) for p in order}
    return {"results": results, "result": result, "out": out, "rows": rows, "labels": labels,
            "acc": acc, "order": order}


# ---------------------------------------------------------------- 1. end to end

def test_e2e_one_ok_result_with_the_fine_tunes_window(e2e: dict[str, Any]) -> None:
    r = e2e["result"]
    assert (r["name"], r["candidate"], r["status"]) == ("drift", "ft", "ok"), r.get("error")
    m = r["metrics"]
    assert m["training_window"] == ["2023-Q1"]
    assert "'ft'" in m["training_window_source"], m["training_window_source"]
    # The fine-tune trained on 80 % of the 80 Q1 rows (stratified holdout 0.2): 64 rows not scored.
    assert m["excluded_training_rows"] == 64
    assert m["reference_rows"] == 64
    assert m["scored_rows"] == 320 - 64 == len(r["raw"]["rows"])
    assert m["label_distribution_reference"] == {"neg": 32, "pos": 32}
    assert m["dropped_rows"] == {}


def test_e2e_period_sizes_and_flags(e2e: dict[str, Any]) -> None:
    by = periods_of(e2e["result"])
    assert e2e["order"] == ["2023-Q1", "2023-Q2", "2023-Q3", "2023-Q4"]
    assert {p: e["n"] for p, e in by.items()} == {"2023-Q1": 16, "2023-Q2": 80, "2023-Q3": 80, "2023-Q4": 80}
    assert {p: e["few_rows"] for p, e in by.items()} == {
        "2023-Q1": True, "2023-Q2": False, "2023-Q3": False, "2023-Q4": False}
    assert [e["position"] for e in by.values()] == [0.0, 1.0, 2.0, 3.0]
    assert [e["in_window"] for e in by.values()] == [True, False, False, False]
    assert all(e["rows_in_data"] == 80 for e in by.values())
    assert by["2023-Q1"]["label_distribution"] == {"neg": 8, "pos": 8}  # stratified holdout
    assert any("2023-Q1" in n and "min_rows_per_period" in n for n in e2e["result"]["notes"])


def test_e2e_raw_rows_match_the_csv(e2e: dict[str, Any]) -> None:
    """Each scored row's period and reference come from its CSV row (quarter Qk <-> 2023-Qk)."""
    raw, rows, labels = e2e["result"]["raw"], e2e["rows"], e2e["labels"]
    assert len(set(raw["rows"])) == len(raw["rows"])
    n = len(raw["rows"])
    assert len(raw["periods"]) == len(raw["predictions"]) == len(raw["references"]) == len(raw["confidence"]) == n
    for j, i in enumerate(raw["rows"]):  # data rows of the file, counting from 1
        assert raw["periods"][j] == "2023-" + rows[i - 1]["quarter"]
        assert labels[raw["references"][j]] == rows[i - 1]["label"]
    # max-softmax confidence of a 2-class model lies in [0.5, 1]
    assert all(0.5 - 1e-6 <= c <= 1.0 for c in raw["confidence"])


def test_e2e_accuracy_per_period_recomputed(e2e: dict[str, Any]) -> None:
    by, acc = periods_of(e2e["result"]), e2e["acc"]
    decay_values = {p["period"]: p["value"] for p in e2e["result"]["metrics"]["decay"]["periods"]}
    for p, value in acc.items():
        assert by[p]["accuracy"]["value"] == pytest.approx(value, abs=1e-12)
        assert by[p]["accuracy"]["n"] == by[p]["n"]
        assert by[p]["accuracy"]["ci_low"] <= value <= by[p]["accuracy"]["ci_high"]
        assert decay_values[p] == pytest.approx(value, abs=1e-12)
    assert acc["2023-Q4"] < acc["2023-Q1"]  # the data is built so: Q4's markers are all new


def test_e2e_decay_statistics_recomputed(e2e: dict[str, Any]) -> None:
    decay, acc, order = e2e["result"]["metrics"]["decay"], e2e["acc"], e2e["order"]
    values = np.array([acc[p] for p in order])
    assert decay["in_distribution"]["value"] == pytest.approx(acc["2023-Q1"], abs=1e-12)
    assert decay["in_distribution"]["n"] == 16
    ood = values[1:]
    assert decay["out_of_distribution"]["average"]["value"] == pytest.approx(ood.mean(), abs=1e-12)
    assert decay["drop"]["value"] == pytest.approx(acc["2023-Q1"] - ood.mean(), abs=1e-12)
    assert decay["worst_drop"]["value"] == pytest.approx(acc["2023-Q1"] - ood.min(), abs=1e-12)
    assert decay["slope"]["value"] == pytest.approx(np.polyfit([0, 1, 2, 3], values, 1)[0], abs=1e-12)
    changes = [(c["previous"], c["period"], c["value"]) for c in decay["changes"]]
    assert [(a, b) for a, b, _ in changes] == list(itertools.pairwise(order))
    assert [v for *_, v in changes] == pytest.approx(list(np.diff(values)), abs=1e-12)


def test_e2e_per_class_f1_of_last_period(e2e: dict[str, Any]) -> None:
    from sklearn.metrics import f1_score

    raw, labels = e2e["result"]["raw"], e2e["labels"]
    pick = np.asarray(raw["periods"]) == "2023-Q4"
    y_true, y_pred = np.asarray(raw["references"])[pick], np.asarray(raw["predictions"])[pick]
    want = f1_score(y_true, y_pred, labels=list(range(len(labels))), average=None, zero_division=0)
    got = periods_of(e2e["result"])["2023-Q4"]["per_class_f1"]
    assert list(got) == labels
    assert [got[name] for name in labels] == pytest.approx(list(want), abs=1e-12)
    macro = f1_score(y_true, y_pred, labels=list(range(len(labels))), average="macro", zero_division=0)
    assert periods_of(e2e["result"])["2023-Q4"]["f1_macro"]["value"] == pytest.approx(macro, abs=1e-12)


def test_e2e_input_drift_and_label_free_estimates(e2e: dict[str, Any]) -> None:
    by, acc = periods_of(e2e["result"]), e2e["acc"]
    assert by["2023-Q4"]["input_drift"]["domain_classifier"]["auc"] > 0.8
    q1 = by["2023-Q1"]
    # ATC's threshold is fitted on the in-window rows: there it reproduces their accuracy (ties aside).
    assert abs(q1["estimated_accuracy"]["atc"] - acc["2023-Q1"]) <= 1 / q1["n"] + 1e-12
    assert q1["estimated_accuracy"]["id_n"] == 16
    # Words never seen in the training rows grow as the markers shift (0 % -> 100 % new markers).
    unseen = [by[p]["input_drift"]["unseen_word_rate"]["value"] for p in e2e["order"]]
    assert unseen[3] > unseen[0]


def test_e2e_report_and_plot(e2e: dict[str, Any]) -> None:
    out = e2e["out"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Drift: drift" in report
    assert "plots/drift-drift.png" in report
    png = out / "plots" / "drift-drift.png"
    assert png.is_file() and png.read_bytes()[:8] == PNG_MAGIC


# ---------------------------------------------------------------- 2. label periods, a given window

def test_label_granularity_with_a_given_window(tmp_path: Path, classifier_dir: Path) -> None:
    counts = {"Q1": 45, "Q2": 40, "Q3": 35, "Q4": 30}
    dates, quarters = quarter_rows(counts)
    data = dated_csv(tmp_path / "data.csv", dates, quarters)
    extra = "\n    order: [Q1, Q2, Q3, Q4]\n    training_window: [Q1]"
    scenario = write_scenario(tmp_path, suite(classifier_dir, drift_step(data, extra, "quarter", "label")))
    r = only_drift(run_cli(scenario, tmp_path / "out"))
    assert (r["candidate"], r["status"]) == ("base", "ok"), r.get("error")
    m = r["metrics"]
    half = counts["Q1"] // 2  # a seeded half of the in-window rows is the reference, not scored
    assert m["training_window"] == ["Q1"]
    assert "given" in m["training_window_source"], m["training_window_source"]
    assert m["reference_rows"] == half
    assert m["scored_rows"] == sum(counts.values()) - half == len(r["raw"]["rows"])
    assert m["excluded_training_rows"] == half
    assert m["id_rows"] == counts["Q1"] - half
    by = periods_of(r)
    assert list(by) == ["Q1", "Q2", "Q3", "Q4"]
    assert {p: e["n"] for p, e in by.items()} == {"Q1": counts["Q1"] - half, "Q2": 40, "Q3": 35, "Q4": 30}
    assert [e["position"] for e in by.values()] == [0.0, 1.0, 2.0, 3.0]
    assert sum(m["label_distribution_reference"].values()) == half
    # The scored Q1 rows are the CSV's Q1 rows minus the reference half; no other row is dropped.
    rows = read_csv(data)
    scored_q1 = [i for i in r["raw"]["rows"] if rows[i - 1]["quarter"] == "Q1"]
    assert len(scored_q1) == counts["Q1"] - half
    assert sorted(i for i in r["raw"]["rows"] if rows[i - 1]["quarter"] != "Q1") == list(range(46, 151))


# ---------------------------------------------------------------- 3. refused inputs

@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("drift-bad-data")
    dates, quarters = quarter_rows({"Q1": 12, "Q2": 12})
    good = dated_csv(d / "good.csv", dates, quarters)
    bad_dates = list(dates)
    bad_dates[7] = "31/02/2023"
    return {"good": good, "bad_date": dated_csv(d / "bad_date.csv", bad_dates, quarters)}


GIVEN = "\n    training_window: [2023-Q1]"


REFUSED = [  # (case, drift-step keys, period_column, granularity, what the error line must show)
    ("missing column", GIVEN, "published", "quarter", ["scenarios[0]", "period_column", "'published'"]),
    ("bad date", GIVEN, "date", "quarter", ["scenarios[0]", "'31/02/2023'", "'date'"]),
    ("unknown window period", "\n    training_window: [2023-Q3]", "date", "quarter",
     ["scenarios[0].training_window", "'2023-Q3'", "2023-Q1, 2023-Q2"]),
    ("base without a window", "", "date", "quarter",
     ["scenarios[0].training_window", "'base'", "give training_window"]),
    ("order period without rows", "\n    order: [Q1, Q2, Q3]\n    training_window: [Q1]", "quarter", "label",
     ["scenarios[0].order", "'Q3'"]),
    ("order with quarter", "\n    order: [Q1, Q2]" + GIVEN, "date", "quarter", ["scenarios[0].order", "granularity"]),
    ("window listed twice", "\n    training_window: [2023-Q1, 2023-Q1]", "date", "quarter",
     ["scenarios[0].training_window", "'2023-Q1'", "twice"]),
]


@pytest.mark.parametrize("case, extra, column, granularity, fragments", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_on_the_base_classifier(
    case: str, extra: str, column: str, granularity: str, fragments: list[str],
    tmp_path: Path, classifier_dir: Path, bad_inputs: dict[str, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    data = bad_inputs["bad_date" if case == "bad date" else "good"]
    scenario = write_scenario(tmp_path, suite(classifier_dir, drift_step(data, extra, column, granularity)))
    refused(capsys, scenario, tmp_path / "out", fragments)


def test_refused_when_the_training_data_has_no_period_column(
    tmp_path: Path, tiny_bert_dir: Path, bad_inputs: dict[str, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    undated = tmp_path / "undated.csv"
    with undated.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([[f"tok{i} tok{i + 1}", LABELS[i % 3]] for i in range(30)])
    steps = fine_tune_step(undated, where="") + drift_step(bad_inputs["good"])
    scenario = write_scenario(tmp_path, suite(tiny_bert_dir, steps))
    line = refused(capsys, scenario, tmp_path / "out", ["scenarios[1].training_window", "'ft'", "'date'"])
    assert "give training_window" in line, line


def test_validate_refuses_an_unknown_window_without_loading_weights(
    tmp_path: Path, classifier_dir: Path, bad_inputs: dict[str, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from transformers import PreTrainedModel

    def no_weights(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("validate loaded model weights")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(no_weights))
    monkeypatch.setattr("hf_cost.models.load.load_model", no_weights)
    scenario = write_scenario(tmp_path, suite(classifier_dir, drift_step(
        bad_inputs["good"], "\n    training_window: [2023-Q3]")))
    refused(capsys, scenario, tmp_path / "out", ["scenarios[0].training_window", "'2023-Q3'", "2023-Q1, 2023-Q2"],
            command="validate")


def test_bad_date_row_number_points_at_the_files_row(
    tmp_path: Path, classifier_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    dates, quarters = quarter_rows({"Q1": 12, "Q2": 12})
    dates[1] = dates[2] = ""  # dropped (missing: drop) before the dates are read
    dates[9] = "31/02/2023"  # data row 10, counting from 1 like the empty-cell message
    data = dated_csv(tmp_path / "data.csv", dates, quarters)
    scenario = write_scenario(tmp_path, suite(classifier_dir, drift_step(data, GIVEN)))
    refused(capsys, scenario, tmp_path / "out", ["'31/02/2023'", "'date'", "row 10"])


@pytest.mark.parametrize("extra, column, key", [
    (GIVEN, "published", "scenarios[0].period_column: "),
    (GIVEN + "\n    timezone: Mars/Olympus", "date", "scenarios[0].timezone: "),
], ids=["period_column", "timezone"])
def test_drift_keys_are_named_where_they_are_in_the_file(
    extra: str, column: str, key: str, tmp_path: Path, classifier_dir: Path,
    bad_inputs: dict[str, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    scenario = write_scenario(tmp_path, suite(classifier_dir, drift_step(bad_inputs["good"], extra, column)))
    refused(capsys, scenario, tmp_path / "out", [key])


# ---------------------------------------------------------------- 4. empty dates

def test_empty_dates_are_dropped_and_counted(tmp_path: Path, classifier_dir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    dates, quarters = quarter_rows({"Q1": 20, "Q2": 20})
    for i in (3, 21, 30):
        dates[i] = ""
    data = dated_csv(tmp_path / "data.csv", dates, quarters)
    scenario = write_scenario(tmp_path, suite(classifier_dir, drift_step(data, GIVEN)))
    r = only_drift(run_cli(scenario, tmp_path / "out"))
    assert r["status"] == "ok", r.get("error")
    assert r["metrics"]["dropped_rows"] == {"date": 3}
    assert {p: e["rows_in_data"] for p, e in periods_of(r).items()} == {"2023-Q1": 19, "2023-Q2": 18}

    strict = write_scenario(tmp_path, suite(classifier_dir, drift_step(data, GIVEN, dataset_extra=", missing: error")),
                            name="strict.yaml")
    refused(capsys, strict, tmp_path / "out-strict", ["scenarios[0]", "'date'"])


# ---------------------------------------------------------------- 5. time zones

def test_offsets_are_converted_to_the_scenario_time_zone(tmp_path: Path, classifier_dir: Path) -> None:
    dates = (
        ["2023-01-15"] * 20
        + ["2023-04-01T00:30:00+02:00"] * 10  # 2023-03-31 22:30 UTC: Q1
        + ["2023-03-31T23:30:00"] * 5  # naive: taken as UTC already, Q1
        + ["2023-03-31T23:30:00-02:00"] * 30  # 2023-04-01 01:30 UTC: Q2
        + ["2023-06-30T23:30:00-02:00"] * 25  # 2023-07-01 01:30 UTC: Q3
        + ["2023-12-31T23:30:00-01:00"] * 15  # 2024-01-01 00:30 UTC: 2024-Q1 (2023-Q4 empty)
    )
    data = dated_csv(tmp_path / "data.csv", dates)
    scenario = write_scenario(tmp_path, suite(classifier_dir, drift_step(data, GIVEN + "\n    timezone: UTC")))
    r = only_drift(run_cli(scenario, tmp_path / "out"))
    by = periods_of(r)
    assert {p: e["rows_in_data"] for p, e in by.items()} == {
        "2023-Q1": 35, "2023-Q2": 30, "2023-Q3": 25, "2024-Q1": 15}
    assert {p: e["n"] for p, e in by.items()} == {"2023-Q1": 35 - 17, "2023-Q2": 30, "2023-Q3": 25, "2024-Q1": 15}
    assert {p: e["position"] for p, e in by.items()} == {"2023-Q1": 0.0, "2023-Q2": 1.0, "2023-Q3": 2.0, "2024-Q1": 4.0}
