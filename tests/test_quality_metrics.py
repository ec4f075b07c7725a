"""Quality metrics: bundled evaluate modules (golden cases), offline loading, bootstrap CIs."""

from __future__ import annotations

import json
import math
import socket
import sys

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from hf_cost.errors import UserError
from hf_cost.quality.metric_loader import BUNDLED, METRICS_DIR, bundled_path, load_metric
from hf_cost.quality.scoring import (
    bootstrap_ci,
    confusion_matrices,
    metrics_from_confusion,
    score_classification,
)

SKLEARN = {"f1": f1_score, "precision": precision_score, "recall": recall_score}


@pytest.fixture(scope="module", autouse=True)
def offline_hf_home(tmp_path_factory):
    """No Hub, and evaluate's caches in a tmp dir.

    evaluate reads HF_HOME once, when first imported; hf_cost imports it lazily, so setting the
    variable here is enough unless another test module imported evaluate first (then that
    module's HF_HOME stays, which is harmless as long as it is writable).
    """
    with pytest.MonkeyPatch.context() as mp:
        if "evaluate" not in sys.modules:
            mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        yield


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every attempt to resolve a host or open a connection."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture(scope="module")
def metrics():
    return {name: load_metric(name) for name in BUNDLED}


# ---------------------------------------------------------------------------------------------
# Golden case, 3 classes, 10 examples.
#
#   references  = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
#   predictions = [0, 0, 0, 1, 1, 1, 1, 2, 0, 0]
#
#   confusion (rows = reference, columns = prediction):
#            p0  p1  p2 | support
#       r0    3   1   0 |   4
#       r1    0   3   0 |   3
#       r2    2   0   1 |   3
#   predicted 5   4   1
#
#   accuracy  = (3 + 3 + 1) / 10                 = 7/10
#   precision = TP / predicted = 3/5, 3/4, 1/1   -> macro (0.6 + 0.75 + 1) / 3        = 47/60
#   recall    = TP / support   = 3/4, 3/3, 1/3   -> macro (9/12 + 12/12 + 4/12) / 3   = 25/36
#   f1        = 2TP / (support + predicted)
#             = 6/9, 6/7, 2/4 = 2/3, 6/7, 1/2    -> macro (28/42 + 36/42 + 21/42) / 3 = 85/126
#   weighted f1 = (4 * 2/3 + 3 * 6/7 + 3 * 1/2) / 10 = (112 + 108 + 63) / 420          = 283/420
#   micro f1/precision/recall = accuracy (single-label)                                = 7/10
# ---------------------------------------------------------------------------------------------
REFS = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
PREDS = [0, 0, 0, 1, 1, 1, 1, 2, 0, 0]
GOLDEN_PER_CLASS = {
    "precision": [3 / 5, 3 / 4, 1.0],
    "recall": [3 / 4, 1.0, 1 / 3],
    "f1": [2 / 3, 6 / 7, 1 / 2],
}
GOLDEN = {
    ("precision", "macro"): 47 / 60,
    ("recall", "macro"): 25 / 36,
    ("f1", "macro"): 85 / 126,
    ("f1", "weighted"): 283 / 420,
    ("f1", "micro"): 7 / 10,
    ("precision", "micro"): 7 / 10,
    ("recall", "micro"): 7 / 10,
}

# Binary golden case: references [1, 1, 1, 0, 0, 0, 1, 0], predictions [1, 0, 1, 1, 1, 0, 1, 0]
#   TP = 3 (idx 0, 2, 6), FN = 1 (idx 1), FP = 2 (idx 3, 4), TN = 2 (idx 5, 7)
#   accuracy = 5/8, precision = 3/5, recall = 3/4, f1 = 2*3 / (2*3 + 2 + 1) = 2/3
BIN_REFS = [1, 1, 1, 0, 0, 0, 1, 0]
BIN_PREDS = [1, 0, 1, 1, 1, 0, 1, 0]
BIN_GOLDEN = {"accuracy": 5 / 8, "precision": 3 / 5, "recall": 3 / 4, "f1": 2 / 3}


def test_accuracy_golden(metrics):
    got = metrics["accuracy"].compute(predictions=PREDS, references=REFS)["accuracy"]
    assert got == pytest.approx(7 / 10)
    assert got == pytest.approx(accuracy_score(REFS, PREDS))
    binary = metrics["accuracy"].compute(predictions=BIN_PREDS, references=BIN_REFS)["accuracy"]
    assert binary == pytest.approx(BIN_GOLDEN["accuracy"])
    count = metrics["accuracy"].compute(predictions=PREDS, references=REFS, normalize=False)
    assert count["accuracy"] == 7


@pytest.mark.parametrize(("name", "average"), sorted(GOLDEN))
def test_averaged_golden(metrics, name, average):
    got = metrics[name].compute(predictions=PREDS, references=REFS, average=average)[name]
    assert isinstance(got, float)
    assert got == pytest.approx(GOLDEN[(name, average)])
    assert got == pytest.approx(SKLEARN[name](REFS, PREDS, average=average))


@pytest.mark.parametrize("name", ["f1", "precision", "recall"])
def test_binary_golden(metrics, name):
    got = metrics[name].compute(predictions=BIN_PREDS, references=BIN_REFS)[name]
    assert got == pytest.approx(BIN_GOLDEN[name])
    assert got == pytest.approx(SKLEARN[name](BIN_REFS, BIN_PREDS))


@pytest.mark.parametrize("name", ["f1", "precision", "recall"])
def test_average_none_is_per_class_list(metrics, name):
    got = metrics[name].compute(predictions=PREDS, references=REFS, average=None)[name]
    assert isinstance(got, list)
    assert got == pytest.approx(GOLDEN_PER_CLASS[name])
    assert got == pytest.approx(SKLEARN[name](REFS, PREDS, average=None).tolist())


@pytest.mark.parametrize("name", ["f1", "precision", "recall"])
def test_labels_pick_and_order_classes(metrics, name):
    got = metrics[name].compute(predictions=PREDS, references=REFS, labels=[2, 0], average=None)
    expected = GOLDEN_PER_CLASS[name]
    assert got[name] == pytest.approx([expected[2], expected[0]])
    # macro over a subset of labels averages only those
    macro = metrics[name].compute(predictions=PREDS, references=REFS, labels=[2, 0], average="macro")
    assert macro[name] == pytest.approx((expected[2] + expected[0]) / 2)


@pytest.mark.parametrize("name", ["f1", "precision", "recall"])
def test_zero_division(metrics, name):
    # class 2 is in `labels` but neither predicted nor referenced: every figure of it is 0/0
    preds, refs = [0, 1, 1, 0], [0, 1, 0, 0]
    for zero_division in (0, 1):
        got = metrics[name].compute(
            predictions=preds,
            references=refs,
            labels=[0, 1, 2],
            average=None,
            zero_division=zero_division,
        )[name]
        assert got[2] == zero_division
        expected = SKLEARN[name](refs, preds, labels=[0, 1, 2], average=None, zero_division=zero_division)
        assert got == pytest.approx(expected.tolist())


def test_unknown_average_is_rejected(metrics):
    with pytest.raises(ValueError, match="average='samples'"):
        metrics["f1"].compute(predictions=PREDS, references=REFS, average="samples")


def test_bundled_layout_matches_package_data_glob():
    # pyproject: [tool.setuptools.package-data] hf_cost = ["quality/metrics/*/*.py", ...]
    scripts = sorted(p.relative_to(METRICS_DIR).as_posix() for p in METRICS_DIR.glob("*/*.py"))
    assert scripts == sorted(f"{name}/{name}.py" for name in BUNDLED)
    for name in BUNDLED:
        assert bundled_path(name).is_file()
        assert not (METRICS_DIR / name / "__init__.py").exists()


def test_bundled_metrics_load_offline_without_network(no_network):
    loaded = {name: load_metric(name) for name in BUNDLED}
    for name, module in loaded.items():
        assert module.name == name
        assert module.description.strip() and module.citation.strip()
    for name in ("accuracy", "f1", "precision", "recall"):  # label ids
        assert set(loaded[name].features) == {"predictions", "references"}
        assert loaded[name].compute(predictions=[1, 0], references=[1, 1])[name] >= 0
    assert loaded["exact_match"].compute(predictions=["Praise ", ""], references=["praise", "question"]) == {
        "exact_match": 0.5}
    assert loaded["perplexity"].compute(nll_sums=[3.0, 6.0], token_counts=[2, 4])["perplexity"] == pytest.approx(
        2.718281828459045 ** 1.5)
    assert no_network == []


def test_unknown_metric_offline_is_a_user_error(no_network):
    with pytest.raises(UserError) as info:
        load_metric("acuracy")
    message = str(info.value)
    assert "\n" not in message
    assert "'acuracy'" in message and "offline" in message
    assert "accuracy, f1, precision, recall" in message
    assert "did you mean 'accuracy'" in message
    assert no_network == []  # HF_HUB_OFFLINE=1 alone keeps evaluate off the network


def test_unknown_metric_online_without_network_is_a_user_error(monkeypatch, no_network):
    import evaluate

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_EVALUATE_OFFLINE", raising=False)
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", False)
    with pytest.raises(UserError, match="could not be loaded from the Hugging Face Hub"):
        load_metric("someone/some_metric")
    assert evaluate.config.HF_EVALUATE_OFFLINE is False  # the offline switch was restored


def test_missing_local_script_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no metric script there"):
        load_metric(str(tmp_path / "mine" / "mine.py"))


# ---------------------------------------------------------------------------------------------
# Vectorised confusion-matrix arithmetic == the evaluate modules (== sklearn).
# ---------------------------------------------------------------------------------------------
def _noisy_labels(n: int, num_labels: int, seed: int, absent: int | None = None):
    rng = np.random.default_rng(seed)
    classes = [c for c in range(num_labels) if c != absent]
    refs = rng.choice(classes, size=n)
    wrong = rng.choice(classes, size=n)
    preds = np.where(rng.random(n) < 0.7, refs, wrong)
    return preds, refs


def test_confusion_matrices_match_sklearn():
    preds, refs = _noisy_labels(500, 4, seed=3)
    codes = (refs * 4 + preds)[None, :]
    assert (confusion_matrices(codes, 4)[0] == confusion_matrix(refs, preds, labels=range(4))).all()
    batch = np.stack([codes[0], codes[0][::-1], codes[0][:250].repeat(2)])
    assert confusion_matrices(batch, 4).shape == (3, 4, 4)
    assert confusion_matrices(batch, 4)[2].sum() == 500


@pytest.mark.parametrize(("num_labels", "absent"), [(2, None), (3, None), (5, 4), (4, 1)])
def test_vectorised_metrics_equal_module_values(metrics, num_labels, absent):
    # `absent`: a label id that occurs in neither references nor predictions; sklearn's default
    # labels leave it out of the macro average, and so does metrics_from_confusion.
    preds, refs = _noisy_labels(5000, num_labels, seed=num_labels, absent=absent)
    data = {"predictions": preds.tolist(), "references": refs.tolist()}
    conf = confusion_matrix(refs, preds, labels=range(num_labels))
    vec = metrics_from_confusion(conf)
    assert vec["accuracy"] == pytest.approx(metrics["accuracy"].compute(**data)["accuracy"], abs=1e-12)
    for name in ("f1", "precision", "recall"):
        macro = metrics[name].compute(**data, average="macro", zero_division=0)[name]
        assert vec[f"{name}_macro"] == pytest.approx(macro, abs=1e-12)
        per_class = metrics[name].compute(
            **data, average=None, labels=list(range(num_labels)), zero_division=0
        )[name]
        assert vec[name] == pytest.approx(per_class, abs=1e-12)
        # and sklearn directly, the independent reference
        sk = SKLEARN[name]
        macro_sk = sk(refs, preds, average="macro", zero_division=0)
        assert vec[f"{name}_macro"] == pytest.approx(macro_sk, abs=1e-12)
        expected = sk(refs, preds, labels=list(range(num_labels)), average=None, zero_division=0)
        assert vec[name] == pytest.approx(expected.tolist(), abs=1e-12)
    assert vec["accuracy"] == pytest.approx(accuracy_score(refs, preds), abs=1e-12)


def test_vectorised_metrics_with_a_class_only_predicted(metrics):
    # class 2 is predicted once but never a reference: recall 0/0 -> 0, precision 0/1, and it
    # counts in the macro average (sklearn: labels default to the union of both lists).
    #   class 0: TP 2, predicted 2, support 2 -> P 1,   R 1,   F1 1
    #   class 1: TP 2, predicted 2, support 3 -> P 1,   R 2/3, F1 4/5
    #   class 2: TP 0, predicted 1, support 0 -> P 0,   R 0,   F1 0
    #   macro: P (1 + 1 + 0) / 3 = 2/3, R (1 + 2/3 + 0) / 3 = 5/9, F1 (1 + 4/5 + 0) / 3 = 3/5
    preds, refs = [0, 1, 2, 1, 0], [0, 1, 1, 1, 0]
    vec = metrics_from_confusion(confusion_matrix(refs, preds, labels=range(3)))
    assert vec["precision"] == pytest.approx([1.0, 1.0, 0.0])
    assert vec["recall"] == pytest.approx([1.0, 2 / 3, 0.0])
    assert vec["f1"] == pytest.approx([1.0, 4 / 5, 0.0])
    assert vec["precision_macro"] == pytest.approx(2 / 3)
    assert vec["recall_macro"] == pytest.approx(5 / 9)
    assert vec["f1_macro"] == pytest.approx(3 / 5)
    assert vec["accuracy"] == pytest.approx(4 / 5)
    for name in ("f1", "precision", "recall"):
        macro = metrics[name].compute(predictions=preds, references=refs, average="macro", zero_division=0)
        assert vec[f"{name}_macro"] == pytest.approx(macro[name])


# ---------------------------------------------------------------------------------------------
# score_classification
# ---------------------------------------------------------------------------------------------
def test_score_classification_golden():
    report = score_classification(PREDS, REFS, ["neg", "neu", "pos"], n_resamples=200)
    assert report["n"] == 10
    assert report["accuracy"]["value"] == pytest.approx(7 / 10)
    assert report["f1_macro"]["value"] == pytest.approx(85 / 126)
    assert report["precision_macro"]["value"] == pytest.approx(47 / 60)
    assert report["recall_macro"]["value"] == pytest.approx(25 / 36)
    for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro"):
        entry = report[key]
        assert set(entry) == {"value", "ci_low", "ci_high", "ci_level", "n", "method"}
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
        assert entry["ci_level"] == 0.95 and entry["n"] == 10
        assert entry["method"] == "percentile bootstrap, 200 resamples, seed 0"
    assert list(report["per_class"]) == ["neg", "neu", "pos"]
    for i, label in enumerate(["neg", "neu", "pos"]):
        row = report["per_class"][label]
        assert row["support"] == [4, 3, 3][i]
        for name in ("precision", "recall", "f1"):
            assert row[name] == pytest.approx(GOLDEN_PER_CLASS[name][i])
    assert json.loads(json.dumps(report)) == report  # JSON-ready: plain floats and ints


def test_score_classification_defaults_and_absent_class():
    # "maybe" (id 2) never occurs: per-class zeros with support 0, left out of the macro averages
    report = score_classification(BIN_PREDS, BIN_REFS, ["no", "yes", "maybe"])
    assert report["accuracy"]["method"] == "percentile bootstrap, 1000 resamples, seed 0"
    assert report["per_class"]["maybe"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["recall_macro"]["value"] == pytest.approx((2 / 4 + 3 / 4) / 2)


def test_score_classification_accuracy_ci_is_the_bootstrap_of_correctness():
    preds, refs = _noisy_labels(1000, 3, seed=11)
    report = score_classification(preds, refs, ["a", "b", "c"], n_resamples=300, seed=5)
    correct = (preds == refs).astype(float)
    low, high = bootstrap_ci(lambda idx: correct[idx].mean(axis=1), 1000, n_resamples=300, seed=5)
    assert report["accuracy"]["ci_low"] == pytest.approx(float(low))
    assert report["accuracy"]["ci_high"] == pytest.approx(float(high))


def test_score_classification_same_seed_same_ci():
    preds, refs = _noisy_labels(800, 3, seed=2)
    first = score_classification(preds, refs, ["a", "b", "c"], n_resamples=200, seed=7)
    again = score_classification(preds.tolist(), refs.tolist(), ["a", "b", "c"], n_resamples=200, seed=7)
    other = score_classification(preds, refs, ["a", "b", "c"], n_resamples=200, seed=8)
    assert first == again
    assert first["f1_macro"]["ci_low"] != other["f1_macro"]["ci_low"]


def test_bootstrap_of_5000_examples_brackets_the_sklearn_values():
    # 1000 resamples of 5000 examples: 5000 * 1000 indices, more than one chunk of the index array
    preds, refs = _noisy_labels(5000, 3, seed=4)
    codes = refs * 3 + preds

    def statistic(idx):
        m = metrics_from_confusion(confusion_matrices(codes[idx], 3))
        return np.stack([m["accuracy"], m["f1_macro"], m["precision_macro"], m["recall_macro"]], -1)

    low, high = bootstrap_ci(statistic, 5000, n_resamples=1000, seed=0)
    assert low.shape == high.shape == (4,)
    assert (low < high).all()
    point = [
        accuracy_score(refs, preds),
        f1_score(refs, preds, average="macro"),
        precision_score(refs, preds, average="macro"),
        recall_score(refs, preds, average="macro"),
    ]
    for lo, value, hi in zip(low, point, high):
        assert lo <= value <= hi
        # a 95% interval of a proportion-like figure at n = 5000 is about 2 * 1.96 * 0.0065 wide
        assert 0.01 < hi - lo < 0.04


@pytest.mark.parametrize(
    ("preds", "refs", "names", "message"),
    [
        ([0, 1], [0], ["a", "b"], "differ in length: 2 != 1"),
        ([], [], ["a", "b"], "no examples"),
        ([0, 2], [0, 1], ["a", "b"], r"predictions\[1\] = 2 is not a label id in 0..1"),
        ([0, 1], [-1, 1], ["a", "b"], r"references\[0\] = -1 is not a label id"),
        ([0.0, 1.0], [0, 1], ["a", "b"], "integer label ids"),
        ([0, 1], [0, 1], ["a", "a"], "duplicates"),
        ([0, 1], [0, 1], [], "label_names is empty"),
        ([0, 1], [0, 1], "ab", "not one string"),
    ],
)
def test_score_classification_validation(preds, refs, names, message):
    with pytest.raises(ValueError, match=message):
        score_classification(preds, refs, names, n_resamples=10)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_resamples": 0}, "n_resamples must be at least 1"),
    ({"confidence": 1.0}, "confidence must be strictly between 0 and 1"),
    ({"confidence": 0.0}, "confidence must be strictly between 0 and 1"),
])
def test_bootstrap_argument_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        score_classification([0, 1], [0, 1], ["a", "b"], **kwargs)
    with pytest.raises(ValueError, match=message):
        bootstrap_ci(lambda idx: idx.mean(axis=1), 5, **kwargs)


# ---------------------------------------------------------------------------------------------
# Bootstrap CI on a known distribution: Bernoulli(0.8) correct/incorrect outcomes.
# ---------------------------------------------------------------------------------------------
def _accuracy_ci(correct: np.ndarray, n_resamples: int, seed: int, confidence: float = 0.95):
    return bootstrap_ci(
        lambda idx: correct[idx].mean(axis=1),
        len(correct),
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
    )


def test_bernoulli_ci_width_matches_normal_approximation():
    n = 2000
    correct = (np.random.default_rng(12345).random(n) < 0.8).astype(float)
    p = correct.mean()
    low, high = _accuracy_ci(correct, n_resamples=1000, seed=0)
    assert low <= p <= high
    expected_width = 2 * 1.96 * math.sqrt(p * (1 - p) / n)  # about 0.035
    assert abs((high - low) - expected_width) <= 0.2 * expected_width
    # a lower confidence gives a narrower interval inside the wider one (same resamples)
    low90, high90 = _accuracy_ci(correct, n_resamples=1000, seed=0, confidence=0.90)
    assert low <= low90 < high90 <= high


def test_bernoulli_ci_agrees_with_scipy_bootstrap():
    # scipy.stats.bootstrap (percentile method) as an independent reference: it draws other
    # resamples, so the endpoints agree only up to Monte Carlo noise (~0.0005 each at B = 2000).
    from scipy.stats import bootstrap

    correct = (np.random.default_rng(7).random(2000) < 0.8).astype(float)
    low, high = _accuracy_ci(correct, n_resamples=2000, seed=0)
    ref = bootstrap(
        (correct,), np.mean, n_resamples=2000, confidence_level=0.95, method="percentile",
        random_state=np.random.default_rng(0),
    ).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.003)
    assert high == pytest.approx(ref.high, abs=0.003)


def test_constant_outcomes_give_a_zero_width_interval():
    # every resample of all-correct (all-wrong) examples has accuracy 1 (0): the interval is a point
    assert _accuracy_ci(np.ones(50), n_resamples=100, seed=0) == (1.0, 1.0)
    assert _accuracy_ci(np.zeros(50), n_resamples=100, seed=0) == (0.0, 0.0)


def test_bernoulli_ci_same_seed_identical():
    correct = (np.random.default_rng(1).random(500) < 0.8).astype(float)
    assert _accuracy_ci(correct, 200, seed=3) == _accuracy_ci(correct, 200, seed=3)
    assert _accuracy_ci(correct, 200, seed=3) != _accuracy_ci(correct, 200, seed=4)


def test_bernoulli_ci_covers_true_p_about_95_percent():
    # 500 independent samples of 500 Bernoulli(0.8) outcomes, 200 resamples each (~0.5 s).
    # The percentile bootstrap of a proportion covers a little under its nominal 95% at this n;
    # 500 repetitions keep the binomial noise of the estimate near +-1%.
    rng = np.random.default_rng(2024)
    repetitions, covered = 500, 0
    for rep in range(repetitions):
        correct = (rng.random(500) < 0.8).astype(float)
        low, high = _accuracy_ci(correct, n_resamples=200, seed=rep)
        covered += bool(low <= 0.8 <= high)
    assert 0.88 <= covered / repetitions <= 0.99
