"""Safe YAML loading that remembers where every node stood, so errors name file:line:col."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

KeyPath = tuple[Any, ...]


@dataclass(frozen=True)
class Mark:
    """1-based line and column of a node; ``end_line`` is the last line it spans."""

    line: int
    col: int
    end_line: int


class YamlLoadError(ValueError):
    def __init__(self, message: str, line: int = 0, col: int = 0):
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


class _Constructor(yaml.constructor.SafeConstructor):
    pass


MERGE_TAG = "tag:yaml.org,2002:merge"


def _own_duplicate(earlier: list, key: Any, c: _Constructor) -> bool:
    return any(c.construct_object(k, deep=True) == key for k, _ in earlier)


def _mark(node: yaml.Node) -> Mark:
    end = node.end_mark.line + (1 if node.end_mark.column > 0 else 0)
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1, max(end, node.start_mark.line + 1))


def load_with_marks(text: str) -> tuple[Any, dict[KeyPath, Mark]]:
    """Parse ``text`` (safe tags only) into Python data and a map of key path -> :class:`Mark`.

    A mapping's key path is extended by the key, a sequence's by the index; the mark of a key
    path is where its value starts. Duplicate keys are an error (PyYAML silently keeps the last).
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        # An unclosed quote or bracket is found at the end of the stream; the useful place is
        # where it was opened (the context mark), so point there and mention the other.
        problem, context = exc.problem or str(exc), exc.context
        mark, other = exc.problem_mark, exc.context_mark
        if other is not None and (mark is None or "end of stream" in problem):
            mark, other = other, mark
        text = f"{context} at line {mark.line + 1}: {problem}" if context and mark is not None else problem
        if other is not None:
            text += f" (line {other.line + 1}, column {other.column + 1})"
        if "block scalar" in text:
            text += "; a value starting with '>' or '|' must be quoted, e.g. expect: \">= 1.2\""
        raise YamlLoadError(f"YAML syntax error: {text}", mark.line + 1 if mark else 0,
                            mark.column + 1 if mark else 0) from None
    except yaml.YAMLError as exc:
        raise YamlLoadError(f"YAML error: {exc}") from None
    marks: dict[KeyPath, Mark] = {}
    if node is None:
        return None, marks
    constructor = _Constructor()
    return _build(node, (), marks, constructor), marks


def _build(node: yaml.Node, path: KeyPath, marks: dict[KeyPath, Mark], c: _Constructor) -> Any:
    marks[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        # Merge keys ('<<: *anchor') let profiles share values; merged entries come first and
        # the mapping's own keys override them. Only a key given twice by the mapping itself is
        # an error (PyYAML silently keeps the last).
        own = sum(k.tag != MERGE_TAG for k, _ in node.value)
        try:
            c.flatten_mapping(node)
        except yaml.constructor.ConstructorError as exc:
            m = exc.problem_mark or node.start_mark
            raise YamlLoadError(f"YAML error: {exc.problem}", m.line + 1, m.column + 1) from None
        n_merged = len(node.value) - own
        out: dict[Any, Any] = {}
        for i, (key_node, value_node) in enumerate(node.value):
            key = c.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                raise YamlLoadError("mapping keys must be plain scalars",
                                    key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in out and i >= n_merged and _own_duplicate(node.value[n_merged:i], key, c):
                raise YamlLoadError(f"duplicate key {key!r}", key_node.start_mark.line + 1,
                                    key_node.start_mark.column + 1)
            out[key] = _build(value_node, path + (key,), marks, c)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), marks, c) for i, item in enumerate(node.value)]
    try:
        return c.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        m = exc.problem_mark or node.start_mark
        raise YamlLoadError(f"YAML error: {exc.problem}", m.line + 1, m.column + 1) from None


def nearest_mark(marks: dict[KeyPath, Mark], path: KeyPath) -> Mark:
    """The mark of ``path`` or of its closest ancestor that has one."""
    path = tuple(path)
    while path not in marks and path:
        path = path[:-1]
    return marks.get(path, Mark(1, 1, 1))


def format_path(path: KeyPath) -> str:
    """``('gates', 3, 'expect')`` -> ``gates[3].expect``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"
