"""Document symbols: an outline of the input model, systems, passes (in run order), evaluators,
data configs and the other top-level keys (inside an old ``engine`` block too)."""

from __future__ import annotations

import json
from typing import Any

from lsprotocol import types

from modelmill.config.positions import ArrayNode, Entry, Node, ObjectNode, Range, ScalarNode
from modelmill.lsp.documents import Codec, Snapshot

K = types.SymbolKind
SECTION_KINDS = {"input_model": K.Module, "systems": K.Namespace, "passes": K.Array, "evaluators": K.Namespace,
                 "data_configs": K.Array, "engine": K.Namespace, "search_strategy": K.Struct}


def document_symbols(snap: Snapshot) -> list[types.DocumentSymbol]:
    root = snap.doc.root
    if not isinstance(root, ObjectNode):
        return []
    return [_section(entry, snap.codec) for entry in root.entries]


def _span(entry: Entry) -> Range:
    end = entry.value.range.end if entry.value is not None else entry.key_range.end
    return Range(entry.key_range.start, end)


def _symbol(codec: Codec, name: str, detail: str | None, kind: types.SymbolKind, span: Range, selection: Range,
            children: list[types.DocumentSymbol] | None = None) -> types.DocumentSymbol:
    return types.DocumentSymbol(name=name or "(empty)", detail=detail or None, kind=kind, range=codec.range(span),
                                selection_range=codec.range(selection), children=children or None)


def _scalar(node: Node | None, key: str) -> Any:
    if isinstance(node, ObjectNode):
        entry = node.get(key)
        if entry is not None and isinstance(entry.value, ScalarNode):
            return entry.value.value
    return None


def _section(entry: Entry, codec: Codec) -> types.DocumentSymbol:
    key, value = entry.key, entry.value
    children: list[types.DocumentSymbol] = []
    detail = None
    if key == "input_model" and isinstance(value, ObjectNode):
        config = value.get("config")
        inner = config.value if config is not None else None
        where = _scalar(value, "model_path") or _scalar(inner, "model_path")
        hf_config = inner.get("hf_config") if isinstance(inner, ObjectNode) else None
        where = where or _scalar(hf_config.value if hf_config else None, "model_name")
        detail = " ".join(str(x) for x in (_scalar(value, "type"), where) if x)
    elif key == "passes" and isinstance(value, ObjectNode):
        for position, item in enumerate(value.entries, start=1):
            children.append(_pass(item, position, codec))
        detail = f"{len(value.entries)} pass{'es' if len(value.entries) != 1 else ''}"
    elif key in ("systems", "evaluators") and isinstance(value, ObjectNode):
        for item in value.entries:
            children.append(_named(item, codec, key))
    elif key == "data_configs" and isinstance(value, ArrayNode):
        for item in value.items:
            name = _scalar(item, "name")
            children.append(_symbol(codec, str(name or "data config"), _scalar(item, "type"), K.Object, item.range,
                                    item.range))
    elif key == "engine" and isinstance(value, ObjectNode):
        children = [_section(item, codec) for item in value.entries]
        detail = "old form"
    elif isinstance(value, ScalarNode):
        detail = json.dumps(value.value, default=str)
    kind = SECTION_KINDS.get(key, K.Property)
    return _symbol(codec, key, detail, kind, _span(entry), entry.key_range, children)


def _pass(entry: Entry, position: int, codec: Codec) -> types.DocumentSymbol:
    value = entry.value
    if isinstance(value, ArrayNode):
        alternatives = [_symbol(codec, f"alternative {i + 1}", str(_scalar(item, "type") or ""), K.Function,
                                item.range, item.range) for i, item in enumerate(value.items)]
        return _symbol(codec, entry.key, f"{position}. {len(value.items)} alternatives", K.Function, _span(entry),
                       entry.key_range, alternatives)
    pass_type = _scalar(value, "type")
    return _symbol(codec, entry.key, f"{position}. {pass_type or '?'}", K.Function, _span(entry), entry.key_range)


def _named(entry: Entry, codec: Codec, section: str) -> types.DocumentSymbol:
    value = entry.value
    children = []
    detail = str(_scalar(value, "type") or "")
    if section == "evaluators" and isinstance(value, ObjectNode):
        metrics = value.get("metrics")
        if metrics is not None and isinstance(metrics.value, ArrayNode):
            for item in metrics.value.items:
                name = _scalar(item, "name") or "metric"
                children.append(_symbol(codec, str(name), str(_scalar(item, "type") or ""), K.Field, item.range,
                                        item.range))
            detail = f"{len(metrics.value.items)} metric{'s' if len(metrics.value.items) != 1 else ''}"
    return _symbol(codec, entry.key, detail, K.Object, _span(entry), entry.key_range, children)
