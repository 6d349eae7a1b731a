"""Parse a config fast enough for every keystroke, with the config layer's node tree and rules.

``parse(text, name)`` returns a ``modelmill.config.Document`` exactly like
``modelmill.config.parse_document`` does (same nodes, values, ranges and syntax issues), only
faster on the common cases:

- JSON that ``json.loads`` accepts (the C parser says "valid" in well under a millisecond) is
  turned into nodes by one regular-expression token scan; anything else goes to the config
  layer's tolerant parser, which knows how to recover.
- YAML is composed by libyaml (PyYAML's C loader, ~10x faster than the pure-Python one), and,
  on a syntax error, the text above the error is composed again, as the config layer does.

Ranges are computed lazily (``LazyRange``): a document of 1,000 lines has thousands of them and
only a few are ever read (by diagnostics, hover or completion). ``LspDocument.data`` is built
once and hands out a dict whose ``deepcopy`` is cheap, because ``normalize`` deep-copies it on
every validation.
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any

import yaml

from modelmill.config import Document, limits, parse_document
from modelmill.config.document import detect_format
from modelmill.config.positions import (
    ZERO,
    ArrayNode,
    Entry,
    Node,
    ObjectNode,
    Position,
    Range,
    ScalarNode,
    SyntaxIssue,
    duplicate_key_issues,
    yaml_issue,
    to_data,
)

_CLoader = getattr(yaml, "CSafeLoader", None)
_STR = "tag:yaml.org,2002:str"


# --------------------------------------------------------------------------------------- ranges


class LineIndex:
    """Offset (code points) → line and column, for one text."""

    __slots__ = ("starts",)

    def __init__(self, text: str) -> None:
        self.starts = [0]
        find = text.find
        index = find("\n")
        while index >= 0:
            self.starts.append(index + 1)
            index = find("\n", index + 1)

    def position(self, offset: int) -> Position:
        line = bisect.bisect_right(self.starts, offset) - 1
        return Position(line, offset - self.starts[line], offset)


class LazyRange(Range):
    """A ``Range`` whose positions are computed from offsets when first read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - use make()
        raise TypeError("use LazyRange.make(lines, start, end)")

    _lines: LineIndex

    @staticmethod
    def make(lines: LineIndex, start: int, end: int) -> LazyRange:
        rng = object.__new__(LazyRange)
        rng.__dict__.update(_lines=lines, _s=start, _e=end)
        return rng

    @property  # type: ignore[misc]
    def start(self) -> Position:  # type: ignore[override]
        found = self.__dict__.get("_start")
        if found is None:
            found = self.__dict__["_start"] = self._lines.position(self._s)
        return found

    @property  # type: ignore[misc]
    def end(self) -> Position:  # type: ignore[override]
        found = self.__dict__.get("_end")
        if found is None:
            found = self.__dict__["_end"] = self._lines.position(self._e)
        return found

    def contains(self, offset: int) -> bool:
        return self._s <= offset <= self._e

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Range):
            return NotImplemented
        return (self.start, self.end) == (other.start, other.end)

    def __hash__(self) -> int:
        return hash((self.start, self.end))

    def __repr__(self) -> str:
        return f"Range(start={self.start!r}, end={self.end!r})"


_new = object.__new__


def _range_class(lines: LineIndex) -> type[LazyRange]:
    """A LazyRange subclass bound to one text's lines: its instances only store two offsets."""
    return type("LazyRange", (LazyRange,), {"_lines": lines, "__slots__": ()})


# --------------------------------------------------------------------------------------- documents


class CheapCopyDict(dict):  # type: ignore[type-arg]
    """A plain-data dict whose ``copy.deepcopy`` takes a fast path (no memo, no reductions)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return tree_copy(self)


def tree_copy(value: Any) -> Any:
    """Deep copy of JSON/YAML-like data: dicts and lists are copied, scalars are immutable."""
    kind = type(value)
    if kind is dict or kind is CheapCopyDict:
        return {key: tree_copy(item) for key, item in value.items()}
    if kind is list:
        return [tree_copy(item) for item in value]
    return value


class LspDocument(Document):
    """A config ``Document`` whose plain data is computed once."""

    @property
    def data(self) -> Any:
        cached = self.__dict__.get("_plain", _UNSET)
        if cached is _UNSET:
            cached = self.__dict__["_plain"] = to_data(self.root)
        return CheapCopyDict(cached) if isinstance(cached, dict) else tree_copy(cached)


_UNSET = object()


def _document(name: str, text: str, fmt: str, root: Node | None, issues: list[SyntaxIssue]) -> LspDocument:
    from modelmill.config.diagnostics import Diagnostic

    syntax = [Diagnostic(issue.range, issue.severity, issue.code, issue.message)  # type: ignore[arg-type]
              for issue in issues]
    return LspDocument(name, text, fmt, root, syntax)  # type: ignore[arg-type]


def parse(text: str, name: str = "<config>", fmt: str | None = None) -> LspDocument:
    """Parse like ``modelmill.config.parse_document``, fast; never raises on bad syntax."""
    fmt = fmt or detect_format(text, name)
    too_big = limits.text_problem(text)
    if too_big:
        return _document(name, text, fmt, None, [SyntaxIssue(too_big, ZERO)])
    if fmt == "json":
        data: list[Any] = []
        root = fast_json(text, data)
        if root is not None:
            document = _document(name, text, "json", root, duplicate_key_issues(root))
            document.__dict__["_plain"] = data[0]  # json.loads's result equals to_data(root) for valid JSON
            return document
        slow = parse_document(text, name, "json")
        return LspDocument(slow.path, slow.text, slow.format, slow.root, slow.syntax)
    root, issues = fast_yaml(text)
    return _document(name, text, "yaml", root, issues)


# --------------------------------------------------------------------------------------- JSON

# 1: a string, 2: the ':' that makes it a key, 3: an opening bracket, 4: a closing one, 5: a literal.
_TOKEN = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")(\s*:)?|([{\[])|([}\]])|([^\s{}\[\]:,"]+)')
_LITERALS = {"true": True, "false": False, "null": None, "NaN": float("nan"), "Infinity": float("inf"),
             "-Infinity": float("-inf")}
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")


def fast_json(text: str, data: list[Any] | None = None) -> Node | None:
    """The node tree of valid JSON (as the tolerant parser would build it), or None to fall back.

    ``data``, when given, receives the plain data (``json.loads``'s result).
    """
    try:
        loaded = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if data is not None:
        data.append(loaded)
    if text[:1] == "\ufeff":
        return None
    lines = LineIndex(text)
    bound = _range_class(lines)
    new = _new

    def make(_lines: Any, start: int, end: int) -> LazyRange:
        rng = new(bound)
        slots = rng.__dict__
        slots["_s"] = start
        slots["_e"] = end
        return rng

    stack: list[Any] = []
    starts: list[int] = []
    root: Node | None = None
    entries: list[Entry] | None = None  # entries of the innermost object, if it is one
    pending: Entry | None = None
    for match in _TOKEN.finditer(text):
        kind = match.lastindex
        if kind == 2:  # a key
            start, end = match.span(1)
            token = match.group(1)
            pending = Entry(token[1:-1] if "\\" not in token else json.loads(token), make(lines, start, end), None)
            entries.append(pending)  # type: ignore[union-attr]
            continue
        if kind == 4:
            done = stack.pop()
            done.range = make(lines, starts.pop(), match.end())
            entries = stack[-1].entries if stack and type(stack[-1]) is ObjectNode else None
            continue
        start, end = match.span()
        token = match.group()
        node: Any
        if kind == 1:
            node = ScalarNode(make(lines, start, end), token[1:-1] if "\\" not in token else json.loads(token))
        elif kind == 3:
            node = ObjectNode(ZERO) if token == "{" else ArrayNode(ZERO)
        else:
            if token in _LITERALS:
                value: Any = _LITERALS[token]
            else:
                number = _NUMBER.fullmatch(token)
                if number is None:
                    return None
                value = float(token) if number.group(1) or number.group(2) else int(token)
            node = ScalarNode(make(lines, start, end), value)
        if not stack:
            root = node
        elif entries is not None:
            pending.value = node  # type: ignore[union-attr]
        else:
            stack[-1].items.append(node)
        if kind == 3:
            if len(stack) >= limits.MAX_DEPTH:
                return None  # the tolerant parser reports it
            stack.append(node)
            starts.append(start)
            entries = node.entries if token == "{" else None
    return root if not stack else None


# --------------------------------------------------------------------------------------- YAML


class _YamlConverter:
    """Composed YAML nodes → config nodes (the config layer's rules: merge keys, safe scalars)."""

    def __init__(self, lines: LineIndex) -> None:
        self.lines = lines
        self.constructor = yaml.constructor.SafeConstructor()
        self.constructors = self.constructor.yaml_constructors
        self.issues: list[SyntaxIssue] = []
        self._active: set[int] = set()
        self._range = _range_class(lines)

    def range(self, node: yaml.Node) -> Range:
        rng = _new(self._range)
        slots = rng.__dict__
        slots["_s"] = node.start_mark.index
        slots["_e"] = node.end_mark.index
        return rng

    def convert(self, node: yaml.Node) -> Node | None:
        if id(node) in self._active:
            self.issues.append(SyntaxIssue("recursive YAML alias", self.range(node)))
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                try:
                    self.constructor.flatten_mapping(node)
                except yaml.YAMLError as exc:
                    self.issues.append(SyntaxIssue(str(exc), self.range(node)))
                result = ObjectNode(self.range(node))
                for key_node, value_node in node.value:
                    result.entries.append(Entry(str(self.scalar(key_node)), self.range(key_node),
                                                self.convert(value_node)))
                return result
            if isinstance(node, yaml.SequenceNode):
                items = [self.convert(item) for item in node.value]
                return ArrayNode(self.range(node), [item for item in items if item is not None])
            return ScalarNode(self.range(node), self.scalar(node))
        finally:
            self._active.discard(id(node))

    def scalar(self, node: yaml.Node) -> Any:
        try:
            if type(node) is yaml.ScalarNode:
                # a scalar's tag is resolved already: call its constructor without the bookkeeping
                if node.tag == _STR:
                    return node.value  # what SafeConstructor.construct_yaml_str returns
                build = self.constructors.get(node.tag)
                if build is not None:
                    return build(self.constructor, node)
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.issues.append(SyntaxIssue(f"cannot read this YAML value: {exc}", self.range(node)))
            return None


def _compose(text: str) -> Any:
    return yaml.compose(text, Loader=_CLoader or yaml.SafeLoader)


def fast_yaml(text: str) -> tuple[Node | None, list[SyntaxIssue]]:
    """Like ``modelmill.config.positions.parse_yaml``, composed by libyaml where it is installed."""
    lines = LineIndex(text)
    deep = limits.json_depth_offset(text)
    if deep is not None:  # as the config layer does (libyaml would stop at 1,000 levels with its own message)
        return None, [SyntaxIssue(limits.depth_problem(), LazyRange.make(lines, deep, deep + 1))]
    issues: list[SyntaxIssue] = []
    try:
        composed = _compose(text)
    except yaml.YAMLError as exc:
        issues.append(yaml_issue(exc, text, lambda start, end: LazyRange.make(lines, start, end)))
        composed = None
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        last = min(mark.line, len(lines.starts) - 1) if mark is not None else 0
        for line in range(last, max(last - 40, 0), -1):
            try:
                composed = _compose(text[:lines.starts[line]])
                break
            except yaml.YAMLError:
                continue
    except RecursionError:
        return None, [SyntaxIssue(limits.depth_problem(), ZERO)]
    if composed is None:
        if not issues:
            issues.append(SyntaxIssue("the file is empty: expected a mapping of config keys", ZERO))
        return None, issues
    expanded = limits.yaml_graph_problem(composed)
    if expanded:  # checked before conversion, which copies every alias
        return None, issues + [SyntaxIssue(expanded, ZERO)]
    converter = _YamlConverter(lines)
    root = converter.convert(composed)
    return root, issues + converter.issues + duplicate_key_issues(root)
