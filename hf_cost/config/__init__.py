"""Scenario files: YAML -> dict (loader) -> validated Suite (schema)."""

from hf_cost.config.loader import load_yaml
from hf_cost.config.schema import Suite, load_suite

__all__ = ["Suite", "load_suite", "load_yaml"]
