"""The first messages of a session, served before pygls has loaded: ``initialize`` and the first diagnostics.

Importing pygls and lsprotocol costs about half a second of CPU (lsprotocol builds ~570 attrs classes), the config
layer that validation needs about a third. An editor sends ``initialize``, ``initialized`` and the ``didOpen`` of
the config right away, so over stdio ``launch`` reads the first messages itself while a thread imports what
validation needs and only then (once the first diagnostics are out) pygls and the server. ``EarlySession``
answers ``initialize`` from the precomputed capabilities and validates each ``textDocument/didOpen`` of a workflow
config exactly as the server would (the same ``Snapshot``, settings, environment and diagnostics) and sends its
diagnostics as JSON (``diagnostics.to_json_list``, what lsprotocol would serialize).

The first message it does not serve ends it: every byte read is then replayed into pygls, which dispatches the
messages as usual, and ``ModelMillServer.adopt`` takes over the snapshots and what was published, so the
replayed ``didOpen`` does not validate or send the same version again. Notifications that only matter later
(``initialized``, ``$/setTrace``, a ``workspace/didChangeConfiguration`` that makes the server pull the settings)
are left to that replay; nothing here imports pygls, lsprotocol or a heavy library.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

DEFERRED = frozenset({"initialized", "$/setTrace"})
"""Notifications the replay into pygls handles (they change nothing that the first validation reads)."""


@dataclass
class Adopted:
    """What the server takes over from the early session (``ModelMillServer.adopt``)."""

    env: Any = None
    """The ``Environment`` the early validations used."""
    published: dict[str, tuple[Any, Any, float]] = field(default_factory=dict)
    """Per URI: (the snapshot validated, the settings used, its validation time in ms)."""


class EarlySession:
    """Serves ``initialize`` and the first ``didOpen``s on the launcher's thread (see the module's docstring)."""

    def __init__(self, stdout: BinaryIO, validation_ready: threading.Event) -> None:
        self.stdout = stdout
        self.validation_ready = validation_ready
        self.init_id: Any = None
        self.params: dict[str, Any] = {}
        self.encoding = "utf-16"
        self.adopted = Adopted()
        self._settings: Any = None

    # -- messages ---------------------------------------------------------------------------------

    def initialize(self, message: Any) -> bool:
        """Answer the first message when it is ``initialize``; False when it is not (pygls answers it)."""
        if not isinstance(message, dict) or message.get("method") != "initialize" or "id" not in message:
            return False
        from modelmill.lsp.capabilities import initialize_result

        params = message.get("params")
        self.params = params if isinstance(params, dict) else {}
        try:
            result = initialize_result(self.params)
        except Exception:  # noqa: BLE001 - let pygls answer instead
            return False
        self.encoding = str(result["capabilities"].get("positionEncoding") or "utf-16")
        self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})
        self.init_id = message["id"]
        return True

    def handle(self, message: Any) -> bool:
        """Serve one message after ``initialize``; False: this one and all that follow go to pygls."""
        if self.init_id is None or not isinstance(message, dict):
            return False
        method = message.get("method")
        if "id" in message:  # a request (or a reply to one): pygls answers
            return False
        if method in DEFERRED:
            return True
        if method == "workspace/didChangeConfiguration":
            return self._pulls_settings()  # settings sent in the message change the validation: pygls first
        if method == "textDocument/didOpen":
            return self._did_open(message.get("params"))
        return False

    # -- didOpen ----------------------------------------------------------------------------------

    def _did_open(self, params: Any) -> bool:
        document = params.get("textDocument") if isinstance(params, dict) else None
        if not isinstance(document, dict) or not isinstance(document.get("uri"), str) \
                or not isinstance(document.get("text"), str):
            return False
        self.validation_ready.wait()
        try:
            from modelmill.lsp.diagnostics import analyze, to_json_list
            from modelmill.lsp.documents import Snapshot, format_of

            uri, version, language = document["uri"], document.get("version"), document.get("languageId")
            fmt = format_of(uri, language)
            if fmt is None:
                return True  # not a document the server reads
            settings = self.settings()
            snap = Snapshot(uri, version, document["text"], fmt, self.encoding)
            if not snap.is_workflow(settings):
                return True
            found, validate_ms = analyze(snap, self.environment())
            diagnostics = to_json_list(found, snap, settings)
        except Exception:  # noqa: BLE001 - the server validates it after the replay and reports the error
            return False
        self._send({"jsonrpc": "2.0", "method": "textDocument/publishDiagnostics",
                    "params": {"uri": uri, "version": version, "diagnostics": diagnostics}})
        self.adopted.published[uri] = (snap, settings, validate_ms)
        return True

    def settings(self) -> Any:
        """The settings the server has right after ``initialize`` (``settings.initial_settings``)."""
        if self._settings is None:
            from modelmill.lsp.settings import initial_settings

            self._settings = initial_settings(self.params.get("initializationOptions"))[1]
        return self._settings

    def environment(self) -> Any:
        """``ModelMillServer.env`` for this session: the installed EPs, the workspace root as the folder."""
        if self.adopted.env is None:
            from modelmill.config import Environment
            from modelmill.config.accelerators import installed_execution_providers
            from modelmill.lsp.documents import uri_to_path

            root_uri, root_path = self.params.get("rootUri"), self.params.get("rootPath")
            root = uri_to_path(root_uri) if isinstance(root_uri, str) else root_path
            self.adopted.env = Environment(installed_execution_providers(),
                                           Path(root) if isinstance(root, str) and root else Path.cwd())
        return self.adopted.env

    def _pulls_settings(self) -> bool:
        """True when the server answers didChangeConfiguration by pulling the settings (``pull_settings``)."""
        capabilities = self.params.get("capabilities")
        workspace = capabilities.get("workspace") if isinstance(capabilities, dict) else None
        return isinstance(workspace, dict) and bool(workspace.get("configuration"))

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self.stdout.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.stdout.flush()


def prepare_validation() -> None:
    """Import and warm what the first validation needs (on the launcher's loader thread)."""
    from modelmill.config.accelerators import installed_execution_providers
    from modelmill.lsp import diagnostics, documents  # noqa: F401
    from modelmill.passes.registry import all_passes

    all_passes()
    installed_execution_providers()
