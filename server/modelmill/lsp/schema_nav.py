"""What the workflow JSON Schema says at a place in a document: one function feeds completion,
hover and code actions.

``SchemaIndex.facet_at(path, value_at)`` walks the schema along a key path, choosing the
branches of ``oneOf``/``anyOf``/``if``-``then`` that fit the data found there (a pass entry's
``type`` picks its parameters, an input model's ``type`` its keys), and merges what applies
into a ``Facet``: the keys allowed, which are required, the allowed values with their
descriptions, the default, the description. The schema is ``modelmill.config.workflow_json_schema()``
(generated from the pydantic models and the pass registry), built once per process.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from modelmill.config.diagnostics import KeyPath

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()
"""No value at this place (a key being typed, or a path that is not in the document)."""

_SCALAR_TYPES = {"string", "integer", "number", "boolean", "null"}


@dataclass
class Facet:
    """The merged schema at one place."""

    properties: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """key → the raw schemas for its value (several when several branches apply)."""
    required: list[str] = field(default_factory=list)
    types: set[str] = field(default_factory=set)
    values: list[Any] = field(default_factory=list)
    """Allowed values (enum and const), in schema order."""
    value_docs: dict[str, str] = field(default_factory=dict)
    """str(value) → its description (enumDescriptions)."""
    descriptions: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    default: Any = MISSING
    deprecated: str | None = None
    items: list[Any] = field(default_factory=list)
    """Schemas of array items (a dict, or a list of per-position schemas)."""
    additional: list[dict[str, Any]] = field(default_factory=list)
    """Schemas of values under keys not in ``properties``."""
    pattern_properties: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    open: bool = False
    """Any key is allowed (additionalProperties true or unspecified on a typed object)."""
    searchable: list[Any] | None = None
    minimum: Any = None
    maximum: Any = None

    @property
    def description(self) -> str:
        return self.descriptions[0] if self.descriptions else ""

    @property
    def title(self) -> str:
        return self.titles[0] if self.titles else ""

    def is_object(self) -> bool:
        return "object" in self.types or bool(self.properties)

    def is_array(self) -> bool:
        return "array" in self.types or bool(self.items)

    def child_schemas(self, elem: str | int) -> list[dict[str, Any]]:
        if isinstance(elem, str):
            if elem in self.properties:
                return list(self.properties[elem])
            found = [schema for pattern, schema in self.pattern_properties if re.search(pattern, elem)]
            return found or list(self.additional)
        found = []
        for items in self.items:
            if isinstance(items, list):
                if 0 <= elem < len(items):
                    found.append(items[elem])
            else:
                found.append(items)
        return found

    def type_label(self) -> str:
        kinds = sorted(self.types - {"null"}) or (["object"] if self.properties else [])
        label = " | ".join(kinds)
        if self.items and "array" in self.types:
            return label
        return label


class SchemaIndex:
    """The workflow schema with ``$ref`` resolution and branch selection."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.root = schema
        self.definitions: dict[str, Any] = schema.get("definitions", {})
        self._dispatch: dict[int, dict[str, list[Any]] | None] = {}
        """id(allOf list) → lower-cased ``type`` → branches, for lists of ``if type in [...] then ...``."""

    # -- schema plumbing ---------------------------------------------------------------------

    def resolve(self, schema: Any) -> dict[str, Any]:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 32:
            ref = schema["$ref"]
            target = self.definitions.get(ref.rsplit("/", 1)[-1]) if ref.startswith("#/definitions/") else None
            if target is None:
                return {}
            schema = target if len(schema) == 1 else {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        return schema if isinstance(schema, dict) else {}

    def facet(self, schemas: list[dict[str, Any]], value: Any) -> Facet:
        """Merge ``schemas`` as they apply to ``value`` (MISSING when there is none)."""
        facet = Facet()
        for schema in schemas:
            self._collect(schema, value, facet, certain=True, depth=0)
        return facet

    def facet_at(self, path: KeyPath, value_at: Callable[[KeyPath], Any]) -> Facet:
        """The facet at ``path``; ``value_at(prefix)`` gives the data at each prefix of it (or MISSING)."""
        facet = self.facet([self.root], value_at(()))
        for depth, elem in enumerate(path):
            schemas = facet.child_schemas(elem)
            facet = self.facet(schemas, value_at(path[:depth + 1]) if schemas else MISSING)
        return facet

    def facet_for_data(self, path: KeyPath, data: Any) -> Facet:
        """``facet_at`` for plain data."""
        return self.facet_at(path, lambda prefix: _get(data, prefix))

    # -- merging -------------------------------------------------------------------------------

    def _collect(self, schema: Any, value: Any, facet: Facet, certain: bool, depth: int) -> None:
        if depth > 24:
            return
        schema = self.resolve(schema)
        if not schema:
            return
        self._own(schema, facet, certain)
        all_of = schema.get("allOf", ())
        dispatch = self._type_dispatch(all_of) if len(all_of) > 8 else None
        if dispatch is not None:
            # one branch per pass type: look the type up instead of testing every 'if' (same result)
            tag = value.get("type") if isinstance(value, dict) else None
            for branch in dispatch.get(tag.lower(), []) if isinstance(tag, str) else []:
                self._collect(branch, value, facet, certain, depth + 1)
        else:
            for sub in all_of:
                self._collect(sub, value, facet, certain, depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                alternatives = [self.resolve(alt) for alt in schema[key]]
                if alternatives and all(_required_only(alt) for alt in alternatives):
                    # "one of these key sets is required" (e.g. the flat keys or an old 'config' block)
                    if certain:
                        _add_unique(facet.required, alternatives[0].get("required", []))
                    continue
                fitting = self.fitting(alternatives, value)
                for alt in fitting:
                    self._collect(alt, value, facet, certain and len(fitting) == 1, depth + 1)
                if certain and len(fitting) > 1:
                    # keys every remaining branch requires (e.g. an input model's 'type')
                    common = [set(self.resolve(alt).get("required", [])) for alt in fitting]
                    shared = set.intersection(*common) if common else set()
                    first = self.resolve(fitting[0]).get("required", [])
                    _add_unique(facet.required, [key for key in first if key in shared])
        condition = schema.get("if")
        if isinstance(condition, dict):
            branch = schema.get("then") if self.matches(condition, value) else schema.get("else")
            if branch is not None:
                self._collect(branch, value, facet, certain, depth + 1)

    @staticmethod
    def _own(schema: dict[str, Any], facet: Facet, certain: bool) -> None:
        for key, sub in schema.get("properties", {}).items():
            facet.properties.setdefault(key, []).append(sub)
        if certain:
            _add_unique(facet.required, schema.get("required", []))
        kind = schema.get("type")
        if isinstance(kind, str):
            facet.types.add(kind)
        elif isinstance(kind, list):
            facet.types.update(k for k in kind if isinstance(k, str))
        if "enum" in schema:
            docs = schema.get("markdownEnumDescriptions") or schema.get("enumDescriptions") or []
            for index, item in enumerate(schema["enum"]):
                if item not in facet.values:
                    facet.values.append(item)
                if index < len(docs) and str(item) not in facet.value_docs:
                    facet.value_docs[str(item)] = docs[index]
        if "const" in schema and schema["const"] not in facet.values:
            facet.values.append(schema["const"])
            if schema.get("description") and str(schema["const"]) not in facet.value_docs:
                facet.value_docs[str(schema["const"])] = schema["description"]
        description = schema.get("markdownDescription") or schema.get("description")
        if isinstance(description, str) and description and description not in facet.descriptions:
            facet.descriptions.append(description)
        if isinstance(schema.get("title"), str):
            facet.titles.append(schema["title"])
        if "default" in schema and facet.default is MISSING:
            facet.default = schema["default"]
        if schema.get("deprecationMessage") and facet.deprecated is None:
            facet.deprecated = schema["deprecationMessage"]
        if "items" in schema:
            facet.items.append(schema["items"])
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            facet.additional.append(additional)
        elif additional is True:
            facet.open = True
        for pattern, sub in schema.get("patternProperties", {}).items():
            facet.pattern_properties.append((pattern, sub))
        if isinstance(schema.get("searchable"), list) and facet.searchable is None:
            facet.searchable = schema["searchable"]
        if "minimum" in schema and facet.minimum is None:
            facet.minimum = schema["minimum"]
        if "maximum" in schema and facet.maximum is None:
            facet.maximum = schema["maximum"]

    def _type_dispatch(self, all_of: list[Any]) -> dict[str, list[Any]] | None:
        """For an allOf made only of ``{"if": {type in enum, required type}, "then": X}``: type → [X]."""
        key = id(all_of)
        if key not in self._dispatch:
            table: dict[str, list[Any]] | None = {}
            for sub in all_of:
                condition = sub.get("if") if isinstance(sub, dict) else None
                if not (isinstance(condition, dict) and set(sub) <= {"if", "then"} and "then" in sub
                        and set(condition) == {"properties", "required"} and condition["required"] == ["type"]
                        and set(condition["properties"]) == {"type"}
                        and set(condition["properties"]["type"]) == {"enum"}):
                    table = None
                    break
                for name in condition["properties"]["type"]["enum"]:
                    folded = name.lower() if isinstance(name, str) else name
                    table.setdefault(folded, []).append(sub["then"])
            self._dispatch[key] = table
        return self._dispatch[key]

    # -- branch choice ---------------------------------------------------------------------------

    def fitting(self, alternatives: list[dict[str, Any]], value: Any) -> list[dict[str, Any]]:
        """The alternatives that can describe ``value``; lenient: never empty when some exist."""
        useful = [alt for alt in alternatives if alt.get("type") != "null"] or alternatives
        if value is MISSING or value is None:
            return useful
        kind = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "scalar"
        same_kind = [alt for alt in useful if _kind_of(self, alt) in (kind, None)]
        if not same_kind:
            return useful
        if kind == "object" and isinstance(value.get("type"), str):
            tag = value["type"].lower()
            tagged = [alt for alt in same_kind if tag in self._type_tags(alt)]
            if tagged:
                return tagged
        return same_kind

    def _type_tags(self, schema: dict[str, Any]) -> set[str]:
        """Lower-cased values the ``type`` key may take in an object schema (for discriminating)."""
        prop = self.resolve(schema.get("properties", {}).get("type", {}))
        tags = {str(v).lower() for v in prop.get("enum", [])}
        if "const" in prop:
            tags.add(str(prop["const"]).lower())
        return tags

    def matches(self, condition: dict[str, Any], value: Any) -> bool:
        """Does ``value`` satisfy an ``if`` schema (``required`` + ``properties`` with enum/const)?"""
        if not isinstance(value, dict):
            return False
        if any(key not in value for key in condition.get("required", [])):
            return False
        for key, sub in condition.get("properties", {}).items():
            if key not in value:
                continue
            item = value[key]
            folded = item.lower() if isinstance(item, str) else item
            if "enum" in sub and not any(folded == (e.lower() if isinstance(e, str) else e) for e in sub["enum"]):
                return False
            if "const" in sub:
                const = sub["const"]
                if folded != (const.lower() if isinstance(const, str) else const):
                    return False
        return True


def _kind_of(index: SchemaIndex, schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if kind == "object" or "properties" in schema or "additionalProperties" in schema:
        return "object"
    if kind == "array" or "items" in schema:
        return "array"
    if isinstance(kind, str) and kind in _SCALAR_TYPES:
        return "scalar"
    if "enum" in schema or "const" in schema:
        return "scalar"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            kinds = {_kind_of(index, index.resolve(alt)) for alt in schema[key]}
            kinds.discard(None)
            return kinds.pop() if len(kinds) == 1 else None
    return None


def _required_only(schema: dict[str, Any]) -> bool:
    return bool(schema) and set(schema) <= {"required"}


def _add_unique(target: list[str], items: list[str]) -> None:
    for item in items:
        if item not in target:
            target.append(item)


def _get(data: Any, path: KeyPath) -> Any:
    for elem in path:
        if isinstance(data, dict) and isinstance(elem, str) and elem in data:
            data = data[elem]
        elif isinstance(data, list) and isinstance(elem, int) and 0 <= elem < len(data):
            data = data[elem]
        else:
            return MISSING
    return data


# ------------------------------------------------------------------ the process-wide index

_lock = threading.Lock()
_index: SchemaIndex | None = None


def schema_index() -> SchemaIndex:
    """The workflow schema's index, built on first use, then shared. Generating the schema from the models
    takes about a third of a second, so the result is kept on disk (``schema_cache``) for the next start."""
    global _index
    if _index is None:
        with _lock:
            if _index is None:
                _index = SchemaIndex(cached_workflow_schema())
    return _index


def _source_key() -> str:
    """A key that changes whenever the package's sources (models, passes, the Olive catalogue) or pydantic do."""
    import hashlib
    import os

    import pydantic

    from modelmill import __version__

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256(f"{__version__} {pydantic.VERSION} {package}".encode())
    for folder, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".json")):
                stat = os.stat(os.path.join(folder, name))
                digest.update(f"{folder}/{name} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def cached_workflow_schema() -> dict[str, Any]:
    """``workflow_json_schema()``, read from ``$MODELMILL_HOME/lsp/schema-<key>.json`` when the sources are the
    same as when it was written; else generated and written there (one file, older ones removed). Any problem
    with the cache falls back to generating."""
    import json
    import os

    from modelmill.config import workflow_json_schema

    try:
        from modelmill.paths import home

        folder = home() / "lsp"
        target = folder / f"schema-{_source_key()}.json"
        if target.exists():
            return json.loads(target.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - an unreadable cache is regenerated
        target = None
    schema = workflow_json_schema()
    if target is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(schema), encoding="utf-8")
            os.replace(partial, target)
            for old in folder.glob("schema-*.json"):
                if old != target:
                    old.unlink(missing_ok=True)
        except OSError:
            pass
    return schema


def describe_value(value: Any) -> str:
    """A value as it is written in JSON (for docs and labels)."""
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
