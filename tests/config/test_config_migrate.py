"""migrate_document: old forms → the flat form, in the document's own format."""

from __future__ import annotations

import json

import pytest
import yaml
from config_helpers import CPU_ONLY, DATA
from modelmill.config import load_document, load_workflow, migrate_document, parse_document, validate_document
from modelmill.errors import ConfigError


@pytest.mark.parametrize("name", ["tutorial_config.json", "tutorial_config.yaml"])
def test_migrated_tutorial_is_clean_and_equivalent(name: str) -> None:
    doc = load_document(DATA / name)
    text = migrate_document(doc)
    migrated = parse_document(text, name)
    assert migrated.syntax == []
    diagnostics = validate_document(migrated, CPU_ONLY)
    assert [d for d in diagnostics if d.code == "old-schema" or d.severity == "error"] == []
    # what is left is what the config means, not how it is written
    assert sorted(d.code for d in diagnostics) == ["hub-id-not-local", "redundant-pass"]
    before, after = load_workflow(doc, env=CPU_ONLY), load_workflow(migrated, env=CPU_ONLY)
    assert after.model_dump() == before.model_dump()
    assert [(n, c, p.model_dump()) for n, c, p in after.pass_chain()] == \
        [(n, c, p.model_dump()) for n, c, p in before.pass_chain()]
    assert after.output_dir == "models/optimized"


def test_migrated_json_shape_and_key_order() -> None:
    flat = json.loads(migrate_document(load_document(DATA / "tutorial_config.json")))
    assert list(flat) == ["input_model", "systems", "evaluators", "passes", "search_strategy", "evaluator", "host",
                          "target", "cache_dir", "output_dir"]
    assert flat["input_model"] == {"type": "HfModel", "model_path": "Qwen/Qwen2.5-0.5B-Instruct",
                                   "task": "text-generation"}
    assert flat["systems"]["local_system"] == {
        "type": "LocalSystem", "accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}
    assert flat["passes"] == {"conversion": {"type": "ModelBuilder", "precision": "int4"},
                              "optimization": {"type": "OrtTransformersOptimization", "model_type": "gpt2"}}
    assert flat["search_strategy"] == {"execution_order": "joint", "sampler": "tpe"}


def test_migrate_is_idempotent_and_keeps_format() -> None:
    yaml_text = migrate_document(load_document(DATA / "tutorial_config.yaml"))
    assert not yaml_text.lstrip().startswith("{")
    assert yaml.safe_load(yaml_text) == json.loads(migrate_document(load_document(DATA / "tutorial_config.json")))
    assert migrate_document(parse_document(yaml_text, "again.yaml")) == yaml_text


def test_engine_execution_providers_become_a_target_system() -> None:
    old = {"input_model": {"type": "HfModel", "model_path": "sample:smollm2"},
           "passes": {"b": {"type": "ModelBuilder", "precision": "int4"}},
           "engine": {"execution_providers": ["CPUExecutionProvider"], "output_dir": "out"}}
    doc = parse_document(json.dumps(old), "old.json")
    [note] = [d for d in validate_document(doc, CPU_ONLY) if d.severity == "warning"]
    assert note.code == "old-schema" and note.path == ("engine", "execution_providers")
    flat = json.loads(migrate_document(doc))
    assert flat["target"] == "local_system"
    assert flat["systems"] == {"local_system": {"type": "LocalSystem",
                                                "accelerators": [{"execution_providers": ["CPUExecutionProvider"]}]}}
    assert validate_document(parse_document(json.dumps(flat), "new.json"), CPU_ONLY) == []


def test_collisions_and_flat_metric_keys() -> None:
    old = {"input_model": {"type": "HfModel", "model_path": "sample:smollm2"},
           "cache_dir": "top", "engine": {"cache_dir": "engine"},
           "evaluators": {"e": {"metrics": [{"name": "c", "type": "custom", "user_script": "m.py",
                                             "sub_types": [{"name": "x"}]}]}}}
    doc = parse_document(json.dumps(old), "old.json")
    codes = {(d.code, d.path) for d in validate_document(doc, CPU_ONLY)}
    assert ("key-collision", ("cache_dir",)) in codes
    assert ("old-schema", ("evaluators", "e", "metrics", 0, "user_script")) in codes
    flat = json.loads(migrate_document(doc))
    assert flat["cache_dir"] == "engine"  # as in Olive, the engine value wins
    assert flat["evaluators"]["e"]["metrics"][0]["user_config"] == {"user_script": "m.py"}


def test_migrate_refuses_broken_text() -> None:
    with pytest.raises(ConfigError):
        migrate_document(parse_document('{"a": ', "broken.json"))
