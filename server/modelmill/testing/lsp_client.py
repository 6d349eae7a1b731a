"""The pytest-lsp client of the language-server tests: it records what the server sends (diagnostics with their
versions and arrival, run events), and ``initialize_like_vscode`` sets up a session as VS Code does.

A test module's client fixture::

    @pytest_lsp.fixture(scope="module", config=server_config())
    async def client(lsp_client: LanguageClient, workspace: Path):
        await initialize_like_vscode(lsp_client, workspace, SETTINGS)
        yield
        await lsp_client.shutdown_session()
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from modelmill.testing.jsonrpc import SERVER_COMMAND

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
    """A LanguageClient that also keeps ``published`` (uri, version, diagnostics, perf_counter) and
    ``run_events`` (params as dicts, time.time())."""
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
    """``python -m modelmill lsp`` with this environment (plus ``env``) and the recording client."""
    return ClientServerConfig(server_command=SERVER_COMMAND, client_factory=make_client,
                              server_env={**os.environ, **(env or {})})


def vscode_capabilities() -> types.ClientCapabilities:
    import pytest_lsp

    return pytest_lsp.client_capabilities("visual-studio-code")


async def initialize_like_vscode(client: LanguageClient, workspace: Path, settings: dict[str, Any],
                                 client_name: str | None = None) -> None:
    """A trusted VS Code session on the ``workspace`` folder with these ``modelmill`` settings (answered to
    ``workspace/configuration`` too)."""
    client.set_configuration(settings, section="modelmill")
    await client.initialize_session(types.InitializeParams(
        capabilities=vscode_capabilities(), root_uri=workspace.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="workspace")],
        client_info=types.ClientInfo(name=client_name) if client_name else None,
        initialization_options={"trusted": True, "settings": settings}))
