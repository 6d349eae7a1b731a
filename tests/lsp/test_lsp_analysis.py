"""The server's pure analysis, called directly: cursor location on half-typed text,
completion, hover, code actions, symbols, settings, estimates and feature isolation."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml
from lsp_helpers import DATA, dumps, flat_config
from lsprotocol import types

from modelmill.config import Environment, parse_document, validate_document
from modelmill.lsp.code_actions import code_actions
from modelmill.lsp.completion import CompletionEnv, complete
from modelmill.lsp.documents import Codec, Snapshot
from modelmill.lsp.estimate import estimate_steps, parameter_count
from modelmill.lsp.hover import hover
from modelmill.lsp.locate import locate
from modelmill.lsp.settings import Settings, matches_patterns
from modelmill.lsp.symbols import document_symbols

CPU_ONLY = Environment(frozenset({"CPUExecutionProvider"}))
ENV = CompletionEnv(frozenset({"CPUExecutionProvider"}), snippets=True)


def _cursor(marked: str) -> tuple[str, int, int]:
    index = marked.index("|")
    text = marked[:index] + marked[index + 1:]
    return text, text.count("\n", 0, index), index - (text.rfind("\n", 0, index) + 1)


def _snap(text: str, fmt: str = "json", name: str = "/tmp/config") -> Snapshot:
    return Snapshot(f"file://{name}.{fmt}", 1, text, fmt)


def _labels(marked: str, fmt: str = "json") -> list[str]:
    text, line, col = _cursor(marked)
    return [item["label"] for item in complete(_snap(text, fmt), line, col, ENV)["items"]]


# ------------------------------------------------------------------ positions


def test_codec_converts_to_utf16() -> None:
    codec = Codec('{"a": "😀", "b": 1}', "utf-16")
    assert codec.position(0, 9).character == 10  # after the emoji: two UTF-16 units
    assert codec.column(0, 10) == 9
    assert Codec("é", "utf-8").position(0, 1).character == 2


# ------------------------------------------------------------------ locating the cursor


@pytest.mark.parametrize("marked, kind, path, prefix", [
    ('{\n  |\n}', "key", (), ""),
    ('{\n  "input_model": {},\n  "pa|\n}', "key", (), "pa"),  # no closing quote, no colon
    ('{"passes": {"q": {"type": "Onnx|"}}}', "value", ("passes", "q", "type"), "Onnx"),
    ('{"passes": {"q": {"type": |}}}', "value", ("passes", "q", "type"), ""),
    ('{"passes": {"q": [{"type": "A"}, {|}]}}', "key", ("passes", "q", 1), ""),
    ('{"a": 1\n "b": [1 2 |]}', "value", ("b", 2), ""),  # missing commas
    ('{"input_model": {"typ|e": "HfModel"}}', "key", ("input_model",), "typ"),
    ("input_model:\n  type: HfModel\n  mo|\npasses: {}\n", "key", ("input_model",), "mo"),
    ("passes:\n  a:\n    type: Onnx|\n", "value", ("passes", "a", "type"), "Onnx"),
    ("passes:\n  a:\n    type: ModelBuilder\n  |\n", "key", ("passes",), ""),  # a blank line's indentation
    ("evaluators:\n  e:\n    metrics:\n      - na|\n", "key", ("evaluators", "e", "metrics", 0), "na"),
])
def test_locate_half_typed_text(marked: str, kind: str, path: tuple[Any, ...], prefix: str) -> None:
    text, line, col = _cursor(marked)
    fmt = "json" if marked.lstrip().startswith("{") else "yaml"
    found = locate(text, fmt, line, col, parse_document(text, f"x.{fmt}").root)
    assert (found.kind, found.path, found.prefix) == (kind, path, prefix)


# ------------------------------------------------------------------ completion


def test_top_level_keys_required_first_and_not_repeated() -> None:
    labels = _labels('{\n  "passes": {},\n  |\n}')
    assert labels[0] == "input_model" and "passes" not in labels and "engine" not in labels


def test_keys_inside_a_pass_follow_its_type() -> None:
    dynamic = _labels('{"passes": {"q": {"type": "OnnxDynamicQuantization", |}}}')
    builder = _labels('{"passes": {"q": {"type": "ModelBuilder", |}}}')
    assert "per_channel" in dynamic and "per_channel" not in builder and "int4_block_size" in builder


def test_value_completions_from_the_schema_and_the_document() -> None:
    assert "OnnxConversion" in _labels('{"passes": {"q": {"type": "|"}}}')
    assert _labels('{"systems": {"s": {"accelerators": [{"device": "|"}]}}}')[:2] == ["cpu", "cpu_spr"]
    assert "tpe" in _labels('{"search_strategy": {"sampler": "|"}}')
    assert "percent-max-degradation" in _labels(
        '{"evaluators": {"e": {"metrics": [{"sub_types": [{"goal": {"type": "|"}}]}]}}}')
    assert _labels('{"target": "|", "systems": {"local": {}, "remote": {}}}') == ["local", "remote"]
    assert _labels('{"data_configs": [{"name": "wiki"}], "evaluators": {"e": {"metrics": [{"data_config": "|"}]}}}') \
        == ["wiki"]
    metric = _labels('{"evaluators": {"e": {"metrics": [{"type": "latency", "sub_types": [{"name": "|"}]}]}}}')
    assert metric[:3] == ["avg", "max", "min"] and "p95" in metric and "prefill_ms" not in metric
    providers = _labels('{"systems": {"s": {"accelerators": [{"device": "gpu", "execution_providers": ["|"]}]}}}')
    assert providers[0] == "CUDAExecutionProvider" and "CPUExecutionProvider" in providers


def test_model_path_completes_files_and_samples(tmp_path: Path) -> None:
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "notes.txt").write_text("")
    text, line, col = _cursor('{"input_model": {"type": "HfModel", "model_path": "models/|"}}')
    snap = Snapshot((tmp_path / "config.json").as_uri(), 1, text, "json")
    items = complete(snap, line, col, ENV)["items"]
    assert {"tiny/", "notes.txt", "sample:smollm2"} <= {i["label"] for i in items}
    folder = next(i for i in items if i["label"] == "tiny/")
    assert folder["textEdit"]["newText"] == '"models/tiny/$0"'


def test_yaml_completion_inserts_yaml() -> None:
    text, line, col = _cursor("passes:\n  |\n")
    items = complete(_snap(text, "yaml"), line, col, ENV)["items"]
    builder = next(i for i in items if i["label"] == "model_builder (ModelBuilder)")
    assert builder["textEdit"]["newText"] == "${1:model_builder}:\n  type: ModelBuilder"
    text, line, col = _cursor("input_model:\n  |\n")
    item = next(i for i in complete(_snap(text, "yaml"), line, col, ENV)["items"] if i["label"] == "type")
    assert item["textEdit"]["newText"].startswith("type: ${1|HfModel,")


def test_json_key_snippet_adds_a_comma_before_a_following_member() -> None:
    text, line, col = _cursor('{\n  |\n  "passes": {}\n}')
    item = next(i for i in complete(_snap(text), line, col, ENV)["items"] if i["label"] == "output_dir")
    assert item["textEdit"]["newText"] == '"output_dir": "$1",'


# ------------------------------------------------------------------ hover, actions, symbols


def _hover(marked: str, installed: frozenset[str] | None = frozenset({"CPUExecutionProvider"})) -> str:
    text, line, col = _cursor(marked)
    result = hover(_snap(text), line, col, installed)
    assert result is not None
    return result["contents"]["value"]


def test_hover_texts() -> None:
    assert "does not have" not in _hover('{"passes": {"q": {"type": "OnnxDyn|amicQuantization"}}}')
    assert "| `per_channel` |" in _hover('{"passes": {"q": {"type": "OnnxDyn|amicQuantization"}}}')
    text = _hover('{"systems": {"s": {"accelerators": [{"execution_providers": ["CUDAExe|cutionProvider"]}]}}}')
    assert "Available here: **no**" in text and "onnxruntime-gpu" in text
    assert "Available here: **yes**" in _hover('{"x": {"execution_providers": ["CPUExec|utionProvider"]}}')
    sampler = _hover('{"search_strategy": {"samp|ler": "tpe"}}')
    assert "allowed: `tpe`, `random`, `sequential`" in sampler
    assert "defined in `evaluators`" in _hover('{"evaluator": "e|1", "evaluators": {"e1": {"metrics": []}}}')


def _actions(text: str, fmt: str = "json") -> tuple[Snapshot, list[types.CodeAction]]:
    snap = _snap(text, fmt)
    found = validate_document(snap.doc, CPU_ONLY)
    return snap, code_actions(snap, found, (0, 0), (10_000, 0), Settings())


def _apply(text: str, edits: list[types.TextEdit]) -> str:
    codec = Codec(text)
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        start = codec.offset(edit.range.start.line, edit.range.start.character)
        end = codec.offset(edit.range.end.line, edit.range.end.character)
        text = text[:start] + edit.new_text + text[end:]
    return text


@pytest.mark.parametrize("name", ["tutorial_config.json", "tutorial_config.yaml"])
def test_migrate_action_produces_the_flat_form(name: str) -> None:
    text = (DATA / name).read_text()
    snap, actions = _actions(text, "yaml" if name.endswith("yaml") else "json")
    migrate = next(a for a in actions if a.title.startswith("Migrate"))
    migrated = _apply(text, migrate.edit.changes[snap.uri])
    after = validate_document(parse_document(migrated, name), CPU_ONLY)
    assert not [d for d in after if d.code == "old-schema" or d.severity == "error"]


def test_remove_redundant_pass_keeps_valid_json_and_yaml() -> None:
    config = flat_config(passes={"builder": {"type": "ModelBuilder"},
                                 "fuse": {"type": "OrtTransformersOptimization"}, "last": {"type": "OnnxPeepholeOptimizer"}})
    for text, fmt in ((dumps(config), "json"), (yaml.safe_dump(config, sort_keys=False), "yaml")):
        snap, actions = _actions(text, fmt)
        remove = next(a for a in actions if a.title == "Remove pass 'fuse'")
        fixed = _apply(text, remove.edit.changes[snap.uri])
        data = json.loads(fixed) if fmt == "json" else yaml.safe_load(fixed)
        assert list(data["passes"]) == ["builder", "last"]


def test_did_you_mean_and_add_missing_in_yaml() -> None:
    config = flat_config()
    del config["input_model"]["model_path"]
    config["outptu_dir"] = config.pop("output_dir")
    text = yaml.safe_dump(config, sort_keys=False)
    snap, actions = _actions(text, "yaml")
    rename = next(a for a in actions if a.title == "Change to 'output_dir'")
    add = next(a for a in actions if a.title == "Add missing key 'model_path'")
    fixed = yaml.safe_load(_apply(_apply(text, rename.edit.changes[snap.uri]), []))
    assert "output_dir" in fixed
    assert yaml.safe_load(_apply(text, add.edit.changes[snap.uri]))["input_model"]["model_path"] == ""


def test_document_symbols_outline() -> None:
    text = (DATA / "tutorial_config.json").read_text()
    symbols = document_symbols(_snap(text))
    assert [s.name for s in symbols] == ["input_model", "systems", "evaluators", "passes", "engine"]
    assert symbols[0].detail == "PyTorchModel Qwen/Qwen2.5-0.5B-Instruct"
    assert [c.detail for c in symbols[3].children] == ["1. ModelBuilder", "2. OrtTransformersOptimization"]
    assert [c.name for c in symbols[2].children[0].children] == ["latency"]


# ------------------------------------------------------------------ settings, estimates, isolation


def test_settings_and_file_patterns() -> None:
    settings = Settings.from_json({"configFilePatterns": ["**/pipelines/*.y?(a)ml"], "defaultDevice": "gpu",
                                   "diagnosticsDelayMs": "soon", "cacheDir": 3})
    assert settings.default_device == "gpu" and settings.diagnostics_delay_ms == 0 and settings.cache_dir is None
    assert matches_patterns("/w/pipelines/a.yml", settings.config_file_patterns)
    assert not matches_patterns("/w/other/a.yml", settings.config_file_patterns)
    defaults = Settings().config_file_patterns
    assert matches_patterns("/w/my-olive-config.yaml", defaults) and matches_patterns("C:\\w\\modelmill.json", defaults)
    assert not matches_patterns("/w/package.json", defaults)


def test_parameter_count_and_estimates(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]},
                         "__metadata__": {"format": "pt"}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "float32"}))
    count, precision = parameter_count(tmp_path, "hf")
    assert (count, precision) == (1_000_000, "fp32")
    steps = estimate_steps(1e9, "fp32", [
        ("builder", "ModelBuilder", {"precision": "int4", "int4_block_size": 32}, frozenset({"hf"}), None, False),
        ("quant", "OnnxDynamicQuantization", {}, frozenset({"onnx"}), None, True)])
    assert steps[0]["estimatedOutputMB"] == pytest.approx(1e9 * (0.5 + 2 / 32) / 1e6 + 1, rel=1e-3)
    assert steps[0]["estimatedSeconds"] > 60 and steps[1]["estimatedSeconds"] == 0 and steps[1]["precision"] == "int8"


def test_guard_isolates_a_failing_feature() -> None:
    from modelmill.lsp.server import guard

    logged: list[str] = []

    class Fake:
        def log_exception(self, where: str) -> None:
            logged.append(where)

    @guard("hover", default="empty")
    def broken(ls: Any, params: Any) -> str:
        raise KeyError("boom")

    assert broken(Fake(), None) == "empty" and logged == ["hover"]


def test_run_settings_become_overrides(tmp_path: Path) -> None:
    """The editor's settings placed on a run (engine/prepare.py's placement, with the manager's base folder)."""
    from types import SimpleNamespace

    from modelmill.engine.prepare import RunDefaults, placement
    from modelmill.lsp.runs import RunManager

    settings = Settings(default_device="gpu", default_provider="CUDAExecutionProvider", cache_dir="/abs/cache")
    manager = RunManager(SimpleNamespace(settings=settings, protocol=SimpleNamespace(workspace=None)))  # type: ignore
    defaults = RunDefaults(settings.cache_dir, settings.default_device, settings.default_provider)
    (tmp_path / "model").mkdir()
    config = {"input_model": {"type": "HfModel", "model_path": "model"},
              "passes": {"b": {"type": "ModelBuilder"}}, "output_dir": "out"}
    snap = Snapshot((tmp_path / "c.json").as_uri(), 1, dumps(config), "json")
    placed = placement(snap.doc.data, manager._base_dir(snap), snap.doc.base_dir, defaults)
    overrides = placed.overrides
    assert overrides["target"] == "editor_target"
    assert overrides["systems"]["editor_target"]["accelerators"] == [
        {"device": "gpu", "execution_providers": ["CUDAExecutionProvider"]}]
    assert overrides["cache_dir"] == "/abs/cache"
    assert overrides["input_model.model_path"] == str((tmp_path / "model").resolve())
    assert placed.output_dir == tmp_path / "out"
    snap = Snapshot((tmp_path / "d.json").as_uri(), 1, dumps(flat_config()), "json")
    overrides = placement(snap.doc.data, manager._base_dir(snap), snap.doc.base_dir, defaults).overrides
    assert "target" not in overrides and overrides["cache_dir"] == "/abs/cache"
    assert placement(snap.doc.data, None, snap.doc.base_dir, defaults).overrides == {}  # the CLI: as written


def test_locate_shortcut_on_clean_documents_agrees_with_the_full_scan() -> None:
    text = (DATA / "tutorial_config.json").read_text()
    root = parse_document(text, "t.json").root
    lines = text.split("\n")
    for line, line_text in enumerate(lines):
        for col in range(0, len(line_text) + 1, 2):
            full = locate(text, "json", line, col, root, clean=False)
            short = locate(text, "json", line, col, root, clean=True)
            assert (full.kind, full.path, full.prefix, full.needs_comma, full.has_value, full.existing) == \
                (short.kind, short.path, short.prefix, short.needs_comma, short.has_value, short.existing), (line, col)


@pytest.mark.parametrize("marked", [
    '{\n  |\n}', '{"passes": {"q": {"type": "ModelBuilder", |}}}', '{"passes": {"q": {"type": "|"}}}',
    '{"passes": {|}}', '{"evaluator": "|", "evaluators": {"e": {}}}', '{"evaluate_input_model": |}',
    '{"systems": {"s": {"accelerators": [{"execution_providers": ["|"]}]}}}',
    '{"input_model": {"type": "HfModel", "model_path": "|"}}',
])
def test_every_completion_item_has_documentation(marked: str) -> None:
    text, line, col = _cursor(marked)
    items = complete(_snap(text), line, col, ENV)["items"]
    assert items and all(item.get("documentation") and item["documentation"]["value"] for item in items), \
        [item["label"] for item in items if not item.get("documentation")]


def test_other_json_is_not_parsed_to_decide() -> None:
    big = '{"dependencies": {' + ", ".join(f'"p{i}": "1.0"' for i in range(2000)) + "}}"
    snap = _snap(big, name="/tmp/package")
    assert not snap.is_workflow(Settings()) and snap._doc is None
    assert _snap('{"passes": {}}').is_workflow(Settings())
    assert not _snap('{"x": {"passes": {}}}').is_workflow(Settings())


def test_trigger_characters_only_answer_where_they_mean_something() -> None:
    text, line, col = _cursor('{"input_model": {"type": "HfModel", "task": "text gen|"}}')
    assert complete(_snap(text), line, col, ENV, trigger=" ")["items"] == []
    text, line, col = _cursor("passes:\n  a:\n    type: |\n")
    assert complete(_snap(text, "yaml"), line, col, ENV, trigger=" ")["items"]
    text, line, col = _cursor('{"output_dir": "models/|"}')
    assert complete(_snap(text), line, col, ENV, trigger="/")["items"] == []


def test_the_json_results_use_lsprotocols_numbers() -> None:
    """completion/hover/early build LSP's JSON without lsprotocol (the early session answers before it loads):
    their numbers are lsprotocol's."""
    from lsprotocol import types

    from modelmill.lsp import completion, early

    kinds = types.CompletionItemKind
    assert (completion.KIND_MODULE, completion.KIND_PROPERTY, completion.KIND_VALUE, completion.KIND_SNIPPET,
            completion.KIND_FILE, completion.KIND_REFERENCE, completion.KIND_FOLDER, completion.KIND_ENUM_MEMBER) == \
        (kinds.Module, kinds.Property, kinds.Value, kinds.Snippet, kinds.File, kinds.Reference, kinds.Folder,
         kinds.EnumMember)
    assert (completion.PLAIN_TEXT, completion.SNIPPET) == (types.InsertTextFormat.PlainText,
                                                           types.InsertTextFormat.Snippet)
    assert completion.ADJUST_INDENTATION == types.InsertTextMode.AdjustIndentation
    assert early.TRIGGER_CHARACTER == types.CompletionTriggerKind.TriggerCharacter
