"""Scenario files: YAML -> dict (loader) -> validated Suite (schema).

`Suite` and `load_suite` are imported on first use, so a module that needs only the strict base
model (config.base) does not pull in the whole schema (and the modules it refers to)."""

from typing import Any

from hf_cost.config.loader import load_yaml

__all__ = ["Suite", "load_suite", "load_yaml"]


def __getattr__(name: str) -> Any:
    if name in ("Suite", "load_suite"):
        from hf_cost.config import schema

        return getattr(schema, name)
    raise AttributeError(f"module 'hf_cost.config' has no attribute {name!r}")
