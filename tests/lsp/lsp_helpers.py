"""Helpers for the language-server tests (a uniquely named module: other test folders have conftests): a pytest-lsp client that records what the server sends
(diagnostics with versions, run events with arrival times), and small document helpers."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features
from pygls.protocol import default_converter

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "config" / "data"
SERVER_COMMAND = [sys.executable, "-m", "modelmill", "lsp"]
RUN_EVENT = "modelmill/runEvent"


def plain(value: Any) -> Any:
    """pygls's attribute objects (custom notification params) → dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def make_client() -> LanguageClient:
    client = LanguageClient(converter_factory=default_converter)
    client.published = []  # type: ignore[attr-defined]
    client.run_events = []  # type: ignore[attr-defined]
    features = dict(DEFAULT_CLIENT_FEATURES)

    def publish(client: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        client.diagnostics[params.uri] = params.diagnostics
        client.published.append((params.uri, params.version, params.diagnostics, time.perf_counter()))  # type: ignore

    def run_event(client: LanguageClient, params: Any) -> None:
        client.run_events.append((plain(params), time.time()))  # type: ignore[attr-defined]

    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish
    features[RUN_EVENT] = run_event
    register_lsp_features(client, features)
    return client


def server_config(env: dict[str, str] | None = None) -> ClientServerConfig:
    import os

    return ClientServerConfig(server_command=SERVER_COMMAND, client_factory=make_client,
                              server_env={**os.environ, **(env or {})})


def vscode_capabilities() -> types.ClientCapabilities:
    import pytest_lsp

    return pytest_lsp.client_capabilities("visual-studio-code")


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
