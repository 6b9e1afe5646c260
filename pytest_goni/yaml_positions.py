"""Safe YAML loading that remembers where every node stood, so errors name file:line:col."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
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


# Limits that keep a hostile or careless file from costing memory or time. A real spec is a few
# KiB with a handful of anchors and a nesting depth under 10.
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64            # nesting of mappings/lists, also after alias expansion
MAX_ALIASES = 1000        # '*name' uses in one document
MAX_NODES = 200_000       # nodes after alias expansion ("billion laughs" stops here)
MAX_CHARS = 16 * 1024 * 1024  # characters of scalars after alias expansion

_STD = "tag:yaml.org,2002:"
#: Tags a spec may carry: plain data only. Anything else (``!!python/...``, ``!!set``,
#: ``!!binary``, local ``!tags``) is rejected by name instead of being dropped or half-built.
ALLOWED_TAGS = frozenset(_STD + t for t in ("str", "int", "float", "bool", "null", "map", "seq",
                                            "timestamp", "merge"))
# C0/C1 controls (ANSI escapes start with \x1b) and the bidi overrides that reorder a line.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters but newlines (ANSI escapes among them) written as
    ``\\x1b``, so nothing from a spec or a measurement can drive the terminal."""
    return _CONTROL.sub(lambda m: ascii(m.group(0))[1:-1], text)


def read_spec_text(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """A spec file's text: at most ``max_bytes``, strict UTF-8 (an optional BOM is dropped).

    Raises :class:`YamlLoadError` naming the line (and column) of the first byte that is not UTF-8.
    """
    size = path.stat().st_size
    if size > max_bytes:
        raise YamlLoadError(f"file is {size:,} bytes; a spec may have at most {max_bytes:,} bytes")
    data = path.read_bytes()[: max_bytes + 1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlLoadError(f"not UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded "
                            "(save the file as UTF-8)", line, col) from None
    return text.removeprefix("\ufeff")


def tag_name(tag: str) -> str:
    """``tag:yaml.org,2002:python/object`` -> ``!!python/object`` (as the author wrote it)."""
    return "!!" + tag[len(_STD):] if tag.startswith(_STD) else tag


class _Composer(yaml.SafeLoader):
    """The safe loader's composer, with a nesting-depth and an alias-use limit."""

    def __init__(self, text: str):
        super().__init__(text)
        self.goni_depth = 0
        self.goni_aliases = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.goni_aliases += 1
            if self.goni_aliases > MAX_ALIASES:
                raise _limit(event.start_mark, f"more than {MAX_ALIASES} alias uses ('*name'); "
                                               "a spec needs a few")
        self.goni_depth += 1
        if self.goni_depth > MAX_DEPTH:
            raise _limit(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self.goni_depth -= 1


def _limit(mark: yaml.Mark, what: str) -> YamlLoadError:
    return YamlLoadError(f"YAML too large: {what}", mark.line + 1, mark.column + 1)


def _compose(text: str) -> yaml.Node | None:
    loader = _Composer(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expansion(root: yaml.Node) -> None:
    """Refuse, before building anything, a node graph whose aliases expand past the limits
    (node count, scalar characters, depth) or refer to a node containing them (a cycle).

    Aliases make the composed graph a DAG (or, for ``&a [*a]``, cyclic); sizes are computed once
    per node, so this costs time linear in the file, not in its expansion.
    """
    size: dict[int, tuple[int, int, int]] = {}  # id(node) -> (nodes, chars, depth) when expanded
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            nodes, chars, depth = 1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0, 0
            for child in _children(node):
                n, c, d = size[id(child)]
                nodes, chars, depth = nodes + n, chars + c, max(depth, d)
            size[key] = (nodes, chars, depth + 1)
            m = node.start_mark
            if nodes > MAX_NODES:
                raise _limit(m, f"aliases expand this node to more than {MAX_NODES:,} values "
                                "(an alias bomb?)")
            if chars > MAX_CHARS:
                raise _limit(m, f"aliases expand this node to more than {MAX_CHARS:,} characters")
            if depth + 1 > MAX_DEPTH:
                raise _limit(m, f"aliases expand this node to more than {MAX_DEPTH} levels deep")
            continue
        if key in size:
            continue
        if key in on_path:
            m = node.start_mark
            raise YamlLoadError("YAML error: an alias refers to a node that contains it (a cycle)",
                                m.line + 1, m.column + 1)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)


def _mark(node: yaml.Node) -> Mark:
    end = node.end_mark.line + (1 if node.end_mark.column > 0 else 0)
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1, max(end, node.start_mark.line + 1))


def load_with_marks(text: str) -> tuple[Any, dict[KeyPath, Mark]]:
    """Parse ``text`` (plain-data tags only) into Python data and a map of key path -> :class:`Mark`.

    A mapping's key path is extended by the key, a sequence's by the index; the mark of a key
    path is where its value starts. Duplicate keys are an error (PyYAML silently keeps the last).
    Depth, alias uses and the size after alias expansion are bounded (``MAX_*``); every error is a
    :class:`YamlLoadError` with a line.
    """
    try:
        node = _compose(text)
    except YamlLoadError:
        raise
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
        raise YamlLoadError(f"YAML syntax error: {printable(text)}", mark.line + 1 if mark else 0,
                            mark.column + 1 if mark else 0) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        raise YamlLoadError(f"YAML error: character #x{char:04x} is not allowed in YAML "
                            "(control characters must be escaped in a double-quoted string)",
                            line, col) from None
    except yaml.YAMLError as exc:
        raise YamlLoadError(f"YAML error: {printable(' '.join(str(exc).split()))}") from None
    marks: dict[KeyPath, Mark] = {}
    if node is None:
        return None, marks
    check_expansion(node)
    constructor = _Constructor()
    return _build(node, (), marks, constructor), marks


class _Constructor(yaml.constructor.SafeConstructor):
    pass


MERGE_TAG = "tag:yaml.org,2002:merge"


def _own_duplicate(earlier: list, key: Any, c: _Constructor) -> bool:
    return any(c.construct_object(k, deep=True) == key for k, _ in earlier)


def _check_tag(node: yaml.Node) -> None:
    if node.tag not in ALLOWED_TAGS:
        m = node.start_mark
        raise YamlLoadError(f"YAML tag {printable(tag_name(node.tag))!r} is not allowed in a spec (plain "
                            "data only: mappings, lists, text, numbers, true/false, null)",
                            m.line + 1, m.column + 1)


def _construct_scalar(node: yaml.Node, c: _Constructor) -> Any:
    try:
        return c.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        m = exc.problem_mark or node.start_mark
        raise YamlLoadError(f"YAML error: {printable(str(exc.problem))}", m.line + 1, m.column + 1) from None
    except (ValueError, OverflowError, TypeError) as exc:  # a 5000-digit int, a 2024-13-45 date
        m = node.start_mark
        first = (str(exc).splitlines() or [type(exc).__name__])[0].split(";")[0]
        shown = node.value if len(node.value) <= 24 else node.value[:20] + "..."
        raise YamlLoadError(f"YAML error: cannot read {printable(shown)!r} as "
                            f"{tag_name(node.tag)[2:]}: {printable(first)}", m.line + 1, m.column + 1) from None


def _build(node: yaml.Node, path: KeyPath, marks: dict[KeyPath, Mark], c: _Constructor) -> Any:
    marks[path] = _mark(node)
    _check_tag(node)
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
            _check_tag(key_node)
            key = _construct_scalar(key_node, c) if isinstance(key_node, yaml.ScalarNode) else None
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
    return _construct_scalar(node, c)


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
