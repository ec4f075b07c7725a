"""Hostile or mistaken scenario files: each ends in one ConfigError line naming the file and key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import write_scenario

from hf_cost.config import load_suite, load_yaml
from hf_cost.config.loader import MAX_DEPTH, MAX_NODES
from hf_cost.errors import ConfigError

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
MODEL = "model: {path: /x}\n"


def refused(path: Path, *fragments: str) -> str:
    """load_suite(path) must raise one ConfigError line naming the file and holding every fragment."""
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: "), msg
    assert "\n" not in msg, msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return msg


def refused_quickly(path: Path, *fragments: str) -> str:
    started = time.perf_counter()
    msg = refused(path, *fragments)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"refusal took {elapsed:.2f} s"
    return msg


# --- YAML loader guards --------------------------------------------------------------------


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = MODEL + "scenarios:\n  - kind: offline\n    min_duration_s: 1\n    min_duration_s: 2\n"
    refused(write_scenario(tmp_path, text), "line 5: duplicate key 'min_duration_s' (first at line 4)")


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    text = MODEL + "scenarios: [{kind: offline}]\nmodel: {path: /y}\n"
    refused(write_scenario(tmp_path, text), "line 3: duplicate key 'model' (first at line 1)")


def test_keys_equal_as_values_are_duplicates(tmp_path: Path) -> None:
    # 1 and 0x1 are the same int key: the dict would keep only the second
    path = write_scenario(tmp_path, "a: {1: x, 0x1: y}\n")
    with pytest.raises(ConfigError, match="duplicate key '0x1'"):
        load_yaml(path)


def test_merge_key_and_explicit_override_are_allowed(tmp_path: Path) -> None:
    text = """\
base: &base {x: 1, y: 2}
one:
  <<: *base
  x: 5
two: {<<: [*base, {z: 3}], y: 7}
"""
    data = load_yaml(write_scenario(tmp_path, text))
    assert data["one"] == {"x": 5, "y": 2}
    assert data["two"] == {"x": 1, "y": 7, "z": 3}


def test_duplicate_key_inside_merging_mapping_is_refused(tmp_path: Path) -> None:
    text = "base: &base {x: 1}\none:\n  <<: *base\n  y: 1\n  y: 2\n"
    with pytest.raises(ConfigError, match=r"line 5: duplicate key 'y' \(first at line 4\)"):
        load_yaml(write_scenario(tmp_path, text))


@pytest.mark.parametrize("text", ["loop: &l [*l]\n", "loop: &l {a: [1, *l]}\n"])
def test_recursive_alias_is_refused(tmp_path: Path, text: str) -> None:
    refused_quickly(write_scenario(tmp_path, text), "line 1", "recursive alias *l")


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "unclosed"])
def test_deep_flow_nesting_is_refused_quickly(tmp_path: Path, closed: bool) -> None:
    text = "scenarios: " + "[" * 10_000 + ("]" * 10_000 if closed else "") + "\n"
    msg = refused_quickly(write_scenario(tmp_path, text), f"nesting deeper than {MAX_DEPTH} levels")
    assert "Recursion" not in msg


def test_deep_block_nesting_is_refused(tmp_path: Path) -> None:
    text = "a:\n" + "".join(" " * (2 * i + 2) + "-\n" for i in range(2 * MAX_DEPTH))
    refused_quickly(write_scenario(tmp_path, text), f"nesting deeper than {MAX_DEPTH} levels")


def test_nesting_at_the_limit_is_fine(tmp_path: Path) -> None:
    depth = MAX_DEPTH - 1  # plus the top-level mapping
    data = load_yaml(write_scenario(tmp_path, "a: " + "[" * depth + "]" * depth + "\n"))
    node, levels = data["a"], 1
    while node:
        node, levels = node[0], levels + 1
    assert levels == depth


def test_nesting_through_aliases_is_counted(tmp_path: Path) -> None:
    half = MAX_DEPTH // 2 + 2
    text = f"a: &a {'[' * half}{']' * half}\nb: {'[' * half}*a{']' * half}\n"
    refused_quickly(write_scenario(tmp_path, text), "line 2", "once alias *a is expanded")


def billion_laughs(levels: int = 9) -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    text = billion_laughs()
    assert len(text) < 700  # 9**9 strings once expanded
    refused_quickly(write_scenario(tmp_path, text), f"more than {MAX_NODES:,} nodes", "alias")


def test_modest_alias_reuse_is_fine(tmp_path: Path) -> None:
    data = load_yaml(write_scenario(tmp_path, billion_laughs(levels=4)))  # 9**4 strings
    assert len(data["d"]) == 9 and data["d"][0][0][0] == ["lol"] * 9


def test_invalid_date_is_a_config_error(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, MODEL + "when: 2023-02-30\n")
    refused(path, "line 2", "2023-02-30", "day is out of range")


@pytest.mark.parametrize("path", sorted(SCENARIO_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_still_load(path: Path) -> None:
    suite = load_suite(path)  # bert.yaml merges `<<: *early` and overrides `select`
    assert suite.scenarios


def test_bert_merge_override_is_kept() -> None:
    suite = load_suite(SCENARIO_DIR / "bert.yaml")
    fine_tune = suite.scenarios[0]
    assert fine_tune.train.select == "train" and fine_tune.eval.select == "holdout"
    assert fine_tune.eval.where == fine_tune.train.where == {"period": "2023-H1"}


# --- schema: names, numbers, budgets, batch sizes --------------------------------------------

BAD_NAMES = ["../evil", "a/b", "/etc", ".", "..", ".hidden", "my suite", "a" * 65, "a\nb", ""]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_scenario_name_must_be_a_safe_identifier(tmp_path: Path, name: str) -> None:
    text = MODEL + f"scenarios:\n  - {{kind: offline}}\n  - {{kind: offline, name: {name!r}}}\n"
    refused(write_scenario(tmp_path, text.replace("'", '"')), "scenarios[1].name:", "letters, digits")


@pytest.mark.parametrize("name", ["../out", "/tmp/x", "a b"])
def test_suite_name_must_be_a_safe_identifier(tmp_path: Path, name: str) -> None:
    text = f"name: '{name}'\n" + MODEL + "scenarios: [{kind: offline}]\n"
    msg = refused(write_scenario(tmp_path, text), "name:", "letters, digits")
    assert msg.split(": ")[1] == "name"


def test_candidate_reference_must_be_a_safe_identifier(tmp_path: Path) -> None:
    text = MODEL + "scenarios: [{kind: offline, candidates: [base, ../../x]}]\n"
    refused(write_scenario(tmp_path, text), "scenarios[0].candidates[1]:", "letters, digits")


def test_from_reference_must_be_a_safe_identifier(tmp_path: Path) -> None:
    text = MODEL + "scenarios: [{kind: fine_tune, from: ../../x}]\n"
    refused(write_scenario(tmp_path, text), "scenarios[0].from:", "letters, digits")


FT_FLOW = "kind: fine_tune, train: {path: /d, label_column: l}, eval: {path: /d, label_column: l}, target: {value: 0.5}"


def test_candidates_on_a_building_step_names_the_kinds_it_belongs_to(tmp_path: Path) -> None:
    text = MODEL + f"scenarios: [{{{FT_FLOW}, candidates: [base]}}]\n"
    refused(
        write_scenario(tmp_path, text),
        "scenarios[0].candidates: unknown key 'candidates' for kind 'fine_tune'",
        "'single_stream', 'offline', 'accuracy'",
    )


def test_from_on_a_measurement_names_the_kind_it_belongs_to(tmp_path: Path) -> None:
    text = MODEL + "scenarios: [{kind: offline, from: base}]\n"
    refused(write_scenario(tmp_path, text), "scenarios[0].from: unknown key 'from' for kind 'offline'", "'fine_tune'")


def test_a_misspelt_from_suggests_from(tmp_path: Path) -> None:
    text = MODEL + f"scenarios: [{{{FT_FLOW}, fom: base}}]\n"
    refused(write_scenario(tmp_path, text), "scenarios[0].fom: unknown key 'fom'", "did you mean 'from'?")


def test_only_from_names_where_a_building_step_starts(tmp_path: Path) -> None:
    text = MODEL + f"scenarios: [{{{FT_FLOW}, name: a}}, {{{FT_FLOW}, name: b, source: a}}]\n"
    refused(write_scenario(tmp_path, text), "scenarios[1].source: unknown key 'source'")


@pytest.mark.parametrize("name", ["bert-minilm_v2.1", "A", "x" * 64, "2023h1"])
def test_safe_names_are_accepted(tmp_path: Path, name: str) -> None:
    text = f"name: {name}\n" + MODEL + f"scenarios: [{{kind: offline, name: {name}}}]\n"
    suite = load_suite(write_scenario(tmp_path, text))
    assert suite.name == name and suite.scenarios[0].name == name


def test_default_suite_name_from_an_odd_file_name_is_made_safe(tmp_path: Path) -> None:
    text = MODEL + "scenarios: [{kind: offline}]\n"
    suite = load_suite(write_scenario(tmp_path, text, "my suite (v2).yaml"))
    assert suite.name == "my-suite-v2-"


def test_names_differing_only_in_case_collide(tmp_path: Path) -> None:
    text = MODEL + "scenarios: [{kind: offline, name: Sweep}, {kind: offline, name: sweep}]\n"
    refused(write_scenario(tmp_path, text), "scenarios[1].name", "scenarios[0]", "ignoring case")


NON_FINITE = {
    "peak_tflops_inf": (
        "hardware: {peak_tflops: .inf}\nscenarios: [{kind: offline}]\n",
        "hardware.peak_tflops",
    ),
    "duration_nan": (
        "scenarios: [{kind: single_stream, min_duration_s: .nan}]\n",
        "scenarios[0].min_duration_s",
    ),
    "max_duration_inf": (
        "scenarios: [{kind: single_stream, max_duration_s: .inf}]\n",
        "scenarios[0].max_duration_s",
    ),
    "percentile_nan": ("scenarios: [{kind: single_stream, target_percentile: .NaN}]\n", "target_percentile"),
    "neg_inf": ("scenarios: [{kind: offline, min_duration_s: -.inf}]\n", "scenarios[0].min_duration_s"),
    "where_nan": (
        "inputs: {dataset: {path: a.csv, where: {score: .nan}}}\nscenarios: [{kind: offline}]\n",
        "inputs.dataset.where.score",
    ),
}


@pytest.mark.parametrize("case", sorted(NON_FINITE))
def test_non_finite_numbers_are_refused(tmp_path: Path, case: str) -> None:
    text, key = NON_FINITE[case]
    refused(write_scenario(tmp_path, MODEL + text), f"{key}:", "finite")


FINE_TUNE = """\
  - kind: fine_tune
    train: {path: a.csv, label_column: label}
    eval: {path: a.csv, label_column: label}
    target: {value: 0.9}
"""


@pytest.mark.parametrize(
    "body, key",
    [
        ("[{kind: single_stream, min_query_count: true}]", "scenarios[0].min_query_count"),
        ("[{kind: single_stream, min_duration_s: false}]", "scenarios[0].min_duration_s"),
        ("[{kind: offline, batch_sizes: [8, true]}]", "scenarios[0].batch_sizes[1]"),
        ("[{kind: offline, batch_sizes: true}]", "scenarios[0].batch_sizes[0]"),
        ("\n" + FINE_TUNE + "    max_steps: yes\n", "scenarios[0].max_steps"),
        ("\n" + FINE_TUNE + "    learning_rate: true\n", "scenarios[0].learning_rate"),
    ],
)
def test_booleans_are_not_numbers(tmp_path: Path, body: str, key: str) -> None:
    refused(write_scenario(tmp_path, MODEL + "scenarios: " + body + "\n"), f"{key}:", "boolean")


def test_ints_still_fill_float_fields(tmp_path: Path) -> None:
    text = MODEL + "hardware: {peak_tflops: 100}\nscenarios: [{kind: single_stream, min_duration_s: 2}]\n"
    suite = load_suite(write_scenario(tmp_path, text))
    assert suite.hardware.peak_tflops == 100.0 and suite.scenarios[0].min_duration_s == 2.0


def test_max_duration_below_min_duration_is_refused(tmp_path: Path) -> None:
    text = MODEL + "scenarios: [{kind: single_stream, min_duration_s: 10, max_duration_s: 5}]\n"
    refused(write_scenario(tmp_path, text), "scenarios[0].max_duration_s:", "min_duration_s")


def test_max_duration_equal_to_min_duration_is_fine(tmp_path: Path) -> None:
    text = MODEL + "scenarios: [{kind: single_stream, min_duration_s: 5, max_duration_s: 5}]\n"
    assert load_suite(write_scenario(tmp_path, text)).scenarios[0].max_duration_s == 5


def test_warmup_steps_beyond_max_steps_is_refused(tmp_path: Path) -> None:
    text = MODEL + "scenarios:\n" + FINE_TUNE + "    warmup_steps: 300\n    max_steps: 200\n"
    refused(write_scenario(tmp_path, text), "scenarios[0].warmup_steps:", "max_steps (200)")


def test_seed_out_of_numpy_range_is_refused(tmp_path: Path) -> None:
    text = MODEL + "inputs: {seed: -1}\nscenarios: [{kind: offline}]\n"
    refused(write_scenario(tmp_path, text), "inputs.seed:", "4294967295")


@pytest.mark.parametrize(
    "body, key",
    [
        ("[{kind: offline, batch_sizes: [1, 100000]}]", "scenarios[0].batch_sizes[1]"),
        ("[{kind: offline, batch_sizes: 5000}]", "scenarios[0].batch_sizes[0]"),
        (
            "[{kind: accuracy, batch_size: 10000, dataset: {path: a.csv, label_column: label}}]",
            "scenarios[0].batch_size",
        ),
        ("\n" + FINE_TUNE + "    batch_size: 65536\n", "scenarios[0].batch_size"),
        ("\n" + FINE_TUNE + "    eval_batch_size: 4097\n", "scenarios[0].eval_batch_size"),
    ],
)
def test_batch_sizes_have_an_upper_bound(tmp_path: Path, body: str, key: str) -> None:
    refused(write_scenario(tmp_path, MODEL + "scenarios: " + body + "\n"), f"{key}:", "4096", "typo")


def test_batch_size_at_the_bound_is_fine(tmp_path: Path) -> None:
    text = MODEL + "scenarios: [{kind: offline, batch_sizes: [4096]}]\n"
    assert load_suite(write_scenario(tmp_path, text)).scenarios[0].batch_sizes == [4096]


# --- error messages --------------------------------------------------------------------------


def test_missing_key_mentions_a_close_unknown_key(tmp_path: Path) -> None:
    text = MODEL + "scenarois:\n  - kind: offline\n"
    msg = refused(write_scenario(tmp_path, text), "scenarios: required key is missing")
    assert "found unknown key 'scenarois'" in msg and "did you mean 'scenarios'?" in msg
    assert "more error" not in msg  # the unknown key is the same mistake, not another one


def test_missing_kind_mentions_a_close_unknown_key(tmp_path: Path) -> None:
    text = MODEL + "scenarios: [{knid: offline}]\n"
    path = write_scenario(tmp_path, text)
    refused(path, "scenarios[0]: missing 'kind' key", "'knid'", "did you mean 'kind'?")


def test_key_of_another_kind_names_its_kind(tmp_path: Path) -> None:
    # an anchor shared between kinds brings single_stream's key into an offline scenario
    text = MODEL + """\
scenarios:
  - &common {kind: single_stream, min_query_count: 5, min_duration_s: 1}
  - {<<: *common, kind: offline, name: sweep}
"""
    msg = refused(
        write_scenario(tmp_path, text),
        "scenarios[1].min_query_count: unknown key 'min_query_count' for kind 'offline' "
        "(it belongs to kinds 'single_stream', 'server' and 'multi_stream')",
    )
    assert "did you mean 'min_query_count'" not in msg


def test_key_of_several_kinds_lists_them_and_suggests_from_this_kind(tmp_path: Path) -> None:
    text = MODEL + "scenarios: [{kind: offline, batch_size: 8}]\n"
    refused(
        write_scenario(tmp_path, text),
        "scenarios[0].batch_size: unknown key 'batch_size' for kind 'offline'",
        "kinds 'accuracy', 'compare', 'drift', 'perplexity', 'free_text', 'fine_tune'",
        "did you mean 'batch_sizes'?",
    )


def test_suggestions_come_from_the_model_at_the_location(tmp_path: Path) -> None:
    # 'warmup_steps' is a fine_tune key; in single_stream the close field is 'warmup_queries'
    text = MODEL + "scenarios: [{kind: single_stream, warmup_step: 3}]\n"
    msg = refused(write_scenario(tmp_path, text), "scenarios[0].warmup_step: unknown key 'warmup_step'")
    assert "warmup_steps" not in msg


def test_inputs_key_of_other_inputs_kind(tmp_path: Path) -> None:
    text = MODEL + "inputs: {kind: synthetic, dataset: {path: a.csv}}\nscenarios: [{kind: offline}]\n"
    refused(write_scenario(tmp_path, text), "inputs.dataset: unknown key 'dataset' for kind 'synthetic'")


def test_unknown_key_with_a_newline_stays_on_one_line(tmp_path: Path) -> None:
    text = MODEL + 'scenarios: [{kind: offline, "a\\nb": 1}]\n'
    refused(write_scenario(tmp_path, text), "unknown key 'a\\nb'")


@pytest.mark.parametrize("step, key", [
    ({"kind": "offline", "batch_sizes": [1, 4096]}, "batch_sizes[1]"),
    ({"kind": "accuracy", "batch_size": 4096, "dataset": {"path": "x.csv", "label_column": "y"}}, "batch_size"),
])
def test_each_kind_names_its_batches_for_the_memory_check(step: dict, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step's batches (ScenarioBase.activation_batches) are checked against the memory estimate."""
    from types import SimpleNamespace as NS

    from hf_cost.config.schema import suite_model
    from hf_cost.errors import ConfigError
    from hf_cost.measure import memory_estimate

    suite = suite_model().model_validate({"model": {"path": "/x", "device": "cpu"}, "scenarios": [step]})
    config = NS(model_type="bert", num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
                intermediate_size=3072, vocab_size=30522, torch_dtype="float32")
    monkeypatch.setattr(memory_estimate, "available_bytes", lambda device: (64 * 2**20, "free memory"))
    with pytest.raises(ConfigError) as refused:
        memory_estimate.check_batch_sizes(suite, config)
    assert refused.value.where == f"scenarios[0].{key}"


def test_training_batches_are_estimated_with_their_backward_pass() -> None:
    from hf_cost.config.building import FineTuneScenario

    step = FineTuneScenario.model_validate({
        "kind": "fine_tune", "train": {"path": "t.csv", "label_column": "y"}, "eval": {"path": "e.csv", "label_column": "y"},
        "target": {"metric": "accuracy", "value": 0.9}, "batch_size": 8, "eval_batch_size": 32})
    assert step.activation_batches() == [("batch_size", 8, True), ("eval_batch_size", 32, False)]
