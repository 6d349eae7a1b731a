"""The language server: pygls glue, feature registration, and per-feature error isolation.

Each LSP method is registered once here and calls one feature module (diagnostics, completion,
hover, code actions, symbols, commands, runs). Every call goes through ``guard``: an exception is
logged (``window/logMessage`` + stderr) and answered with an empty result, so a bug in one
feature never breaks the others (esbonio's pattern). Handlers that do real work are fast and run
on the event loop; long work (runs, evaluation, dry-run planning) runs in child processes or
threads, so the loop keeps answering while runs go.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, BinaryIO, Callable
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from modelmill import __version__
from modelmill.lsp import commands, framing, runs
from modelmill.lsp.code_actions import code_actions
from modelmill.lsp.completion import TRIGGER_CHARACTERS, CompletionEnv, client_env, complete
from modelmill.lsp.diagnostics import analyze, debounce_ms, to_lsp
from modelmill.lsp.documents import Snapshot, SnapshotCache, format_of
from modelmill.lsp.exit import ExitingProtocol
from modelmill.lsp.hover import hover
from modelmill.lsp.settings import Settings, initial_settings
from modelmill.lsp.shared import SECTION, SET_TRUSTED
from modelmill.lsp.symbols import document_symbols

NAME = "modelmill"
_WARM_UP = ('{"input_model": {"type": "HfModel", "model_path": "model"}, "systems": {"s": {"type": "LocalSystem", '
            '"accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}}, "evaluators": '
            '{"e": {"metrics": [{"name": "l", "type": "latency", "sub_types": [{"name": "avg"}]}]}}, "passes": '
            '{"b": {"type": "ModelBuilder"}, "q": {"type": "OnnxDynamicQuantization"}}, "target": "s", "evaluator": "e"}')
logger = logging.getLogger("modelmill.lsp")


class _OneLineRefusals(logging.Filter):
    """pygls logs every error answer with its traceback (``logger.exception``). A JSON-RPC error a handler raises
    on purpose (-32803 untrusted / config has errors, -32602 a bad argument) is an answer, not a crash: one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, JsonRpcException):
            message_id = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            lines = str(error).splitlines()
            record.msg = "modelmill lsp: request %s answered with error %s: %s"
            record.args = (message_id, getattr(error, "code", ""), lines[0] if lines else type(error).__name__)
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("pygls.protocol.json_rpc").addFilter(_OneLineRefusals())


class ModelMillServer(LanguageServer):
    def __init__(self) -> None:
        converter = commands.converter()
        super().__init__(NAME, __version__, max_workers=8, converter_factory=lambda: converter,
                         protocol_cls=ExitingProtocol)
        self.converter = converter
        """pygls's converter (lsprotocol's classes ⇄ JSON)."""
        self.client_params: dict[str, Any] = {}
        """The ``initialize`` params as the client sent them (JSON): what completion offers reads them
        (``completion.client_env``), as the launcher's early session does."""
        self.settings = Settings()
        self.init_settings = Settings()
        """Settings from initializationOptions: the base that workspace/configuration values override."""
        self.snapshots = SnapshotCache()
        self.runs = runs.RunManager(self)
        self.client_name = ""
        self.initialization_options: dict[str, Any] = {}
        self._env: Any = None
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._published: set[str] = set()
        self._cost_ms: dict[str, float] = {}
        """Per document: its recent validation time (ms), which decides the debounce of its changes."""
        self.validated_once = threading.Event()
        self._adopted: dict[str, tuple[Snapshot, Settings]] = {}
        """Per URI: a version validated and published before the server loaded (``adopt``), not to send again."""
        self.early_answers: dict[Any, str] = {}
        """Requests the launcher answered before the server loaded (id → method): not dispatched again."""
        self.shutdown_task: asyncio.Task[Any] | None = None
        self.timings: dict[str, list[float]] = {"validate_ms": [], "publish_ms": []}
        self.closing = False

    # -- client facts ---------------------------------------------------------------------------

    @property
    def encoding(self) -> str:
        encoding = self.workspace.position_encoding if self.protocol.workspace is not None else None
        return str(encoding.value if hasattr(encoding, "value") else encoding or "utf-16")

    def client_supports(self, dotted: str) -> bool:
        value: Any = self.protocol.client_capabilities
        for part in dotted.split("."):
            value = getattr(value, part, None)
            if value is None:
                return False
        return bool(value)

    @property
    def env(self) -> Any:
        """The machine the checks look at (installed EPs are read once, from package metadata)."""
        if self._env is None:
            from modelmill.config import Environment
            from modelmill.config.accelerators import installed_execution_providers

            cwd = Path(self.workspace.root_path) if self.protocol.workspace is not None and \
                self.workspace.root_path else Path.cwd()
            self._env = Environment(installed_execution_providers(), cwd)
        return self._env

    def adopt(self, early: Any) -> None:
        """Take over what the launcher served before pygls loaded (``early.Adopted``): its environment and the
        snapshots it validated and published, so that the replayed ``didOpen`` of the same version reuses them and
        is not published twice."""
        if early.env is not None:
            self._env = early.env
        self.early_answers = dict(early.answered)
        for uri, (snap, settings, validate_ms) in early.published.items():
            self.snapshots.adopt(snap)
            self.snapshots.workflow_uris.add(uri)
            self._adopted[uri] = (snap, settings)
            self._cost_ms[uri] = validate_ms
            found, _ = analyze(snap, self.env)
            if found:
                self._published.add(uri)

    def warm_up(self) -> None:
        """Right after ``initialized``, in the order the first requests need them. On a thread: the installed EPs
        and the pass modules (the first validation), the schema index (completion, hover; read from its disk
        cache when the sources are unchanged). Then, once the first document is validated (or after a moment),
        on the event loop one small step at a time so that a request arriving meanwhile waits one step at most:
        a validation, a completion and a hover of a small config (what they load lazily), and ``gc.freeze``, so
        that a full collection during a keystroke's validation walks the objects made since only."""
        loop = asyncio.get_running_loop()

        def load() -> None:
            try:
                from modelmill.lsp.schema_nav import schema_index
                from modelmill.passes.registry import all_passes

                self.env  # noqa: B018 - reads the installed EPs once
                all_passes()
                schema_index()
            except Exception:  # noqa: BLE001 - a failed warm-up only costs the first request time
                logger.exception("warm-up failed")
            self.validated_once.wait(1.0)  # the first diagnostics go first
            try:
                loop.call_soon_threadsafe(self._warm_step, self._warm_up_steps())
            except RuntimeError:  # the loop is closed
                pass

        threading.Thread(target=load, name="modelmill-lsp-warmup", daemon=True).start()

    def _warm_up_steps(self) -> list[Callable[[], Any]]:
        import gc

        from modelmill.config import validate_document

        snap = Snapshot("file:///warm-up.json", 0, _WARM_UP, "json")
        return [lambda: validate_document(snap.doc, self.env),
                lambda: complete(snap, 0, _WARM_UP.index('"ModelBuilder"') + 1, CompletionEnv(self.env.installed_eps)),
                lambda: hover(snap, 0, _WARM_UP.index('"q"') + 1, self.env.installed_eps),
                lambda: (gc.collect(1), gc.freeze())]

    def _warm_step(self, steps: list[Callable[[], Any]]) -> None:
        if not steps or self.closing:
            return
        try:
            steps[0]()
        except Exception:  # noqa: BLE001
            logger.exception("warm-up failed")
        asyncio.get_running_loop().call_soon(self._warm_step, steps[1:])

    # -- transport --------------------------------------------------------------------------------

    def _start_io_async(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """pygls's stdio server with ``framing.serve`` as its reading loop (bounded message size, resynchronising
        after a framing error, every request answered)."""
        from pygls.io_ import StdoutWriter

        self._stop_event = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        source: Any = stdin or sys.stdin.buffer
        try:
            asyncio.run(framing.serve(self.protocol, source.read1, self._stop_event, self.report_framing,
                                      answered=set(self.early_answers)))
        except BrokenPipeError:
            logger.error("the connection to the client is lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()

    def report_framing(self, problem: str) -> None:
        message = f"malformed message from the client: {problem}; reading resumed at the next message"
        print(f"modelmill lsp: {message}", file=sys.stderr, flush=True)
        self.log(message, types.MessageType.Warning)

    # -- logging ----------------------------------------------------------------------------------

    def log(self, message: str, level: types.MessageType = types.MessageType.Info) -> None:
        if self.closing:
            return
        try:
            self.window_log_message(types.LogMessageParams(type=level, message=message))
        except Exception:  # noqa: BLE001 - the transport may be gone at shutdown
            print(message, file=sys.stderr)

    def log_exception(self, where: str) -> None:
        text = traceback.format_exc()
        print(f"modelmill lsp: error in {where}\n{text}", file=sys.stderr, flush=True)
        self.log(f"Error in '{where}': {text.strip().splitlines()[-1]}", types.MessageType.Error)

    # -- documents --------------------------------------------------------------------------------

    def snapshot(self, uri: str) -> Snapshot | None:
        """The open document at its current version, if it is a JSON/YAML document."""
        document = self.workspace.text_documents.get(unquote(uri))
        if document is None:
            return None
        fmt = format_of(uri, document.language_id)
        if fmt is None:
            return None
        return self.snapshots.get(uri, document.version, document.source, fmt, self.encoding)

    def workflow_snapshot(self, uri: str) -> Snapshot | None:
        """The snapshot if the document is a workflow config (sticky once seen as one)."""
        snap = self.snapshot(uri)
        if snap is None:
            return None
        if uri in self.snapshots.workflow_uris or snap.is_workflow(self.settings):
            self.snapshots.workflow_uris.add(uri)
            return snap
        return None

    def schedule_validation(self, uri: str, delay_ms: int | None = None) -> None:
        """Validate ``uri`` soon; a change made before that replaces the pending validation (coalescing).

        Validation runs on the event loop, so while one runs, the changes that arrive meanwhile only update the
        document: the next validation sees the newest version and the versions in between are never checked.
        After a change the wait is ``diagnostics.debounce_ms``: none unless the document validates slowly."""
        delay = debounce_ms(self.settings.diagnostics_delay_ms, self._cost_ms.get(uri)) if delay_ms is None \
            else delay_ms
        pending = self._pending.pop(uri, None)
        if pending is not None:
            pending.cancel()
        loop = asyncio.get_running_loop()
        if delay <= 0:
            # two turns of the loop: frames already read (a burst of changes) are dispatched before validating
            self._pending[uri] = loop.call_soon(self._validate_next_turn, uri)  # type: ignore[assignment]
        else:
            self._pending[uri] = loop.call_later(delay / 1000, self.validate, uri)

    def _validate_next_turn(self, uri: str) -> None:
        self._pending[uri] = asyncio.get_running_loop().call_soon(self.validate, uri)  # type: ignore[assignment]

    def validate(self, uri: str) -> None:
        self._pending.pop(uri, None)
        try:
            started = time.perf_counter()
            snap = self.workflow_snapshot(uri)
            if snap is None:
                if uri in self._published:
                    self._publish(uri, None, [])
                return
            found, validate_ms = analyze(snap, self.env)
            adopted = self._adopted.pop(uri, None)
            if adopted is not None and adopted[0] is snap and adopted[1] == self.settings:
                return  # sent before the server loaded (launch.py)
            diagnostics = to_lsp(found, snap, self.settings)
            self._publish(uri, snap.version, diagnostics)
            previous = self._cost_ms.get(uri)
            self._cost_ms[uri] = validate_ms if previous is None else 0.5 * previous + 0.5 * validate_ms
            _record(self.timings["validate_ms"], validate_ms)
            _record(self.timings["publish_ms"], (time.perf_counter() - started) * 1000)
        except Exception:  # noqa: BLE001 - feature isolation
            self.log_exception("diagnostics")
        finally:
            self.validated_once.set()

    def _publish(self, uri: str, version: int | None, diagnostics: list[types.Diagnostic]) -> None:
        if diagnostics:
            self._published.add(uri)
        else:
            self._published.discard(uri)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, version=version, diagnostics=diagnostics))

    def revalidate_all(self) -> None:
        for uri in list(self.workspace.text_documents):
            self.schedule_validation(uri, 0)

    # -- settings -----------------------------------------------------------------------------------

    async def pull_settings(self) -> None:
        if not self.client_supports("workspace.configuration"):
            return
        try:
            values = await asyncio.wait_for(self.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])), 10)
        except Exception:  # noqa: BLE001 - keep the settings we have
            self.log_exception("settings")
            return
        value = values[0] if values else None
        self.apply_settings(value)

    def apply_settings(self, value: Any) -> None:
        trusted = self.settings.trusted
        self.settings = Settings.from_json(_plain(value), self.init_settings).with_trust(trusted)
        self.snapshots.workflow_uris.clear()
        self.revalidate_all()


def _record(values: list[float], value: float, keep: int = 2000) -> None:
    values.append(value)
    if len(values) > keep:
        del values[: len(values) - keep]


def _plain(value: Any) -> Any:
    """pygls hands custom JSON objects over as attribute objects or dicts; make them dicts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return [_plain(v) for v in value]
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    return value


# ------------------------------------------------------------------ isolation


def guard(name: str, default: Any = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Log a feature's exception and answer ``default``: one feature never breaks the others."""
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(ls: ModelMillServer, *args: Any) -> Any:
                try:
                    return await fn(ls, *args)
                except JsonRpcException:
                    raise
                except Exception:  # noqa: BLE001
                    ls.log_exception(name)
                    return default
            return run_async

        @functools.wraps(fn)
        def run(ls: ModelMillServer, *args: Any) -> Any:
            try:
                return fn(ls, *args)
            except JsonRpcException:  # RequestFailed, InvalidParams: the client gets the error
                raise
            except Exception:  # noqa: BLE001
                ls.log_exception(name)
                return default
        return run
    return decorate


# ------------------------------------------------------------------ registration


def create_server() -> ModelMillServer:
    server = ModelMillServer()

    @server.feature(types.INITIALIZE)
    @guard("initialize")
    def initialize(ls: ModelMillServer, params: types.InitializeParams) -> None:
        ls.client_name = params.client_info.name if params.client_info else ""
        ls.client_params = ls.converter.unstructure(params)
        options = _plain(params.initialization_options) or {}
        ls.initialization_options = options if isinstance(options, dict) else {}
        ls.init_settings, ls.settings = initial_settings(ls.initialization_options)

    @server.feature(types.INITIALIZED)
    @guard("initialized")
    async def initialized(ls: ModelMillServer, params: types.InitializedParams) -> None:
        ls.warm_up()
        try:
            root = ls.workspace.root_path if ls.protocol.workspace is not None else None
            ls.runs.restore(Path(root) if root else None)
        except Exception:  # noqa: BLE001 - no history is no reason to stop
            ls.log_exception("run history")
        await ls.pull_settings()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    @guard("settings")
    async def did_change_configuration(ls: ModelMillServer, params: types.DidChangeConfigurationParams) -> None:
        if ls.client_supports("workspace.configuration"):
            await ls.pull_settings()
            return
        value = _plain(params.settings)
        ls.apply_settings(value.get(SECTION, value) if isinstance(value, dict) else None)

    @server.feature(SET_TRUSTED)
    @guard("trust")
    def set_trusted(ls: ModelMillServer, params: Any) -> None:
        value = _plain(params)
        trusted = value.get("trusted") if isinstance(value, dict) else getattr(params, "trusted", None)
        ls.settings = ls.settings.with_trust(trusted is not False)
        ls.log(f"workspace trust: {'trusted' if ls.settings.trusted else 'untrusted (runs are disabled)'}")

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @guard("didOpen")
    def did_open(ls: ModelMillServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.schedule_validation(params.text_document.uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @guard("didChange")
    def did_change(ls: ModelMillServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule_validation(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    @guard("didSave")
    def did_save(ls: ModelMillServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.schedule_validation(params.text_document.uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @guard("didClose")
    def did_close(ls: ModelMillServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        pending = ls._pending.pop(uri, None)
        if pending is not None:
            pending.cancel()
        ls.snapshots.drop(uri)
        if uri in ls._published:
            ls._publish(uri, None, [])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS, resolve_provider=False))
    @guard("completion")
    def completion(ls: ModelMillServer, params: types.CompletionParams) -> dict[str, Any] | None:
        snap = ls.workflow_snapshot(params.text_document.uri)
        if snap is None:
            return None
        env = client_env(ls.client_params, ls.env.installed_eps)
        context = params.context
        trigger = context.trigger_character if context is not None and \
            context.trigger_kind == types.CompletionTriggerKind.TriggerCharacter else None
        return complete(snap, params.position.line, params.position.character, env, trigger)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @guard("hover")
    def on_hover(ls: ModelMillServer, params: types.HoverParams) -> types.Hover | None:
        snap = ls.workflow_snapshot(params.text_document.uri)
        if snap is None:
            return None
        found = hover(snap, params.position.line, params.position.character, ls.env.installed_eps)
        # pygls serializes a Hover result by its class (a completion list may stay JSON)
        return ls.converter.structure(found, types.Hover) if found is not None else None

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    @guard("codeAction")
    def on_code_action(ls: ModelMillServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        snap = ls.workflow_snapshot(params.text_document.uri)
        if snap is None:
            return None
        found, _ = analyze(snap, ls.env)
        codec = snap.codec
        rng = params.range
        start = (rng.start.line, codec.column(rng.start.line, rng.start.character))
        end = (rng.end.line, codec.column(rng.end.line, rng.end.character))
        only = [str(kind.value if hasattr(kind, "value") else kind) for kind in params.context.only or []]
        return code_actions(snap, found, start, end, ls.settings, only or None)

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @guard("documentSymbol")
    def on_symbols(ls: ModelMillServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol] | None:
        snap = ls.workflow_snapshot(params.text_document.uri)
        return document_symbols(snap) if snap is not None else None

    @server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
    @guard("progressCancel")
    def on_progress_cancel(ls: ModelMillServer, params: types.WorkDoneProgressCancelParams) -> None:
        ls.runs.cancel_token(str(params.token))

    @server.feature(types.SHUTDOWN)
    @guard("shutdown")
    async def on_shutdown(ls: ModelMillServer, params: Any = None) -> None:
        ls.shutdown_task = asyncio.current_task()
        await ls.runs.shutdown()

    commands.register(server, guard)
    return server
