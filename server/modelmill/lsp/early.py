"""The first messages of a session, served before pygls has loaded: ``initialize``, the first diagnostics and the
first completions and hovers.

Importing pygls and lsprotocol costs about half a second of CPU (lsprotocol builds ~570 attrs classes), the config
layer that validation needs about a third. An editor sends ``initialize``, ``initialized`` and the ``didOpen`` of
the config right away, so over stdio ``launch`` reads the first messages itself while a thread imports what
validation needs and only then (once the first diagnostics are out) pygls and the server. ``EarlySession``
answers ``initialize`` from the precomputed capabilities and validates each ``textDocument/didOpen`` of a workflow
config exactly as the server would (the same ``Snapshot``, settings, environment and diagnostics) and sends its
diagnostics as JSON (``diagnostics.to_json_list``, what lsprotocol would serialize). While pygls loads, it also
answers ``textDocument/completion`` and ``textDocument/hover`` on a document it validated, with the server's own
``completion.complete`` / ``hover.hover`` (they build LSP's JSON without lsprotocol; the client's options come from
``completion.client_env``, as in the server): an editor asks for them right after the first diagnostics, before
importing lsprotocol (~570 attrs classes, about 0.3 s) could be over. Other ``textDocument/`` requests (the outline
and code actions an editor asks for as it opens a file) are left in the bytes for pygls, which answers them once
loaded, and the session goes on.

The first message it does not serve ends it: every byte read is then replayed into pygls, which dispatches the
messages as usual, and ``ModelMillServer.adopt`` takes over the snapshots and what was published, so the
replayed ``didOpen`` does not validate or send the same version again, and the requests answered here are not
dispatched again (``framing.serve``'s ``answered``). Notifications that only matter later
(``initialized``, ``$/setTrace``, a ``workspace/didChangeConfiguration`` that makes the server pull the settings)
are left to that replay; nothing here imports pygls, lsprotocol or a heavy library.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

DEFERRED = frozenset({"initialized", "$/setTrace", "$/cancelRequest"})
"""Notifications the replay into pygls handles (they change nothing that the first validation reads; a request
answered here is over, so cancelling it changes nothing)."""
TRIGGER_CHARACTER = 2
"""``CompletionTriggerKind.TriggerCharacter``."""
REQUESTS = frozenset({"textDocument/completion", "textDocument/hover"})
"""Requests answered here on a document validated here (the first ones an editor sends). Any other
``textDocument/`` request (an editor asks for the outline and code actions as it opens a file) only reads a
document: it is left to pygls, which answers it after the replay, and the session goes on; any other request
(a command, ``shutdown``) ends the session."""


@dataclass
class Adopted:
    """What the server takes over from the early session (``ModelMillServer.adopt``)."""

    env: Any = None
    """The ``Environment`` the early validations used."""
    published: dict[str, tuple[Any, Any, float]] = field(default_factory=dict)
    """Per URI: (the snapshot validated, the settings used, its validation time in ms)."""
    answered: dict[Any, str] = field(default_factory=dict)
    """Requests answered here: id → method (not dispatched again when replayed into pygls)."""


class EarlySession:
    """Serves ``initialize`` and the first ``didOpen``s on the launcher's thread (see the module's docstring)."""

    def __init__(self, stdout: BinaryIO, validation_ready: threading.Event) -> None:
        self.stdout = stdout
        self.validation_ready = validation_ready
        self.init_id: Any = None
        self.params: dict[str, Any] = {}
        self.encoding = "utf-16"
        self.adopted = Adopted()
        self.deferred = 0
        """Requests left to pygls (answered once it has loaded) while the session went on."""
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
        if "id" in message:  # a request (or a reply to one)
            if self._request(message):
                return True
            if isinstance(method, str) and method.startswith("textDocument/"):
                self.deferred += 1  # it only reads a document: pygls answers it after the replay, the session goes on
                return True
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

    # -- completion, hover -------------------------------------------------------------------------

    def _request(self, message: dict[str, Any]) -> bool:
        """Answer a completion or hover on a document validated here, as the server would; False: pygls answers
        (another request, another document, params it would refuse, or an error it reports)."""
        method, params, request_id = message.get("method"), message.get("params"), message.get("id")
        if method not in REQUESTS or not isinstance(params, dict) or not isinstance(request_id, (int, str)) \
                or isinstance(request_id, bool) or request_id in self.adopted.answered:
            return False
        document, position = params.get("textDocument"), params.get("position")
        uri = document.get("uri") if isinstance(document, dict) else None
        line = position.get("line") if isinstance(position, dict) else None
        character = position.get("character") if isinstance(position, dict) else None
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (line, character)) \
                or uri not in self.adopted.published:
            return False
        snap = self.adopted.published[uri][0]
        try:
            if method == "textDocument/completion":
                from modelmill.lsp.completion import client_env, complete

                context = params.get("context")
                context = context if isinstance(context, dict) else {}
                trigger = context.get("triggerCharacter") if context.get("triggerKind") == TRIGGER_CHARACTER else None
                result = complete(snap, line, character, client_env(self.params, self.environment().installed_eps),
                                  trigger if isinstance(trigger, str) else None)
            else:
                from modelmill.lsp.hover import hover

                result = hover(snap, line, character, self.environment().installed_eps)
        except Exception:  # noqa: BLE001 - the server answers after the replay and reports the error
            return False
        self._send({"jsonrpc": "2.0", "id": request_id, "result": result})
        self.adopted.answered[request_id] = method
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


def prepare_requests() -> None:
    """Import and warm what the first completion and hover need (the schema index, from its disk cache), on the
    loader thread after the first diagnostics and before pygls."""
    from modelmill.lsp import completion, hover  # noqa: F401
    from modelmill.lsp.schema_nav import schema_index

    schema_index()


def prepare_validation() -> None:
    """Import and warm what the first validation needs (on the launcher's loader thread)."""
    from modelmill.config.accelerators import installed_execution_providers
    from modelmill.lsp import diagnostics, documents  # noqa: F401
    from modelmill.passes.registry import all_passes

    all_passes()
    installed_execution_providers()
