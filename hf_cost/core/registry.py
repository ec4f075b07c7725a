"""The one registry of step kinds, building and measuring alike.

A kind is declared once, by its module in hf_cost/steps/ (`register(MyStep)`): its `kind`
name, its config model (a scenario-file entry, with `kind: Literal[...]`), its metrics model
(the typed figures of its result) and whether it builds a candidate. Everything that needs
the list of kinds derives it from here: the scenario schema's `kind` union, the results
schema's metrics union, the build/measure kind lists, the JSON Schemas.

This module names no kind. The built-in kinds are hf_cost.steps; they are imported the first
time the registry is read (as a plugin's entry point would be), so a reader in a lower layer
(config, report) never imports the steps layer itself.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal, Protocol, get_args, get_origin

BUILTIN_KINDS = "hf_cost.steps"  # the package whose import registers the built-in kinds


class StepKind(Protocol):
    kind: str
    config: type  # pydantic model of its scenario-file entry
    metrics: type  # pydantic model of its result's figures (core.results.KindMetrics)
    builds: bool  # True: it makes a candidate named after the step


_KINDS: dict[str, Any] = {}
_loaded = False
_version = 0  # bumped on every change, so models derived from the registry are rebuilt


def register(step: Any) -> Any:
    """Add a kind (a Step class); usable as a class decorator. A name is registered once.

    Refused, before anything changes: a class that does not declare `kind`, `config`, `metrics`
    and `builds`; a `kind` another class holds (the built-in kinds are loaded first, so a plugin
    cannot take one of their names); a `config` that is not a pydantic model whose `kind` field
    is `Literal[<that kind>]`, since the scenario schema picks a config by that Literal and the
    run then looks its step up by `kind`: the two must be the same one name.
    """
    global _version
    for attr in ("kind", "config", "metrics", "builds"):
        if not hasattr(step, attr):
            raise TypeError(f"{step.__name__} does not declare `{attr}`, so it cannot be registered")
    if not isinstance(step.kind, str) or not step.kind:
        raise TypeError(f"{step.__name__}.kind must be a non-empty string, got {step.kind!r}")
    tags = _literal_kind(step.config)
    if tags != (step.kind,):
        found = "no `kind` field" if tags is None else f"kind: Literal{list(tags)}"
        raise TypeError(
            f"{step.__name__}.config ({getattr(step.config, '__name__', step.config)!r}) must be a pydantic "
            f"model with kind: Literal['{step.kind}'], found {found}"
        )
    if not _loaded:
        kinds()  # the built-in names are taken before a plugin's registration is checked
    if step.kind in _KINDS and _KINDS[step.kind] is not step:
        raise ValueError(f"kind '{step.kind}' is already registered by {_KINDS[step.kind].__name__}")
    _KINDS[step.kind] = step
    _version += 1
    return step


def _literal_kind(config: Any) -> tuple[Any, ...] | None:
    """The values of a pydantic model's `kind: Literal[...]` field; None if it has no such field."""
    field = getattr(config, "model_fields", {}).get("kind") if isinstance(config, type) else None
    if field is None or get_origin(field.annotation) is not Literal:
        return None
    return get_args(field.annotation)


def unregister(kind: str) -> None:
    """Remove a kind (tests that register a toy kind take it away again)."""
    global _version
    _KINDS.pop(kind, None)
    _version += 1


def kinds() -> dict[str, Any]:
    """Every registered kind -> its Step class, in registration order."""
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module(BUILTIN_KINDS)
    return dict(_KINDS)


def version() -> int:
    kinds()
    return _version


def step_class(kind: str) -> Any:
    return kinds()[kind]


def building_kinds() -> tuple[str, ...]:
    return tuple(k for k, s in kinds().items() if s.builds)


def measuring_kinds() -> tuple[str, ...]:
    return tuple(k for k, s in kinds().items() if not s.builds)


def config_models() -> tuple[type, ...]:
    return tuple(s.config for s in kinds().values())


def metrics_model(kind: str) -> type | None:
    step = kinds().get(kind)
    return None if step is None else step.metrics


def metrics_models() -> tuple[type, ...]:
    return tuple(dict.fromkeys(s.metrics for s in kinds().values()))
