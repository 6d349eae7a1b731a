"""One open document at one version: its parse, diagnostics and position conversion, computed once.

``Snapshot`` is what every feature reads. It is cached per URI + version by ``SnapshotCache``,
so a completion request right after a change reuses the parse that diagnostics made.
Positions in ``modelmill.config`` are code points; LSP positions are UTF-16 code units unless
the client negotiated another encoding: ``Codec`` converts both ways (ASCII lines, the common
case, need no work).
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from modelmill.config.document import Document, parse_document
from modelmill.config.positions import ObjectNode, Range
from modelmill.lsp.settings import Settings, looks_like_workflow, matches_patterns

if TYPE_CHECKING:  # lsprotocol is imported on first use: the first diagnostics are sent before it loads (early.py)
    from lsprotocol import types

JSON_LANGUAGES = ("json", "jsonc")
_JSON_HINT = re.compile(r"[\"']?(?:input_model|passes|engine)[\"']?\s*:")
_YAML_HINT = re.compile(r"^[\"']?(?:input_model|passes|engine)[\"']?\s*:", re.M)
YAML_LANGUAGES = ("yaml",)


@functools.lru_cache(maxsize=8192)
def _position(line: int, character: int) -> types.Position:
    """Positions are immutable in practice (nobody edits a sent range), so equal ones are shared."""
    from lsprotocol import types

    return types.Position(line=line, character=character)


class Codec:
    """(line, code-point column) ⇄ client positions, for one text."""

    def __init__(self, text: str, encoding: str = "utf-16") -> None:
        self.lines = text.split("\n")
        self.encoding = encoding

    def _units(self, line_text: str, col: int) -> int:
        if self.encoding == "utf-32" or line_text.isascii():
            return col
        head = line_text[:col]
        if self.encoding == "utf-8":
            return len(head.encode("utf-8"))
        return col + sum(1 for char in head if ord(char) > 0xFFFF)

    def units(self, line: int, col: int) -> tuple[int, int]:
        """(line, code-point column) → (line, character) in the client's units, clamped to the text."""
        if line >= len(self.lines):
            line, col = len(self.lines) - 1, len(self.lines[-1])
        line_text = self.lines[line]
        col = min(max(col, 0), len(line_text))
        return line, self._units(line_text, col)

    def position(self, line: int, col: int) -> types.Position:
        return _position(*self.units(line, col))

    def range(self, rng: Range) -> types.Range:
        from lsprotocol import types

        return types.Range(start=self.position(rng.start.line, rng.start.col),
                           end=self.position(rng.end.line, rng.end.col))

    def range_json(self, rng: Range) -> dict[str, dict[str, int]]:
        """``range`` as LSP's JSON (what ``range`` serializes to), without lsprotocol."""
        (start_line, start), (end_line, end) = self.units(rng.start.line, rng.start.col), \
            self.units(rng.end.line, rng.end.col)
        return {"start": {"line": start_line, "character": start}, "end": {"line": end_line, "character": end}}

    def span_json(self, line: int, start: int, end: int) -> dict[str, dict[str, int]]:
        """The range from code-point column ``start`` to ``end`` on ``line``, as LSP's JSON."""
        (start_line, first), (end_line, last) = self.units(line, start), self.units(line, end)
        return {"start": {"line": start_line, "character": first}, "end": {"line": end_line, "character": last}}

    def column(self, line: int, character: int) -> int:
        """Client units → code points on ``line``."""
        if line >= len(self.lines) or line < 0:
            return character
        line_text = self.lines[line]
        if self.encoding == "utf-32" or line_text.isascii():
            return min(character, len(line_text))
        units = 0
        for index, char in enumerate(line_text):
            if units >= character:
                return index
            units += len(char.encode("utf-8")) if self.encoding == "utf-8" else (2 if ord(char) > 0xFFFF else 1)
        return len(line_text)

    def offset(self, line: int, col: int) -> int:
        """Code-point offset of (line, code-point column)."""
        line = min(line, len(self.lines) - 1)
        return sum(len(text) + 1 for text in self.lines[:line]) + min(col, len(self.lines[line]))

    def end(self) -> types.Position:
        return self.position(len(self.lines) - 1, len(self.lines[-1]))


def uri_to_path(uri: str) -> str | None:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    path = unquote(parsed.path)
    if len(path) > 2 and path[0] == "/" and path[2] == ":":  # /C:/... on Windows
        path = path[1:]
    return path


def format_of(uri: str, language_id: str | None = None) -> str | None:
    """"json", "yaml", or None for documents the server leaves alone."""
    lowered = uri.lower().split("?")[0]
    if lowered.endswith((".yaml", ".yml")):
        return "yaml"
    if lowered.endswith((".json", ".jsonc")):
        return "json"
    if language_id in JSON_LANGUAGES:
        return "json"
    if language_id in YAML_LANGUAGES:
        return "yaml"
    return None


@dataclass
class Snapshot:
    uri: str
    version: int | None
    text: str
    fmt: str
    encoding: str = "utf-16"
    _doc: Document | None = field(default=None, repr=False)
    _codec: Codec | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    """Results computed from this version (diagnostics, ...), by feature name."""

    @property
    def path(self) -> str | None:
        return uri_to_path(self.uri)

    @property
    def name(self) -> str:
        return self.path or self.uri

    @property
    def base_dir(self) -> Path | None:
        path = self.path
        return Path(path).parent if path else None

    @property
    def doc(self) -> Document:
        if self._doc is None:
            with self._lock:
                if self._doc is None:
                    self._doc = parse_document(self.text, self.name, self.fmt)  # type: ignore[arg-type]
        return self._doc

    @property
    def codec(self) -> Codec:
        if self._codec is None:
            self._codec = Codec(self.text, self.encoding)
        return self._codec

    def top_keys(self) -> list[str]:
        root = self.doc.root
        return [entry.key for entry in root.entries] if isinstance(root, ObjectNode) else []

    def is_workflow(self, settings: Settings) -> bool:
        if matches_patterns(self.path or self.uri, settings.config_file_patterns):
            return True
        # a cheap look at the text first, so that other (maybe huge) JSON/YAML files are never parsed
        hint = _JSON_HINT if self.fmt == "json" else _YAML_HINT
        return bool(hint.search(self.text)) and looks_like_workflow(self.top_keys())


class SnapshotCache:
    """The latest snapshot per URI (older versions are dropped)."""

    def __init__(self) -> None:
        self._items: dict[str, Snapshot] = {}
        self.workflow_uris: set[str] = set()
        """URIs once seen as workflow configs: they stay so while open, even when emptied."""

    def get(self, uri: str, version: int | None, text: str, fmt: str, encoding: str) -> Snapshot:
        found = self._items.get(uri)
        if (found is not None and found.version == version and found.fmt == fmt and found.encoding == encoding
                and (found.text is text or found.text == text)):
            return found
        snapshot = Snapshot(uri, version, text, fmt, encoding)
        self._items[uri] = snapshot
        return snapshot

    def adopt(self, snapshot: Snapshot) -> None:
        """Take a snapshot made before the server loaded (early.py) as the latest of its URI."""
        self._items[snapshot.uri] = snapshot

    def drop(self, uri: str) -> None:
        self._items.pop(uri, None)
        self.workflow_uris.discard(uri)
