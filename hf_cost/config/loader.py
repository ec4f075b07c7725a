"""Turn a scenario YAML file into a plain dict.

Loading knows nothing about semantics: it reads YAML, merges ``include:`` files
(paths relative to the including file, cycles detected) and turns relative paths
in known path-valued keys into absolute ones. The schema validates afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hf_cost.errors import ConfigError

# Keys whose string values are filesystem paths relative to the YAML file they are in.
PATH_KEYS = frozenset({"path", "data_files", "output_dir"})


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read ``path`` with its includes merged; raise ConfigError naming the file."""
    return _load(Path(path), stack=())


def _load(path: Path, stack: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in stack:
        chain = " -> ".join(str(p) for p in (*stack, resolved))
        raise ConfigError(f"include cycle: {chain}", where=str(stack[-1]))
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = str(stack[-1]) if stack else None
        raise ConfigError(f"scenario file not found: {path}", where=where) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc.__class__.__name__}", where=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{line}malformed YAML: {problem}", where=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping at the top level, got {type(data).__name__}", where=str(path)
        )
    data = _absolutize(data, resolved.parent)
    includes = data.pop("include", None)
    if includes is None:
        return data
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError("include: expected a file path or a list of file paths", where=str(path))
    merged: dict[str, Any] = {}
    for inc in includes:
        merged = deep_merge(merged, _load(resolved.parent / inc, (*stack, resolved)))
    return deep_merge(merged, data)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) in ``override`` wins."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _absolutize(node: Any, base: Path) -> Any:
    if isinstance(node, dict):
        return {
            k: (_resolve_path(v, base) if k in PATH_KEYS else _absolutize(v, base))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_absolutize(v, base) for v in node]
    return node


def _resolve_path(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and "://" not in value:
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (base / p).resolve())
    if isinstance(value, list):
        return [_resolve_path(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_path(v, base) for k, v in value.items()}
    return value
