"""Turn a pydantic ValidationError into one line: ``key.path: what was expected``."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError


def format_validation_error(exc: ValidationError, root: type[BaseModel]) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    line = _format_one(first, root)
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return line


def _format_one(err: dict[str, Any], root: type[BaseModel]) -> str:
    loc = _key_path(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(err["loc"][-1])
        hint = difflib.get_close_matches(key, sorted(_all_field_names(root)), n=1)
        tip = f"; did you mean '{hint[0]}'?" if hint else ""
        return f"{loc}: unknown key '{key}'{tip}"
    if kind == "missing":
        return f"{loc}: required key is missing"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return (
            f"{loc}.kind: unknown kind '{ctx.get('tag')}'; expected one of {ctx.get('expected_tags')}"
        )
    if kind == "union_tag_not_found":
        return f"{loc}: missing 'kind' key"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"{loc}: {msg}" if loc else msg


def _key_path(loc: tuple[Any, ...]) -> str:
    """('scenarios', 0, 'single_stream', 'min_duration_s') -> 'scenarios[0].min_duration_s'.

    Discriminated unions insert the tag into the location; it is dropped because the
    user never wrote it as a key.
    """
    from hf_cost.config.schema import Suite  # local: avoid a cycle at import

    tags = _discriminator_tags(Suite)
    out = ""
    previous: Any = None
    for part in loc:
        # The tag sits right after the union field: `inputs` or an index in `scenarios`.
        is_tag = part in tags and (previous == "inputs" or isinstance(previous, int))
        previous = part
        if isinstance(part, int):
            out += f"[{part}]"
        elif is_tag:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _discriminator_tags(root: type[BaseModel]) -> set[str]:
    tags: set[str] = set()
    for model in _all_models(root):
        field = model.model_fields.get("kind")
        if field is not None and hasattr(field.annotation, "__args__"):
            tags.update(a for a in field.annotation.__args__ if isinstance(a, str))
    return tags


def _all_field_names(root: type[BaseModel]) -> set[str]:
    return {name for m in _all_models(root) for name in m.model_fields}


def _all_models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    stack = [root]
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            stack.extend(_models_in(field.annotation))
    return seen


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic models inside an annotation (through Optional, list, Union, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]
