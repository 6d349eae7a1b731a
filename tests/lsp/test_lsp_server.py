"""The language server as a client sees it (pytest-lsp against `python -m modelmill lsp`): diagnostics
with codes and exact ranges, completion, hover, code actions, symbols, commands, settings and trust."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytest_lsp
from lsp_helpers import (
    DATA,
    complete,
    diagnostics,
    dumps,
    flat_config,
    open_document,
    position_of,
    replace_document,
    server_config,
    until,
)
from lsprotocol import types
from modelmill.testing.lsp_client import initialize_like_vscode
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")
SETTINGS = {"diagnosticsDelayMs": 0}


@pytest_lsp.fixture(scope="module", config=server_config())
async def client(lsp_client: LanguageClient, workspace: Path):
    await initialize_like_vscode(lsp_client, workspace, SETTINGS, "Visual Studio Code")
    yield
    await lsp_client.shutdown_session()


def _range(diag: types.Diagnostic) -> tuple[int, int, int, int]:
    r = diag.range
    return r.start.line, r.start.character, r.end.line, r.end.character


def _span(text: str, needle: str, occurrence: int = 0) -> tuple[int, int, int, int]:
    start = position_of(text, needle, occurrence=occurrence)
    end = position_of(text, needle, len(needle), occurrence=occurrence)
    return start.line, start.character, end.line, end.character


# ------------------------------------------------------------------ diagnostics


async def test_tutorial_config_old_schema(client: LanguageClient, workspace: Path) -> None:
    text = (DATA / "tutorial_config.json").read_text()
    uri = (workspace / "tutorial_config.json").as_uri()
    open_document(client, uri, text)
    found = await diagnostics(client, uri, 1)
    codes = {d.code for d in found}
    assert {"old-schema", "redundant-pass", "hub-id-not-local"} <= codes
    old = [d for d in found if d.code == "old-schema"]
    assert all(d.data["migrate"] is True and d.source == "modelmill" for d in old)
    assert all(d.code_description and d.code_description.href.endswith("diagnostics.md#old-schema") for d in old)
    # the input model's 'config' key and the old 'engine' block, at their exact key ranges
    assert _span(text, '"config"') in {_range(d) for d in old}
    assert _span(text, '"engine"') in {_range(d) for d in old}
    search = next(d for d in old if d.data.get("replace_with") == "sampler")
    assert _range(search) == _span(text, '"search_algorithm"')
    redundant = next(d for d in found if d.code == "redundant-pass")
    assert _range(redundant) == _span(text, '"optimization"')
    assert list(redundant.tags) == [types.DiagnosticTag.Unnecessary]


async def test_unknown_pass_type_with_did_you_mean_fix(client: LanguageClient, workspace: Path) -> None:
    config = flat_config(passes={"builder": {"type": "ModelBilder", "precision": "int4"}})
    text = dumps(config)
    uri = (workspace / "unknown_pass.json").as_uri()
    open_document(client, uri, text)
    found = await diagnostics(client, uri, 1)
    diag = next(d for d in found if d.code == "unknown-pass-type")
    assert diag.severity == types.DiagnosticSeverity.Error
    assert _range(diag) == _span(text, '"ModelBilder"')
    assert "did you mean 'ModelBuilder'" in diag.message and diag.data["replace_with"] == "ModelBuilder"
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=diag.range,
        context=types.CodeActionContext(diagnostics=[diag])))
    fix = next(a for a in actions if a.title == "Change to 'ModelBuilder'")
    edit = fix.edit.changes[uri][0]
    assert edit.new_text == '"ModelBuilder"' and _range(edit) == _range(diag)


async def test_ep_device_mismatch(client: LanguageClient, workspace: Path) -> None:
    config = flat_config(systems={"local_system": {"type": "LocalSystem", "accelerators": [
        {"device": "cpu", "execution_providers": ["CUDAExecutionProvider"]}]}})
    text = dumps(config)
    uri = (workspace / "ep_mismatch.json").as_uri()
    open_document(client, uri, text)
    found = await diagnostics(client, uri, 1)
    mismatch = next(d for d in found if d.code == "ep-device-mismatch")
    assert _range(mismatch) == _span(text, '"CUDAExecutionProvider"')
    assert mismatch.data["replace_with"] == "CPUExecutionProvider"
    assert mismatch.code_description.href.endswith("#ep-device-mismatch")


async def test_broken_json_mid_edit_then_fixed(client: LanguageClient, workspace: Path) -> None:
    good = dumps(flat_config())
    uri = (workspace / "mid_edit.json").as_uri()
    open_document(client, uri, good)
    assert [d for d in await diagnostics(client, uri, 1) if d.severity == types.DiagnosticSeverity.Error] == []
    # the user deletes the comma after "output_dir" and starts a new key: two syntax problems
    broken = good.replace('"output_dir": "out",', '"output_dir": "out"\n  "pas', 1)
    replace_document(client, uri, broken, 2)
    found = await diagnostics(client, uri, 2)
    syntax = [d for d in found if d.code == "syntax"]
    assert syntax, found
    after_out = position_of(broken, '"pas\n')
    assert (syntax[0].range.start.line, syntax[0].range.start.character) == (after_out.line, after_out.character)
    # completion still works in the broken document
    items = await complete(client, uri, position_of(broken, '"pas\n', 4))
    assert "passes" not in {i.label for i in items}  # already there
    assert "evaluate_input_model" in {i.label for i in items}
    replace_document(client, uri, good, 3)
    assert not [d for d in await diagnostics(client, uri, 3) if d.code == "syntax"]


async def test_yaml_config(client: LanguageClient, workspace: Path) -> None:
    text = (DATA / "tutorial_config.yaml").read_text()
    uri = (workspace / "tutorial_config.yaml").as_uri()
    open_document(client, uri, text, "yaml")
    found = await diagnostics(client, uri, 1)
    old = [d for d in found if d.code == "old-schema"]
    assert old and _span(text, "config:") [:2] in {_range(d)[:2] for d in old}
    engine = next(d for d in old if _range(d)[:2] == _span(text, "engine")[:2])
    assert engine.range.end.character == engine.range.start.character + len("engine")
    # a YAML typo: an unknown key, flagged on its key with a did-you-mean
    typo = text.replace("output_dir:", "outptu_dir:")
    replace_document(client, uri, typo, 2)
    found = await diagnostics(client, uri, 2)
    unknown = next(d for d in found if d.code == "unknown-key")
    assert _range(unknown) == _span(typo, "outptu_dir") and unknown.data["replace_with"] == "output_dir"


async def test_other_json_is_left_alone(client: LanguageClient, workspace: Path) -> None:
    uri = (workspace / "package.json").as_uri()
    open_document(client, uri, '{"name": "x", "version": 1,')
    probe = (workspace / "probe.json").as_uri()
    open_document(client, probe, dumps(flat_config()))
    await diagnostics(client, probe, 1)
    assert uri not in client.diagnostics
    assert await complete(client, uri, types.Position(line=0, character=1)) == []


# ------------------------------------------------------------------ completion and hover


async def test_completion_positions(client: LanguageClient, workspace: Path) -> None:
    text = dumps(flat_config(passes={"builder": {"type": "ModelBuilder", "precision": "int4"}},
                             evaluator="common_evaluator"))
    uri = (workspace / "completion.json").as_uri()
    open_document(client, uri, text)
    await diagnostics(client, uri, 1)
    # top level, on a new line after '{': keys that are not there yet; input_model is present
    top = await complete(client, uri, types.Position(line=1, character=2))
    labels = [i.label for i in top]
    assert "search_strategy" in labels and "input_model" not in labels
    item = next(i for i in top if i.label == "search_strategy")
    assert item.documentation and "Search" in item.documentation.value
    # inside a pass: ModelBuilder's parameters, with documentation, excluding those present
    inside = await complete(client, uri, position_of(text, '"precision"'))
    labels = {i.label for i in inside}
    assert {"int4_block_size", "int4_accuracy_level", "exclude_embeds"} <= labels and "type" not in labels
    # the pass type value: every pass from the registry
    values = await complete(client, uri, position_of(text, '"ModelBuilder"', 1))
    assert {"ModelBuilder", "OnnxConversion", "OnnxDynamicQuantization"} <= {i.label for i in values}
    described = next(i for i in values if i.label == "OnnxDynamicQuantization")
    assert "int8" in described.documentation.value
    # an evaluator reference: names defined in the document
    refs = await complete(client, uri, position_of(text, '"common_evaluator"', 1, occurrence=1))
    assert [i.label for i in refs] == ["common_evaluator"]
    assert refs[0].text_edit.new_text == '"common_evaluator"'


async def test_completion_snippet_fills_required_keys(client: LanguageClient, workspace: Path) -> None:
    text = '{\n  \n}\n'
    uri = (workspace / "empty_olive_config.json").as_uri()  # a workflow by its file name
    open_document(client, uri, text)
    items = await complete(client, uri, types.Position(line=1, character=2))
    first = items[0]
    assert first.label == "input_model" and first.sort_text < items[1].sort_text
    assert first.insert_text_format == types.InsertTextFormat.Snippet
    assert '"type": "${1|HfModel,PyTorchModel,ONNXModel' in first.text_edit.new_text


async def test_yaml_completion(client: LanguageClient, workspace: Path) -> None:
    text = "input_model:\n  type: HfModel\n  model_path: model\npasses:\n  quant:\n    type: \n"
    uri = (workspace / "completion.yaml").as_uri()
    open_document(client, uri, text, "yaml")
    values = await complete(client, uri, types.Position(line=5, character=10))
    assert "OnnxDynamicQuantization" in {i.label for i in values}
    keys = await complete(client, uri, types.Position(line=2, character=2))
    assert "task" in {i.label for i in keys}


async def test_hover(client: LanguageClient, workspace: Path) -> None:
    text = dumps(flat_config())
    uri = (workspace / "hover.json").as_uri()
    open_document(client, uri, text)
    await diagnostics(client, uri, 1)

    async def hover_at(position: types.Position) -> str:
        result = await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=position))
        assert result is not None
        return result.contents.value

    pass_doc = await hover_at(position_of(text, '"ModelBuilder"', 3))
    assert "**ModelBuilder**" in pass_doc and "| `precision` |" in pass_doc
    param = await hover_at(position_of(text, '"precision"', 2))
    assert "default: `\"int4\"`" in param and "`int8`" in param
    provider = await hover_at(position_of(text, '"CPUExecutionProvider"', 3))
    assert "Available here" in provider


# ------------------------------------------------------------------ code actions, symbols


async def test_migrate_code_action_gives_a_clean_config(client: LanguageClient, workspace: Path) -> None:
    text = (DATA / "tutorial_config.json").read_text()
    uri = (workspace / "migrate_me.json").as_uri()
    open_document(client, uri, text)
    await diagnostics(client, uri, 1)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
        context=types.CodeActionContext(diagnostics=[])))
    migrate = next(a for a in actions if a.title.startswith("Migrate the whole config"))
    edit = migrate.edit.changes[uri][0]
    migrated = edit.new_text
    assert json.loads(migrated)["input_model"]["type"] == "HfModel"
    replace_document(client, uri, migrated, 2)
    found = await diagnostics(client, uri, 2)
    assert not [d for d in found if d.code == "old-schema" or d.severity == types.DiagnosticSeverity.Error]
    # the remaining findings are about the content; their quick fixes make it clean
    version = 2
    while found:
        diag = found[0]
        actions = await client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), range=diag.range,
            context=types.CodeActionContext(diagnostics=[diag])))
        fix = next(a for a in actions if a.diagnostics and a.diagnostics[0].code == diag.code)
        migrated = _apply(migrated, fix.edit.changes[uri])
        version += 1
        replace_document(client, uri, migrated, version)
        found = await diagnostics(client, uri, version)
        assert version < 8, found
    assert "optimization" not in json.loads(migrated)["passes"]


def _apply(text: str, edits: list[types.TextEdit]) -> str:
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        start = offsets[edit.range.start.line] + edit.range.start.character
        end = offsets[edit.range.end.line] + edit.range.end.character
        text = text[:start] + edit.new_text + text[end:]
    return text


async def test_add_missing_required_key(client: LanguageClient, workspace: Path) -> None:
    config = flat_config()
    del config["input_model"]["model_path"]
    text = dumps(config)
    uri = (workspace / "missing.json").as_uri()
    open_document(client, uri, text)
    found = await diagnostics(client, uri, 1)
    missing = next(d for d in found if d.code == "missing-required")
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=missing.range,
        context=types.CodeActionContext(diagnostics=[missing])))
    add = next(a for a in actions if a.title == "Add missing key 'model_path'")
    fixed = _apply(text, add.edit.changes[uri])
    assert json.loads(fixed)["input_model"]["model_path"] == ""


async def test_document_symbols(client: LanguageClient, workspace: Path) -> None:
    text = dumps(flat_config(passes={"convert": {"type": "OnnxConversion"},
                                     "quantize": {"type": "OnnxDynamicQuantization"}}))
    uri = (workspace / "symbols.json").as_uri()
    open_document(client, uri, text)
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    names = [s.name for s in symbols]
    assert names[:4] == ["input_model", "systems", "evaluators", "passes"]
    passes = next(s for s in symbols if s.name == "passes")
    assert [(c.name, c.detail) for c in passes.children] == [("convert", "1. OnnxConversion"),
                                                             ("quantize", "2. OnnxDynamicQuantization")]
    model = symbols[0]
    assert model.detail == "HfModel model"


# ------------------------------------------------------------------ commands, settings, trust


async def test_validate_plan_and_runs_commands(client: LanguageClient, workspace: Path) -> None:
    path = workspace / "on_disk.json"
    path.write_text(dumps(flat_config(passes={"builder": {"type": "ModelBilder"}})))
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="modelmill.validate", arguments=[{"uri": path.as_uri()}]))
    assert result["errors"] == 1 and result["diagnostics"][0]["code"] == "unknown-pass-type"
    path.write_text(dumps(flat_config()))
    plan = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="modelmill.plan", arguments=[{"uri": path.as_uri()}]))
    step = plan["passes"][0]
    assert (step["name"], step["type"], step["cached"]) == ("builder", "ModelBuilder", False)
    assert step["estimatedSeconds"] > 0 and step["estimatedMemoryMB"] > 0
    assert plan["outputDir"] == str(workspace / "out") and plan["executionProvider"] == "CPUExecutionProvider"
    runs = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="modelmill.runs", arguments=[{}]))
    assert runs == []


async def test_bad_command_arguments_do_not_break_other_features(client: LanguageClient, workspace: Path) -> None:
    with pytest.raises(Exception, match="missing argument 'runId'"):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="modelmill.cancel", arguments=[{"nope": 1}]))
    uri = (workspace / "after_error.json").as_uri()
    open_document(client, uri, dumps(flat_config()))
    assert await complete(client, uri, types.Position(line=1, character=2))


async def test_settings_change_file_patterns_without_restart(client: LanguageClient, workspace: Path) -> None:
    uri = (workspace / "pipeline.json").as_uri()
    open_document(client, uri, '{"steps": [1, 2}')  # no workflow keys: left alone
    probe = (workspace / "probe2.json").as_uri()
    open_document(client, probe, dumps(flat_config()))
    await diagnostics(client, probe, 1)
    assert uri not in client.diagnostics
    client.set_configuration({**SETTINGS, "configFilePatterns": ["**/pipeline.json"]}, section="modelmill")
    count = len(client.published)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    found = await diagnostics(client, uri)
    assert any(d.code == "syntax" for d in found)
    client.set_configuration(SETTINGS, section="modelmill")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await until(lambda: len(client.published) > count + 1, what="republished diagnostics")


async def test_untrusted_workspace_refuses_runs_but_validates(client: LanguageClient, workspace: Path) -> None:
    client.protocol.notify("modelmill/setTrusted", {"trusted": False})
    path = workspace / "untrusted.json"
    path.write_text(dumps(flat_config()))
    await until(lambda: any("untrusted" in m.message for m in client.log_messages), what="trust change")
    with pytest.raises(Exception, match="untrusted workspace"):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="modelmill.optimize", arguments=[{"uri": path.as_uri()}]))
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="modelmill.validate", arguments=[{"uri": path.as_uri()}]))
    assert result["errors"] == 0
    client.protocol.notify("modelmill/setTrusted", {"trusted": True})
