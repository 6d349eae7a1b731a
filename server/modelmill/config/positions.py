"""The config parser: text → a node tree that remembers where every key and value sits.

One tolerant, position-aware parser serves everything that reads a config: ``modelmill validate``
and ``run``, and the language server's diagnostics, completion, hover, code actions and symbols.

- JSON: one iterative state machine over regular-expression tokens. An editor sends half-typed
  text, so it records each mistake and keeps going (a missing comma is assumed where the next
  member starts, a missing value leaves the entry without one, stray characters are skipped up to
  the next delimiter or line end, open brackets are closed at the end of the text). The same
  machine, stopped at an offset, tells completion which containers are open there and what each
  expects next (``json_frames_at``).
- YAML: composed by libyaml (PyYAML's C loader; the pure-Python one where it is missing), whose
  nodes carry marks; on a syntax error the text above the error is composed again, so the keys
  there keep their positions.

Ranges are lazy: a range keeps two offsets and computes lines and columns when first read (a
1,000-line config has thousands of ranges; diagnostics, hover and completion read a few).
Lines, columns and offsets are 0-based and count Unicode code points (the language server
converts to UTF-16 where the client needs it). Hostile input is bounded (``limits``): size,
nesting depth and YAML alias expansion are each one error, found before any recursion.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from modelmill.config import limits

KeyPath = tuple[str | int, ...]


# --------------------------------------------------------------------------------------- positions


@dataclass(frozen=True)
class Position:
    line: int
    col: int
    offset: int


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

    def range(self, start: int, end: int) -> Range:
        rng = _new_range(Range)  # a lazy range: _start and _end are set when first read
        rng._lines = self
        rng.start_offset = start
        rng.end_offset = end
        return rng


class Range:
    """From ``start`` to ``end``. Built from two positions, or by ``LineIndex.range`` from two offsets
    (then the positions are computed when first read)."""

    __slots__ = ("_end", "_lines", "_start", "end_offset", "start_offset")
    _lines: LineIndex
    _start: Position
    _end: Position

    def __init__(self, start: Position, end: Position) -> None:
        self.start_offset, self.end_offset = start.offset, end.offset
        self._start, self._end = start, end

    @property
    def start(self) -> Position:
        try:
            return self._start
        except AttributeError:
            self._start = self._lines.position(self.start_offset)
            return self._start

    @property
    def end(self) -> Position:
        try:
            return self._end
        except AttributeError:
            self._end = self._lines.position(self.end_offset)
            return self._end

    def contains(self, offset: int) -> bool:
        return self.start_offset <= offset <= self.end_offset

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Range):
            return NotImplemented
        return (self.start, self.end) == (other.start, other.end)

    def __hash__(self) -> int:
        return hash((self.start, self.end))

    def __repr__(self) -> str:
        return f"Range(start={self.start!r}, end={self.end!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return Range, (self.start, self.end)  # a plain copy, without the text's line index


_new_range = object.__new__
ZERO = Range(Position(0, 0, 0), Position(0, 0, 0))


# --------------------------------------------------------------------------------------- nodes


@dataclass(slots=True)
class ScalarNode:
    range: Range
    value: Any


@dataclass(slots=True)
class Entry:
    """One ``key: value`` pair; ``value`` is None when the text stops before the value."""

    key: str
    key_range: Range
    value: Node | None


@dataclass(slots=True)
class ObjectNode:
    range: Range
    entries: list[Entry] = field(default_factory=list)

    def get(self, key: str) -> Entry | None:
        """The entry for ``key``; the last one wins on duplicates, as in json.load and YAML."""
        for entry in reversed(self.entries):
            if entry.key == key:
                return entry
        return None


@dataclass(slots=True)
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
    trusted_until: int | None = None
    """Offset before which the parsed tree is what the text says (default: the issue's start). YAML keys just above
    an error can lose their value to the recovery, which parses the text above the error on its own."""


def to_data(node: Node | None) -> Any:
    """The plain Python value of a node tree (what json.load / yaml.safe_load would give)."""
    kind = type(node)
    if kind is ScalarNode:
        return node.value  # type: ignore[union-attr]
    if kind is ObjectNode:
        return {entry.key: to_data(entry.value) for entry in node.entries  # type: ignore[union-attr]
                if entry.value is not None}
    if kind is ArrayNode:
        return [to_data(item) for item in node.items]  # type: ignore[union-attr]
    return None


def node_at(root: Node | None, path: KeyPath) -> Node | None:
    """The node at ``path``, or None (the last of duplicate keys wins)."""
    node = root
    for elem in path:
        if isinstance(node, ObjectNode) and isinstance(elem, str):
            entry = node.get(elem)
            node = entry.value if entry is not None else None
        elif isinstance(node, ArrayNode) and isinstance(elem, int) and 0 <= elem < len(node.items):
            node = node.items[elem]
        else:
            return None
    return node


def entry_at(root: Node | None, offset: int) -> tuple[KeyPath, Entry | None, Node | None, bool]:
    """(path, entry, node, on_key) of the innermost key or value at ``offset``."""
    path: list[str | int] = []
    node: Any = root
    entry: Entry | None = None
    while node is not None:
        if isinstance(node, ObjectNode):
            hit, on_key = None, False
            for candidate in node.entries:
                if candidate.key_range.contains(offset):
                    hit, on_key = candidate, True
                    break
                if candidate.value is not None and candidate.value.range.contains(offset):
                    hit = candidate
                    break
            if hit is None:
                break
            path.append(hit.key)
            entry = hit
            if on_key:
                return tuple(path), entry, hit.value, True
            node = hit.value
        elif isinstance(node, ArrayNode):
            index = next((i for i, item in enumerate(node.items) if item.range.contains(offset)), None)
            if index is None:
                break
            path.append(index)
            entry = None
            node = node.items[index]
        else:
            return tuple(path), entry, node, False
    return tuple(path), entry, node if path else None, False


def _duplicate(entry: Entry) -> SyntaxIssue:
    """A key that appears twice in one object (the later value silently wins)."""
    return SyntaxIssue(f"duplicate key '{entry.key}': this later value replaces the earlier one", entry.key_range,
                       "warning", "duplicate-key")


def parse(text: str, fmt: str) -> tuple[Node | None, list[SyntaxIssue]]:
    """Parse ``fmt`` ("json" or "yaml") text: the nodes parsed, and every syntax problem with its range."""
    return parse_json(text) if fmt == "json" else parse_yaml(text)


# --------------------------------------------------------------------------------------- JSON

# Tokens, each after optional whitespace. The group number is the token's kind.
_TOKEN = re.compile(
    r'[ \t\r\n\ufeff]*(?:'
    r'("[^"\\\x00-\x1f]*")'  # 1: a string with nothing to decode
    r'|("[^"\\\n]*(?:\\[\s\S]?[^"\\\n]*)*"?|\'[^\'\\\n]*(?:\\[\s\S]?[^\'\\\n]*)*\'?)'  # 2: any other string
    r'|([{\[])'  # 3
    r'|([}\]])'  # 4
    r'|(,)'  # 5
    r'|(:)'  # 6
    r'|(-?[A-Za-z_][A-Za-z0-9_.\-]*)'  # 7: a word (true, null, or a mistake)
    r'|(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)'  # 8: a number
    r'|(//[^\n]*|/\*(?:[^*]|\*(?!/))*(?:\*/)?)'  # 9: a comment
    r'|([^ \t\r\n\ufeff]))')  # 10: anything else
_STR, _STRING, _OPEN, _CLOSE, _COMMA, _COLON, _WORD, _NUMBER, _COMMENT, _JUNK = range(1, 11)
_VALUES = {_STR, _STRING, _OPEN, _WORD, _NUMBER}
_JUNK_END = re.compile(r'[,:{}\[\]"\n]')
_WORDS = {"true": True, "false": False, "null": None, "NaN": float("nan"), "Infinity": float("inf"),
          "-Infinity": float("-inf")}
_CLOSERS = {"{": "}", "[": "]"}

# What an open container expects next.
KEY, COLON, VALUE, AFTER = "key", "colon", "value", "after"


@dataclass(slots=True)
class Frame:
    """An open object or array at some point of a JSON scan, and what it expects next: an object a
    ``KEY``, the ``COLON`` after one, or the ``VALUE``; an array a ``VALUE``; either, ``AFTER`` a
    member, a ',' or its closer."""

    node: ObjectNode | ArrayNode
    state: str
    entry: Entry | None = None
    """Object: the member being read (its key is known once the state is past KEY)."""
    last_end: int = 0
    """Offset after the last complete member."""
    comma_at: int = -1
    """Offset of the ',' just read (a closer right after it is a trailing comma)."""
    keys: set[str] | None = None
    """Object: the keys read so far (a repeated one is a duplicate)."""


class _Json:
    """The tolerant JSON machine: one pass over the tokens with an explicit stack (no recursion)."""

    def __init__(self, text: str, lines: LineIndex | None = None) -> None:
        self.text = text
        self.lines = lines or LineIndex(text)
        self.issues: list[SyntaxIssue] = []
        self.duplicates: list[SyntaxIssue] = []
        self.stack: list[Frame] = []
        self.root: Node | None = None
        self.started = False  # a token other than a comment was read
        self.checkpoints: list[_Checkpoint] | None = None  # recorded when a later parse may start from them

    def error(self, message: str, start: int, end: int | None = None) -> None:
        self.issues.append(SyntaxIssue(message, self.lines.range(start, start if end is None else end)))

    def string(self, token: str, start: int) -> str:
        """The value of a string token that needs more than dropping its quotes (reported as it is read)."""
        quote = token[0]
        if quote == "'":
            self.error("strings need double quotes", start, start + 1)
        body = token[1:]
        closed = body.endswith(quote) and (len(body) - len(body[:-1].rstrip("\\"))) % 2 == 1
        if not closed:
            self.error("unterminated string", start, start + len(token))
            return body
        if quote == "'":
            token = '"' + token[1:-1].replace('"', '\\"') + '"'
        try:
            return json.loads(token)
        except json.JSONDecodeError as exc:
            self.error(f"invalid string: {exc.msg}", start + exc.pos, start + exc.pos + 1)
            return token[1:-1]

    def scalar(self, kind: int, token: str, start: int, end: int) -> ScalarNode:
        if kind == _STR:
            value: Any = token[1:-1]
        elif kind == _STRING:
            value = self.string(token, start)
        elif kind == _NUMBER:
            value = float(token) if "." in token or "e" in token or "E" in token else int(token)
        elif token in _WORDS:
            value = _WORDS[token]
        else:
            self.error(f"unexpected word '{token}': strings need double quotes", start, end)
            value = token
        return ScalarNode(self.lines.range(start, end), value)

    def skip_junk(self, start: int) -> int:
        """Where skipping a mistake at ``start`` stops: after at least one character, at the next
        delimiter, quote or line end."""
        found = _JUNK_END.search(self.text, start + 1)
        return found.start() if found else len(self.text)

    def push(self, token: str, start: int) -> bool:
        """Open an object or array at ``start``; False when that nests too deep (the whole parse stops)."""
        if len(self.stack) >= limits.MAX_DEPTH:
            self.issues = [SyntaxIssue(limits.depth_problem(), self.lines.range(start, start + 1))]
            self.root = None
            return False
        node: ObjectNode | ArrayNode = ObjectNode(ZERO) if token == "{" else ArrayNode(ZERO)
        node.range = self.lines.range(start, start + 1)  # the end is set when it closes
        self.stack.append(Frame(node, KEY, keys=set()) if token == "{" else Frame(node, VALUE))
        return True

    def close(self, end: int) -> None:
        frame = self.stack.pop()
        frame.node.range = self.lines.range(frame.node.range.start_offset, end)
        if self.stack:
            self.stack[-1].last_end = end

    def run(self, pos: int = 0, stop: int | None = None) -> bool:
        """Read tokens from ``pos`` (up to ``stop``: tokens starting there or later are left). False when
        the text nests too deep."""
        text, stack = self.text, self.stack
        match = _TOKEN.match
        while True:
            found = match(text, pos)
            if found is None:
                break
            kind = found.lastindex
            start, end = found.start(kind), found.end()  # type: ignore[arg-type]
            if stop is not None and start >= stop:
                break
            if kind == _COMMENT:
                self.error("comments are not allowed in JSON", start, end)
                pos = end
                continue
            if not stack:
                if self.started:  # the root value is complete: only comments may follow
                    line_end = text.find("\n", start)
                    self.error("unexpected text after the end of the JSON value", start,
                               len(text) if line_end < 0 else line_end)
                    break
                self.started = True
                if kind == _OPEN:
                    if not self.push(found.group(kind), start):
                        return False
                    self.root = stack[0].node
                elif kind in _VALUES:
                    self.root = self.scalar(kind, found.group(kind), start, end)
                else:
                    self.error("expected a value", start, start + 1)
                    end = self.skip_junk(start)
                pos = end
                continue
            top = stack[-1]
            state = top.state
            comma, top.comma_at = top.comma_at, -1
            is_object = type(top.node) is ObjectNode
            if state == AFTER:
                if kind == _COMMA:
                    top.state = KEY if is_object else VALUE
                    top.comma_at = start
                    pos = end
                    if self.checkpoints is not None and len(stack) <= _CHECKPOINT_DEPTH:
                        self.checkpoint(end)
                    continue
                if kind != _CLOSE:
                    # Python's json reports a missing comma where the next member starts; do the same.
                    self.error(f"expected ',' or '{'}' if is_object else ']'}'", start, start + 1)
                    first = text[start]
                    if not (first in "\"'{[-" or first.isalnum()):
                        top.state = KEY if is_object else VALUE
                        pos = self.skip_junk(start)
                        continue
                top.state = state = KEY if is_object else VALUE  # the token starts the next member
            if kind == _CLOSE and state in (KEY, VALUE) and (state == VALUE) != is_object:  # not a missing value
                token = found.group(kind)
                if token == ("}" if is_object else "]"):
                    if comma >= 0:
                        self.error("trailing comma", comma, comma + 1)
                    self.close(end)
                    pos = self.comma_after(end)
                else:  # mismatched: end this container, let the enclosing one take the closer
                    self.error(f"expected '{'}' if is_object else ']'}' before '{token}'", start, start + 1)
                    self.close(start)
                    pos = start
                continue
            if state == KEY:
                if kind == _COMMA:
                    self.error("unexpected ','", start, start + 1)
                    pos = end
                    continue
                if kind == _STR or kind == _STRING or kind == _WORD:
                    token = found.group(kind)
                    if kind == _STR:
                        key = token[1:-1]
                    elif kind == _STRING:
                        key = self.string(token, start)
                    else:
                        self.error("property names need double quotes", start, end)
                        key = token
                    top.entry = Entry(key, self.lines.range(start, end), None)
                    top.node.entries.append(top.entry)  # type: ignore[union-attr]
                    if key in top.keys:  # type: ignore[operator]
                        self.duplicates.append(_duplicate(top.entry))
                    top.keys.add(key)  # type: ignore[union-attr]
                    if text.startswith(":", end):  # the common case, without a token of its own
                        top.state = VALUE
                        pos = end + 1
                    else:
                        top.state = COLON
                        pos = end
                else:
                    self.error("expected a property name in double quotes", start, start + 1)
                    pos = self.skip_junk(start)
                continue
            if state == COLON:
                if kind == _COLON:
                    top.state = VALUE
                    pos = end
                    continue
                self.error(f"expected ':' after '{top.entry.key}'", start, start + 1)  # type: ignore[union-attr]
                top.state = state = VALUE
            # VALUE: an entry's value or an array's item
            if kind not in _VALUES:
                if is_object and kind in (_COMMA, _CLOSE):
                    self.error(f"expected a value for '{top.entry.key}'", start, start + 1)  # type: ignore[union-attr]
                    top.state = AFTER
                    pos = start
                elif kind == _COMMA:
                    self.error("unexpected ','", start, start + 1)
                    pos = end
                else:
                    self.error("expected a value", start, start + 1)
                    if is_object:
                        top.state = AFTER
                        pos = start
                    else:
                        pos = self.skip_junk(start)
                continue
            top.state = AFTER
            if kind == _OPEN:
                if not self.push(found.group(kind), start):
                    return False
                node: Node = stack[-1].node
            else:
                node = self.scalar(kind, found.group(kind), start, end)
                top.last_end = end
            if is_object:
                top.entry.value = node  # type: ignore[union-attr]
            else:
                top.node.items.append(node)  # type: ignore[union-attr]
            pos = end if kind == _OPEN else self.comma_after(end)
        return True

    def comma_after(self, end: int) -> int:
        """Where to read on after a member that ends at ``end``: past a ',' right there (the common case,
        without a token of its own), which makes the innermost container expect its next member."""
        if not self.text.startswith(",", end) or not self.stack:
            return end
        top = self.stack[-1]
        top.state = KEY if type(top.node) is ObjectNode else VALUE
        top.comma_at = end
        if self.checkpoints is not None and len(self.stack) <= _CHECKPOINT_DEPTH:
            self.checkpoint(end + 1)
        return end + 1

    # -- reading on from an earlier parse of the same text up to some point (the editor's next version)

    def checkpoint(self, pos: int) -> None:
        """Remember the state right after a ',' at ``pos``: a text equal to this one before ``pos`` (plus one
        character, so that no token before it could have grown) can be read on from here."""
        frames = [(f.node, len(f.node.entries) if type(f.node) is ObjectNode else len(f.node.items),  # type: ignore
                   f.state, f.comma_at, f.last_end) for f in self.stack]
        self.checkpoints.append(_Checkpoint(pos, len(self.issues), len(self.duplicates), frames))  # type: ignore

    def resume(self, mark: _Checkpoint, issues: list[SyntaxIssue], duplicates: list[SyntaxIssue]) -> int:
        """Take the state of an earlier parse at ``mark`` (its completed members are shared, its open
        containers copied); returns where to read on."""
        self.issues = issues[:mark.issues]
        self.duplicates = duplicates[:mark.duplicates]
        self.started = True
        child: ObjectNode | ArrayNode | None = None
        for node, count, state, comma_at, last_end in reversed(mark.frames):
            copy: ObjectNode | ArrayNode
            if type(node) is ObjectNode:
                entries = node.entries[:count]
                if child is not None:  # the open container this one holds: the copy made one level down
                    last = entries[-1]
                    entries[-1] = Entry(last.key, last.key_range, child)
                copy = ObjectNode(node.range, entries)
                frame = Frame(copy, state, entries[-1] if entries else None, last_end, comma_at,
                              {entry.key for entry in entries})
            else:
                items = node.items[:count]  # type: ignore[union-attr]
                if child is not None:
                    items[-1] = child
                copy = ArrayNode(node.range, items)
                frame = Frame(copy, state, None, last_end, comma_at)
            self.stack.insert(0, frame)
            child = copy
        self.root = child
        return mark.pos

    def finish(self) -> None:
        """The end of the text: report what is missing and close every open container."""
        text, stack = self.text, self.stack
        end = len(text)
        if not self.started:
            self.error("the file is empty: expected a JSON object", 0)
        if not stack:
            return
        top = stack[-1]
        if top.state == COLON:
            self.error(f"expected ':' after '{top.entry.key}'", end)  # type: ignore[union-attr]
        if top.state in (COLON, VALUE) and type(top.node) is ObjectNode:
            self.error(f"expected a value for '{top.entry.key}'", end)  # type: ignore[union-attr]
        opener = "{" if type(top.node) is ObjectNode else "["
        where = top.node.range.start
        self.error(f"unexpected end of file: '{opener}' opened at line {where.line + 1}, column {where.col + 1} "
                   f"is not closed (expected '{_CLOSERS[opener]}')", end)
        while stack:
            self.close(end)


def parse_json(text: str, reuse: bool = True) -> tuple[Node | None, list[SyntaxIssue]]:
    """Parse JSON tolerantly: the nodes parsed so far, and every syntax problem with its range.

    ``reuse``: read on from a recent parse of a text that starts the same (see ``_Recent``); the result is
    the same either way.
    """
    too_big = limits.text_problem(text)
    if too_big:
        return None, [SyntaxIssue(too_big, ZERO)]
    machine = _Json(text)
    machine.checkpoints = []
    pos = 0
    earlier = _RECENT.best(text) if reuse else None
    if earlier is not None:
        marks, issues, duplicates = earlier
        pos = machine.resume(marks[-1], issues, duplicates)
        machine.checkpoints = marks
    if not machine.run(pos):
        return None, machine.issues  # too deep: refused before any check recurses per level
    issues, duplicates = list(machine.issues), list(machine.duplicates)
    machine.finish()
    _RECENT.add(text, machine.checkpoints, issues, duplicates)
    return machine.root, machine.issues + machine.duplicates


@dataclass(slots=True)
class _Checkpoint:
    pos: int
    issues: int
    duplicates: int
    frames: list[tuple[ObjectNode | ArrayNode, int, str, int, int]]


_CHECKPOINT_DEPTH = 2
"""Checkpoints are taken after the commas of the root and its children: a 1,000-line config has a few hundred."""


class _Recent:
    """The last few JSON parses with their checkpoints, so that the next version of a document (an editor
    sends one per keystroke) is read on from the last checkpoint before its first change: the members
    above the edit are shared with the earlier tree (complete nodes are never changed), the containers open
    there are copied. Lines and offsets before the change are the same in both texts, so are their ranges.
    """

    SIZE = 4
    MAX_CHARS = 2_000_000
    """Texts kept at most, in all (their trees are kept too: about 50 bytes per character)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, list[_Checkpoint], list[SyntaxIssue], list[SyntaxIssue]]] = []
        self.lock = threading.Lock()

    def add(self, text: str, marks: list[_Checkpoint], issues: list[SyntaxIssue],
            duplicates: list[SyntaxIssue]) -> None:
        if len(text) > self.MAX_CHARS:
            return
        with self.lock:
            items = [item for item in self.items if item[0] != text][-(self.SIZE - 1):]
            while items and sum(len(item[0]) for item in items) + len(text) > self.MAX_CHARS:
                items.pop(0)
            self.items = [*items, (text, marks, issues, duplicates)]

    def best(self, text: str) -> tuple[list[_Checkpoint], list[SyntaxIssue], list[SyntaxIssue]] | None:
        """The checkpoints of a recent parse up to the latest one that ``text`` shares everything before (and
        one more character): all valid for ``text`` too; with that parse's issues."""
        with self.lock:
            items = list(self.items)
        found = None
        for old, marks, issues, duplicates in items:
            same = _common_prefix(old, text)
            index = bisect.bisect_right([mark.pos for mark in marks], same - 1) - 1
            if index >= 0 and (found is None or marks[index].pos > found[0][-1].pos):
                found = marks[:index + 1], issues, duplicates
        return found


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix (string comparisons in C, halving the range)."""
    low, high = 0, min(len(a), len(b))
    if a[:high] == b[:high]:
        return high
    while low < high:  # a[:low] == b[:low] and a[:high] != b[:high]
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


_RECENT = _Recent()


def json_frames_at(text: str, offset: int, root: Node | None = None) -> tuple[KeyPath, Frame | None]:
    """The containers open at ``offset`` of (maybe half-typed) JSON, as the parser sees them: the key
    path of the innermost one and its frame (None outside any container).

    ``root``: the text's parse, when it had no syntax errors; the scan then starts at the innermost
    container around ``offset`` instead of the start of the text.
    """
    path: list[str | int] = []
    start = 0
    node: Any = root
    while isinstance(node, (ObjectNode, ArrayNode)) and node.range.start_offset < offset < node.range.end_offset:
        start = node.range.start_offset
        members = [(e.key, e.value) for e in node.entries] if isinstance(node, ObjectNode) else enumerate(node.items)
        child = next(((name, value) for name, value in members if isinstance(value, (ObjectNode, ArrayNode))
                      and value.range.start_offset < offset < value.range.end_offset), None)
        if child is None:
            break
        path.append(child[0])
        node = child[1]
    if root is None or start == 0:
        path, start = [], 0
    machine = _Json(text)
    machine.run(start, offset)
    frames = machine.stack
    for frame in frames[:-1]:
        path.append(frame.entry.key if frame.entry is not None else len(frame.node.items) - 1)  # type: ignore[union-attr]
    return tuple(path), frames[-1] if frames else None


# --------------------------------------------------------------------------------------- YAML

_TAGS: dict[tuple[str, tuple[bool, bool]], str] = {}


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml where PyYAML was built with it (about 10x faster; the pure-Python loader gives the same nodes),
    with the tag of each plain scalar remembered: the safe resolver's regular expressions ran for every
    scalar of every version, though a config repeats the same few hundred words."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)  # type: ignore[no-any-return]
        key = (value, implicit)
        tag = _TAGS.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_TAGS) < 20_000 and len(value) < 200:  # bounded: a hostile file cannot grow it
                _TAGS[key] = tag
        return tag  # type: ignore[return-value]

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass  # path resolvers: the safe loader has none

    def ascend_resolver(self) -> None:
        pass


_LOADER = _Loader
_STR_TAG = "tag:yaml.org,2002:str"


class _TooDeep(Exception):
    pass


class _Yaml:
    """Composed YAML nodes → our nodes, with the safe constructor's scalars and merge keys."""

    def __init__(self, text: str, lines: LineIndex, base: int = 0) -> None:
        """``base``: the offset in ``text`` of the text that was composed (marks count from there)."""
        self.range = lines.range if not base else (lambda start, end: lines.range(start + base, end + base))
        self.constructor = yaml.constructor.SafeConstructor()
        self.builders = self.constructor.yaml_constructors
        self.issues: list[SyntaxIssue] = []
        self.aliases = "*" in text  # without aliases no node is shared: no cycle to watch for
        self.merges = "<<" in text or "=" in text  # flatten_mapping resolves '<<' (and '=') keys
        self._active: set[int] = set()

    def convert(self, node: yaml.Node, depth: int = 1) -> Node | None:
        if depth > limits.MAX_DEPTH:
            raise _TooDeep
        kind = type(node)
        if kind is yaml.ScalarNode:
            return ScalarNode(self.range(node.start_mark.index, node.end_mark.index), self.scalar(node))
        if self.aliases:
            if id(node) in self._active:  # a recursive alias; Olive could not load it either
                self.issues.append(SyntaxIssue("recursive YAML alias",
                                               self.range(node.start_mark.index, node.end_mark.index)))
                return None
            self._active.add(id(node))
        try:
            if kind is yaml.MappingNode:
                return self.mapping(node, depth)
            items = [self.convert(item, depth + 1) for item in node.value]
            return ArrayNode(self.range(node.start_mark.index, node.end_mark.index),
                             [item for item in items if item is not None])
        finally:
            if self.aliases:
                self._active.discard(id(node))

    def mapping(self, node: yaml.MappingNode, depth: int) -> ObjectNode:
        if self.merges:
            try:
                self.constructor.flatten_mapping(node)
            except yaml.YAMLError as exc:
                self.issues.append(SyntaxIssue(str(exc), self.range(node.start_mark.index, node.end_mark.index)))
        make, scalar_node = self.range, yaml.ScalarNode
        entries: list[Entry] = []
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if type(key) is scalar_node and key.tag == _STR_TAG else str(self.scalar(key))
            if type(value) is scalar_node:  # most values: no call per value
                child: Node | None = ScalarNode(make(value.start_mark.index, value.end_mark.index),
                                                value.value if value.tag == _STR_TAG else self.scalar(value))
            else:
                child = self.convert(value, depth + 1)
            entry = Entry(name, make(key.start_mark.index, key.end_mark.index), child)
            entries.append(entry)
            if name in seen:
                self.issues.append(_duplicate(entry))
            seen.add(name)
        return ObjectNode(make(node.start_mark.index, node.end_mark.index), entries)

    def scalar(self, node: yaml.Node) -> Any:
        try:
            if type(node) is yaml.ScalarNode:
                if node.tag == _STR_TAG:
                    return node.value  # what SafeConstructor.construct_yaml_str returns
                build = self.builders.get(node.tag)
                if build is not None:  # the tag is resolved already: skip the constructor's bookkeeping
                    return build(self.constructor, node)
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.issues.append(SyntaxIssue(f"cannot read this YAML value: {exc}",
                                           self.range(node.start_mark.index, node.end_mark.index)))
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


def _compose(text: str) -> Any:
    return yaml.compose(text, Loader=_LOADER)


def parse_yaml(text: str, reuse: bool = True) -> tuple[Node | None, list[SyntaxIssue]]:
    """Parse YAML: nodes with ranges, or a syntax issue at the loader's mark.

    The loader stops at the first error; to still give positions for the keys above it, the text
    up to the line of the error is composed again on its own. ``reuse``: read on from a recent parse of
    a text that starts the same (see ``_RecentYaml``); the result is the same either way.
    """
    too_big = limits.text_problem(text)
    if too_big:
        return None, [SyntaxIssue(too_big, ZERO)]
    lines = LineIndex(text)
    deep = limits.json_depth_offset(text)
    if deep is not None:  # deep flow brackets: refused before the loader recurses through them
        return None, [SyntaxIssue(limits.depth_problem(), lines.range(deep, deep + 1))]
    reused = _read_on_yaml(text, lines) if reuse else None
    if reused is not None:
        return reused
    issues: list[SyntaxIssue] = []
    try:
        try:
            composed = _compose(text)
        except yaml.YAMLError as exc:
            issues.append(yaml_issue(exc, text, lines.range))
            composed = None
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            last = min(mark.line, len(lines.starts) - 1) if mark is not None else 0
            for line in range(last, max(last - 40, 0), -1):
                try:
                    composed = _compose(text[:lines.starts[line]])
                except yaml.YAMLError:
                    continue
                issues[-1] = replace(issues[-1], trusted_until=min(issues[-1].range.start_offset,
                                                                   _value_opened_above(text, lines, line)))
                break
    except RecursionError:  # the pure-Python composer recurses per level
        return None, [SyntaxIssue(limits.depth_problem(), ZERO)]
    if composed is None:
        if not issues:
            issues.append(SyntaxIssue("the file is empty: expected a mapping of config keys", ZERO))
        return None, issues
    converter = _Yaml(text, lines)
    if converter.aliases:
        expanded = limits.yaml_graph_problem(composed)
        if expanded:  # checked before conversion, which copies every alias
            return None, issues + [SyntaxIssue(expanded, ZERO)]
    try:
        root = converter.convert(composed)
    except _TooDeep:
        return None, [SyntaxIssue(limits.depth_problem(), ZERO)]
    if not issues and not converter.issues and isinstance(root, ObjectNode):
        _RECENT_YAML.add(text, root)
    return root, issues + converter.issues


def _value_opened_above(text: str, lines: LineIndex, line: int) -> int:
    """Where the keys whose value the cut before ``line`` removed start: the trailing lines above it that open a
    value (``key:``, ``-``) read as empty there, though the text gives them one."""
    start = lines.starts[line]
    while line > 0:
        line -= 1
        above = text[lines.starts[line]:lines.starts[line + 1]].strip()
        if not above or above.startswith("#"):
            continue
        code = above.split(" #", 1)[0].rstrip()
        if not (code.endswith(":") or code == "-"):
            break
        start = lines.starts[line]
    return start


_PLAIN_YAML = re.compile(r"[&*!%]|<<|^(?:---|\.\.\.)", re.MULTILINE)
"""What can tie a YAML text's parts together (anchors, aliases, tags, directives, merge keys, documents)."""


class _RecentYaml:
    """The last few clean YAML parses whose root is a block mapping. The next version of such a document,
    when nothing ties its parts together, is read on from the top-level key before its first change: the
    entries above are shared, the rest of the text is composed on its own. A top-level key at column 0 ends
    every value above it, and the loader's state there depends on the text before it only."""

    SIZE = 4
    MAX_CHARS = 2_000_000

    def __init__(self) -> None:
        self.items: list[tuple[str, ObjectNode]] = []
        self.lock = threading.Lock()

    def add(self, text: str, root: ObjectNode) -> None:
        if len(text) > self.MAX_CHARS or _PLAIN_YAML.search(text):
            return
        with self.lock:
            items = [item for item in self.items if item[0] != text][-(self.SIZE - 1):]
            while items and sum(len(item[0]) for item in items) + len(text) > self.MAX_CHARS:
                items.pop(0)
            self.items = [*items, (text, root)]

    def best(self, text: str) -> tuple[ObjectNode, int] | None:
        """A recent root and how many of its entries ``text`` shares (all the text before the next one's key
        and that key's first character), the most first."""
        with self.lock:
            items = list(self.items)
        found = None
        for old, root in items:
            same = _common_prefix(old, text)
            starts = [entry.key_range.start_offset for entry in root.entries]
            count = bisect.bisect_right(starts, same - 1) - 1  # entry ``count`` starts before the change
            if count >= 1 and (found is None or count > found[1]):
                found = root, count
        return found


_RECENT_YAML = _RecentYaml()


def _read_on_yaml(text: str, lines: LineIndex) -> tuple[Node | None, list[SyntaxIssue]] | None:
    """The parse of ``text`` read on from a recent version (see ``_RecentYaml``), or None: parse it whole."""
    if _PLAIN_YAML.search(text):
        return None
    found = _RECENT_YAML.best(text)
    if found is None:
        return None
    old, count = found
    start = old.entries[count].key_range.start_offset
    if start == 0 or text[start - 1] != "\n":  # a key at column 0 (not a flow mapping's)
        return None
    try:
        tail = _compose(text[start:])
    except yaml.YAMLError:
        return None  # the whole text gives the error its place and keeps what is above it
    if not isinstance(tail, yaml.MappingNode) or tail.start_mark.index != 0 or tail.flow_style:
        return None
    converter = _Yaml(text, lines, start)
    try:
        rest = converter.convert(tail)
    except _TooDeep:
        return None
    entries = old.entries[:count] + rest.entries  # type: ignore[union-attr]
    root = ObjectNode(lines.range(old.range.start_offset, rest.range.end_offset), entries)  # type: ignore[union-attr]
    above = {entry.key for entry in old.entries[:count]}
    issues = converter.issues + [_duplicate(entry) for entry in rest.entries if entry.key in above]  # type: ignore
    issues.sort(key=lambda issue: issue.range.start_offset)  # document order, as one pass over the text gives
    if not issues:
        _RECENT_YAML.add(text, root)
    return root, issues
