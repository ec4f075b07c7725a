"""Turn a pydantic ValidationError into one line: ``key.path: what was expected``."""

from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

# A model validator that blames one of its fields starts its message with "field: ".
_FIELD_PREFIX = re.compile(r"([A-Za-z_]\w*): (.*)", re.DOTALL)
# How pydantic labels the members of a plain (not discriminated) union in a location.
_UNION_MEMBER = re.compile(r"(str|int|float|bool|none|(list|dict|tuple)\[.*\])")


def format_validation_error(exc: ValidationError, root: type[BaseModel]) -> str:
    errors = _collapse_union(exc.errors(include_url=False))
    line, folded = _format_one(errors[0], errors, root)
    more = len(errors) - 1 - folded
    if more > 0:
        line += f" (and {more} more error{'s' if more > 1 else ''})"
    return line.replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever the input held


def _format_one(err: dict[str, Any], errors: list[dict[str, Any]], root: type[BaseModel]) -> tuple[str, int]:
    """The line for ``err`` and how many other errors it also accounts for (0 or 1)."""
    loc = _key_path(err["loc"], root)
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{loc}: {_unknown_key(str(err['loc'][-1]), err['loc'][:-1], root)}", 0
    if kind == "missing":
        typo = _typo_for(str(err["loc"][-1]), _unknown_siblings(err["loc"], errors))
        if typo is None:
            return f"{loc}: required key is missing", 0
        return f"{loc}: required key is missing; {_found(typo, err['loc'][-1])}", 1
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"{loc}.kind: unknown kind '{ctx.get('tag')}'; expected one of {ctx.get('expected_tags')}", 0
    if kind == "union_tag_not_found":
        keys = [str(k) for k in err["input"]] if isinstance(err.get("input"), dict) else []
        typo = _typo_for("kind", keys)
        return f"{loc}: missing 'kind' key" + (f"; {_found(typo, 'kind')}" if typo else ""), 0
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        blamed = _FIELD_PREFIX.fullmatch(msg)
        found = _model_at(root, err["loc"]) if blamed and loc else None
        if found is not None and blamed.group(1) in file_keys(found[0]):
            return f"{loc}.{blamed.group(1)}: {blamed.group(2)}", 0
    return (f"{loc}: {msg}" if loc else msg), 0


def _collapse_union(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A plain union reports one error per member ('where.a.str', 'where.a.int', ...): keep one.

    The kept error is the member that accepted the type but not the value (a non-finite
    float), else a summary of the types allowed.
    """
    loc = errors[0]["loc"]
    if not (loc and isinstance(loc[-1], str) and _UNION_MEMBER.fullmatch(loc[-1])):
        return errors
    group = [
        e
        for e in errors
        if tuple(e["loc"][:-1]) == tuple(loc[:-1])
        and isinstance(e["loc"][-1], str)
        and _UNION_MEMBER.fullmatch(e["loc"][-1])
    ]
    if len(group) < 2:
        return errors
    specific = [e for e in group if not e["type"].endswith(("_type", "_parsing", "_from_float"))]
    if specific:
        kept = {**specific[0], "loc": loc[:-1]}
    else:
        labels = [str(e["loc"][-1]) for e in group]
        kept = {"loc": loc[:-1], "type": "union", "msg": f"expected one of the types {', '.join(labels)}"}
    return [kept] + [e for e in errors if e not in group]


def _unknown_key(key: str, parent: tuple[Any, ...], root: type[BaseModel]) -> str:
    """Suggestions come from the model at ``parent`` only (this scenario kind's fields)."""
    found = _model_at(root, parent)
    if found is None:  # not expected; fall back to every field name
        fields = {name for m in _all_models(root) for name in file_keys(m)}
        line = f"unknown key '{key}'"
    else:
        model, members = found
        fields = set(file_keys(model))
        owners = [t for m in members if m is not model and key in file_keys(m) for t in _tags(m)]
        line = f"unknown key '{key}'"
        if owners and _tags(model):
            quoted = [f"'{t}'" for t in owners]
            kinds = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
            plural = "s" if len(owners) > 1 else ""
            line += f" for kind '{_tags(model)[0]}' (it belongs to kind{plural} {kinds})"
    hint = difflib.get_close_matches(key, sorted(fields - {key}), n=1)
    return line + (f"; did you mean '{hint[0]}'?" if hint else "")


def _unknown_siblings(loc: tuple[Any, ...], errors: list[dict[str, Any]]) -> list[str]:
    return [
        str(e["loc"][-1])
        for e in errors
        if e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == tuple(loc[:-1])
    ]


def _typo_for(key: str, candidates: list[str]) -> str | None:
    match = difflib.get_close_matches(key, [c for c in candidates if c != key], n=1)
    return match[0] if match else None


def _found(typo: str, key: Any) -> str:
    return f"found unknown key '{typo}' — did you mean '{key}'?"


def _model_at(
    root: type[BaseModel], loc: tuple[Any, ...]
) -> tuple[type[BaseModel], list[type[BaseModel]]] | None:
    """The model a location points into, and the union it was picked from by its tag.

    ('scenarios', 1, 'offline') -> (OfflineScenario, [SingleStreamScenario, OfflineScenario, ...]).
    """
    annotation: Any = root
    members: list[type[BaseModel]] = [root]
    for part in loc:
        options = _options(annotation)
        models = [o for o in options if _is_model(o)]
        if isinstance(part, int):
            seqs = [o for o in options if get_origin(o) in (list, tuple)]
            if not seqs:
                return None
            annotation = get_args(seqs[0])[0]
        elif len(models) > 1:  # a discriminated union: the location holds the tag
            chosen = [m for m in models if part in _tags(m)]
            if not chosen:
                return None
            annotation, members = chosen[0], models
        elif len(models) == 1 and part in file_keys(models[0]):
            annotation = file_keys(models[0])[part].annotation
            members = []
        else:
            maps = [o for o in options if get_origin(o) is dict]
            if not maps:
                return None
            annotation = get_args(maps[0])[1]
    models = [o for o in _options(annotation) if _is_model(o)]
    if len(models) != 1:
        return None
    return models[0], members or models


def file_keys(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the key a scenario file writes (its alias where it has one: 'from')."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _options(annotation: Any) -> list[Any]:
    """The types an annotation allows, through Annotated, Optional and Union."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _options(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [t for arg in get_args(annotation) for t in _options(arg) if t is not type(None)]
    return [annotation]


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _tags(model: type[BaseModel]) -> list[str]:
    """The values a model's ``kind`` Literal allows (its discriminator tags)."""
    field = model.model_fields.get("kind")
    return [a for a in get_args(field.annotation) if isinstance(a, str)] if field is not None else []


def _key_path(loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    """('scenarios', 0, 'single_stream', 'min_duration_s') -> 'scenarios[0].min_duration_s'.

    Discriminated unions insert the tag into the location; it is dropped because the
    user never wrote it as a key.
    """
    tags = {t for m in _all_models(root) for t in _tags(m)}
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
