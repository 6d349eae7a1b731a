"""workflow_json_schema: draft-07, generated from the models and every registered pass."""

from __future__ import annotations

import json
from typing import Any

import pytest
from config_helpers import DATA
from modelmill.config import load_document, migrate_document, workflow_json_schema
from modelmill.passes.registry import all_passes

try:
    import jsonschema
except ImportError:  # not a project dependency; the structural checks below still run
    jsonschema = None


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return workflow_json_schema()


def _nodes(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _nodes(item)


def test_schema_is_draft07_json(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"].startswith("https://")
    json.dumps(schema)  # serializable
    assert "$defs" not in json.dumps(schema)
    definitions = schema["definitions"]
    for node in _nodes(schema):
        ref = node.get("$ref")
        if ref is not None:
            assert ref.startswith("#/definitions/") and ref.removeprefix("#/definitions/") in definitions, ref
            assert len(node) == 1, node  # draft-07 ignores keywords beside $ref
        assert "prefixItems" not in node


def test_every_registered_pass_has_its_parameters(schema: dict[str, Any]) -> None:
    definitions = schema["definitions"]
    type_enum = definitions["PassEntry"]["properties"]["type"]["enum"]
    for cls in all_passes().values():
        entry = definitions[f"pass.{cls.name}"]
        assert cls.name in type_enum and all(alias in type_enum for alias in cls.aliases)
        assert entry["additionalProperties"] is False
        assert set(cls.Params.model_fields) <= set(entry["properties"])
        assert entry["description"] == cls.description


def test_descriptions_become_hover_texts(schema: dict[str, Any]) -> None:
    properties = schema["properties"]
    for key in ("input_model", "passes", "search_strategy", "target", "output_dir", "log_severity_level"):
        assert properties[key].get("description"), key
        assert properties[key]["markdownDescription"] == properties[key]["description"]
    sampler = schema["definitions"]["SearchStrategy"]["properties"]["sampler"]
    assert sampler["enum"] == ["tpe", "random", "sequential"]
    assert "deprecationMessage" in properties["engine"]


@pytest.mark.skipif(jsonschema is None, reason="jsonschema is not installed")
def test_configs_validate_against_the_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    old = load_document(DATA / "tutorial_config.json")
    flat = json.loads(migrate_document(old))
    assert list(validator.iter_errors(flat)) == []
    assert list(validator.iter_errors(old.data)) == []  # the old form is allowed (marked deprecated)
    flat["passes"]["conversion"]["precison"] = "int4"
    assert list(validator.iter_errors(flat))
    flat["passes"]["conversion"].pop("precison")
    flat["search_strategy"]["sampler"] = "exhaustive"
    assert list(validator.iter_errors(flat))
