"""The server and the extension agree on what they share (issue 18): one source, modelmill/lsp/shared.py.

The extension imports extension/src/shared.json, generated from it; package.json's setting defaults and the
TypeScript sources must not hold copies of their own. format_value and the extension's formatValue are checked
against one table of cases (extension/test/fixtures/format_value.json, which the node tests read too).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from modelmill.lsp import shared
from modelmill.lsp.settings import Settings, looks_like_workflow
from modelmill.render import format_value

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "extension" / "src"


def test_generated_json_is_current() -> None:
    assert shared.GENERATED == SOURCES / "shared.json"
    assert shared.GENERATED.read_text() == shared.render(), "run: python -m modelmill.lsp.shared --write"


def test_package_json_defaults_are_the_servers() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    props = package["contributes"]["configuration"]["properties"]
    assert props[f"{shared.SECTION}.configFilePatterns"]["default"] == list(shared.DEFAULT_PATTERNS)
    assert Settings().config_file_patterns == shared.DEFAULT_PATTERNS
    client_commands = {c["command"] for c in package["contributes"]["commands"]}
    assert not client_commands & set(shared.SERVER_COMMANDS.values()), "client and server command ids must differ"


def test_typescript_holds_no_copies() -> None:
    """Every shared string reaches the TypeScript through shared.json, none as a literal of its own."""
    package = json.loads((ROOT / "package.json").read_text())
    views = {view["id"] for group in package["contributes"]["views"].values() for view in group}  # another namespace
    values = [*(set(shared.SERVER_COMMANDS.values()) - views), shared.RUN_EVENT, shared.SET_TRUSTED,
              *shared.DEFAULT_PATTERNS]
    for path in SOURCES.rglob("*.ts"):
        text = path.read_text()
        for value in values:
            assert f"'{value}'" not in text and f'"{value}"' not in text, f"{path.name} copies {value!r}"
        assert shared.UNTRUSTED[:30] not in text, f"{path.name} copies the untrusted message"
        assert not re.search(r"input_model\|passes", text), f"{path.name} lists the workflow keys itself"


def test_workflow_keys_include_engine() -> None:
    assert looks_like_workflow(["engine"])
    assert json.loads(shared.GENERATED.read_text())["workflowKeys"] == ["input_model", "passes", "engine"]


def test_format_value_agrees_with_the_extension() -> None:
    cases = json.loads((ROOT / "extension" / "test" / "fixtures" / "format_value.json").read_text())
    for case in cases["same"]:
        assert format_value(case["value"], case["unit"]) == case["expected"], case
    for case in cases["differ"]:
        assert format_value(case["value"], case["unit"]) == case["python"], case
