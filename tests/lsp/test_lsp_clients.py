"""Correct in every client: what the server sends depends on what the client declares (snippets, a command that
reopens suggestions), never on its name; hover tables keep their columns; every enum parameter of every pass
completes inside quotes; expected refusals are one line on stderr, not a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from modelmill.lsp.completion import CompletionEnv, complete
from modelmill.lsp.documents import Snapshot
from modelmill.lsp.hover import pass_doc
from modelmill.lsp.schema_nav import MISSING, schema_index
from modelmill.testing.jsonrpc import JsonRpcClient

PASS_PREFIX = "pass."


def _pass_names() -> list[str]:
    return sorted(name[len(PASS_PREFIX):] for name in schema_index().definitions if name.startswith(PASS_PREFIX))


def _enum_params() -> list[tuple[str, str, list[str]]]:
    """(pass, parameter, allowed strings) for every string-enum parameter of every pass in the schema."""
    index = schema_index()
    found = []
    for name in _pass_names():
        facet = index.facet([{"$ref": f"#/definitions/{PASS_PREFIX}{name}"}], {"type": name})
        for key, schemas in facet.properties.items():
            sub = index.facet(schemas, MISSING)
            values = [v for v in sub.values if v != "SEARCHABLE_VALUES" or sub.searchable is not None]
            enum = [v for v in values if v != "SEARCHABLE_VALUES"]
            if key != "type" and enum and all(isinstance(v, str) for v in values) and "boolean" not in sub.types:
                found.append((name, key, values))
    return found


def _labels(text: str, fmt: str, env: CompletionEnv | None = None) -> list[Any]:
    index = text.index("|")
    text = text[:index] + text[index + 1:]
    line = text.count("\n", 0, index)
    col = index - (text.rfind("\n", 0, index) + 1)
    snap = Snapshot(f"file:///tmp/workflow.{fmt}", 1, text, fmt)
    return [item["label"] for item in complete(snap, line, col, env or CompletionEnv(snippets=True))["items"]]


# ------------------------------------------------------------------ hover tables


def test_every_pass_hover_table_row_has_four_cells() -> None:
    unescaped_bar = re.compile(r"(?<!\\)\|")
    piped = 0
    for name in _pass_names():
        rows = [line for line in pass_doc(name).splitlines() if line.startswith("| `")]
        for row in rows:
            cells = unescaped_bar.split(row)[1:-1]
            assert len(cells) == 4, (name, row)
            piped += "\\|" in cells[1]
    assert piped, "no type cell with a '|' was checked (e.g. 'array | boolean')"


# ------------------------------------------------------------------ enum values


def test_enum_parameters_are_found() -> None:
    found = {(name, key) for name, key, _ in _enum_params()}
    assert ("ModelBuilder", "precision") in found and ("OnnxStaticQuantization", "activation_type") in found
    assert len(found) > 20


@pytest.mark.parametrize("form", ["json", "yaml quoted", "yaml plain"])
def test_every_enum_parameter_completes_its_values_inside_quotes(form: str) -> None:
    wrong = []
    for name, key, values in _enum_params():
        if form == "json":
            text, fmt = json.dumps({"passes": {"p": {"type": name, key: "@"}}}).replace('"@"', '"|"'), "json"
        else:
            value = '"|"' if form == "yaml quoted" else "|"
            text, fmt = f"passes:\n  p:\n    type: {name}\n    {key}: {value}\n", "yaml"
        got = _labels(text, fmt)
        if sorted(map(str, got)) != sorted(values):
            wrong.append((name, key, values, got))
    assert not wrong, wrong[:5]


# ------------------------------------------------------------------ the workflow skeleton


def test_skeleton_is_a_snippet_only_for_clients_with_snippets() -> None:
    snap = Snapshot("file:///tmp/new.olive.json", 1, "", "json")
    with_snippets = complete(snap, 0, 0, CompletionEnv(snippets=True))["items"]
    plain = complete(snap, 0, 0, CompletionEnv(snippets=False))["items"]
    assert [i["label"] for i in with_snippets] == [i["label"] for i in plain] == ["ModelMill workflow"]
    assert with_snippets[0]["insertTextFormat"] == 2 and "$0" in with_snippets[0]["textEdit"]["newText"]
    assert plain[0]["insertTextFormat"] == 1
    text = plain[0]["textEdit"]["newText"]
    assert "$" not in text and set(json.loads(text)) >= {"input_model", "passes"}


def test_no_skeleton_at_the_start_of_a_document_with_text() -> None:
    for text in ('|{"passes": {}}', '|\n{"input_model": {}}'):
        assert "ModelMill workflow" not in _labels(text, "json")


# ------------------------------------------------------------------ over the wire: declared, not guessed


def _enum_key_item(server: JsonRpcClient, root: Path) -> dict[str, Any]:
    uri = (root / "pick.olive.json").as_uri()
    text = '{"passes": {"b": {"type": "ModelBuilder", "prec"}}}'
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "json", "version": 1,
                                                            "text": text}})
    reply = server.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                       "position": {"line": 0, "character": text.index("prec") + 4}})
    items = {item["label"]: item for item in reply["result"]["items"]}
    return items["precision"]


def _start(root: Path, name: str, capabilities: dict[str, Any], options: dict[str, Any]) -> JsonRpcClient:
    server = JsonRpcClient(str(root))
    server.request("initialize", {"processId": None, "rootUri": root.as_uri(), "clientInfo": {"name": name},
                                  "capabilities": capabilities, "initializationOptions": options})
    server.notify("initialized", {})
    return server


@pytest.mark.parametrize(("name", "capabilities", "options", "command"), [
    ("CodeMirror LSP client", {}, {}, None),
    ("Visual Studio Code", {}, {}, None),
    ("some editor", {}, {"triggerSuggestCommand": "editor.action.triggerSuggest"}, "editor.action.triggerSuggest"),
    ("some editor", {"experimental": {"commands": {"commands": ["editor.action.triggerSuggest"]}}}, {},
     "editor.action.triggerSuggest"),
])
def test_key_completion_reopens_suggestions_only_when_the_client_declares_how(
        tmp_path: Path, name: str, capabilities: dict[str, Any], options: dict[str, Any], command: str | None) -> None:
    server = _start(tmp_path, name, capabilities, options)
    try:
        item = _enum_key_item(server, tmp_path)
        assert (item.get("command") or {}).get("command") == command
        assert item.get("insertTextFormat", 1) == 1 and "$" not in item["textEdit"]["newText"]  # no snippetSupport
    finally:
        server.close()


def test_empty_new_workflow_files_get_the_top_level_keys(tmp_path: Path) -> None:
    server = _start(tmp_path, "plain", {}, {})
    try:
        for name, language, text, character in (("new.olive.json", "json", "{}", 1),
                                                 ("new.olive.yaml", "yaml", "", 0)):
            uri = (tmp_path / name).as_uri()
            server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language,
                                                                    "version": 1, "text": text}})
            reply = server.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                               "position": {"line": 0, "character": character}})
            labels = {item["label"] for item in reply["result"]["items"]}
            assert {"input_model", "passes", "systems"} <= labels, (name, labels)
    finally:
        server.close()


def test_expected_refusals_log_one_line_not_a_traceback(tmp_path: Path) -> None:
    server = _start(tmp_path, "plain", {}, {"trusted": False})
    try:
        config = tmp_path / "w.olive.json"
        config.write_text('{"input_model": {"type": "HfModel", "model_path": "m"}, "passes": {}}')
        refused = server.request("workspace/executeCommand", {"command": "modelmill.optimize",
                                                              "arguments": [{"uri": config.as_uri()}]})
        bad = server.request("workspace/executeCommand", {"command": "modelmill.cancel",
                                                          "arguments": [{"runId": [1]}]})
        assert refused["error"]["code"] == -32803 and bad["error"]["code"] == -32602
    finally:
        server.close()
    stderr = b"".join(server.stderr).decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if "answered with error" in line]
    assert len(lines) == 2 and "-32803" in lines[0] and "-32602" in lines[1], stderr
