"""The server's ``initialize`` reply, precomputed so that it can be sent before pygls is loaded.

``CAPABILITIES`` is what pygls's ``ServerCapabilitiesBuilder`` produces for this server's registered
features (tests/lsp/test_lsp_startup.py checks it against a server started with
``MODELMILL_LSP_FAST_INIT=0``). Regenerate after adding a feature, command or option::

    python -m modelmill.lsp.capabilities_gen --write

This module is plain data and one function: it imports neither pygls nor the server
(``capabilities_gen`` does, to ask pygls).

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
                                         'modelmill.evaluateMetrics',
                                         'modelmill.compare',
                                         'modelmill.cancel',
                                         'modelmill.validate',
                                         'modelmill.plan',
                                         'modelmill.runs',
                                         'modelmill.runEvents',
                                         'modelmill.runState',
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
