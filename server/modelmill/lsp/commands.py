"""``workspace/executeCommand`` handlers: optimize, evaluate, cancel, validate, plan, runs, runEvents, debugInfo.

Each takes one argument object (see docs/lsp.md). A request that cannot be done (an untrusted
workspace, a config with errors, an unknown run) is answered with a JSON-RPC error whose message
says why and what to do (code -32803, RequestFailed).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from modelmill.config.limits import read_config_text
from modelmill.errors import ConfigError
from modelmill.lsp.documents import Snapshot, format_of, uri_to_path
from modelmill.lsp.shared import SERVER_COMMANDS, UNTRUSTED

if TYPE_CHECKING:
    from modelmill.lsp.server import ModelMillServer

OPTIMIZE, EVALUATE, CANCEL, VALIDATE, PLAN, RUNS, RUN_EVENTS, DEBUG_INFO = (
    SERVER_COMMANDS[key] for key in ("optimize", "evaluate", "cancel", "validate", "plan", "runs", "runEvents",
                                     "debugInfo"))


class RequestFailed(JsonRpcException):
    CODE = -32803
    MESSAGE = "Request failed"


def argument(args: tuple[Any, ...], key: str, default: Any = None, required: bool = False,
             kind: type | tuple[type, ...] | None = None) -> Any:
    """A field of the single argument object (a dict, or pygls's attribute object).

    A value of the wrong type (``kind``) is a JSON-RPC InvalidParams error (-32602).
    """
    first = args[0] if args else None
    if hasattr(first, "_asdict"):
        first = first._asdict()
    value = first.get(key, default) if isinstance(first, dict) else default
    if required and (value is None or value == ""):
        raise RequestFailed(f"missing argument '{key}': pass one object such as {{\"{key}\": ...}}")
    if kind is not None and value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        expected = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
        raise JsonRpcInvalidParams(f"argument '{key}' must be a {expected.replace('str', 'string')}, "
                                   f"not {json.dumps(value)[:60]}")
    return value


def config_snapshot(ls: ModelMillServer, uri: str) -> Snapshot:
    """The open document, or the file on disk, as a snapshot."""
    snap = ls.snapshot(uri)
    if snap is not None:
        return snap
    path = uri_to_path(uri) if "://" in uri else uri
    fmt = format_of(uri)
    if path is None or fmt is None:
        raise RequestFailed(f"not a JSON/YAML config file: {uri}")
    try:
        text = read_config_text(path)
    except ConfigError as exc:
        raise RequestFailed(f"{exc.where}: {exc.message}; fix: {exc.fix}") from exc
    uri = Path(path).resolve().as_uri() if "://" not in uri else uri
    return Snapshot(uri, None, text, fmt, ls.encoding)


def register(server: ModelMillServer, guard: Callable[..., Any]) -> None:
    @server.command(OPTIMIZE)
    @guard(OPTIMIZE)
    async def optimize(ls, *args: Any) -> dict[str, Any]:
        if not ls.settings.trusted:
            raise RequestFailed(UNTRUSTED)
        uri = argument(args, "uri", required=True, kind=str)
        run_id = await ls.runs.start_optimize(config_snapshot(ls, uri))
        return {"runId": run_id}

    @server.command(EVALUATE)
    @guard(EVALUATE)
    async def evaluate(ls, *args: Any) -> dict[str, Any]:
        if not ls.settings.trusted:
            raise RequestFailed(UNTRUSTED)
        path = argument(args, "path", required=True, kind=str)
        metrics = argument(args, "metrics")
        if metrics is not None and (not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics)):
            raise RequestFailed("metrics must be a list of names such as [\"llm\", \"size\"]")
        run_id = await ls.runs.start_evaluate(str(path), metrics, argument(args, "compare"))
        return {"runId": run_id}

    @server.command(CANCEL)
    @guard(CANCEL)
    async def cancel(ls, *args: Any) -> dict[str, Any]:
        run_id = argument(args, "runId", required=True, kind=(str, int))
        return {"cancelled": ls.runs.cancel(str(run_id))}

    @server.command(VALIDATE)
    @guard(VALIDATE)
    async def validate(ls, *args: Any) -> dict[str, Any]:
        from modelmill.lsp.diagnostics import analyze, to_json, to_lsp

        snap = config_snapshot(ls, argument(args, "uri", required=True, kind=str))
        found, _ = analyze(snap, ls.env)
        diagnostics = [to_json(d) for d in to_lsp(found, snap, ls.settings)]
        return {"diagnostics": diagnostics, "errors": sum(1 for d in found if d.severity == "error"),
                "warnings": sum(1 for d in found if d.severity == "warning")}

    @server.command(PLAN)
    @guard(PLAN)
    async def plan(ls, *args: Any) -> dict[str, Any]:
        snap = config_snapshot(ls, argument(args, "uri", required=True, kind=str))
        return await ls.runs.dry_run(snap)

    @server.command(RUNS)
    @guard(RUNS)
    async def list_runs(ls, *args: Any) -> list[dict[str, Any]]:
        return ls.runs.describe()

    @server.command(RUN_EVENTS)
    @guard(RUN_EVENTS)
    async def run_events(ls, *args: Any) -> dict[str, Any]:
        run_id = argument(args, "runId", required=True, kind=(str, int))
        since = argument(args, "since", -1, kind=int)
        return ls.runs.events(str(run_id), since)

    @server.command(DEBUG_INFO)
    @guard(DEBUG_INFO)
    async def debug_info(ls, *args: Any) -> dict[str, Any]:
        import sys

        def summary(values: list[float]) -> dict[str, Any]:
            if not values:
                return {"count": 0}
            ordered = sorted(values)
            return {"count": len(values), "p50": round(statistics.median(ordered), 2),
                    "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
                    "max": round(ordered[-1], 2)}

        heavy = [name for name in ("torch", "onnxruntime", "transformers", "onnx") if name in sys.modules]
        return {"version": ls.version, "settings": {k: v for k, v in ls.settings.__dict__.items() if k != "raw"},
                "encoding": ls.encoding, "client": ls.client_name, "openDocuments": len(ls.workspace.text_documents),
                "workflowDocuments": sorted(ls.snapshots.workflow_uris), "heavyModulesLoaded": heavy,
                "timings": {name: summary(values) for name, values in ls.timings.items()},
                "runs": ls.runs.describe(), "pid": __import__("os").getpid()}

