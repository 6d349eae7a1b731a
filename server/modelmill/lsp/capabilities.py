"""The server's ``initialize`` reply, precomputed so that it can be sent before pygls is loaded.

``CAPABILITIES`` is what pygls's ``ServerCapabilitiesBuilder`` produces for this server's registered
features (tests/lsp/test_lsp_startup.py checks it against a server started with
``MODELMILL_LSP_FAST_INIT=0``). Regenerate after adding a feature, command or option::

    python -m modelmill.lsp.capabilities --write

The parts that depend on the client are worked out as pygls does: the position encoding (the first of
the client's ``general.positionEncodings`` that pygls supports, else UTF-16) and ``willSave`` /
``willSaveWaitUntil`` (false when the client names them).
"""

from __future__ import annotations

from typing import Any

from modelmill import __version__

SUPPORTED_ENCODINGS = ("utf-8", "utf-16", "utf-32")

# --- generated: begin
CAPABILITIES: dict[str, Any] = {'positionEncoding': 'utf-16',
 'textDocumentSync': {'openClose': True, 'change': 2, 'save': True},
 'completionProvider': {'triggerCharacters': ['"', ':', ' ', '/'], 'resolveProvider': False},
 'hoverProvider': True,
 'documentSymbolProvider': True,
 'codeActionProvider': {'codeActionKinds': ['quickfix']},
 'executeCommandProvider': {'commands': ['modelmill.optimize',
                                         'modelmill.evaluate',
                                         'modelmill.cancel',
                                         'modelmill.validate',
                                         'modelmill.plan',
                                         'modelmill.runs',
                                         'modelmill.runEvents',
                                         'modelmill.debugInfo']},
 'workspace': {'workspaceFolders': {'supported': True, 'changeNotifications': True}, 'fileOperations': {}}}
# --- generated: end


def position_encoding(params: dict[str, Any]) -> str:
    capabilities = params.get("capabilities") if isinstance(params, dict) else None
    general = capabilities.get("general") if isinstance(capabilities, dict) else None
    encodings = general.get("positionEncodings") if isinstance(general, dict) else None
    if isinstance(encodings, list):
        for encoding in encodings:
            if encoding in SUPPORTED_ENCODINGS:
                return str(encoding)
    return "utf-16"


def initialize_result(params: dict[str, Any]) -> dict[str, Any]:
    capabilities = {**CAPABILITIES, "positionEncoding": position_encoding(params)}
    # pygls answers willSave / willSaveWaitUntil with false when the client names them (they are not served)
    client = params.get("capabilities") if isinstance(params, dict) else None
    sync = _get(client, "textDocument", "synchronization")
    if isinstance(sync, dict):
        extra = {key: False for key in ("willSave", "willSaveWaitUntil") if sync.get(key) is not None}
        if extra:
            capabilities["textDocumentSync"] = {**capabilities["textDocumentSync"], **extra}
    return {"capabilities": capabilities, "serverInfo": {"name": "modelmill", "version": __version__}}


def _get(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def compute(params: dict[str, Any]) -> dict[str, Any]:
    """pygls's own answer to ``initialize`` with these params, as JSON (imports pygls and the server)."""
    from lsprotocol import types
    from pygls.capabilities import ServerCapabilitiesBuilder

    from modelmill.lsp.server import create_server

    server = create_server()
    converter = server.protocol._converter
    client = converter.structure(params.get("capabilities") or {}, types.ClientCapabilities)
    encoding = ServerCapabilitiesBuilder.choose_position_encoding(client)
    manager = server.protocol.fm
    capabilities = ServerCapabilitiesBuilder(
        client, set({**manager.features, **manager.builtin_features}.keys()), manager.feature_options,
        list(manager.commands.keys()), server._text_document_sync_kind, server._notebook_document_sync,
        encoding).build()
    result = types.InitializeResult(capabilities=capabilities, server_info=server.protocol.server_info)
    return converter.unstructure(result)


def _write() -> None:  # pragma: no cover - a maintenance tool
    import json
    import pprint
    import re
    from pathlib import Path

    generated = compute({})["capabilities"]
    text = "CAPABILITIES: dict[str, Any] = " + pprint.pformat(json.loads(json.dumps(generated)), width=110,
                                                              sort_dicts=False) + "\n"
    path = Path(__file__)
    source = path.read_text()
    source = re.sub(r"(# --- generated: begin\n).*?(# --- generated: end)", lambda m: m.group(1) + text + m.group(2),
                    source, flags=re.S)
    path.write_text(source)
    print(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    import sys

    if "--write" in sys.argv:
        _write()
    else:
        import json

        print(json.dumps(compute({}), indent=2))
