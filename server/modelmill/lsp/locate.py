"""Cursor → where it is in the config: a key or a value, the key path, and the text being typed.

Works on half-typed text (a key without its ':', an open brace, a missing comma), with the config
parser (``modelmill.config.positions``) as the only reader of the text:

- YAML: patch the cursor's line (the word being typed becomes a marker key or value), parse the
  patched text, and find the marker in the tree; when the line's indentation fits no mapping,
  the indentations of the lines above are tried in turn.
- JSON: the parser's state machine, stopped where the token under the cursor starts, tells which
  containers are open there and what each expects next (``json_frames_at``); the data around the
  cursor (siblings, a pass's ``type``) comes from the document's parse.

Columns are Unicode code points (as in ``modelmill.config``); the LSP layer converts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from modelmill.config import positions
from modelmill.config.diagnostics import KeyPath
from modelmill.config.positions import (
    AFTER,
    KEY,
    VALUE,
    ArrayNode,
    LineIndex,
    Node,
    ObjectNode,
    ScalarNode,
    json_frames_at,
)
from modelmill.lsp.schema_nav import MISSING

MARK = "__modelmill_cursor__"


@dataclass
class Location:
    kind: str
    """"key" (complete a key of the object at ``path``), "value" (complete the value at ``path``), or "none"."""
    path: KeyPath
    line: int
    start: int
    """Column where the text to replace starts (with its opening quote)."""
    end: int
    """Column where it ends (after its closing quote)."""
    prefix: str = ""
    """What was typed before the cursor, without quotes."""
    quote: str | None = None
    """The quote character the token was written in, if any."""
    has_value: bool = False
    """key: the key already has a ':' after it (replace the name only)."""
    needs_comma: bool = False
    """JSON: another member follows without a comma: add one after the insertion."""
    comma_before: int | None = None
    """JSON: offset after the previous member that lacks its comma (a key typed after a value)."""
    indent: int = 0
    """YAML: the column of the key being typed (for multi-line snippets)."""
    line_indent: int = 0
    """YAML: the leading whitespace of the cursor's line (clients indent new snippet lines by it)."""
    also_value: bool = False
    """YAML '- word': the item may be a scalar too; offer value completions at ``path`` as well."""
    root: Node | None = None
    """The tree to read data from (the patched parse for YAML, the document's parse for JSON)."""
    existing: list[str] = field(default_factory=list)
    """Keys the object at ``path`` already has (key kind), except the one being typed."""
    fmt: str = "json"

    def value_at(self, prefix: KeyPath) -> Any:
        """Shallow data at a prefix of the path (enough for choosing schema branches)."""
        return shallow(node_at(self.root, prefix))

    @property
    def key(self) -> str | None:
        """The key whose value is completed (value kind), if the value sits under a key."""
        return self.path[-1] if self.kind == "value" and self.path and isinstance(self.path[-1], str) else None


# ------------------------------------------------------------------ tree helpers


def node_at(root: Node | None, path: KeyPath) -> Any:
    """The node at ``path`` (MISSING when there is none; the last duplicate key wins)."""
    found = positions.node_at(root, path)
    return MISSING if found is None else found


def shallow(node: Any) -> Any:
    """Plain data one level deep: objects give their scalar members and placeholders for containers."""
    if node is MISSING or node is None:
        return MISSING
    if isinstance(node, ScalarNode):
        return MISSING if node.value == MARK else node.value
    if isinstance(node, ArrayNode):
        return [shallow(item) if isinstance(item, ScalarNode) else ({} if isinstance(item, ObjectNode) else [])
                for item in node.items]
    result: dict[str, Any] = {}
    for entry in node.entries:
        if entry.key == MARK or entry.value is None:
            continue
        value = entry.value
        result[entry.key] = value.value if isinstance(value, ScalarNode) else \
            ({} if isinstance(value, ObjectNode) else [])
    return result


def keys_of(node: Any) -> list[str]:
    return [e.key for e in node.entries if e.key != MARK] if isinstance(node, ObjectNode) else []


def find_marker(root: Node | None) -> tuple[str, KeyPath] | None:
    """("key", object path) or ("value", value path) of the marker in a patched tree."""
    stack: list[tuple[Any, KeyPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, ObjectNode):
            for entry in node.entries:
                if entry.key == MARK:
                    return "key", path
                if entry.value is not None:
                    stack.append((entry.value, path + (entry.key,)))
        elif isinstance(node, ArrayNode):
            for index, item in enumerate(node.items):
                stack.append((item, path + (index,)))
        elif isinstance(node, ScalarNode) and node.value == MARK:
            return "value", path
    return None


# ------------------------------------------------------------------ entry point


def locate(text: str, fmt: str, line: int, col: int, root: Node | None = None, clean: bool = False) -> Location:
    """Where the cursor at (line, col) is. ``root``: the document's parse (JSON uses it for data);
    ``clean``: that parse had no syntax errors, so its containers can shorten the JSON scan."""
    lines = LineIndex(text)
    if line >= len(lines.starts):
        line = len(lines.starts) - 1
        col = 10 ** 9
    line_start = lines.starts[line]
    line_end = lines.starts[line + 1] - 1 if line + 1 < len(lines.starts) else len(text)
    line_text = text[line_start:line_end].rstrip("\r")
    col = max(0, min(col, len(line_text)))
    if fmt == "yaml":
        return _locate_yaml(text, lines, line, col, line_text)
    return _locate_json(text, line, col, line_start, line_text, root, clean)


# ------------------------------------------------------------------ JSON

_WORD = re.compile(r"[A-Za-z0-9_.+\-]")
_SIGNIFICANT = re.compile(r"\s*(\S)")


def _string_spans(line_text: str) -> list[tuple[int, int, bool]]:
    """(open quote, index after the string, closed?) for each double-quoted string on a line."""
    spans = []
    index = 0
    while True:
        start = line_text.find('"', index)
        if start < 0:
            return spans
        pos = start + 1
        while pos < len(line_text) and line_text[pos] != '"':
            pos += 2 if line_text[pos] == "\\" else 1
        if pos >= len(line_text):
            spans.append((start, len(line_text), False))
            return spans
        spans.append((start, pos + 1, True))
        index = pos + 1


def _decode(token: str) -> str:
    if token.startswith('"') and "\\" not in token and len(token) > 1 and token.endswith('"'):
        return token[1:-1]
    if token.startswith('"'):
        body = token if token.endswith('"') and len(token) > 1 else token + '"'
        try:
            return json.loads(body)
        except ValueError:
            return body[1:-1]
    return token


def _locate_json(text: str, line: int, col: int, line_start: int, line_text: str, root: Node | None,
                 clean: bool = False) -> Location:
    start, end, quote = col, col, None
    for open_at, close_at, closed in _string_spans(line_text):
        if open_at < col < close_at or (col == close_at and not closed):
            start, quote = open_at, '"'
            if closed:
                end = close_at
            else:
                end = col
                while end < len(line_text) and _WORD.match(line_text[end]):
                    end += 1
            break
        if open_at >= col:
            break
    if quote is None:
        while start > 0 and _WORD.match(line_text[start - 1]):
            start -= 1
        while end < len(line_text) and _WORD.match(line_text[end]):
            end += 1
    prefix = line_text[start + (1 if quote else 0):col]
    token_start = line_start + start
    path, frame = json_frames_at(text, token_start, root if clean else None)
    after = _next_significant(text, line_start + end)
    location = Location("none", (), line, start, end, prefix, quote, root=root, fmt="json")
    if frame is None:
        if root is None or token_start <= root.range.start_offset:
            location.kind = "value"  # before the root value: an empty document
        return location
    follows = after not in ("", ",", "}", "]", ":")
    if isinstance(frame.node, ObjectNode):
        if frame.state in (KEY, AFTER):
            location.kind, location.path = "key", path
            location.has_value = after == ":"
            location.needs_comma = follows
            if frame.state == AFTER:  # a key typed after a member that lacks its comma
                location.comma_before = frame.last_end
            edited = _decode(line_text[start:end]) if quote else line_text[start:end]
            location.existing = [key for key in keys_of(node_at(root, path)) if key != edited]
        elif frame.state == VALUE:
            location.kind, location.path = "value", path + (frame.entry.key,)  # type: ignore[union-attr]
            location.needs_comma = follows
        return location
    location.kind, location.path = "value", path + (len(frame.node.items),)
    location.needs_comma = follows
    return location


def _next_significant(text: str, offset: int) -> str:
    match = _SIGNIFICANT.match(text, offset)
    return match.group(1) if match else ""


# ------------------------------------------------------------------ YAML

_YAML_LINE = re.compile(r"^(\s*)((?:-(?:\s+|$))*)(.*)$")
_YAML_STOP = " ,[]{}#"


def _yaml_colon(rest: str) -> int:
    """Index of the ':' that ends a key in ``rest`` (outside quotes), or -1."""
    quote = None
    for index, char in enumerate(rest):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"" and index == 0:
            quote = char
        elif char == "#" and (index == 0 or rest[index - 1] == " "):
            return -1
        elif char == ":" and (index + 1 == len(rest) or rest[index + 1] in " \t"):
            return index
    return -1


def _locate_yaml(text: str, lines: LineIndex, line: int, col: int, line_text: str) -> Location:
    match = _YAML_LINE.match(line_text)
    assert match is not None
    indent, dashes, rest = match.group(1), match.group(2), match.group(3)
    body = len(indent) + len(dashes)
    line_start = lines.starts[line]
    line_end = line_start + len(line_text)
    before, after_text = text[:line_start], text[line_end:]
    if not rest.strip() and not dashes:
        # a blank line: the cursor's column says which mapping the new key belongs to
        candidates = [col] + sorted({_indent_of(t) for t in _lines_above(text, lines, line) if _indent_of(t) < col},
                                    reverse=True)
        for column in candidates:
            patched = before + " " * column + MARK + ":" + after_text
            found = _find(patched)
            if found is not None:
                location = _yaml_location(found, line, col, col, "", False, column, False, patched)
                location.line_indent = min(col, len(line_text) - len(line_text.lstrip()))
                return location
        return Location("none", (), line, col, col, fmt="yaml")
    colon = _yaml_colon(rest)
    if colon >= 0 and col > body + colon:
        # the value of "key: ..."
        value_from = body + colon + 1
        while value_from < len(line_text) and line_text[value_from] == " ":
            value_from += 1
        start, end, quote = _yaml_token(line_text, value_from, col)
        patched = before + line_text[:start] + MARK + line_text[end:] + after_text
        found = _find(patched)
        prefix = line_text[start + (1 if quote else 0):col]
        if found is None:
            return Location("none", (), line, start, end, prefix, quote, fmt="yaml")
        location = _yaml_location(found, line, start, end, prefix, False, body, False, patched, quote)
        location.line_indent = len(indent)
        return location
    # a key (or a list item being typed)
    start = body
    end = body + colon if colon >= 0 else len(line_text.rstrip())
    end = max(end, col)
    quote = line_text[start] if start < len(line_text) and line_text[start] in "'\"" else None
    prefix = line_text[start + (1 if quote else 0):col]
    tail = line_text[end:] if colon >= 0 else ":"
    patched = before + line_text[:start] + MARK + tail + after_text
    found = _find(patched)
    if found is None and colon < 0:
        patched = before + line_text[:start] + MARK + after_text
        found = _find(patched)
    if found is None:
        return Location("none", (), line, start, end, prefix, quote, fmt="yaml")
    location = _yaml_location(found, line, start, end, prefix, colon >= 0, body, bool(dashes) and colon < 0,
                              patched, quote)
    location.line_indent = len(indent)
    return location


def _yaml_token(line_text: str, value_from: int, col: int) -> tuple[int, int, str | None]:
    if value_from < len(line_text) and line_text[value_from] in "'\"" and col > value_from:
        quote = line_text[value_from]
        close = line_text.find(quote, value_from + 1)
        return value_from, (close + 1 if close >= 0 else len(line_text)), quote
    if value_from < len(line_text) and line_text[value_from] not in "[{":
        end = line_text.find(" #", value_from)
        end = len(line_text.rstrip()) if end < 0 else end
        return value_from, max(end, col), None
    start = col
    while start > value_from and line_text[start - 1] not in _YAML_STOP:
        start -= 1
    end = col
    while end < len(line_text) and line_text[end] not in _YAML_STOP:
        end += 1
    return start, end, None


def _lines_above(text: str, lines: LineIndex, line: int) -> list[str]:
    found = []
    for number in range(line - 1, max(line - 200, -1), -1):
        start = lines.starts[number]
        end = lines.starts[number + 1] - 1
        content = text[start:end]
        if content.strip() and not content.lstrip().startswith("#"):
            found.append(content)
    return found


def _indent_of(line_text: str) -> int:
    match = _YAML_LINE.match(line_text)
    assert match is not None
    return len(match.group(1)) + len(match.group(2))


def _find(patched: str) -> tuple[str, KeyPath, Node | None] | None:
    root, _issues = positions.parse_yaml(patched)
    found = find_marker(root)
    return (found[0], found[1], root) if found is not None else None


def _yaml_location(found: tuple[str, KeyPath, Node | None], line: int, start: int, end: int, prefix: str,
                   has_value: bool, indent: int, also_value: bool, patched: str,
                   quote: str | None = None) -> Location:
    kind, path, root = found
    location = Location(kind, path, line, start, end, prefix, quote, has_value=has_value, indent=indent,
                        also_value=also_value and kind == "key", root=root, fmt="yaml")
    if kind == "key":
        location.existing = keys_of(node_at(root, path))
    return location
