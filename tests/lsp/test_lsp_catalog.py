"""Completion and hover for Olive passes ModelMill does not run, from the catalogue via the workflow schema."""

from __future__ import annotations

from modelmill.config import workflow_json_schema
from modelmill.config.olive_catalog import all_olive_passes
from modelmill.lsp.completion import CompletionEnv, complete
from modelmill.lsp.documents import Snapshot
from modelmill.lsp.hover import hover

ENV = CompletionEnv(frozenset({"CPUExecutionProvider"}), snippets=True)


def _cursor(marked: str) -> tuple[Snapshot, int, int]:
    index = marked.index("|")
    text = marked[:index] + marked[index + 1:]
    line, col = text.count("\n", 0, index), index - (text.rfind("\n", 0, index) + 1)
    return Snapshot("file:///tmp/catalog_config.json", 1, text, "json"), line, col


def _items(marked: str) -> dict[str, object]:
    snap, line, col = _cursor(marked)
    return {item["label"]: item for item in complete(snap, line, col, ENV)["items"]}


def _hover(marked: str) -> str:
    snap, line, col = _cursor(marked)
    result = hover(snap, line, col)
    assert result is not None
    return result["contents"]["value"]


def test_schema_lists_every_olive_pass() -> None:
    schema = workflow_json_schema()
    names = set(schema["definitions"]["PassEntry"]["properties"]["type"]["enum"])
    assert set(all_olive_passes()) <= names
    entry = schema["definitions"]["pass.GptqQuantizer"]
    assert entry["properties"]["bits"]["enum"] == [2, 4, 8, 16, 32] and entry["properties"]["bits"]["default"] == 4
    # a data_config may name an entry of data_configs, as Olive resolves it
    assert {"type": "string"} in entry["properties"]["data_config"]["anyOf"]


def test_pass_type_completion_offers_every_olive_pass() -> None:
    labels = set(_items('{"passes": {"q": {"type": "|"}}}'))
    assert set(all_olive_passes()) <= labels
    new_entries = set(_items('{"passes": {|}}'))
    assert "gptq_quantizer (GptqQuantizer)" in new_entries and "model_builder (ModelBuilder)" in new_entries


def test_catalogue_pass_parameters_complete_with_types_defaults_and_values() -> None:
    items = _items('{"passes": {"q": {"type": "GptqQuantizer", |}}}')
    assert {"bits", "group_size", "sym", "desc_act"} <= set(items)
    assert "per_channel" not in items  # another pass's parameter
    assert items["group_size"]["detail"] == "integer"
    assert "default: `128`" in items["group_size"]["documentation"]["value"]
    assert list(_items('{"passes": {"q": {"type": "gptqquantizer", "bits": |}}}'))[:5] == ["2", "4", "8", "16", "32"]
    enum = _items('{"passes": {"q": {"type": "AimetQuantization", "precision": "|"}}}')
    assert {"int8", "int16", "SEARCHABLE_VALUES"} <= set(enum)
    assert "QDQ" in _items('{"passes": {"q": {"type": "OnnxQuantization", "quant_format": "|"}}}')  # its default


def test_catalogue_pass_hover() -> None:
    text = _hover('{"passes": {"q": {"type": "Gptq|Quantizer"}}}')
    assert "(Olive pass)" in text and "ModelMill cannot run it here" in text and "| `group_size` | integer | 128 |" in text
    key = _hover('{"passes": {"q": {"type": "GptqQuantizer", "bi|ts": 4}}}')
    assert "type: `integer`" in key and "default: `4`" in key and "allowed: `2`, `4`, `8`, `16`, `32`" in key
