"""``workspace/executeCommand`` handlers: optimize, evaluate, cancel, validate, plan, runs, runEvents, runState,
debugInfo, evaluateMetrics, compare.

Each takes one argument object (see docs/lsp.md), typed in ``modelmill.contracts`` (``OptimizeArgs``, ...): pygls
structures it from the handler's annotation through ``converter()``'s hook, so a missing argument or one of the
wrong type is answered InvalidParams (-32602) before the handler runs. A request that cannot be done (an untrusted
workspace, a config with errors, an unknown run) is answered with a JSON-RPC error whose message says why and what
to do (code -32803, RequestFailed).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from modelmill.config.limits import read_config_text
from modelmill.contracts import (COMMAND_ARGS, CancelArgs, CommandArgs, CompareArgs, EvaluateArgs,
                                 EvaluateMetricsArgs, OptimizeArgs, PlanArgs, RunEventsArgs, RunStateArgs, ValidateArgs,
                                 to_json)
from modelmill.errors import ConfigError
from modelmill.lsp.documents import Snapshot, format_of, uri_to_path
from modelmill.lsp.shared import SERVER_COMMANDS, UNTRUSTED

if TYPE_CHECKING:
    from modelmill.lsp.server import ModelMillServer

OPTIMIZE, EVALUATE, CANCEL, VALIDATE, PLAN, RUNS, RUN_EVENTS, RUN_STATE, DEBUG_INFO, EVALUATE_METRICS, COMPARE = (
    SERVER_COMMANDS[key] for key in ("optimize", "evaluate", "cancel", "validate", "plan", "runs", "runEvents",
                                     "runState", "debugInfo", "evaluateMetrics", "compare"))


class RequestFailed(JsonRpcException):
    CODE = -32803
    MESSAGE = "Request failed"


def converter() -> Any:
    """pygls's converter, with the command arguments of ``modelmill.contracts`` structured by their own
    ``from_json`` (its ArgumentError becomes InvalidParams)."""
    from pygls.protocol import default_converter

    found = default_converter()
    for cls in COMMAND_ARGS:
        found.register_structure_hook(cls, lambda value, cls: cls.from_json(value))
    return found


def given(arg: CommandArgs | None, cls: type[CommandArgs]) -> Any:
    """The argument object, or InvalidParams when the request sent none (``arguments`` absent)."""
    if arg is not None:
        return arg
    try:
        return cls.from_json({})
    except ValueError as exc:
        raise JsonRpcInvalidParams(str(exc)) from None


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
    async def optimize(ls, arg: OptimizeArgs | None = None) -> dict[str, Any]:
        arg = given(arg, OptimizeArgs)
        if not ls.settings.trusted:
            raise RequestFailed(UNTRUSTED)
        run_id = await ls.runs.start_optimize(config_snapshot(ls, arg.uri))
        return {"runId": run_id}

    @server.command(EVALUATE)
    @guard(EVALUATE)
    async def evaluate(ls, arg: EvaluateArgs | None = None) -> dict[str, Any]:
        arg = given(arg, EvaluateArgs)
        if not ls.settings.trusted:
            raise RequestFailed(UNTRUSTED)
        run_id = await ls.runs.start_evaluate(arg.path, arg.metrics, arg.compare)
        return {"runId": run_id}

    @server.command(EVALUATE_METRICS)
    @guard(EVALUATE_METRICS)
    async def evaluate_metrics(ls, arg: EvaluateMetricsArgs | None = None) -> dict[str, Any]:
        return to_json(await ls.runs.metric_options(given(arg, EvaluateMetricsArgs).path))

    @server.command(COMPARE)
    @guard(COMPARE)
    async def compare(ls, arg: CompareArgs | None = None) -> dict[str, Any]:
        return to_json(await ls.runs.compare(given(arg, CompareArgs).sources))

    @server.command(CANCEL)
    @guard(CANCEL)
    async def cancel(ls, arg: CancelArgs | None = None) -> dict[str, Any]:
        return {"cancelled": ls.runs.cancel(given(arg, CancelArgs).run_id)}

    @server.command(VALIDATE)
    @guard(VALIDATE)
    async def validate(ls, arg: ValidateArgs | None = None) -> dict[str, Any]:
        from modelmill.lsp.diagnostics import analyze, to_json, to_lsp

        snap = config_snapshot(ls, given(arg, ValidateArgs).uri)
        found, _ = analyze(snap, ls.env)
        diagnostics = [to_json(d) for d in to_lsp(found, snap, ls.settings)]
        return {"diagnostics": diagnostics, "errors": sum(1 for d in found if d.severity == "error"),
                "warnings": sum(1 for d in found if d.severity == "warning")}

    @server.command(PLAN)
    @guard(PLAN)
    async def plan(ls, arg: PlanArgs | None = None) -> dict[str, Any]:
        snap = config_snapshot(ls, given(arg, PlanArgs).uri)
        return await ls.runs.dry_run(snap)

    @server.command(RUNS)
    @guard(RUNS)
    async def list_runs(ls, *args: Any) -> list[dict[str, Any]]:
        return ls.runs.describe()

    @server.command(RUN_EVENTS)
    @guard(RUN_EVENTS)
    async def run_events(ls, arg: RunEventsArgs | None = None) -> dict[str, Any]:
        arg = given(arg, RunEventsArgs)
        return ls.runs.events(arg.run_id, arg.since)

    @server.command(RUN_STATE)
    @guard(RUN_STATE)
    async def run_state(ls, arg: RunStateArgs | None = None) -> dict[str, Any]:
        return ls.runs.state(given(arg, RunStateArgs).run_id)

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
                "runs": ls.runs.describe(), "pid": __import__("os").getpid(),
                "earlyAnswers": [[request_id, method] for request_id, method in ls.early_answers.items()]}

