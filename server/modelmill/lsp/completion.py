"""Completion: keys at any depth, allowed values, names defined in the document, and file paths.

Everything offered comes from the workflow JSON Schema (``schema_nav``), which is generated from
the config models and the pass registry, plus the config layer's own lists (execution providers,
the metric catalog, the samples): nothing here lists keys or values by hand. Required keys come
first, and a key's snippet fills in the required keys of its value.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmill.lsp.documents import Snapshot
from modelmill.lsp.locate import Location, locate, node_at
from modelmill.lsp.schema_nav import MISSING, Facet, SchemaIndex, schema_index
from modelmill.config.positions import ArrayNode, ObjectNode, ScalarNode

TRIGGER_CHARACTERS = ['"', ":", " ", "/"]
TRIGGER_SUGGEST = "editor.action.triggerSuggest"
REFERENCES = {"evaluator": "evaluators", "host": "systems", "target": "systems"}
"""Keys whose value names an entry of another section (as ``modelmill.config.checks`` resolves them)."""
PATH_KEYS = ("model_path", "model_name", "adapter_path", "test_model_path", "user_script", "script_dir",
             "model_script")
_CHOICE_LIMIT = 16
_MAX_FILES = 200

# Results are LSP's JSON as sent (CompletionList, CompletionItem, TextEdit, ...), built without lsprotocol: the
# launcher's early session answers the first completion with ``complete`` before pygls and lsprotocol have loaded
# (early.py), and the server returns the same JSON. tests/lsp check these numbers against lsprotocol's enums.
Item = dict[str, Any]
"""A ``CompletionItem`` as JSON."""
KIND_MODULE, KIND_PROPERTY, KIND_VALUE, KIND_SNIPPET = 9, 10, 12, 15
KIND_FILE, KIND_REFERENCE, KIND_FOLDER, KIND_ENUM_MEMBER = 17, 18, 19, 20
"""``CompletionItemKind`` values."""
PLAIN_TEXT, SNIPPET = 1, 2
"""``InsertTextFormat`` values."""
ADJUST_INDENTATION = 2
"""``InsertTextMode.AdjustIndentation``."""


@dataclass
class CompletionEnv:
    installed_eps: frozenset[str] | None = None
    snippets: bool = True
    retrigger: str | None = None
    """The client's command that opens the suggestion list again (``editor.action.triggerSuggest`` in VS Code),
    attached after inserting a key whose value has choices; None: the client named none, attach nothing."""


def client_env(init_params: Any, installed_eps: frozenset[str] | None) -> CompletionEnv:
    """What completion offers this client, from its ``initialize`` params as JSON (the early session and the
    server both call this): snippets only when it declares ``snippetSupport``; the retrigger command the extension
    passes in ``initializationOptions.triggerSuggestCommand``, or ``editor.action.triggerSuggest`` when the client
    lists it in ``experimental.commands.commands`` (rust-analyzer's convention). Never guessed from its name."""
    params = init_params if isinstance(init_params, dict) else {}
    capabilities = _dict(params.get("capabilities"))
    item = _dict(_dict(_dict(capabilities.get("textDocument")).get("completion")).get("completionItem"))
    named = _dict(params.get("initializationOptions")).get("triggerSuggestCommand")
    listed = _dict(_dict(capabilities.get("experimental")).get("commands")).get("commands")
    if isinstance(named, str) and named:
        retrigger: str | None = named
    elif isinstance(listed, list) and TRIGGER_SUGGEST in listed:
        retrigger = TRIGGER_SUGGEST
    else:
        retrigger = None
    return CompletionEnv(installed_eps, snippets=item.get("snippetSupport") is True, retrigger=retrigger)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def complete(snap: Snapshot, line: int, character: int, env: CompletionEnv | None = None,
             trigger: str | None = None) -> dict[str, Any]:
    """Completions at (line, client character), a ``CompletionList`` as JSON. ``trigger``: the trigger character
    that asked, if any."""
    env = env or CompletionEnv()
    col = snap.codec.column(line, character)
    if trigger == " " and not _after_separator(snap, line, col):
        return {"isIncomplete": False, "items": []}  # a space inside text: not a question
    doc = snap.doc
    clean = not any(issue.severity == "error" for issue in doc.syntax)
    loc = locate(snap.text, snap.fmt, line, col, doc.root if snap.fmt == "json" else None, clean)
    index = schema_index()
    items: list[Item] = []
    if loc.kind == "key":
        items = _key_items(snap, loc, index, env)
        if loc.also_value:
            items += _value_items(snap, loc, index, env)
    elif loc.kind == "value":
        if trigger == "/" and loc.key not in PATH_KEYS:
            return {"isIncomplete": False, "items": []}
        items = _value_items(snap, loc, index, env)
    items = sorted(_unique(items), key=lambda item: item.get("sortText") or "")
    return {"isIncomplete": False, "items": items}


def _after_separator(snap: Snapshot, line: int, col: int) -> bool:
    """Is the text before the cursor ``key: `` (JSON or YAML) or a YAML ``- ``?"""
    lines = snap.codec.lines
    before = lines[line][:col].rstrip() if line < len(lines) else ""
    return before.endswith((":", "-", "[", ","))


def _unique(items: list[Item]) -> list[Item]:
    seen: set[str] = set()
    result = []
    for item in items:
        if item["label"] not in seen:
            seen.add(item["label"])
            result.append(item)
    return result


def _item(**fields: Any) -> Item:
    """A ``CompletionItem``: the fields given (LSP's camelCase names), absent ones (None) left out as lsprotocol's
    converter leaves them out."""
    return {key: value for key, value in fields.items() if value is not None}


def _edit(edit_range: dict[str, Any], text: str) -> dict[str, Any]:
    return {"range": edit_range, "newText": text}


# ------------------------------------------------------------------ keys


def _key_items(snap: Snapshot, loc: Location, index: SchemaIndex, env: CompletionEnv) -> list[Item]:
    facet = index.facet_at(loc.path, loc.value_at)
    edit_range = snap.codec.span_json(loc.line, loc.start, loc.end)
    extra = _comma_before(snap, loc)
    items = []
    position = 0
    for key, schemas in facet.properties.items():
        if key in loc.existing:
            continue
        sub = index.facet(schemas, MISSING)
        if sub.deprecated:
            continue  # old forms ('engine', 'config' blocks) are not offered
        required = key in facet.required
        text = _key_text(loc, key, sub, index, env.snippets)
        position += 1
        items.append(_item(
            label=key, kind=KIND_PROPERTY,
            detail=f"{sub.type_label() or 'value'}{' (required)' if required else ''}",
            documentation=_markdown(_key_doc(key, sub, required)),
            sortText=f"{0 if required else 1}{position:04d}",
            filterText=_filter(loc, key),
            insertTextFormat=SNIPPET if env.snippets else PLAIN_TEXT,
            insertTextMode=ADJUST_INDENTATION,
            textEdit=_edit(edit_range, text),
            additionalTextEdits=extra,
            command=_retrigger(env, sub) if not loc.has_value else None))
    if not facet.properties and facet.additional and not loc.has_value:
        items += _new_entry_items(snap, loc, index, facet, env, edit_range, extra)
    return items


def _new_entry_items(snap: Snapshot, loc: Location, index: SchemaIndex, facet: Facet, env: CompletionEnv,
                     edit_range: dict[str, Any], extra: list[dict[str, Any]] | None) -> list[Item]:
    """Entries of a map of named things: one snippet per pass type under 'passes', else a generic one."""
    sub = index.facet(facet.additional, {})
    type_facet = index.facet(sub.properties.get("type", []), MISSING)
    items = []
    section = str(loc.path[-1]) if loc.path else "entry"
    if "type" in sub.required and type_facet.values and loc.path == ("passes",):
        for position, value in enumerate(type_facet.values):
            entry = index.facet(facet.additional, {"type": value})
            name = _snake(str(value))
            body = _object_snippet(loc, entry, index, env.snippets, _Counter(1), fixed={"type": value})
            text = f"{_key_literal(loc, '${1:' + name + '}' if env.snippets else name)}{_sep(loc)}{body}"
            items.append(_item(
                label=f"{name} ({value})", kind=KIND_MODULE, detail=f"new {value} pass",
                documentation=_markdown(type_facet.value_docs.get(str(value), "")),
                sortText=f"2{position:04d}", filterText=_filter(loc, name),
                insertTextFormat=SNIPPET if env.snippets else None,
                insertTextMode=ADJUST_INDENTATION,
                textEdit=_edit(edit_range, text + _trailing(loc)),
                additionalTextEdits=extra))
        return items
    name = {"systems": "local_system", "evaluators": "common_evaluator"}.get(section, "name")
    body = _value_snippet(loc, sub, index, env.snippets, _Counter(2))
    key = "${1:" + name + "}" if env.snippets else name
    items.append(_item(
        label=f"new {section} entry", kind=KIND_MODULE, detail=sub.title or "entry",
        documentation=_markdown(sub.description or f"A new named entry under `{section}`."), sortText="2",
        filterText=_filter(loc, name),
        insertTextFormat=SNIPPET if env.snippets else None,
        insertTextMode=ADJUST_INDENTATION,
        textEdit=_edit(edit_range, f"{_key_literal(loc, key)}{_sep(loc)}{body}" + _trailing(loc)),
        additionalTextEdits=extra))
    return items


def _key_text(loc: Location, key: str, sub: Facet, index: SchemaIndex, snippets: bool) -> str:
    literal = _key_literal(loc, _escape(key) if snippets else key)
    if loc.has_value:
        return literal
    return f"{literal}{_sep(loc)}{_value_snippet(loc, sub, index, snippets, _Counter(1))}{_trailing(loc)}"


def _key_literal(loc: Location, key: str) -> str:
    if loc.fmt == "json" or loc.quote:
        quote = loc.quote or '"'
        return f"{quote}{key}{quote}"
    return key


def _sep(loc: Location) -> str:
    return ": " if loc.fmt == "json" else ":"


def _trailing(loc: Location) -> str:
    return "," if loc.fmt == "json" and loc.needs_comma else ""


def _comma_before(snap: Snapshot, loc: Location) -> list[dict[str, Any]] | None:
    if loc.fmt != "json" or loc.comma_before is None:
        return None
    before = snap.text[:loc.comma_before]
    line = before.count("\n")
    col = loc.comma_before - (before.rfind("\n") + 1)
    return [_edit(snap.codec.span_json(line, col, col), ",")]


class _Counter:
    def __init__(self, start: int) -> None:
        self.value = start - 1

    def next(self) -> int:
        self.value += 1
        return self.value


def _value_snippet(loc: Location, facet: Facet, index: SchemaIndex, snippets: bool, counter: _Counter,
                   depth: int = 0) -> str:
    """The value part of a key snippet (JSON ``: ...`` / YAML ``:...``), filling required keys."""
    yaml = loc.fmt == "yaml"
    if facet.is_object() and not facet.values and "string" not in facet.types:
        return _object_snippet(loc, facet, index, snippets, counter, depth=depth)
    if facet.is_array() and not facet.values and "string" not in facet.types:
        stop = f"${counter.next()}" if snippets else ""
        return f"\n{_indent(loc, depth + 1)}- {stop}" if yaml else f"[{stop}]"
    scalar = _scalar_snippet(facet, snippets, counter, json_quotes=not yaml)
    return (" " if yaml else "") + scalar


def _object_snippet(loc: Location, facet: Facet, index: SchemaIndex, snippets: bool, counter: _Counter,
                    depth: int = 0, fixed: dict[str, Any] | None = None) -> str:
    yaml = loc.fmt == "yaml"
    fixed = fixed or {}
    parts = []
    for key in facet.required:
        if key in fixed:
            value = fixed[key]
            parts.append((key, " " + _yaml_scalar(value) if yaml else json.dumps(value)))
            continue
        sub = index.facet(facet.properties.get(key, []), MISSING)
        if depth < 2:
            parts.append((key, _value_snippet(loc, sub, index, snippets, counter, depth + 1)))
        else:
            parts.append((key, (" " if yaml else "") + (f"${counter.next()}" if snippets else "")))
    inner = _indent(loc, depth + 1)
    if yaml:
        if not parts:
            return f"\n{inner}" + (f"${counter.next()}" if snippets else "")
        return "".join(f"\n{inner}{key}:{value}" for key, value in parts)
    if not parts:
        return "{" + (f"${counter.next()}" if snippets else "") + "}"
    body = ",\n".join(f'{inner}"{key}": {value}' for key, value in parts)
    return "{\n" + body + "\n" + _indent(loc, depth) + "}"


def _indent(loc: Location, depth: int) -> str:
    """Indentation relative to the line the snippet starts on (the client adds that line's own)."""
    if loc.fmt == "json":
        return "\t" * depth
    return "  " * depth + " " * max(loc.indent - _line_indent(loc), 0)


def _line_indent(loc: Location) -> int:
    return loc.line_indent


def _scalar_snippet(facet: Facet, snippets: bool, counter: _Counter, json_quotes: bool) -> str:
    values = [v for v in facet.values if v != "SEARCHABLE_VALUES"]
    quote = '"' if json_quotes else ""
    if not snippets:
        if values:
            return _literal(values[0], json_quotes)
        return f"{quote}{quote}"
    number = counter.next()
    if values and all(isinstance(v, str) for v in values) and len(values) <= _CHOICE_LIMIT:
        return f"{quote}${{{number}|{','.join(_escape_choice(str(v)) for v in values)}|}}{quote}"
    if values:
        return f"${{{number}:{_escape(_literal(values[0], json_quotes))}}}"
    if facet.types == {"boolean"} or facet.types == {"boolean", "null"}:
        return f"${{{number}|true,false|}}"
    if facet.default is not MISSING and facet.default is not None and not isinstance(facet.default, (dict, list)):
        if isinstance(facet.default, str):
            return f"{quote}${{{number}:{_escape(facet.default)}}}{quote}"
        return f"${{{number}:{_escape(json.dumps(facet.default))}}}"
    if "string" in facet.types:
        return f"{quote}${number}{quote}"
    if facet.types & {"integer", "number"}:
        return f"${{{number}:0}}"
    return f"${number}"


def _literal(value: Any, json_quotes: bool) -> str:
    return json.dumps(value) if json_quotes else _yaml_scalar(value)


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, str):
        return value if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS else json.dumps(value)
    return json.dumps(value)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("$", "\\$").replace("}", "\\}")


def _escape_choice(text: str) -> str:
    return _escape(text).replace(",", "\\,").replace("|", "\\|")


def _retrigger(env: CompletionEnv, facet: Facet) -> dict[str, str] | None:
    if env.retrigger and (facet.values or facet.types == {"boolean"}):
        return {"title": "Suggest", "command": env.retrigger}
    return None


def _key_doc(key: str, facet: Facet, required: bool) -> str:
    lines = [f"**{key}**" + (" (required)" if required else "")]
    if facet.description:
        lines.append(facet.description)
    details = []
    if facet.type_label():
        details.append(f"type: `{facet.type_label()}`")
    if facet.default is not MISSING and facet.default is not None:
        details.append(f"default: `{json.dumps(facet.default)}`")
    values = [v for v in facet.values if v != "SEARCHABLE_VALUES"]
    if values:
        shown = ", ".join(f"`{v}`" for v in values[:12]) + (", ..." if len(values) > 12 else "")
        details.append(f"allowed: {shown}")
    if details:
        lines.append(" · ".join(details))
    return "\n\n".join(lines)


def _markdown(text: str) -> dict[str, str] | None:
    """A ``MarkupContent`` in Markdown."""
    return {"kind": "markdown", "value": text} if text else None


def _filter(loc: Location, word: str) -> str:
    return f"{loc.quote}{word}" if loc.quote else word


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


# ------------------------------------------------------------------ values


def _value_items(snap: Snapshot, loc: Location, index: SchemaIndex, env: CompletionEnv) -> list[Item]:
    facet = index.facet_at(loc.path, loc.value_at)
    edit_range = snap.codec.span_json(loc.line, loc.start, loc.end)
    choices: list[tuple[Any, str, str, int]] = []  # value, detail, doc, kind
    key = loc.key
    path = loc.path
    if not path:
        return _skeleton(snap, loc, index, env, edit_range)
    if key in REFERENCES or (isinstance(key, str) and key.endswith("data_config")):
        section = REFERENCES.get(key, "data_configs")  # type: ignore[arg-type]
        for name, doc in _defined(loc, section):
            choices.append((name, f"defined in {section}", doc, KIND_REFERENCE))
    if len(path) >= 2 and path[-2] == "execution_providers" and isinstance(path[-1], int):
        choices += _provider_choices(loc, env)
    if len(path) >= 4 and path[-1] == "name" and path[-3] == "sub_types":
        choices += _sub_type_choices(loc)
    for value in facet.values:
        if value == "SEARCHABLE_VALUES" and facet.searchable is None:
            continue
        doc = facet.value_docs.get(str(value), "")
        if value == "SEARCHABLE_VALUES":
            doc = f"Search over {facet.searchable} (needs search_strategy)."
        choices.append((value, facet.title or str(key or ""), doc or facet.description, KIND_ENUM_MEMBER))
    if "boolean" in facet.types:
        choices += [(True, "boolean", facet.description, KIND_VALUE),
                    (False, "boolean", facet.description, KIND_VALUE)]
    if facet.default is not MISSING and facet.default is not None and not isinstance(facet.default, (dict, list)) \
            and all(c[0] != facet.default for c in choices):
        choices.append((facet.default, "default", facet.description, KIND_VALUE))
    items = [_value_item(loc, value, detail, doc, kind, edit_range, position)
             for position, (value, detail, doc, kind) in enumerate(choices)]
    if key in PATH_KEYS and isinstance(key, str):
        items += _path_items(snap, loc, edit_range, env)
    if not items and loc.prefix == "" and (facet.is_object() or facet.is_array()) and not loc.quote:
        body = _value_snippet(loc, facet, index, env.snippets, _Counter(1)).lstrip()
        items.append(_item(
            label="{}" if facet.is_object() else "[]", kind=KIND_SNIPPET,
            detail=facet.title or "value", documentation=_markdown(facet.description),
            insertTextFormat=SNIPPET if env.snippets else None,
            insertTextMode=ADJUST_INDENTATION,
            textEdit=_edit(edit_range, body + _trailing(loc))))
    return items


def _value_item(loc: Location, value: Any, detail: str, doc: str, kind: int, edit_range: dict[str, Any],
                position: int) -> Item:
    json_quotes = loc.fmt == "json" or loc.quote is not None
    text = json.dumps(value) if json_quotes else _yaml_scalar(value)
    label = value if isinstance(value, str) else json.dumps(value)
    doc = doc or f"`{json.dumps(value)}`" + (f" ({detail})" if detail else "")
    return _item(
        label=label, kind=kind, detail=detail or None, documentation=_markdown(doc),
        sortText=f"{position:04d}", filterText=text if json_quotes and isinstance(value, str) else label,
        textEdit=_edit(edit_range, text + _trailing(loc)))


def _defined(loc: Location, section: str) -> list[tuple[str, str]]:
    node = node_at(loc.root, (section,))
    found = []
    if section == "data_configs" and isinstance(node, ArrayNode):
        for item in node.items:
            name = item.get("name") if isinstance(item, ObjectNode) else None
            if name is not None and isinstance(name.value, ScalarNode) and isinstance(name.value.value, str):
                found.append((name.value.value, f"data config `{name.value.value}`"))
    elif isinstance(node, ObjectNode):
        for entry in node.entries:
            if isinstance(entry.value, ObjectNode):
                kind = entry.value.get("type")
                label = kind.value.value if kind is not None and isinstance(kind.value, ScalarNode) else section[:-1]
                found.append((entry.key, f"`{entry.key}`: {label}"))
            elif entry.value is not None:
                found.append((entry.key, f"`{entry.key}`"))
    return found


def _provider_choices(loc: Location, env: CompletionEnv) -> list[tuple[Any, str, str, int]]:
    from modelmill.config.accelerators import DEVICE_EPS, EP_PACKAGES, EXECUTION_PROVIDERS

    accelerator = loc.value_at(loc.path[:-2])
    device = accelerator.get("device") if isinstance(accelerator, dict) else None
    fits = DEVICE_EPS.get(device) if isinstance(device, str) else None
    ordered = sorted(EXECUTION_PROVIDERS, key=lambda ep: (fits is not None and ep not in fits,))
    choices = []
    for ep in ordered:
        if env.installed_eps is None:
            state = "onnxruntime is not installed"
        elif ep in env.installed_eps:
            state = "installed"
        else:
            state = f"not installed (pip install {EP_PACKAGES.get(ep, 'onnxruntime')})"
        runs = [name for name, eps in DEVICE_EPS.items() if ep in eps]
        doc = f"Runs on: {', '.join(runs) or 'any device'}. Here: {state}."
        if fits is not None and ep not in fits:
            doc += f" Does not run on '{device}'."
        choices.append((ep, state, doc, KIND_ENUM_MEMBER))
    return choices


def _sub_type_choices(loc: Location) -> list[tuple[Any, str, str, int]]:
    from modelmill.evaluate.catalog import CATALOG, MEASURED_SUB_TYPES

    metric = loc.value_at(loc.path[:-3])
    metric_type = metric.get("type") if isinstance(metric, dict) else None
    kinds = [metric_type] if isinstance(metric_type, str) and metric_type in CATALOG else list(CATALOG)
    choices = []
    for kind in kinds:
        measured = MEASURED_SUB_TYPES.get(kind)
        for name, (unit, higher, description) in CATALOG[kind].items():
            note = "" if measured is None or name in measured else " (accepted for Olive; not measured)"
            detail = f"{kind}{f', {unit}' if unit else ''}, {'higher' if higher else 'lower'} is better"
            choices.append((name, detail, description + note, KIND_ENUM_MEMBER))
    return choices


def _path_items(snap: Snapshot, loc: Location, edit_range: dict[str, Any], env: CompletionEnv) -> list[Item]:
    from modelmill.samples import SAMPLE_PREFIX, SAMPLES

    json_quotes = loc.fmt == "json" or loc.quote is not None
    items = []
    for sample in SAMPLES.values():
        value = f"{SAMPLE_PREFIX}{sample.name}"
        text = json.dumps(value) if json_quotes else value
        items.append(_item(
            label=value, kind=KIND_MODULE, detail="ModelMill sample",
            documentation=_markdown(sample.description), sortText=f"9{sample.name}",
            filterText=text, textEdit=_edit(edit_range, text + _trailing(loc))))
    typed = loc.prefix
    folder_part = typed.rsplit("/", 1)[0] + "/" if "/" in typed else ""
    base = snap.base_dir or Path.cwd()
    folder = Path(os.path.expanduser(folder_part)) if folder_part.startswith(("/", "~")) else base / folder_part
    try:
        entries = sorted(os.scandir(folder), key=lambda e: (not e.is_dir(), e.name.lower()))[:_MAX_FILES]
    except OSError:
        return items
    show_hidden = typed.rsplit("/", 1)[-1].startswith(".")
    for position, entry in enumerate(entries):
        if entry.name.startswith(".") and not show_hidden:
            continue
        is_dir = entry.is_dir()
        value = folder_part + entry.name + ("/" if is_dir else "")
        text = json.dumps(value) if json_quotes else (value if _PLAIN.fullmatch(value) else json.dumps(value))
        new_text = text + _trailing(loc)
        if is_dir and env.snippets:  # leave the cursor after the '/' to go on into the folder
            close = len(text) - 1 if text.endswith('"') else len(text)
            new_text = _escape(text[:close]) + "$0" + _escape(text[close:] + _trailing(loc))
        items.append(_item(
            label=entry.name + ("/" if is_dir else ""),
            kind=KIND_FOLDER if is_dir else KIND_FILE,
            detail=str(folder / entry.name), sortText=f"5{position:04d}", filterText=text,
            documentation=_markdown(f"{'Folder' if is_dir else 'File'} `{folder / entry.name}`"
                                    + (" (a Hugging Face model: it has config.json)"
                                       if is_dir and (folder / entry.name / "config.json").exists() else "")),
            insertTextFormat=SNIPPET if is_dir and env.snippets else None,
            textEdit=_edit(edit_range, new_text),
            command={"title": "Suggest", "command": env.retrigger} if is_dir and env.retrigger else None))
    return items


def _skeleton(snap: Snapshot, loc: Location, index: SchemaIndex, env: CompletionEnv,
              edit_range: dict[str, Any]) -> list[Item]:
    """An empty document: a workflow with its required sections and an empty pass list (a snippet only for
    clients that take snippets; never offered in a document that has text already)."""
    if loc.fmt != "json" or snap.text.strip():
        return []
    facet = index.facet_at((), lambda prefix: MISSING)
    counter = _Counter(1)
    parts = []
    for key in [*facet.required, "passes"]:
        sub = index.facet(facet.properties.get(key, []), MISSING)
        if key == "passes":
            value = "{\n\t\t$0\n\t}" if env.snippets else "{}"
        else:
            value = _value_snippet(loc, sub, index, env.snippets, counter, 1)
        parts.append(f'\t"{key}": {value}')
    text = "{\n" + ",\n".join(parts) + "\n}"
    return [_item(
        label="ModelMill workflow", kind=KIND_SNIPPET,
        detail="input_model and passes", documentation=_markdown(facet.description),
        insertTextFormat=SNIPPET if env.snippets else PLAIN_TEXT,
        textEdit=_edit(edit_range, text))]
