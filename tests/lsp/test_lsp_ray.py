"""The language server knows the `Ray` system from its model alone: completion, hover and diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from lsp_helpers import (
    complete,
    diagnostics,
    dumps,
    flat_config,
    open_document,
    position_of,
    server_config,
)
from lsprotocol import types
from modelmill.testing.lsp_client import initialize_like_vscode
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")
SETTINGS = {"diagnosticsDelayMs": 0}


@pytest_lsp.fixture(scope="module", config=server_config())
async def client(lsp_client: LanguageClient, workspace: Path):
    await initialize_like_vscode(lsp_client, workspace, SETTINGS)
    yield
    await lsp_client.shutdown_session()


def _ray_config(**ray: object) -> str:
    config = flat_config()
    config["systems"]["cluster"] = {"type": "Ray", "address": "auto", "max_concurrent_candidates": 2, **ray}
    config["host"] = "cluster"
    return dumps(config)


async def test_ray_system_completion_and_hover(client: LanguageClient, workspace: Path) -> None:
    text = _ray_config()
    uri = (workspace / "ray.json").as_uri()
    open_document(client, uri, text)
    assert [d for d in await diagnostics(client, uri, 1) if d.severity == types.DiagnosticSeverity.Error] == []
    # keys of the Ray system that are not there yet, documented from the model
    keys = await complete(client, uri, position_of(text, '"address"'))
    labels = {item.label for item in keys}
    assert {"num_cpus", "num_gpus", "memory", "max_retries", "candidate_timeout_s"} <= labels
    assert "address" not in labels and "dockerfile" not in labels
    num_gpus = next(item for item in keys if item.label == "num_gpus")
    assert "GPUs each candidate reserves" in num_gpus.documentation.value
    # a new system's type offers Ray next to Olive's system types
    fresh = text.replace('"cluster": {', '"other": {"type": ""},\n      "cluster": {', 1)
    fresh_uri = (workspace / "ray_type.json").as_uri()
    open_document(client, fresh_uri, fresh)
    types_ = await complete(client, fresh_uri, position_of(fresh, '"type": ""', 9))
    assert {"Ray", "LocalSystem", "Docker"} <= {item.label for item in types_}
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position_of(text, '"max_concurrent_candidates"', 3)))
    assert hover is not None and "Candidates running at once" in hover.contents.value


async def test_ray_system_diagnostics(client: LanguageClient, workspace: Path) -> None:
    text = _ray_config(address="head-node", num_cpus=0)
    uri = (workspace / "ray_bad.json").as_uri()
    open_document(client, uri, text)
    found = {d.message.split(":")[0]: d for d in await diagnostics(client, uri, 1)}
    address = found["address"]
    assert "is not a Ray address" in address.message and address.severity == types.DiagnosticSeverity.Error
    assert address.range.start == position_of(text, '"head-node"')
    assert "greater than 0" in found["num_cpus"].message
