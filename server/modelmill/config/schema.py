"""JSON Schema (draft-07, what VS Code's JSON support handles best) for workflow configs.

Generated from the pydantic models, with one parameter schema per pass chosen by the entry's
``type``: ModelMill's own passes from their ``Params``, every other Olive pass from the catalogue
(olive_passes.json: Olive's types, defaults, allowed and searchable values). The schema describes the flat form; the old ``engine:`` and
``config:`` blocks are allowed but marked with a ``deprecationMessage`` so editors show
them as outdated rather than wrong.
"""

from __future__ import annotations

import copy
from typing import Any

from modelmill.config.models import WorkflowConfig
from modelmill.config.olive_catalog import OlivePass, all_olive_passes
from modelmill.passes.base import Pass
from modelmill.passes.registry import all_passes, find_pass

SCHEMA_ID = "https://modelmill.dev/schemas/workflow-config.schema.json"
DRAFT_07 = "http://json-schema.org/draft-07/schema#"
_REF = "#/definitions/{model}"
_ROOT_SECTIONS = ("workflow_id", "input_model", "systems", "data_configs", "evaluators", "passes")
_NESTED_CONFIG_MODELS = ("HfModel", "PyTorchModel", "ONNXModel", "LocalSystem", "PythonEnvironmentSystem",
                         "DockerSystem")
_OLD_BLOCK = "The nested '{}' block is the older form; ModelMill and Olive accept it, `modelmill migrate` flattens it."


def workflow_json_schema() -> dict[str, Any]:
    schema = WorkflowConfig.model_json_schema(ref_template=_REF)
    definitions: dict[str, Any] = schema.pop("$defs", {})
    _pass_definitions(definitions)
    _old_forms(schema, definitions)
    result = {"$schema": DRAFT_07, "$id": SCHEMA_ID, **schema, "definitions": definitions}
    return _draft07(result)


# ------------------------------------------------------------------ passes


def _pass_definitions(definitions: dict[str, Any]) -> None:
    """Replace the generic PassEntry with a dispatch on ``type`` to each pass's own parameters."""
    generic = definitions.get("PassEntry", {}).get("properties", {})
    shared = {key: generic[key] for key in ("host", "evaluator") if key in generic}
    passes = all_passes()
    names: list[str] = []
    descriptions: list[str] = []
    branches = []
    for cls in passes.values():
        key = f"pass.{cls.name}"
        definitions[key] = _pass_entry(cls, shared, definitions)
        names.append(cls.name)
        descriptions.append(cls.description)
        for alias in cls.aliases:
            names.append(alias)
            descriptions.append(f"Older name of {cls.name}.")
        branches.append({"if": {"properties": {"type": {"enum": [cls.name, *cls.aliases]}}, "required": ["type"]},
                         "then": {"$ref": f"#/definitions/{key}"}})
    for olive in all_olive_passes().values():
        if find_pass(olive.name) is not None:
            continue  # ModelMill's own Params are the source of truth for the passes it runs
        key = f"pass.{olive.name}"
        definitions[key] = _catalog_entry(olive, shared)
        names.append(olive.name)
        descriptions.append(f"{olive.description} (Olive pass; ModelMill cannot run it here.)")
        branches.append({"if": {"properties": {"type": {"enum": [olive.name]}}, "required": ["type"]},
                         "then": {"$ref": f"#/definitions/{key}"}})
    definitions["PassEntry"] = {
        "type": "object",
        "title": "Pass",
        "description": "One pass: its type and its parameters, written next to type.",
        "required": ["type"],
        "properties": {"type": {"type": "string", "enum": names, "enumDescriptions": descriptions,
                                "markdownEnumDescriptions": descriptions,
                                "description": "Pass type (case-insensitive in Olive)."}},
        "allOf": branches,
    }


def _pass_entry(cls: type[Pass], shared: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    params = cls.Params.model_json_schema(ref_template=f"#/definitions/{cls.name}.{{model}}")
    for name, sub in params.pop("$defs", {}).items():
        definitions[f"{cls.name}.{name}"] = sub
    properties = dict(params.get("properties", {}))
    for name, values in cls.Params.searchable_fields().items():
        if name in properties:
            properties[name] = _searchable(properties[name], values)
    return _entry(cls.name, cls.description, shared, properties, list(params.get("required", [])))


def _catalog_entry(olive: OlivePass, shared: dict[str, Any]) -> dict[str, Any]:
    """The entry of an Olive pass ModelMill does not run, from the catalogue (Olive's types and defaults)."""
    properties: dict[str, Any] = {}
    required = []
    for name, info in olive.params.items():
        description = f"Olive type: {info.get('type', 'Any')}."
        if info.get("default_expr"):
            description += f" Olive computes the default ({info['default_expr']})."
        value = catalog_value_schema(info.get("schema") or {})
        if name.endswith("data_config"):
            # Olive resolves a name from data_configs in any pass key ending in data_config (_resolve_all_data_configs)
            value = {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "null"}]}
            description += " Or the name of an entry in data_configs."
        prop = {**value, "description": description}
        if info.get("required"):
            required.append(name)
        elif info.get("default") is not None or "default_expr" not in info:
            prop["default"] = info.get("default")
        if info.get("searchable"):
            values = list(info.get("search_values") or [])
            prop = _searchable({**prop, "searchable": values}, values)
        properties[name] = prop
    return _entry(olive.name, olive.description, shared, properties, required)


def _entry(title: str, description: str, shared: dict[str, Any], properties: dict[str, Any],
           required: list[str]) -> dict[str, Any]:
    """A pass entry: its type, the keys every pass shares, its parameters (also inside Olive's old ``config``
    block), and the required ones, given either flat or in that block."""
    entry: dict[str, Any] = {
        "type": "object",
        "title": title,
        "description": description,
        "properties": {
            "type": {"type": "string", "description": description},
            **copy.deepcopy(shared),
            **properties,
            "config": {"type": "object", "properties": copy.deepcopy(properties), "additionalProperties": False,
                       "description": _OLD_BLOCK.format("config"), "deprecationMessage": _OLD_BLOCK.format("config")},
        },
        "required": ["type"],
        "additionalProperties": False,
    }
    if required:
        entry["anyOf"] = [{"required": required}, {"required": ["config"]}]
    return entry


_JSON_KINDS = {"bool": "boolean", "int": "integer", "float": "number", "str": "string", "path": "string",
               "null": "null", "dict": "object"}


def catalog_value_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema for a catalogue parameter type (the same kinds ``olive_catalog.python_type`` reads)."""
    kind = schema.get("kind")
    if kind in _JSON_KINDS:
        return {"type": _JSON_KINDS[kind]}
    if kind == "list":
        return {"type": "array", "items": catalog_value_schema(schema.get("items") or {})}
    if kind == "enum" and schema.get("values"):
        values = list(schema["values"])
        kinds = {"boolean" if isinstance(v, bool) else "integer" if isinstance(v, int) else
                 "number" if isinstance(v, float) else "string" for v in values}
        return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}
    if kind == "union":
        return {"anyOf": [catalog_value_schema(item) for item in schema.get("anyOf", [])]}
    return {}


def _searchable(prop: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    """A searchable parameter also takes a list of candidates or "SEARCHABLE_VALUES" (with search)."""
    annotations: dict[str, Any] = {k: prop[k] for k in ("title", "description", "default") if k in prop}
    value = {k: v for k, v in prop.items() if k not in annotations}
    return {**annotations, "anyOf": [value, {"type": "array", "items": value, "minItems": 1},
                                     {"const": "SEARCHABLE_VALUES"}],
            "description": f"{prop.get('description', '')} Searched over {values} when search is on.".strip()}


# ------------------------------------------------------------------ old forms


def _old_forms(schema: dict[str, Any], definitions: dict[str, Any]) -> None:
    properties = schema["properties"]
    engine_keys = {key: copy.deepcopy(value) for key, value in properties.items() if key not in _ROOT_SECTIONS}
    properties["engine"] = {"type": "object", "properties": engine_keys, "additionalProperties": False,
                            "description": _OLD_BLOCK.format("engine"),
                            "deprecationMessage": _OLD_BLOCK.format("engine")}
    for name in _NESTED_CONFIG_MODELS:
        definition = definitions.get(name)
        if definition is None:
            continue
        definition["properties"]["config"] = {"type": "object", "description": _OLD_BLOCK.format("config"),
                                              "deprecationMessage": _OLD_BLOCK.format("config")}
        required = [key for key in definition.get("required", []) if key != "type"]
        if required:
            definition["required"] = ["type"]
            definition["anyOf"] = [{"required": required}, {"required": ["config"]}]
    strategy = definitions.get("SearchStrategy")
    if strategy is not None:
        message = "Old name of sampler: Olive 0.13 crashes on it; use sampler."
        strategy["properties"]["search_algorithm"] = {"type": "string", "description": message,
                                                      "deprecationMessage": message}
        strategy["required"] = [key for key in strategy.get("required", []) if key != "sampler"]
        strategy["anyOf"] = [{"required": ["sampler"]}, {"required": ["search_algorithm"]}]


# ------------------------------------------------------------------ draft-07 clean-up


def _draft07(node: Any) -> Any:
    """pydantic emits 2020-12 idioms; rewrite the ones draft-07 reads differently.

    ``$ref`` with sibling keywords (siblings are ignored in draft-07) → ``allOf``;
    ``prefixItems`` → ``items`` array; every ``description`` also as ``markdownDescription``.
    """
    if isinstance(node, list):
        return [_draft07(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: (_draft07(value) if key not in ("default", "const", "enum", "examples") else value)
            for key, value in node.items()}
    if "$ref" in node and len(node) > 1:
        ref = node.pop("$ref")
        node["allOf"] = [{"$ref": ref}, *node.get("allOf", [])]
    if "prefixItems" in node:
        node["items"] = node.pop("prefixItems")
        node.setdefault("additionalItems", False)
    if isinstance(node.get("description"), str) and "markdownDescription" not in node:
        node["markdownDescription"] = node["description"]
    return node
