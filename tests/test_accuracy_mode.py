"""Accuracy mode scores the predictions the runners time.

The key property: for every sample index, the prediction accuracy mode records equals the
argmax of the logits the offline and single-stream runners produce for that index, at the
accuracy batch size and at another one. A tiny random 3-class BERT classifier, saved and loaded
through hf_cost's own loader, stands in for a real checkpoint.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from hf_cost.config.schema import (
    AccuracyScenario,
    DatasetSpec,
    ModelSpec,
    OfflineScenario,
    SingleStreamScenario,
)
from hf_cost.core.candidate import Candidate
from hf_cost.core.names import BASE
from hf_cost.data.labelled import load_labelled
from hf_cost.data.performance_set import PerformanceSet
from hf_cost.errors import DataError, UserError
from hf_cost.models.context import RunContext
from hf_cost.models.load import load_model
from hf_cost.models.resolve import resolve_checkpoint
from hf_cost.models.torch_candidate import TorchCandidate
from hf_cost.progress import Progress
from hf_cost.quality.predict import predict
from hf_cost.steps.accuracy import AccuracyRunner
from hf_cost.steps.offline import OfflineRunner
from hf_cost.steps.single_stream import SingleStreamRunner

LABELS = ["alpha", "beta", "gamma"]
WORDS = [f"tok{i}" for i in range(120)]
SEQ = 16
WHERE = "scenarios[0]"


def save_tiny_classifier(directory: Path) -> Path:
    """A random 2-layer BERT with a 3-class head whose logits differ clearly between classes."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        vocab_size=len(tokenizer), max_position_embeddings=64, num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
        initializer_range=0.2,  # wide enough that inputs lead to different classes
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with torch.no_grad():  # a wide head: predictions spread over the classes, no near-ties
        model.classifier.weight.normal_(0.0, 3.0)
        model.classifier.bias.zero_()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def labelled_csv(path: Path, n: int, labels: list[str], seed: int = 0) -> Path:
    import csv

    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
            writer.writerow([text, labels[i % len(labels)]])
    return path


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny-classifier"))


@pytest.fixture(scope="module")
def candidate(classifier_dir: Path) -> Candidate:
    spec = ModelSpec(path=str(classifier_dir), task="sequence-classification", device="cpu")
    loaded = load_model(spec, resolve_checkpoint(spec))
    return TorchCandidate(BASE, loaded.model, loaded.tokenizer)


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return labelled_csv(tmp_path_factory.mktemp("acc-data") / "eval.csv", 60, LABELS)


@pytest.fixture(scope="module")
def pset(candidate: Candidate, data_csv: Path) -> PerformanceSet:
    data = load_labelled(DatasetSpec(path=str(data_csv), label_column="label"), WHERE, LABELS)
    tensors = {k: v.to(candidate.device) for k, v in data.tokenize(candidate.tokenizer, SEQ).items()}
    return PerformanceSet(tensors=tensors, source=data.description, seed=0, sequence_length=SEQ)


@pytest.fixture(scope="module")
def accuracy_predictions(candidate: Candidate, pset: PerformanceSet) -> list[int]:
    preds = predict(candidate, pset, ACCURACY_BATCH)
    assert len(preds) == pset.num_samples
    # The equivalence tests only have power if the classifier does not answer one class always.
    assert len(set(preds)) >= 2, preds
    return preds


ACCURACY_BATCH = 8


def context(candidate: Candidate, pset: PerformanceSet, sink: Any = None) -> RunContext:
    from hf_cost.measure.memory import current_rss_bytes

    return RunContext(
        candidate=candidate, perf_set=pset, flops_per_sample=None, peak_tflops=None,
        baseline_rss_bytes=current_rss_bytes(), progress=Progress(enabled=False),
        where=WHERE, output_sink=sink,
    )


class Recorder:
    """An output_sink: every sample index the runner fed, with the class its logits pick."""

    def __init__(self) -> None:
        self.seen: dict[int, set[int]] = defaultdict(set)
        self.samples = 0

    def __call__(self, indices: Any, outputs: Any) -> None:
        idx = [int(i) for i in indices]
        preds = outputs.argmax(dim=-1).tolist()
        assert len(idx) == len(preds) == outputs.shape[0]
        assert outputs.shape[-1] == len(LABELS)  # logits, not hidden states
        for i, p in zip(idx, preds):
            self.seen[i].add(p)
        self.samples += len(idx)


def assert_same_predictions(recorder: Recorder, expected: list[int]) -> None:
    assert recorder.seen, "the runner never called output_sink"
    mismatched = {i: (sorted(p), expected[i]) for i, p in recorder.seen.items() if p != {expected[i]}}
    assert not mismatched, f"index: (runner predictions, accuracy-mode prediction): {mismatched}"


# --- accuracy mode == runners -----------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [ACCURACY_BATCH, 5])
def test_offline_runner_predicts_what_accuracy_mode_scores(
    monkeypatch, candidate, pset, accuracy_predictions, batch_size
):
    import hf_cost.steps.offline as offline

    monkeypatch.setattr(offline, "CALIBRATION_S", 0.05)  # calibrating 1 s is for real models
    recorder = Recorder()
    scenario = OfflineScenario(
        kind="offline", name="offline", batch_sizes=[batch_size], warmup_batches=1,
        min_duration_s=0.05, min_sample_count=120,
    )
    [result] = OfflineRunner().run(scenario, context(candidate, pset, recorder))
    assert recorder.samples == result.metrics.model_dump()["samples"] >= 120
    assert len(recorder.seen) >= pset.num_samples // 2  # most indices were drawn at least once
    assert_same_predictions(recorder, accuracy_predictions)


def test_single_stream_runner_predicts_what_accuracy_mode_scores(
    candidate, pset, accuracy_predictions
):
    recorder = Recorder()
    scenario = SingleStreamScenario(
        kind="single_stream", name="ss", warmup_queries=2, min_duration_s=0.01, min_query_count=80,
    )
    [result] = SingleStreamRunner().run(scenario, context(candidate, pset, recorder))
    assert recorder.samples == result.metrics.model_dump()["queries"] >= 80
    assert sorted(recorder.seen) == sorted(set(result.raw["sample_indices"]))
    assert_same_predictions(recorder, accuracy_predictions)


def test_predict_does_not_depend_on_the_batch_size(candidate, pset, accuracy_predictions):
    for bs in (1, 7, pset.num_samples, 1000):
        assert predict(candidate, pset, bs) == accuracy_predictions


# --- AccuracyRunner end to end -----------------------------------------------------------------


def accuracy_scenario(path: Path, **kw: Any) -> AccuracyScenario:
    return AccuracyScenario(
        kind="accuracy", name="acc",
        dataset=DatasetSpec(path=str(path), label_column="label"),
        batch_size=ACCURACY_BATCH, sequence_length=SEQ, bootstrap_resamples=200, **kw,
    )


def test_accuracy_runner_reports_metrics_with_intervals(candidate, pset, data_csv, accuracy_predictions):
    [result] = AccuracyRunner().run(accuracy_scenario(data_csv), context(candidate, pset))
    m = result.metrics.model_dump()
    assert result.kind == "accuracy" and result.name == "acc" and result.candidate == BASE
    assert m["n"] == 60
    for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro"):
        v = m[key]
        assert 0.0 <= v["ci_low"] <= v["value"] <= v["ci_high"] <= 1.0, (key, v)
    assert set(m["per_class"]) == set(LABELS)
    assert sum(c["support"] for c in m["per_class"].values()) == 60

    preds, refs = result.raw["predictions"], result.raw["references"]
    assert len(preds) == len(refs) == 60
    recomputed = sum(p == r for p, r in zip(preds, refs)) / len(refs)
    assert m["accuracy"]["value"] == pytest.approx(recomputed)
    # The same data through the same path: the runner's predictions are predict()'s.
    assert preds == accuracy_predictions
    assert refs == [i % 3 for i in range(60)]
    assert result.settings["labels"] == LABELS
    assert m["throughput_samples_per_s"] > 0


def test_accuracy_runner_uses_the_performance_sets_length_by_default(candidate, pset, data_csv):
    scenario = accuracy_scenario(data_csv).model_copy(update={"sequence_length": None})
    [result] = AccuracyRunner().run(scenario, context(candidate, pset))
    assert result.settings["sequence_length"] == pset.sequence_length


def test_model_without_a_head_is_a_user_error(tiny_bert_dir, pset, data_csv):
    spec = ModelSpec(path=str(tiny_bert_dir), task="feature-extraction", device="cpu")
    loaded = load_model(spec, resolve_checkpoint(spec))
    bare = TorchCandidate(BASE, loaded.model, loaded.tokenizer)
    assert bare.label_names is None
    with pytest.raises(UserError) as info:
        AccuracyRunner().run(accuracy_scenario(data_csv), context(bare, pset))
    assert not isinstance(info.value, DataError)
    message = str(info.value)
    assert "sequence-classification" in message and "fine-tuned" in message and "'base'" in message
    assert info.value.where == f"{WHERE}.candidates"


def test_dataset_labels_the_model_does_not_have_are_a_data_error(tmp_path, candidate, pset):
    path = labelled_csv(tmp_path / "other.csv", 12, ["alpha", "delta"])
    with pytest.raises(DataError) as info:
        AccuracyRunner().run(accuracy_scenario(path), context(candidate, pset))
    message = str(info.value)
    assert "'delta'" in message and "alpha, beta, gamma" in message
    assert info.value.where == f"{WHERE}.dataset.label_column"
