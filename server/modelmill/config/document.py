"""A config document: its text, node tree with positions, plain data and syntax problems."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modelmill.config import limits
from modelmill.config.diagnostics import Diagnostic, KeyPath
from modelmill.config.limits import read_config_text
from modelmill.config.positions import (
    ZERO,
    ArrayNode,
    Entry,
    LineIndex,
    Node,
    ObjectNode,
    Range,
    entry_at,
    parse,
    to_data,
)
from modelmill.errors import ConfigError

Format = Literal["json", "yaml"]


@dataclass
class Document:
    """A parsed config. ``path`` is a file path or any name (an editor URI, "<stdin>")."""

    path: str
    text: str
    format: Format
    root: Node | None
    syntax: list[Diagnostic] = field(default_factory=list)
    trusted_until: int | None = None
    """With syntax errors: the offset before which the tree is what the text says (checks report nothing past it)."""

    _plain: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def data(self) -> Any:
        """Plain data, as json.load / yaml.safe_load would return it (best effort on broken text).

        Built once per document; each call returns a new top-level dict (or a copy of a list or
        scalar) whose ``copy.deepcopy`` is cheap. Treat nested values as read-only, or deep-copy them.
        """
        if self._plain is None:
            self._plain = (_plain_data(self),)
        cached = self._plain[0]
        return CheapCopyDict(cached) if isinstance(cached, dict) else tree_copy(cached)

    @property
    def name(self) -> str:
        return Path(self.path).name if self.path else "<config>"

    @property
    def base_dir(self) -> Path | None:
        """The folder of the file, for relative paths; None for an unsaved buffer."""
        path = Path(self.path)
        return path.parent if path.suffix and path.parent.exists() else None

    def node_at(self, path: KeyPath) -> tuple[Node | None, Entry | None, int]:
        """(node, entry it is the value of, how many path elements matched)."""
        node, entry = self.root, None
        for depth, elem in enumerate(path):
            if isinstance(node, ObjectNode) and isinstance(elem, str) and (found := node.get(elem)):
                entry = found
                if found.value is None:
                    return None, found, depth + 1
                node = found.value
            elif isinstance(node, ArrayNode) and isinstance(elem, int) and 0 <= elem < len(node.items):
                node, entry = node.items[elem], None
            else:
                return node, entry, depth
        return node, entry, len(path)

    def has(self, path: KeyPath) -> bool:
        return self.node_at(path)[2] == len(path)

    def range_of(self, path: KeyPath, key: bool = False) -> Range:
        """Range of the value at ``path`` (or of its key), else of the nearest existing ancestor."""
        node, entry, _ = self.node_at(path)
        if key and entry is not None:
            return entry.key_range
        if node is not None:
            return node.range
        return entry.key_range if entry is not None else ZERO

    def path_at(self, line: int, col: int) -> KeyPath:
        """The key path of the innermost value or key at a position (for hover/completion)."""
        starts = LineIndex(self.text).starts
        offset = starts[min(line, len(starts) - 1)] + col
        return entry_at(self.root, offset)[0]


def _plain_data(doc: Document) -> Any:
    if doc.format == "json" and not any(d.severity == "error" for d in doc.syntax):
        try:  # valid JSON: the C parser gives the same data as the node tree, much faster
            return json.loads(doc.text)
        except (ValueError, RecursionError):
            pass  # a byte-order mark, which the tolerant parser skips
    return to_data(doc.root)


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


def detect_format(text: str, name: str) -> Format:
    suffix = Path(name).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "json"
    return "json" if text.lstrip()[:1] in ("{", "[") else "yaml"


def parse_document(text: str, path_or_name: str | Path = "<config>", format: Format | None = None) -> Document:
    """Parse text (never raises on bad syntax: problems land in ``Document.syntax``)."""
    name = str(path_or_name)
    fmt = format or detect_format(text, name)
    root, issues = parse(text, fmt)
    issues = sorted(issues, key=lambda issue: issue.range.start_offset)
    shown, rest = issues[:limits.MAX_SYNTAX_PROBLEMS], issues[limits.MAX_SYNTAX_PROBLEMS:]
    syntax = [Diagnostic(issue.range, issue.severity, issue.code, issue.message)  # type: ignore[arg-type]
              for issue in shown]
    errors = [issue.range.start_offset if issue.trusted_until is None else issue.trusted_until
              for issue in issues if issue.severity == "error"]
    if rest:
        syntax.append(Diagnostic(
            rest[0].range, "error", "syntax", f"{len(rest)} more syntax problems from here on are not listed",
            "fix the first ones above: one missing bracket, comma or quote often causes all the rest"))
    return Document(name, text, fmt, root, syntax, min(errors) if errors else None)


def load_document(path: str | Path) -> Document:
    """Read (bounded: see ``limits``) and parse a .json/.yaml/.yml file (Olive refuses other suffixes, and so do we)."""
    path = Path(path)
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise ConfigError(f"unsupported config file type '{path.suffix}'", fix="use a .json, .yaml or .yml file",
                          where=str(path))
    return parse_document(read_config_text(path), path)
