"""Code actions from the diagnostics' quick-fix payloads.

- ``replace_with``: did-you-mean (a key, a pass type, an enum value, a reference) → put it in place.
- ``remove``: delete the entry (an unknown key, a redundant pass, an ignored search option).
- ``migrate``: rewrite the whole document in the flat form (``modelmill.config.migrate_document``).
- ``missing-required``: add the key with a placeholder value from the schema (one action per key,
  and one for all of them when an object misses several).
"""

from __future__ import annotations

import json
import re
from typing import Any

from lsprotocol import types

from modelmill.config import Diagnostic, migrate_document
from modelmill.config.diagnostics import KeyPath
from modelmill.config.positions import ArrayNode, Entry, Node, ObjectNode, Range
from modelmill.lsp.diagnostics import to_lsp
from modelmill.lsp.documents import Snapshot
from modelmill.lsp.locate import node_at, shallow
from modelmill.lsp.schema_nav import MISSING, schema_index
from modelmill.lsp.settings import Settings

MIGRATE_TITLE = "Migrate the whole config to the flat form (modelmill migrate)"
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")


def code_actions(snap: Snapshot, found: list[Diagnostic], start: tuple[int, int], end: tuple[int, int],
                 settings: Settings, only: list[str] | None = None) -> list[types.CodeAction]:
    """Actions for the findings that touch the range (code-point (line, col) pairs)."""
    if only and not any(kind.startswith(("quickfix", "source")) or kind == "" for kind in only):
        return []
    actions: list[types.CodeAction] = []
    touching = [d for d in found if _overlaps(d.range, start, end)]
    missing: dict[KeyPath, list[Diagnostic]] = {}
    for diag in touching:
        lsp_diag = to_lsp([diag], snap, settings)[0]
        action = None
        if "replace_with" in diag.data:
            action = _replace(snap, diag, lsp_diag)
        elif diag.data.get("remove"):
            action = _remove(snap, diag, lsp_diag)
        elif diag.code == "missing-required" and diag.path:
            missing.setdefault(diag.path[:-1], []).append(diag)
            action = _add_missing(snap, diag.path[:-1], [diag], settings)
        if action is not None:
            actions.append(action)
    for parent, diags in missing.items():
        if len(diags) > 1:
            action = _add_missing(snap, parent, diags, settings)
            if action is not None:
                action.title = f"Add all missing keys ({', '.join(str(d.path[-1]) for d in diags)})"
                actions.append(action)
    old = [d for d in found if d.data.get("migrate")]
    if old and (not only or any(kind.startswith(("quickfix", "source")) for kind in only)):
        action = _migrate(snap, old, settings)
        if action is not None:
            actions.append(action)
    return actions


def _overlaps(rng: Range, start: tuple[int, int], end: tuple[int, int]) -> bool:
    return (rng.start.line, rng.start.col) <= end and start <= (rng.end.line, rng.end.col)


def _edit(snap: Snapshot, edits: list[types.TextEdit]) -> types.WorkspaceEdit:
    return types.WorkspaceEdit(changes={snap.uri: edits})


# ------------------------------------------------------------------ did-you-mean


def _replace(snap: Snapshot, diag: Diagnostic, lsp_diag: types.Diagnostic) -> types.CodeAction | None:
    value = diag.data["replace_with"]
    _, entry = _entry_at(snap.doc.root, diag.path)
    on_key = entry is not None and entry.key_range == diag.range
    if on_key:
        text = json.dumps(str(value)) if snap.fmt == "json" or _quoted(snap, diag.range) else _yaml_key(str(value))
    else:
        text = json.dumps(value) if snap.fmt == "json" or _quoted(snap, diag.range) else _yaml_value(value)
    return types.CodeAction(
        title=f"Change to '{value}'", kind=types.CodeActionKind.QuickFix, diagnostics=[lsp_diag], is_preferred=True,
        edit=_edit(snap, [types.TextEdit(range=snap.codec.range(diag.range), new_text=text)]))


def _quoted(snap: Snapshot, rng: Range) -> bool:
    return snap.text[rng.start.offset:rng.start.offset + 1] in ("'", '"')


def _yaml_key(key: str) -> str:
    return key if _PLAIN.fullmatch(key) else json.dumps(key)


def _yaml_value(value: Any) -> str:
    if isinstance(value, str) and _PLAIN.fullmatch(value) and value.lower() not in (
            "true", "false", "null", "yes", "no", "on", "off", "y", "n"):
        return value
    return json.dumps(value)


# ------------------------------------------------------------------ remove


def _entry_at(root: Node | None, path: KeyPath) -> tuple[Node | None, Entry | None]:
    """(container, entry) for a key path ending in a key; (container, None) for an array item."""
    if not path:
        return None, None
    parent = node_at(root, path[:-1])
    if isinstance(parent, ObjectNode) and isinstance(path[-1], str):
        return parent, parent.get(path[-1])
    if isinstance(parent, ArrayNode):
        return parent, None
    return None, None


def _remove(snap: Snapshot, diag: Diagnostic, lsp_diag: types.Diagnostic) -> types.CodeAction | None:
    span = removal_span(snap, diag.path)
    if span is None:
        return None
    start, end = span
    what = f"pass '{diag.path[1]}'" if diag.code == "redundant-pass" and len(diag.path) >= 2 else \
        f"'{diag.path[-1]}'"
    return types.CodeAction(
        title=f"Remove {what}", kind=types.CodeActionKind.QuickFix, diagnostics=[lsp_diag],
        is_preferred=diag.code != "redundant-pass",
        edit=_edit(snap, [types.TextEdit(range=_offsets_range(snap, start, end), new_text="")]))


def removal_span(snap: Snapshot, path: KeyPath) -> tuple[int, int] | None:
    """Offsets of the text to delete to remove the member at ``path`` (its comma included)."""
    container, entry = _entry_at(snap.doc.root, path)
    if container is None:
        return None
    if isinstance(container, ObjectNode):
        if entry is None:
            return None
        members = [(e.key_range.start.offset, (e.value.range.end.offset if e.value is not None
                                                 else e.key_range.end.offset)) for e in container.entries]
        position = next(i for i, e in enumerate(container.entries) if e is entry)
    else:
        items = container.items  # type: ignore[union-attr]
        index = path[-1]
        if not isinstance(index, int) or not 0 <= index < len(items):
            return None
        members = [(item.range.start.offset, item.range.end.offset) for item in items]
        position = index
    start, end = members[position]
    if snap.fmt == "yaml":
        return _yaml_lines(snap.text, start, end)
    if position + 1 < len(members):
        return start, members[position + 1][0]
    if position > 0:
        return members[position - 1][1], end
    return start, end


def _yaml_lines(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Whole lines from the member's line to the end of its value (block style only)."""
    line_start = text.rfind("\n", 0, start) + 1
    head = text[line_start:start]
    if head.strip() not in ("", "-"):
        return None  # a flow mapping or a member after other text on its line
    if head.strip() == "-":
        return None  # the first key of a list item: removing the line would end the item
    return line_start, _line_after(text, end)


def _line_after(text: str, end: int) -> int:
    """Where the line after a YAML value starts (a block value ends where the next token starts)."""
    end_line_start = text.rfind("\n", 0, end) + 1
    if end_line_start and not text[end_line_start:end].strip():
        return end_line_start
    newline = text.find("\n", end)
    return len(text) if newline < 0 else newline + 1


def _offsets_range(snap: Snapshot, start: int, end: int) -> types.Range:
    def position(offset: int) -> types.Position:
        line = snap.text.count("\n", 0, offset)
        col = offset - (snap.text.rfind("\n", 0, offset) + 1)
        return snap.codec.position(line, col)

    return types.Range(start=position(start), end=position(end))


# ------------------------------------------------------------------ missing keys


def _placeholder(snap: Snapshot, parent: KeyPath, key: str) -> Any:
    root = snap.doc.root
    index = schema_index()
    facet = index.facet_at(parent + (key,), lambda prefix: shallow(node_at(root, prefix)))
    values = [v for v in facet.values if v != "SEARCHABLE_VALUES"]
    if values:
        return values[0]
    if facet.default is not MISSING and facet.default is not None:
        return facet.default
    for kind, value in (("string", ""), ("object", {}), ("array", []), ("integer", 0), ("number", 0),
                        ("boolean", False)):
        if kind in facet.types:
            return value
    return ""


def _add_missing(snap: Snapshot, parent: KeyPath, diags: list[Diagnostic],
                 settings: Settings) -> types.CodeAction | None:
    node = node_at(snap.doc.root, parent)
    if not isinstance(node, ObjectNode):
        return None
    keys = [str(d.path[-1]) for d in diags]
    pairs = [(key, _placeholder(snap, parent, key)) for key in keys]
    edit = _insert_keys(snap, node, pairs)
    if edit is None:
        return None
    return types.CodeAction(
        title=f"Add missing key '{keys[0]}'", kind=types.CodeActionKind.QuickFix,
        diagnostics=to_lsp(diags, snap, settings), edit=_edit(snap, [edit]))


def _insert_keys(snap: Snapshot, node: ObjectNode, pairs: list[tuple[str, Any]]) -> types.TextEdit | None:
    text = snap.text
    if snap.fmt == "json":
        if node.entries:
            last = node.entries[-1]
            after = last.value.range.end.offset if last.value is not None else last.key_range.end.offset
            own_line = text[text.rfind("\n", 0, last.key_range.start.offset) + 1:
                            last.key_range.start.offset].strip() in ("", "{", ",")
            if own_line and "\n" in text[node.range.start.offset:node.range.end.offset]:
                indent = " " * last.key_range.start.col
                new = "".join(f",\n{indent}{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs)
            else:
                new = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in pairs)
            return types.TextEdit(range=_offsets_range(snap, after, after), new_text=new)
        inside = node.range.start.offset + 1
        new = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs)
        return types.TextEdit(range=_offsets_range(snap, inside, inside), new_text=new)
    if not node.entries or text[node.range.start.offset:node.range.start.offset + 1] == "{":
        return None
    column = node.entries[0].key_range.start.col
    last = node.entries[-1]
    end = last.value.range.end.offset if last.value is not None else last.key_range.end.offset
    at = _line_after(text, end)
    prefix = "\n" if at == len(text) and not text.endswith("\n") else ""
    lines = "".join(f"{' ' * column}{_yaml_key(k)}: {_yaml_value(v) if not isinstance(v, (dict, list)) else json.dumps(v)}\n"
                    for k, v in pairs)
    return types.TextEdit(range=_offsets_range(snap, at, at), new_text=prefix + lines)


# ------------------------------------------------------------------ migrate


def _migrate(snap: Snapshot, old: list[Diagnostic], settings: Settings) -> types.CodeAction | None:
    from modelmill.errors import ConfigError

    try:
        new_text = migrate_document(snap.doc)
    except (ConfigError, ValueError, TypeError):
        return None
    whole = types.Range(start=types.Position(line=0, character=0), end=snap.codec.end())
    return types.CodeAction(
        title=MIGRATE_TITLE, kind=types.CodeActionKind.QuickFix, diagnostics=to_lsp(old[:20], snap, settings),
        is_preferred=False, edit=_edit(snap, [types.TextEdit(range=whole, new_text=new_text)]))
