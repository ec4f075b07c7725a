"""Turn a scenario YAML file into a plain dict.

Loading knows nothing about semantics: it reads YAML, merges ``include:`` files
(paths relative to the including file, cycles detected) and turns relative paths
in known path-valued keys into absolute ones. The schema validates afterwards.

Every file is read through `safe_files.read_regular_text`: a regular UTF-8 file of at most
LIMITS["scenario"] (a FIFO, /dev/zero, a folder or a huge include is refused in one line).

The YAML reader refuses, before any Python object is built: duplicate keys (an explicit
key may still override one brought in by a ``<<:`` merge), recursive aliases, nesting
deeper than MAX_DEPTH, and documents whose aliases would expand to more than MAX_NODES
nodes ("billion laughs").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from hf_cost.errors import ConfigError, UserError
from hf_cost.safe_files import LIMITS, read_regular_text

# Keys whose string values are filesystem paths relative to the YAML file they are in.
PATH_KEYS = frozenset({"path", "data_files", "output_dir"})
# Nested collections allowed, aliases expanded; a scenario file needs about 6.
MAX_DEPTH = 64
# Nodes the document may expand to, every alias counted at each use; bert.yaml has ~150.
MAX_NODES = 100_000


class YamlRefused(yaml.YAMLError):
    """Well-formed YAML this loader will not read; ``mark`` is where the problem is."""

    def __init__(self, message: str, mark: Any = None):
        super().__init__(message)
        self.message, self.mark = message, mark


class GuardedLoader(yaml.SafeLoader):
    """SafeLoader that checks the composed node graph before constructing objects.

    For each collection node it records the expanded size (nodes, aliases counted at each
    use) and height (nested collections), so an alias costs what it expands to.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0  # collections open around the node being composed
        self._open: set[str] = set()  # anchors whose node is still being composed
        self._size: dict[int, int] = {}
        self._height: dict[int, int] = {}

    # In the scanner: its simple-key lookahead is quadratic in open '[' (10,000 of them: 0.4 s).
    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise YamlRefused(f"nesting deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if event.anchor in self._open:
                raise YamlRefused(f"recursive alias *{event.anchor}", event.start_mark)
            node = super().compose_node(parent, index)
            if self._depth + self._height.get(id(node), 0) > MAX_DEPTH:
                raise YamlRefused(
                    f"nesting deeper than {MAX_DEPTH} levels once alias *{event.anchor} is expanded",
                    event.start_mark,
                )
            return node
        is_collection = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        step = 1 if is_collection else 0
        self._depth += step
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlRefused(f"nesting deeper than {MAX_DEPTH} levels", mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= step
        if is_collection:
            self._measure(node)
        return node

    def compose_sequence_node(self, anchor: str | None) -> Node:
        return self._composing(anchor, super().compose_sequence_node)

    def compose_mapping_node(self, anchor: str | None) -> Node:
        node = self._composing(anchor, super().compose_mapping_node)
        self._refuse_duplicate_keys(node)
        return node

    def _composing(self, anchor: str | None, compose: Any) -> Node:
        if anchor is not None:
            self._open.add(anchor)
        try:
            return compose(anchor)
        finally:
            self._open.discard(anchor)

    def _measure(self, node: Node) -> None:
        if isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value
        size = 1 + sum(self._size.get(id(c), 1) for c in children)
        if size > MAX_NODES:
            raise YamlRefused(
                f"document expands to more than {MAX_NODES:,} nodes (aliases counted at each use); "
                "refusing it as an alias bomb",
                node.start_mark,
            )
        self._size[id(node)] = size
        self._height[id(node)] = 1 + max((self._height.get(id(c), 0) for c in children), default=0)

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        """Explicit keys only: the pairs a ``<<:`` merge brings in are not in ``node.value`` yet."""
        first: dict[Any, ScalarNode] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                continue  # complex keys: the constructor refuses them as unhashable
            key = self._scalar_key(key_node)
            if key in first:
                raise YamlRefused(
                    f"duplicate key '{key_node.value}' (first at line {first[key].start_mark.line + 1})",
                    key_node.start_mark,
                )
            first[key] = key_node

    def _scalar_key(self, node: ScalarNode) -> Any:
        """The key as the dict will hold it: `1` and `0x1` (or `yes` and `true`) collide there."""
        constructor = self.yaml_constructors.get(node.tag)
        if constructor is None:
            return (node.tag, node.value)
        try:
            value = constructor(self, node)  # `~` and `null` are both None: one key
            hash(value)
        except Exception:  # a bad scalar is the constructor's to report, later
            return (node.tag, node.value)
        return value

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:  # YamlRefused, and the constructor's own (an unknown tag): reported as such
            raise
        except Exception as exc:  # e.g. the date 2023-02-30; `!!bool maybe`, `!!timestamp x` (KeyError, ...)
            what = f"value '{str(node.value)[:80]}'" if isinstance(node, ScalarNode) else f"this {node.id}"
            cause = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise YamlRefused(f"cannot read {what}: {cause}", node.start_mark) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read ``path`` with its includes merged; raise ConfigError naming the file."""
    return _load(Path(path), stack=())


def _load(path: Path, stack: tuple[Path, ...]) -> dict[str, Any]:
    try:
        resolved = path.resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a lone surrogate, a symlink loop
        what = "include" if stack else "scenario file"
        raise ConfigError(f"cannot use the {what} path {ascii(str(path))}: {type(exc).__name__}",
                          where=str(stack[-1]) if stack else None) from None
    if resolved in stack:
        chain = " -> ".join(str(p) for p in (*stack, resolved))
        raise ConfigError(f"include cycle: {chain}", where=str(stack[-1]))
    text = _read(path, resolved, stack)
    loader = None
    try:
        loader = GuardedLoader(text)  # its reader refuses unprintable characters already here
        data = loader.get_single_data()
    except YamlRefused as exc:
        line = f"line {exc.mark.line + 1}: " if exc.mark is not None else ""
        message = exc.message.replace("\r", "\\r").replace("\n", "\\n")  # a key may hold one
        raise ConfigError(f"{line}{message}", where=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{line}malformed YAML: {problem}", where=str(path)) from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping at the top level, got {type(data).__name__}", where=str(path)
        )
    try:
        data = _absolutize(data, resolved.parent)
    except ConfigError as exc:
        raise ConfigError(str(exc).removeprefix(f"{exc.where}: "), where=f"{path}: {exc.where}") from None
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


def _read(path: Path, resolved: Path, stack: tuple[Path, ...]) -> str:
    """The text of a scenario file or include: a regular UTF-8 file within LIMITS["scenario"]
    (a FIFO, a device such as /dev/zero, a folder or a huge file is refused, never read).
    An include's error is the including file's: ``a.yaml: include b.yaml: is a FIFO ...``."""
    what = "include" if stack else "scenario file"
    try:
        missing = not resolved.exists() and not resolved.is_symlink()
    except OSError:  # a name too long, a loop: the read below says which
        missing = False
    if missing:
        raise ConfigError(f"scenario file not found: {path}", where=str(stack[-1]) if stack else None)
    try:
        return read_regular_text(resolved, what=what, limit=LIMITS["scenario"])
    except UserError as exc:
        reason = str(exc).removeprefix(f"{exc.where}: ").removeprefix(f"{what}: ")
        if stack:
            raise ConfigError(f"include {path}: {reason}", where=str(stack[-1])) from None
        raise ConfigError(f"{what}: {reason}", where=str(path)) from None


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) in ``override`` wins."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _absolutize(node: Any, base: Path, key: str = "") -> Any:
    if isinstance(node, dict):
        return {
            k: (_resolve_path(v, base, _key(key, k)) if k in PATH_KEYS else _absolutize(v, base, _key(key, k)))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_absolutize(v, base, f"{key}[{i}]") for i, v in enumerate(node)]
    return node


def _key(parent: str, child: Any) -> str:
    return f"{parent}.{child}" if parent else str(child)


def _resolve_path(value: Any, base: Path, key: str) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ConfigError(f"the path {value!r} holds a NUL byte", where=key)
    if isinstance(value, str) and value and "://" not in value:
        try:
            p = Path(value).expanduser()
        except RuntimeError:  # ~user of no such user, or no home directory
            raise ConfigError(f"cannot expand '~' in the path {value!r}", where=key) from None
        try:
            return str(p if p.is_absolute() else (base / p).resolve())
        except (OSError, ValueError, RuntimeError) as exc:  # UnicodeEncodeError: a lone surrogate
            raise ConfigError(f"cannot use the path {value!r}: {type(exc).__name__}", where=key) from None
    if isinstance(value, list):
        return [_resolve_path(v, base, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _resolve_path(v, base, _key(key, k)) for k, v in value.items()}
    return value
