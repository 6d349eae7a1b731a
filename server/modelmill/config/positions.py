"""Config text → a node tree that remembers where every key and value sits in the source.

The JSON parser is hand-written so that it is tolerant: an editor sends half-typed text,
and the checks still need the positions of everything before (and after) the mistake.
YAML goes through PyYAML's composer, whose nodes carry marks, and is converted to the same
tree. Lines, columns and offsets are 0-based and count Unicode code points (the language
server converts to UTF-16 where the client needs it).
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from modelmill.config import limits


@dataclass(frozen=True)
class Position:
    line: int
    col: int
    offset: int


@dataclass(frozen=True)
class Range:
    start: Position
    end: Position

    def contains(self, offset: int) -> bool:
        return self.start.offset <= offset <= self.end.offset


ZERO = Range(Position(0, 0, 0), Position(0, 0, 0))


@dataclass
class ScalarNode:
    range: Range
    value: Any


@dataclass
class Entry:
    """One ``key: value`` pair; ``value`` is None when the text stops before the value."""

    key: str
    key_range: Range
    value: Node | None


@dataclass
class ObjectNode:
    range: Range
    entries: list[Entry] = field(default_factory=list)

    def get(self, key: str) -> Entry | None:
        """The entry for ``key``; the last one wins on duplicates, as in json.load and YAML."""
        for entry in reversed(self.entries):
            if entry.key == key:
                return entry
        return None


@dataclass
class ArrayNode:
    range: Range
    items: list[Node] = field(default_factory=list)


Node = ScalarNode | ObjectNode | ArrayNode


@dataclass(frozen=True)
class SyntaxIssue:
    """A problem found while parsing; ``severity`` is "error" unless the text is still usable."""

    message: str
    range: Range
    severity: str = "error"
    code: str = "syntax"


def to_data(node: Node | None) -> Any:
    """The plain Python value of a node tree (what json.load / yaml.safe_load would give)."""
    if node is None:
        return None
    if isinstance(node, ScalarNode):
        return node.value
    if isinstance(node, ArrayNode):
        return [to_data(item) for item in node.items]
    return {entry.key: to_data(entry.value) for entry in node.entries if entry.value is not None}


class _Lines:
    """Offset → (line, col) for one text."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [match.end() for match in re.finditer("\n", text)]

    def position(self, offset: int) -> Position:
        line = bisect.bisect_right(self.starts, offset) - 1
        return Position(line, offset - self.starts[line], offset)

    def range(self, start: int, end: int) -> Range:
        return Range(self.position(start), self.position(end))


def duplicate_key_issues(node: Node | None) -> list[SyntaxIssue]:
    """Warnings for keys that appear twice in one object (the later value silently wins)."""
    issues: list[SyntaxIssue] = []
    if isinstance(node, ObjectNode):
        seen: set[str] = set()
        for entry in node.entries:
            if entry.key in seen:
                issues.append(SyntaxIssue(f"duplicate key '{entry.key}': this later value replaces the earlier one",
                                          entry.key_range, "warning", "duplicate-key"))
            seen.add(entry.key)
    children = node.items if isinstance(node, ArrayNode) else (
        [e.value for e in node.entries if e.value is not None] if isinstance(node, ObjectNode) else [])
    for child in children:
        issues.extend(duplicate_key_issues(child))
    return issues


# --------------------------------------------------------------------------------------- JSON

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
_WORD = re.compile(r"-?[A-Za-z_][A-Za-z0-9_.\-]*")
_WORDS = {"true": True, "false": False, "null": None, "NaN": float("nan"), "Infinity": float("inf"),
          "-Infinity": float("-inf")}
_CLOSERS = {"{": "}", "[": "]"}


class _JsonParser:
    """Recursive descent over JSON that records errors and keeps going.

    Recovery rules: a missing comma is assumed where the next key or item starts; a missing
    value leaves the entry without a value; stray characters are skipped up to the next
    delimiter or line end; at the end of the text every open object or array is closed.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines = _Lines(text)
        self.issues: list[SyntaxIssue] = []
        self._eof_reported = False

    # -- helpers
    def error(self, message: str, start: int, end: int | None = None) -> None:
        self.issues.append(SyntaxIssue(message, self.lines.range(start, start if end is None else end)))

    def eof(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r\n\ufeff":
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                end = len(text) if end < 0 else end
                self.error("comments are not allowed in JSON", self.pos, end)
                self.pos = end
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                end = len(text) if end < 0 else end + 2
                self.error("comments are not allowed in JSON", self.pos, end)
                self.pos = end
            else:
                return

    def skip_junk(self) -> None:
        """Skip at least one character, up to the next delimiter, quote or line end."""
        self.pos += 1
        while self.pos < len(self.text) and self.text[self.pos] not in ',:{}[]"\n':
            self.pos += 1

    def unclosed(self, opener: str, start: int) -> None:
        if not self._eof_reported:  # one report is enough: the innermost unclosed bracket is the cause
            where = self.lines.position(start)
            self.error(f"unexpected end of file: '{opener}' opened at line {where.line + 1}, column {where.col + 1} "
                       f"is not closed (expected '{_CLOSERS[opener]}')", len(self.text))
            self._eof_reported = True

    # -- grammar
    def parse(self) -> Node | None:
        self.skip_ws()
        if self.eof():
            self.error("the file is empty: expected a JSON object", 0)
            return None
        node = self.value()
        self.skip_ws()
        if node is None and not self.eof():
            self.skip_junk()
        if not self.eof():
            end = self.text.find("\n", self.pos)
            self.error("unexpected text after the end of the JSON value", self.pos,
                       len(self.text) if end < 0 else end)
        return node

    def value(self) -> Node | None:
        char = self.peek()
        if char == "{":
            return self.object()
        if char == "[":
            return self.array()
        if char in "\"'":
            start = self.pos
            text = self.string()
            return ScalarNode(self.lines.range(start, self.pos), text)
        if char == "-" or char.isdigit():
            match = _NUMBER.match(self.text, self.pos)
            if match and not self.text.startswith("-Infinity", self.pos):
                self.pos = match.end()
                literal = match.group(0)
                number: Any = float(literal) if match.group(1) or match.group(2) else int(literal)
                return ScalarNode(self.lines.range(match.start(), self.pos), number)
        match = _WORD.match(self.text, self.pos)
        if match:
            self.pos = match.end()
            word = match.group(0)
            if word in _WORDS:
                return ScalarNode(self.lines.range(match.start(), self.pos), _WORDS[word])
            self.error(f"unexpected word '{word}': strings need double quotes", match.start(), self.pos)
            return ScalarNode(self.lines.range(match.start(), self.pos), word)
        self.error("expected a value", self.pos, min(self.pos + 1, len(self.text)))
        return None

    def string(self) -> str:
        """A quoted string at ``pos``; single quotes and unterminated strings are errors but usable."""
        start, quote = self.pos, self.peek()
        if quote == "'":
            self.error("strings need double quotes", start, start + 1)
        index = start + 1
        while index < len(self.text):
            char = self.text[index]
            if char == "\\":
                index += 2
                continue
            if char == quote or char == "\n":
                break
            index += 1
        index = min(index, len(self.text))
        if index >= len(self.text) or self.text[index] != quote:
            self.error("unterminated string", start, index)
            self.pos = index
            return self.text[start + 1:index]
        self.pos = index + 1
        raw = self.text[start:self.pos]
        if quote == "'":
            raw = '"' + raw[1:-1].replace('"', '\\"') + '"'
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            self.error(f"invalid string: {exc.msg}", start + exc.pos, start + exc.pos + 1)
            return raw[1:-1]

    def key(self) -> tuple[str, Range] | None:
        start = self.pos
        if self.peek() in "\"'":
            text = self.string()
            return text, self.lines.range(start, self.pos)
        match = _WORD.match(self.text, self.pos)
        if match:
            self.pos = match.end()
            self.error("property names need double quotes", start, self.pos)
            return match.group(0), self.lines.range(start, self.pos)
        return None

    def object(self) -> ObjectNode:
        start = self.pos
        self.pos += 1
        node = ObjectNode(self.lines.range(start, start + 1))
        while True:
            self.skip_ws()
            if self.eof():
                self.unclosed("{", start)
                break
            char = self.peek()
            if char == "}":
                self.pos += 1
                break
            if char == "]":  # mismatched closer: end this object, let the enclosing array take it
                self.error("expected '}' before ']'", self.pos, self.pos + 1)
                break
            if char == ",":
                self.error("unexpected ','", self.pos, self.pos + 1)
                self.pos += 1
                continue
            parsed = self.key()
            if parsed is None:
                self.error("expected a property name in double quotes", self.pos, self.pos + 1)
                self.skip_junk()
                continue
            name, key_range = parsed
            self.skip_ws()
            if self.peek() == ":":
                self.pos += 1
            else:
                self.error(f"expected ':' after '{name}'", self.pos, min(self.pos + 1, len(self.text)))
            self.skip_ws()
            value = None
            if self.eof() or self.peek() in ",}]":
                self.error(f"expected a value for '{name}'", self.pos, min(self.pos + 1, len(self.text)))
            else:
                value = self.value()
            node.entries.append(Entry(name, key_range, value))
            if not self.after_member("}"):
                break
        node.range = self.lines.range(start, self.pos)
        return node

    def array(self) -> ArrayNode:
        start = self.pos
        self.pos += 1
        node = ArrayNode(self.lines.range(start, start + 1))
        while True:
            self.skip_ws()
            if self.eof():
                self.unclosed("[", start)
                break
            char = self.peek()
            if char == "]":
                self.pos += 1
                break
            if char == "}":
                self.error("expected ']' before '}'", self.pos, self.pos + 1)
                break
            if char == ",":
                self.error("unexpected ','", self.pos, self.pos + 1)
                self.pos += 1
                continue
            before = self.pos
            item = self.value()
            if item is None:
                if self.pos == before:
                    self.skip_junk()
                continue
            node.items.append(item)
            if not self.after_member("]"):
                break
        node.range = self.lines.range(start, self.pos)
        return node

    def after_member(self, closer: str) -> bool:
        """Consume the ',' after a member. False when the container ended (closer or end of text)."""
        self.skip_ws()
        if self.eof():
            return True  # the loop reports the unclosed bracket
        char = self.peek()
        if char == ",":
            comma = self.pos
            self.pos += 1
            self.skip_ws()
            if self.peek() == closer:
                self.error("trailing comma", comma, comma + 1)
            return True
        if char == closer:
            return True
        if char in "}]":
            return True  # mismatched closer, reported by the loop
        # Python's json reports a missing comma where the next member starts; do the same.
        self.error(f"expected ',' or '{closer}'", self.pos, self.pos + 1)
        if not (char in "\"'{[-" or char.isalnum()):
            self.skip_junk()
        return True


def parse_json(text: str) -> tuple[Node | None, list[SyntaxIssue]]:
    """Parse JSON tolerantly: the nodes parsed so far, and every syntax problem with its range."""
    too_big = limits.text_problem(text)
    if too_big:
        return None, [SyntaxIssue(too_big, ZERO)]
    deep = limits.json_depth_offset(text)
    if deep is not None:  # refused before parsing: the parser and every check recurse per level
        return None, [SyntaxIssue(limits.depth_problem(), _Lines(text).range(deep, deep + 1))]
    parser = _JsonParser(text)
    root = parser.parse()
    return root, parser.issues + duplicate_key_issues(root)


# --------------------------------------------------------------------------------------- YAML


class _YamlConverter:
    """PyYAML composed nodes → our nodes, building scalars with the safe constructor."""

    def __init__(self, text: str) -> None:
        self.lines = _Lines(text)
        self.constructor = yaml.constructor.SafeConstructor()
        self.issues: list[SyntaxIssue] = []
        self._active: set[int] = set()

    def range(self, node: yaml.Node) -> Range:
        return self.lines.range(node.start_mark.index, node.end_mark.index)

    def convert(self, node: yaml.Node) -> Node | None:
        if id(node) in self._active:  # a recursive alias; Olive could not load it either
            self.issues.append(SyntaxIssue("recursive YAML alias", self.range(node)))
            return None
        self._active.add(id(node))
        try:
            return self._convert(node)
        finally:
            self._active.discard(id(node))

    def _convert(self, node: yaml.Node) -> Node | None:
        if isinstance(node, yaml.MappingNode):
            try:
                self.constructor.flatten_mapping(node)  # resolve '<<' merge keys like safe_load does
            except yaml.YAMLError as exc:
                self.issues.append(SyntaxIssue(str(exc), self.range(node)))
            result = ObjectNode(self.range(node))
            for key_node, value_node in node.value:
                key = self.scalar(key_node)
                result.entries.append(Entry(str(key), self.range(key_node), self.convert(value_node)))
            return result
        if isinstance(node, yaml.SequenceNode):
            items = [self.convert(item) for item in node.value]
            return ArrayNode(self.range(node), [item for item in items if item is not None])
        return ScalarNode(self.range(node), self.scalar(node))

    def scalar(self, node: yaml.Node) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.issues.append(SyntaxIssue(f"cannot read this YAML value: {exc}", self.range(node)))
            return None


def yaml_issue(exc: yaml.YAMLError, text: str, range_at: Callable[[int, int], Range]) -> SyntaxIssue:
    """A YAML error as a syntax issue at its mark; ``range_at(start, end)`` turns offsets into a range."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"{context}: {problem}" if context else str(problem)
    if mark is None:
        return SyntaxIssue(message, ZERO)
    offset = min(mark.index, len(text))
    return SyntaxIssue(message, range_at(offset, offset))


def _compose_prefix(text: str, exc: yaml.YAMLError, lines: _Lines) -> yaml.Node | None:
    """Compose the text above a YAML error, cutting back a line at a time while that still fails."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    last = min(mark.line, len(lines.starts) - 1) if mark is not None else 0
    for line in range(last, max(last - 40, 0), -1):
        try:
            return yaml.compose(text[:lines.starts[line]], Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            continue
    return None


def parse_yaml(text: str) -> tuple[Node | None, list[SyntaxIssue]]:
    """Parse YAML: nodes with ranges, or a syntax issue at PyYAML's mark.

    PyYAML stops at the first error; to still give positions for the keys above it, the text
    up to the line of the error is composed again on its own.
    """
    too_big = limits.text_problem(text)
    if too_big:
        return None, [SyntaxIssue(too_big, ZERO)]
    lines = _Lines(text)
    deep = limits.json_depth_offset(text)
    if deep is not None:  # deep flow brackets: PyYAML's pure-Python scanner takes seconds before it recurses out
        return None, [SyntaxIssue(limits.depth_problem(), lines.range(deep, deep + 1))]
    issues: list[SyntaxIssue] = []
    try:
        try:
            composed = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            issues.append(yaml_issue(exc, text, lines.range))
            composed = _compose_prefix(text, exc, lines)
    except RecursionError:  # PyYAML's pure-Python composer recurses per level
        return None, [SyntaxIssue(limits.depth_problem(), ZERO)]
    if composed is None:
        if not issues:
            issues.append(SyntaxIssue("the file is empty: expected a mapping of config keys", ZERO))
        return None, issues
    expanded = limits.yaml_graph_problem(composed)
    if expanded:  # checked before conversion, which copies every alias
        return None, issues + [SyntaxIssue(expanded, ZERO)]
    converter = _YamlConverter(text)
    root = converter.convert(composed)
    return root, issues + converter.issues + duplicate_key_issues(root)
