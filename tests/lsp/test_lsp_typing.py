"""Diagnostics at the speed of typing: no fixed debounce by default, a debounce only for documents whose
validation is slow, bursts of changes coalesced to the newest version, and the schema kept on disk between
starts. (Times are measured by bench/lsp_raw_latency.py, never asserted here.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from modelmill.lsp import schema_nav
from modelmill.lsp.diagnostics import MAX_ADAPTIVE_DELAY_MS, SLOW_VALIDATION_MS, debounce_ms
from modelmill.lsp.settings import Settings
from modelmill.testing.jsonrpc import JsonRpcClient


def test_defaults_validate_at_once_and_only_slow_documents_wait() -> None:
    assert Settings().diagnostics_delay_ms == 0
    assert debounce_ms(0, None) == 0  # never validated yet
    assert debounce_ms(0, 6.0) == 0
    assert debounce_ms(0, SLOW_VALIDATION_MS + 50) == int(SLOW_VALIDATION_MS + 50)
    assert debounce_ms(0, 5_000.0) == MAX_ADAPTIVE_DELAY_MS
    assert debounce_ms(250, 6.0) == 250  # a delay the user set is kept


def _config(value: str) -> str:
    return json.dumps({"input_model": {"type": "HfModel", "model_path": "model"},
                       "passes": {"b": {"type": "ModelBuilder", "precision": value}}}, indent=2)


def test_a_burst_of_changes_ends_with_the_newest_version(tmp_path: Path) -> None:
    server = JsonRpcClient(str(tmp_path))
    server.request("initialize", {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}})
    server.notify("initialized", {})
    uri = (tmp_path / "typed.olive.json").as_uri()
    try:
        server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "json", "version": 1,
                                                                "text": _config("int4")}})
        words = ["i", "in", "int", "int8", "bogus", "int4", "fp1", "fp16"]
        for version, word in enumerate(words, start=2):
            server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                     "contentChanges": [{"text": _config(word)}]})
        last = len(words) + 1
        server.diagnostics(uri, last)  # NoReply if the newest version's diagnostics never come
        time.sleep(0.3)
        published = [m["params"] for m in server.notifications if m.get("method") == "textDocument/publishDiagnostics"
                     and m["params"]["uri"] == uri]
        versions = [p["version"] for p in published]
        assert versions == sorted(versions) and versions[-1] == last  # in order, the newest one last
        assert not [d for d in published[-1]["diagnostics"] if d["severity"] == 1]  # fp16 is valid: no error left
    finally:
        server.close()


def test_schema_is_cached_on_disk_and_regenerated_when_sources_change(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMILL_HOME", str(tmp_path))
    import modelmill.config as config

    generated = []
    original = config.workflow_json_schema

    def counting() -> dict:
        generated.append(1)
        return original()

    monkeypatch.setattr(config, "workflow_json_schema", counting)
    first = schema_nav.cached_workflow_schema()
    second = schema_nav.cached_workflow_schema()
    assert first == second == json.loads(json.dumps(original()))
    assert len(generated) == 1 and len(list((tmp_path / "lsp").glob("schema-*.json"))) == 1
    monkeypatch.setattr(schema_nav, "_source_key", lambda: "changed-sources")
    schema_nav.cached_workflow_schema()
    assert len(generated) == 2
    assert [p.name for p in (tmp_path / "lsp").glob("schema-*.json")] == ["schema-changed-sources.json"]
