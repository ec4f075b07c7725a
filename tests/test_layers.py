"""The layers of docs/architecture.md hold: import-linter checks the contract in .importlinter
(a lower layer never imports a higher one; no cycles between the sub-packages of any package),
and the contract names every top-level module, so a new one cannot sit outside the layers."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import pytest

import hf_cost

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / ".importlinter"


def _layers() -> list[list[str]]:
    parser = configparser.ConfigParser()
    parser.read(CONTRACT)
    lines = parser["importlinter:contract:layers"]["layers"].strip().splitlines()
    return [[name.strip() for name in line.split("|")] for line in lines if line.strip()]


def test_the_contract_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(CONTRACT), no_cache=True) == 0, (
        "an import crosses a layer or closes a cycle: run `lint-imports` for the chain"
    )


def test_every_top_level_module_is_in_a_layer() -> None:
    named = {name for line in _layers() for name in line}
    package = Path(hf_cost.__file__).parent
    modules = {f"hf_cost.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    packages = {f"hf_cost.{p.name}" for p in package.iterdir() if (p / "__init__.py").is_file()}
    missing = sorted((modules | packages) - named)
    assert not missing, f"not in any layer of .importlinter: {missing}"
    assert not sorted(named - modules - packages), "the contract names a module that does not exist"


def test_the_order_is_the_documented_one() -> None:
    """core at the bottom, the entry points at the top, steps above everything they use."""
    order = {name: i for i, line in enumerate(_layers()) for name in line}  # 0 = highest
    assert order["hf_cost.core"] == max(order.values())
    assert order["hf_cost.__main__"] == 0
    for lower in ("hf_cost.report", "hf_cost.models", "hf_cost.measure", "hf_cost.config", "hf_cost.training"):
        assert order["hf_cost.steps"] < order[lower]
    assert order["hf_cost.report"] < order["hf_cost.models"] < order["hf_cost.measure"] < order["hf_cost.config"]


def test_core_imports_nothing_of_ours() -> None:
    """The leaf package: checked on the source, so no layer line can be edited around it."""
    core = Path(hf_cost.__file__).parent / "core"
    for path in core.glob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith(("from hf_cost", "import hf_cost")):
                assert stripped.startswith("from hf_cost.core"), f"{path.name}: {stripped}"
    assert os.path.isfile(CONTRACT)
