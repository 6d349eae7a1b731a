"""Hover: what a key means (type, default, allowed values), what a pass does, whether an EP is here.

Texts come from the workflow schema (generated from the config models) and the pass registry.
"""

from __future__ import annotations

import json
from typing import Any

from modelmill.config.positions import Node, ObjectNode, ScalarNode, entry_at
from modelmill.lsp.documents import Snapshot
from modelmill.lsp.locate import node_at, shallow
from modelmill.lsp.schema_nav import MISSING, Facet, schema_index

_MAX_VALUES = 20


def hover(snap: Snapshot, line: int, character: int,
          installed_eps: frozenset[str] | None = None) -> dict[str, Any] | None:
    """The hover at (line, client character): a ``Hover`` as LSP's JSON (built without lsprotocol, so that the
    launcher's early session answers the first hover before it loads; the server sends the same), or None."""
    root = snap.doc.root
    if root is None:
        return None
    codec = snap.codec
    offset = codec.offset(line, codec.column(line, character))
    path, entry, node, on_key = entry_at(root, offset)
    if not path:
        return None
    index = schema_index()
    facet = index.facet_at(path, lambda prefix: shallow(node_at(root, prefix)))
    if on_key and entry is not None:
        text = _key_hover(path, facet, node)
        rng = entry.key_range
    elif isinstance(node, ScalarNode):
        text = _value_hover(path, node.value, facet, root, installed_eps)
        rng = node.range
    else:
        return None
    if not text:
        return None
    return {"contents": {"kind": "markdown", "value": text}, "range": codec.range_json(rng)}


# ------------------------------------------------------------------ keys


def _key_hover(path: tuple[Any, ...], facet: Facet, node: Node | None) -> str:
    key = str(path[-1])
    if _is_pass_entry(path) and isinstance(node, ObjectNode):
        pass_type = node.get("type")
        if pass_type is not None and isinstance(pass_type.value, ScalarNode):
            return f"**pass `{key}`**\n\n" + pass_doc(str(pass_type.value.value))
    return describe_facet(key, facet)


def describe_facet(key: str, facet: Facet) -> str:
    lines = [f"**{key}**" + (f" — {facet.title}" if facet.title and facet.title.lower().replace(" ", "_") != key
                              else "")]
    if facet.deprecated:
        lines.append(f"*Deprecated:* {facet.deprecated}")
    if facet.description and facet.description != facet.deprecated:
        lines.append(facet.description)
    facts = []
    label = facet.type_label()
    if label:
        facts.append(f"type: `{label}`")
    if facet.default is not MISSING:
        facts.append(f"default: `{json.dumps(facet.default)}`")
    if facet.minimum is not None or facet.maximum is not None:
        facts.append(f"range: {facet.minimum if facet.minimum is not None else '…'}"
                     f"–{facet.maximum if facet.maximum is not None else '…'}")
    if facts:
        lines.append(" · ".join(facts))
    values = [v for v in facet.values if v != "SEARCHABLE_VALUES"]
    if values:
        shown = values[:_MAX_VALUES]
        allowed = ", ".join(f"`{v}`" for v in shown) + (f", … ({len(values)} in all)" if len(values) > len(shown)
                                                        else "")
        lines.append(f"allowed: {allowed}")
    if facet.searchable is not None:
        lines.append(f"searchable: a list of candidates or `\"SEARCHABLE_VALUES\"` ({facet.searchable}) "
                     "when search_strategy is set")
    return "\n\n".join(lines)


def _is_pass_entry(path: tuple[Any, ...]) -> bool:
    return len(path) in (2, 3) and path[0] == "passes" and (len(path) == 2 or isinstance(path[2], int))


# ------------------------------------------------------------------ values


def _value_hover(path: tuple[Any, ...], value: Any, facet: Facet, root: Node,
                 installed_eps: frozenset[str] | None) -> str:
    key = path[-1]
    if key == "type" and _is_pass_entry(path[:-1]) and isinstance(value, str):
        return pass_doc(value)
    if len(path) >= 2 and path[-2] == "execution_providers" and isinstance(value, str):
        return provider_doc(value, installed_eps)
    if key == "execution_provider" and isinstance(value, str):
        return provider_doc(value, installed_eps)
    if isinstance(key, str) and isinstance(value, str) and (key in ("evaluator", "host", "target")
                                                           or key.endswith("data_config")):
        return _reference_doc(key, value, root)
    doc = facet.value_docs.get(str(value))
    head = f"`{json.dumps(value)}`" + (f": {doc}" if doc else "")
    return head + "\n\n---\n\n" + describe_facet(str(key), facet)


def pass_doc(pass_type: str) -> str:
    """A pass's description, what it takes and makes, and its parameters (from its schema)."""
    from modelmill.config.olive_catalog import find_olive_pass
    from modelmill.passes.registry import find_pass, suggest_pass

    cls = find_pass(pass_type)
    if cls is None:
        olive = find_olive_pass(pass_type)
        if olive is not None:
            return _olive_pass_doc(olive)
        suggestion = suggest_pass(pass_type)
        return f"**{pass_type}**: no such pass" + (f" — did you mean `{suggestion}`?" if suggestion else "")
    lines = [f"**{cls.name}**" + (f" (also: {', '.join(cls.aliases)})" if cls.aliases else ""), cls.description]
    facts = [f"takes: {' / '.join(sorted(cls.accepts))}", f"produces: {cls.produces}"]
    if cls.supported_precisions:
        facts.append(f"precisions: {', '.join(cls.supported_precisions)}")
    if cls.supported_providers:
        facts.append(f"providers: {', '.join(cls.supported_providers)}")
    lines.append(" · ".join(facts))
    lines.append(_params_table(cls.name))
    return "\n\n".join(line for line in lines if line)


def _olive_pass_doc(olive: Any) -> str:
    """A catalogue pass ModelMill does not run: what Olive says about it, and that it runs in Olive only."""
    facts = [f"takes: {' / '.join(olive.accepts)}"]
    for key in ("precisions", "providers", "accelerators"):
        values = [v for v in olive.info.get(key, []) if v != "*"]
        if values:
            facts.append(f"{key}: {', '.join(values)}")
    lines = [f"**{olive.name}** (Olive pass)", olive.description, " · ".join(facts),
             f"ModelMill cannot run it here: it needs {olive.needs()}. Run the workflow with Olive.",
             _params_table(olive.name)]
    return "\n\n".join(line for line in lines if line)


def _params_table(name: str) -> str:
    index = schema_index()
    entry = index.facet([{"$ref": f"#/definitions/pass.{name}"}], {"type": name})
    rows = []
    for key, schemas in entry.properties.items():
        if key in ("type", "host", "evaluator", "config"):
            continue
        sub = index.facet(schemas, MISSING)
        default = json.dumps(sub.default) if sub.default is not MISSING else ""
        text = (sub.description or "").replace("\n", " ")
        if len(text) > 120:
            text = text[:117] + "…"
        rows.append(f"| `{key}` | {_cell(sub.type_label())} | {_cell(default)} | {_cell(text)} |")
    if not rows:
        return ""
    return "| parameter | type | default | |\n|---|---|---|---|\n" + "\n".join(rows)


def _cell(text: str) -> str:
    """A Markdown table cell: a '|' inside (``array | boolean``, a default string) must not end the cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|")


def provider_doc(ep: str, installed_eps: frozenset[str] | None) -> str:
    from modelmill.config.accelerators import DEVICE_EPS, EP_PACKAGES, EXECUTION_PROVIDERS

    if installed_eps is None:
        here = "no: onnxruntime is not installed in the server's Python environment"
    elif ep in installed_eps:
        here = "**yes**, the installed onnxruntime provides it"
    else:
        package = EP_PACKAGES.get(ep)
        here = "**no**" + (f": it comes with `pip install {package}`" if package else "")
    lines = [f"**{ep}**" + ("" if ep in EXECUTION_PROVIDERS else " (not an execution provider ModelMill knows)"),
             f"Available here: {here}."]
    devices = [device for device, eps in DEVICE_EPS.items() if ep in eps]
    if devices:
        lines.append(f"Runs on: {', '.join(devices)}.")
    if installed_eps:
        lines.append(f"Installed: {', '.join(sorted(installed_eps))}.")
    return "\n\n".join(lines)


def _reference_doc(key: str, value: str, root: Node) -> str:
    section = "data_configs" if key.endswith("data_config") else ("evaluators" if key == "evaluator" else "systems")
    target = node_at(root, (section,))
    found: Any = MISSING
    if section == "data_configs" and target is not MISSING:
        for item in getattr(target, "items", []):
            name = item.get("name") if isinstance(item, ObjectNode) else None
            if name is not None and isinstance(name.value, ScalarNode) and name.value.value == value:
                found = item
    elif isinstance(target, ObjectNode):
        entry = target.get(value)
        found = entry.value if entry is not None and entry.value is not None else MISSING
    if found is MISSING:
        return f"`{value}`: not defined in `{section}`"
    summary = json.dumps(shallow(found), default=str)
    if len(summary) > 300:
        summary = summary[:297] + "…"
    return f"`{value}`: defined in `{section}`\n\n```json\n{summary}\n```"
