"""inputs.lengths: natural (each sample at its own tokenised length, a batch padded to its
longest member) against fixed (every sample padded to sequence_length, the behaviour before it).

Lengths are hand-computed from the tiny tokenizer: every vocabulary word is one token, and a
text of k words is [CLS] + k + [SEP] = k + 2 tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from scenario_helpers import run_cli, word_counts_csv

import hf_cost.measure.timing as timing_module
from hf_cost.config.schema import (
    DatasetInputs,
    OfflineScenario,
    SingleStreamScenario,
    SyntheticInputs,
    load_suite,
)
from hf_cost.core.candidate_info import FlopsInfo
from hf_cost.core.metrics import OfflineMetrics
from hf_cost.data.performance_set import PerformanceSet, _texts, build_performance_set
from hf_cost.errors import ConfigError
from hf_cost.measure.flops import (
    analytic_encoder_flops,
    analytic_encoder_terms,
    count_forward_flops,
    flops_over_lengths,
)
from hf_cost.measure.memory import current_rss_bytes
from hf_cost.models.context import RunContext
from hf_cost.progress import Progress
from hf_cost.steps.offline import OfflineRunner
from hf_cost.steps.single_stream import SingleStreamRunner

SEQ = 16
CPU = torch.device("cpu")


def dataset_inputs(path: Path, n: int, **kw: Any) -> DatasetInputs:
    return DatasetInputs(kind="dataset", dataset={"path": str(path)}, sequence_length=SEQ, num_samples=n, **kw)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_bert_dir))


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """Texts of 1, 5 and 3 words: 3, 7 and 5 tokens."""
    return word_counts_csv(tmp_path_factory.mktemp("three") / "t.csv", tiny_bert_dir, [1, 5, 3])


def row_of_length(pset: PerformanceSet, length: int) -> int:
    return pset.token_counts().index(length)


# --- the scenario file ----------------------------------------------------------------------

def test_lengths_default_natural_for_datasets_fixed_for_synthetic(three: Path) -> None:
    assert dataset_inputs(three, 3).lengths == "natural"
    assert dataset_inputs(three, 3, lengths="fixed").lengths == "fixed"
    assert SyntheticInputs().lengths == "fixed"


def test_synthetic_natural_is_refused_at_the_key(tmp_path: Path, tiny_bert_dir: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"""
model: {{path: {json.dumps(str(tiny_bert_dir))}, device: cpu}}
inputs: {{kind: synthetic, lengths: natural}}
scenarios: [{{kind: offline}}]
""", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"inputs.*lengths.*no natural length"):
        load_suite(path)


# --- the performance set --------------------------------------------------------------------

def test_lengths_hand_computed(three: Path, tokenizer: Any, tmp_path: Path, tiny_bert_dir: Path) -> None:
    pset = build_performance_set(dataset_inputs(three, 3), tokenizer, CPU)
    assert sorted(pset.token_counts()) == [3, 5, 7]
    assert pset.width == 7  # stored padded to the longest sample of the set, not to 16
    # each sample's count is its attention mask's sum and its non-pad ids
    assert pset.tensors["attention_mask"].sum(dim=1).tolist() == pset.token_counts()
    assert (pset.tensors["input_ids"] != tokenizer.pad_token_id).sum(dim=1).tolist() == pset.token_counts()
    d = pset.describe()
    assert d["lengths"] == "natural" and d["sequence_length"] == SEQ
    assert d["length_distribution"] == {
        # nearest rank: sorted[int(3 * 0.5)] = sorted[1] = 5; sorted[int(3 * 0.9)] = sorted[2] = 7
        "min": 3, "p50": 5, "p90": 7, "max": 7, "mean": 5.0, "histogram": {"3": 1, "5": 1, "7": 1},
    }
    # padded to 16, the set would be (48 - 15) / 48 padding
    assert d["padded_token_share_at_sequence_length"] == pytest.approx(33 / 48)
    # sequence_length caps: 20 words -> 22 tokens, truncated to 16
    long = word_counts_csv(tmp_path / "long.csv", tiny_bert_dir, [20, 2])
    assert sorted(build_performance_set(dataset_inputs(long, 2), tokenizer, CPU).token_counts()) == [4, 16]


def test_batch_cut_to_its_longest_member_with_right_masks(three: Path, tokenizer: Any) -> None:
    pset = build_performance_set(dataset_inputs(three, 3), tokenizer, CPU)
    idx = torch.tensor([row_of_length(pset, n) for n in (3, 7, 5)])
    b = pset.batch(idx)
    assert {k: tuple(t.shape) for k, t in b.items()} == {k: (3, 7) for k in pset.tensors}
    assert b["attention_mask"].tolist() == [[1] * 3 + [0] * 4, [1] * 7, [1] * 5 + [0] * 2]
    assert (b["input_ids"][b["attention_mask"] == 0] == tokenizer.pad_token_id).all()
    assert b["input_ids"][:, 0].tolist() == [tokenizer.cls_token_id] * 3
    assert [row.tolist().index(tokenizer.sep_token_id) for row in b["input_ids"]] == [2, 6, 4]
    assert pset.batch_width(idx) == 7 and pset.tokens(idx) == (15, 21)
    # a batch without the longest sample is cut shorter
    assert tuple(pset.batch(idx[[0, 2]])["input_ids"].shape) == (2, 5)
    # a one-sample view is the sample at its own length, all real tokens
    for i in range(3):
        one = pset.one(i)
        assert tuple(one["input_ids"].shape) == (1, pset.token_counts()[i])
        assert one["attention_mask"].all()


def test_fixed_mode_is_the_old_padding(three: Path, tokenizer: Any) -> None:
    inputs = dataset_inputs(three, 3, lengths="fixed")
    pset = build_performance_set(inputs, tokenizer, CPU)
    texts, pairs, _ = _texts(inputs)
    old = tokenizer(texts, pairs, padding="max_length", truncation=True, max_length=SEQ, return_tensors="pt")
    assert pset.tensors.keys() == set(old.keys())
    assert all(torch.equal(pset.tensors[k], old[k]) for k in old)
    idx = torch.tensor([2, 0])
    assert all(torch.equal(pset.batch(idx)[k], old[k].index_select(0, idx)) for k in old)
    assert all(torch.equal(pset.one(1)[k], old[k][1:2]) for k in old)
    # the real lengths are still known, so the padding it costs is reported
    assert sorted(pset.token_counts()) == [3, 5, 7]
    assert pset.tokens(idx) == (pset.token_counts()[2] + pset.token_counts()[0], 2 * SEQ)
    assert pset.describe()["lengths"] == "fixed"


def test_natural_logits_equal_fixed_logits(three: Path, tokenizer: Any, tiny_bert_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir), num_labels=3).eval()
    natural = build_performance_set(dataset_inputs(three, 3), tokenizer, CPU)
    fixed = build_performance_set(dataset_inputs(three, 3, lengths="fixed"), tokenizer, CPU)
    idx = torch.arange(3)
    with torch.inference_mode():
        padded = model(**fixed.batch(idx)).logits
        cut = model(**natural.batch(idx)).logits
        alone = torch.cat([model(**natural.one(i)).logits for i in range(3)])
    assert torch.allclose(cut, padded, atol=1e-5, rtol=0)
    assert torch.allclose(alone, padded, atol=1e-5, rtol=0)


# --- runners: padded-token share, real tokens, FLOPs of the samples that ran -----------------

class FakeClock:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> float:
        return self.ms / 1000


class TenMs:
    """A candidate whose every forward takes 10 ms of fake time."""

    name, device, is_cuda = "dummy", CPU, False

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def forward(self, batch: dict[str, Any]) -> Any:
        self.clock.ms += 10
        return batch["input_ids"]

    def synchronize(self) -> None:
        pass


def hand_set(lengths: list[int], mode: str, width: int = 8) -> PerformanceSet:
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n], mask[i, :n] = 7, 1
    return PerformanceSet(tensors={"input_ids": ids, "attention_mask": mask}, source="hand", seed=0,
                          sequence_length=width, lengths=mode, sample_lengths=lengths)


def run(runner: Any, scenario: Any, pset: PerformanceSet, sample_flops: list[float] | None = None) -> Any:
    clock = FakeClock()
    ctx = RunContext(
        candidate=TenMs(clock), perf_set=pset, sample_flops=sample_flops,
        flops_per_sample=sum(sample_flops) / len(sample_flops) if sample_flops else 1e6, peak_tflops=1.0,
        baseline_rss_bytes=current_rss_bytes(), progress=Progress(enabled=False),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timing_module, "clock", clock)
        return runner.run(scenario, ctx)


OFFLINE = OfflineScenario(kind="offline", name="offline", batch_sizes=[2], min_duration_s=0.2,
                          min_sample_count=20, warmup_batches=1)


def test_padded_share_hand_computed_same_lengths() -> None:
    # every sample is 5 real tokens of an 8-wide set; 10 ms per batch of 2 -> 200 samples/s
    (nat,) = run(OfflineRunner(), OFFLINE, hand_set([5] * 4, "natural"))
    (fix,) = run(OfflineRunner(), OFFLINE, hand_set([5] * 4, "fixed"))
    n, f = nat.metrics, fix.metrics
    assert n.throughput_samples_per_s == pytest.approx(200.0) == f.throughput_samples_per_s
    # natural: no padding at all (batches cut to 5), real tokens 5 x 200 /s
    assert n.padded_token_share == 0.0
    assert n.throughput_tokens_per_s == pytest.approx(1000.0) == n.throughput_padded_tokens_per_s
    assert set(nat.raw["batch_tokens"]) == {10} and set(nat.raw["batch_real_tokens"]) == {10}
    # fixed: every batch padded to 8, 3 of 8 tokens are padding; tokens/s as before (padded)
    assert f.padded_token_share == pytest.approx(3 / 8)
    assert f.throughput_tokens_per_s == pytest.approx(1600.0) == f.throughput_padded_tokens_per_s
    assert set(fix.raw["batch_tokens"]) == {16} and set(fix.raw["batch_real_tokens"]) == {10}
    assert nat.settings["lengths"] == "natural" and fix.settings["lengths"] == "fixed"


def test_padded_share_and_gflops_of_mixed_lengths() -> None:
    lengths = [3, 7, 5, 2]
    flops = [100.0 * n for n in lengths]
    (r,) = run(OfflineRunner(), OFFLINE, hand_set(lengths, "natural"), flops)
    raw, m = r.raw, r.metrics
    assert sum(raw["batch_real_tokens"]) / sum(raw["batch_tokens"]) == pytest.approx(1 - m.padded_token_share)
    assert all(t in {4, 6, 10, 14} for t in raw["batch_tokens"])  # 2 x the longer of each pair
    assert m.throughput_tokens_per_s == pytest.approx(sum(raw["batch_real_tokens"]) / m.duration_s)
    # GFLOP/s from the mean FLOPs of the samples that ran: 100 x (their mean real length)
    mean_len = sum(raw["batch_real_tokens"]) / m.samples
    assert m.achieved_gflops_per_s == pytest.approx(100.0 * mean_len * m.throughput_samples_per_s / 1e9)
    assert m.mfu == pytest.approx(m.achieved_gflops_per_s / 1e3)


def test_single_stream_views_and_gflops_of_the_samples_that_ran() -> None:
    lengths = [3, 7, 5, 2]
    pset = hand_set(lengths, "natural")
    seen: list[tuple[int, ...]] = []
    sc = SingleStreamScenario(kind="single_stream", name="ss", min_duration_s=0.1, min_query_count=64,
                              warmup_queries=0)
    runner = SingleStreamRunner()
    clock = FakeClock()
    cand = TenMs(clock)
    forward = cand.forward
    cand.forward = lambda b: (seen.append(tuple(b["input_ids"].shape)), forward(b))[1]  # type: ignore[method-assign]
    flops = [1000.0 * n for n in lengths]
    ctx = RunContext(candidate=cand, perf_set=pset, flops_per_sample=sum(flops) / 4, sample_flops=flops,
                     peak_tflops=None, baseline_rss_bytes=current_rss_bytes(), progress=Progress(enabled=False))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timing_module, "clock", clock)
        (r,) = runner.run(sc, ctx)
    ran = r.raw["sample_indices"]
    assert seen == [(1, lengths[i]) for i in ran]  # each query at its sample's own length
    mean = sum(flops[i] for i in ran) / len(ran)
    assert r.metrics.achieved_gflops_per_s == pytest.approx(mean * 100.0 / 1e9)  # 10 ms -> 100 /s
    assert r.settings["lengths"] == "natural"


# --- FLOPs over lengths ------------------------------------------------------------------------

def test_analytic_terms_are_the_formula() -> None:
    from transformers import BertConfig

    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    for pooler, labels in [(True, None), (False, None), (True, 3)]:
        terms = analytic_encoder_terms(config, with_pooler=pooler, num_labels=labels)
        for s in (1, 2, 17, 64):
            assert terms.at(s) == analytic_encoder_flops(config, s, with_pooler=pooler, num_labels=labels)


def test_flops_per_length_agree_with_analytic(three: Path, tokenizer: Any, tiny_bert_dir: Path) -> None:
    from transformers import AutoModel

    from hf_cost.models.store import _flops
    from hf_cost.models.torch_candidate import TorchCandidate

    model = AutoModel.from_pretrained(str(tiny_bert_dir), attn_implementation="sdpa").eval()
    pset = build_performance_set(dataset_inputs(three, 3), tokenizer, CPU)
    info, per_sample = _flops(TorchCandidate("base", model, tokenizer), pset, model.config)

    def analytic(n: int) -> int:
        return analytic_encoder_flops(model.config, n, with_pooler=True)

    # counted at the median (5, measured_per_sample), min (3) and max (7)
    assert info.sequence_length == 5 and info.measured_per_sample == analytic(5)
    assert [a.sequence_length for a in info.measured_at_lengths] == [3, 5, 7]
    for a in info.measured_at_lengths:
        assert a.measured_per_sample == analytic(a.sequence_length) == a.analytic_per_sample
        assert a.relative_difference == 0 and a.samples == 1
        one = pset.one(row_of_length(pset, a.sequence_length))
        assert count_forward_flops(model, one).total == a.measured_per_sample
    assert info.per_sample_from == "analytic"
    assert per_sample == [analytic(n) for n in pset.token_counts()]
    assert info.mean_per_sample == pytest.approx((analytic(3) + analytic(5) + analytic(7)) / 3)
    assert info.per_length == {"3": analytic(3), "5": analytic(5), "7": analytic(7)}
    # fixed lengths: one count at sequence_length, and the mean is that count
    fixed = build_performance_set(dataset_inputs(three, 3, lengths="fixed"), tokenizer, CPU)
    info, per_sample = _flops(TorchCandidate("base", model, tokenizer), fixed, model.config)
    assert per_sample is None and info.sequence_length == SEQ
    assert info.measured_per_sample == analytic(SEQ) == info.mean_per_sample


def fake_info(length: int, analytic: bool) -> FlopsInfo:
    from types import SimpleNamespace

    terms = analytic_encoder_terms(SimpleNamespace(hidden_size=4, num_hidden_layers=1, intermediate_size=8),
                                   with_pooler=False) if analytic else None
    return FlopsInfo(sequence_length=length, batch_size=1, measured_per_sample=10 * length * length,
                     analytic_per_sample=terms.at(length) if terms else None, relative_difference=None,
                     by_operator={}, method="fake", analytic_terms=terms)


def test_without_a_formula_every_length_is_counted() -> None:
    lengths = [4, 2, 4, 9, 6]
    asked: list[int] = []

    def count(i: int) -> FlopsInfo:
        asked.append(lengths[i])
        return fake_info(lengths[i], analytic=False)

    info, per_sample = flops_over_lengths(count, lengths, [4, 2, 9])
    assert asked == [4, 2, 9, 6]  # the probe lengths, then the one left
    assert per_sample == [10 * n * n for n in lengths] and info.per_sample_from == "measured"
    assert info.mean_per_sample == pytest.approx(sum(per_sample) / 5)
    assert info.measured_per_sample == 160  # the first probe length: the median


def test_a_formula_that_disagrees_with_the_counts_is_not_used() -> None:
    lengths = [4, 2, 9]
    info, per_sample = flops_over_lengths(lambda i: fake_info(lengths[i], analytic=True), lengths, [4, 2, 9])
    assert info.per_sample_from == "measured" and per_sample == [160, 40, 810]


def test_a_candidate_counted_only_on_sample_zero() -> None:
    # quanto settles its FLOPs at build time, on sample 0 (length 6 here), and answers no other shape
    lengths = [6, 2, 2, 2, 9]  # min 2, median 2, max 9: sample 0's length is not among them

    def count(i: int) -> FlopsInfo | None:
        return fake_info(6, analytic=False) if lengths[i] == 6 else None

    info, per_sample = flops_over_lengths(count, lengths, [2, 2, 9])
    assert info.sequence_length == 6 and per_sample is None and info.mean_per_sample is None
    assert "sample 0" in info.method


# --- results: old files load, a natural run writes the new fields ------------------------------

def test_files_without_the_new_fields_load() -> None:
    lat = {"n": 1, "mean_ms": 1.0, "stdev_ms": None, "min_ms": 1.0, "max_ms": 1.0, "percentiles_ms": {"p50": 1.0}}
    m = OfflineMetrics.model_validate({
        "samples": 1, "batches": 1, "duration_s": 1.0, "throughput_samples_per_s": 1.0,
        "throughput_tokens_per_s": 128.0, "batch_latency_ms": lat, "achieved_gflops_per_s": None, "mfu": None})
    assert m.padded_token_share is None and m.throughput_padded_tokens_per_s is None
    f = FlopsInfo.model_validate({"sequence_length": 128, "batch_size": 1, "measured_per_sample": 5,
                                  "analytic_per_sample": None, "relative_difference": None, "by_operator": {},
                                  "source": "measured", "method": "m"})
    assert f.mean_per_sample is None and f.measured_at_lengths is None


def test_natural_run_end_to_end(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from hf_cost.report.schema import RunResult

    data_file = word_counts_csv(tmp_path / "t.csv", tiny_bert_dir, [1, 5, 3, 8, 2, 12])
    scenario = tmp_path / "natural.yaml"
    scenario.write_text(f"""
name: natural
model: {{path: {json.dumps(str(tiny_bert_dir))}, device: cpu}}
inputs:
  dataset: {{path: {json.dumps(str(data_file))}}}
  sequence_length: {SEQ}
  num_samples: 6
scenarios:
  - {{kind: single_stream, min_duration_s: 0.05, min_query_count: 20, warmup_queries: 2}}
  - {{kind: offline, batch_sizes: [3], min_duration_s: 0.05, min_sample_count: 12, warmup_batches: 1}}
""", encoding="utf-8")
    out = tmp_path / "out"
    results = run_cli(scenario, out)
    RunResult.model_validate(results)
    inputs = results["inputs"]
    assert inputs["lengths"] == "natural" and results["suite"]["inputs"]["lengths"] == "natural"
    assert inputs["length_distribution"]["histogram"] == {"3": 1, "4": 1, "5": 1, "7": 1, "10": 1, "14": 1}
    flops = results["candidates"]["base"]["flops"]
    assert [a["sequence_length"] for a in flops["measured_at_lengths"]] == [3, 7, 14]  # min, p50, max
    assert flops["sequence_length"] == 7 and flops["per_sample_from"] == "analytic"
    assert all(a["relative_difference"] == 0 for a in flops["measured_at_lengths"])
    assert flops["mean_per_sample"] == pytest.approx(
        sum(flops["per_length"][str(n)] for n in (3, 4, 5, 7, 10, 14)) / 6)
    ss, off = results["scenarios"]
    assert ss["settings"]["lengths"] == off["settings"]["lengths"] == "natural"
    m, raw = off["metrics"], off["raw"]
    assert m["padded_token_share"] == pytest.approx(1 - sum(raw["batch_real_tokens"]) / sum(raw["batch_tokens"]))
    assert m["throughput_tokens_per_s"] == pytest.approx(sum(raw["batch_real_tokens"]) / m["duration_s"])
    assert m["throughput_padded_tokens_per_s"] >= m["throughput_tokens_per_s"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "natural lengths" in report and "min 3, p50 7, p90 14, max 14" in report
