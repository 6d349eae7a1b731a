"""Helpers for the language-server tests (a uniquely named module: other test folders have conftests): small
document helpers; the recording pytest-lsp client lives in modelmill.testing.lsp_client (re-exported here)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types

# re-exported for the test modules
from modelmill.testing.jsonrpc import SERVER_COMMAND  # noqa: F401
from modelmill.testing.lsp_client import (  # noqa: F401
    RUN_EVENT,
    make_client,
    plain,
    server_config,
    vscode_capabilities,
)
from pytest_lsp import LanguageClient

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "config" / "data"


async def until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def open_document(client: LanguageClient, uri: str, text: str, language: str = "json", version: int = 1) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id=language, version=version, text=text)))


def replace_document(client: LanguageClient, uri: str, text: str, version: int) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))


async def diagnostics(client: LanguageClient, uri: str, version: int | None = None,
                      timeout: float = 30.0) -> list[types.Diagnostic]:
    """The diagnostics published for ``uri`` (for ``version``, when given)."""
    def found() -> Any:
        for published_uri, published_version, diags, _ in reversed(client.published):  # type: ignore[attr-defined]
            if published_uri == uri and (version is None or published_version == version):
                return [diags]
        return None

    return (await until(found, timeout, f"diagnostics of {uri} v{version}"))[0]


def position_of(text: str, needle: str, offset: int = 0, occurrence: int = 0) -> types.Position:
    """LSP position of ``needle`` (+ ``offset`` characters) in ``text`` (ASCII texts)."""
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    index += offset
    line = text.count("\n", 0, index)
    return types.Position(line=line, character=index - (text.rfind("\n", 0, index) + 1))


async def complete(client: LanguageClient, uri: str, position: types.Position) -> list[types.CompletionItem]:
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position))
    if result is None:
        return []
    return list(result.items if isinstance(result, types.CompletionList) else result)


def flat_config(model_path: str = "model", **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "input_model": {"type": "HfModel", "model_path": model_path},
        "systems": {"local_system": {"type": "LocalSystem",
                                     "accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}},
        "evaluators": {"common_evaluator": {"metrics": [{"name": "latency", "type": "latency",
                                                        "sub_types": [{"name": "avg"}]}]}},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4"}},
        "target": "local_system",
        "output_dir": "out",
        "cache_dir": "cache",
    }
    config.update(extra)
    return config


def dumps(config: Any) -> str:
    return json.dumps(config, indent=2) + "\n"
