"""Runs started from the editor: optimize (a workflow plan) and evaluate (``evaluate.job.EvaluateRun``), both
through the engine's child-process runner, with work-done progress, ``modelmill/runEvent`` notifications and
log lines.

Each run's events are reduced by ``run_state.RunState`` (the reducer the CLI uses too). A client gets every engine
event unchanged as ``modelmill/runEvent`` and/or the reduced state as ``modelmill/runState`` (at most every
``STATE_INTERVAL_S`` per run, and at once for a run's first and last event), as its
``initializationOptions.runNotifications`` asks (``events``, the default; ``state``; ``both``). The runner calls
listeners from its reader thread; they hop onto the event loop with ``call_soon_threadsafe`` before anything is
sent. Progress: ``window/workDoneProgress/create`` with a fresh token per run, then ``$/progress`` begin
(cancellable) / report (the state's step and percentage, never decreasing) / end; the client's cancel of that
progress cancels the run. Clients without ``window.workDoneProgress`` get the same milestones as
``window/logMessage`` lines. A crashing or killed run ends with the runner's ``run.finished`` like any other, and
never touches the server process.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from modelmill.contracts import (CompareResult, ErrorEvent, EvaluateMetricsResult, MetricOption,
                                 RunFinishedEvent)
from modelmill.engine.events import EventBus
from modelmill.lsp.commands import RequestFailed
from modelmill.lsp.documents import Snapshot, uri_to_path
from modelmill.lsp.run_history import MAX_EVENTS, RunHistory, bounded
from modelmill.lsp.shared import RUN_EVENT, RUN_STATE
from modelmill.run_state import RunState, basename

if TYPE_CHECKING:
    from modelmill.lsp.server import ModelMillServer

STATE_INTERVAL_S = 0.1
"""The least time between two ``modelmill/runState`` notifications of one run."""
LOG_LEVELS = {"debug": types.MessageType.Log, "info": types.MessageType.Info, "warning": types.MessageType.Warning,
              "error": types.MessageType.Error, "critical": types.MessageType.Error}


@dataclass
class RunRecord:
    run_id: str
    kind: str  # optimize | evaluate
    config: str
    title: str
    output_dir: str | None = None
    token: str | None = None
    handle: Any = None
    reported: tuple[str, int] | None = None
    """The last work-done progress (step, percentage): reports never go backwards."""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_requested: bool = False
    start_failed: bool = False
    """The run could not start: the request's error tells the user, no second message."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Its events so far (bounded: ``run_history.bounded``), for ``modelmill.runEvents`` and the history."""
    restored_status: str | None = None
    """A run from the history: its status as kept (its state is rebuilt from its events when first asked)."""
    restored_error: str | None = None
    _state: RunState | None = None
    state_sent: float = 0.0
    state_timer: asyncio.TimerHandle | None = None

    @property
    def state(self) -> RunState:
        """The run's events reduced (``run_state``): status, step, percentage, error, output folder, ..."""
        if self._state is None:
            self._state = RunState.replay(self.run_id, self.events, self.title.removeprefix("ModelMill: "))
            if self.restored_status in ("succeeded", "failed", "cancelled") and self._state.view.status == "running":
                self._state.view.status = self.restored_status  # type: ignore[assignment]
                self._state.view.step = self.restored_status
        return self._state

    @property
    def status(self) -> str:
        """starting | running | succeeded | failed | cancelled"""
        if self._state is None and self.restored_status is not None:
            return self.restored_status
        view = self.state.view
        return "starting" if view.events == 0 and view.status == "running" else view.status

    @property
    def error(self) -> str | None:
        if self._state is None and self.restored_status is not None:
            return self.restored_error
        error = self.state.view.error
        return error.message if error is not None else None

    def describe(self) -> dict[str, Any]:
        return {"runId": self.run_id, "kind": self.kind, "status": self.status, "config": self.config,
                "outputDir": self.output_dir, "started": self.started, "finished": self.finished,
                "error": self.error}


class RunManager:
    def __init__(self, ls: ModelMillServer) -> None:
        self.ls = ls
        self.records: dict[str, RunRecord] = {}
        self.tokens: dict[str, str] = {}
        self.history: RunHistory | None = None

    # ------------------------------------------------------------------ public

    def describe(self) -> list[dict[str, Any]]:
        return [record.describe() for record in self.records.values()]

    def restore(self, workspace: Path | None) -> None:
        """The finished runs kept for this workspace (``run_history``), listed and replayable again."""
        self.history = RunHistory(workspace)
        for run, events in self.history.load():
            if run["runId"] in self.records:
                continue
            kind, config = str(run.get("kind") or "optimize"), str(run.get("config") or "")
            label = f"{'evaluate ' if kind == 'evaluate' else ''}{basename(config or 'run')}"
            record = RunRecord(run["runId"], kind, config, f"ModelMill: {label}", run.get("outputDir"),
                               started=run.get("started") or 0.0,
                               finished=run.get("finished") or run.get("started") or 0.0, events=events,
                               restored_status=str(run.get("status") or "failed"), restored_error=run.get("error"))
            self.records[record.run_id] = record

    def events(self, run_id: str, since: int = -1) -> dict[str, Any]:
        """A run's events with ``seq`` above ``since``: what the panel needs to rebuild its card."""
        record = self.records.get(run_id)
        if record is None:
            raise RequestFailed(f"no run '{run_id}' here: modelmill.runs lists the runs this server knows")
        return {"runId": run_id, "status": record.status, "finished": record.finished is not None,
                "events": [e for e in record.events if int(e.get("seq", -1)) > since]}

    def state(self, run_id: str) -> dict[str, Any]:
        """A run's reduced state (``RunView``), as ``modelmill/runState`` sends it."""
        record = self.records.get(run_id)
        if record is None:
            raise RequestFailed(f"no run '{run_id}' here: modelmill.runs lists the runs this server knows")
        return record.state.to_json()

    async def start_optimize(self, snap: Snapshot) -> str:
        from modelmill.engine.workflow import new_run_id

        plan = await asyncio.to_thread(self._plan, snap, True)
        run_id = new_run_id()
        record = RunRecord(run_id, "optimize", snap.uri, f"ModelMill: {Path(snap.name).name}",
                           str(plan.output_dir), _state=RunState(run_id, Path(snap.name).name))
        return await self._start(record, plan)

    async def start_evaluate(self, path: str, metrics: list[str] | None, compare: str | None) -> str:
        from modelmill.engine.workflow import new_run_id
        from modelmill.evaluate.job import EvaluateRun

        run_id = new_run_id()
        record = RunRecord(run_id, "evaluate", path, f"ModelMill: evaluate {Path(path).name}",
                           _state=RunState(run_id, f"evaluate {Path(path).name}"))
        job = EvaluateRun(path, str(compare) if compare else None, ",".join(metrics) if metrics else None)
        return await self._start(record, job)

    async def metric_options(self, path: str) -> EvaluateMetricsResult:
        """The metric presets that can measure the model at ``path`` (the editor's metric picker)."""
        from modelmill.errors import ModelMillError
        from modelmill.evaluate.job import metric_options

        try:
            kind, options = await asyncio.to_thread(metric_options, path)
        except ModelMillError as exc:
            raise RequestFailed(_message(exc)) from exc
        return EvaluateMetricsResult(path=path, model_kind=kind, options=[
            MetricOption(name=name, description=text, keys=keys, default=default)
            for name, text, keys, default in options])

    async def compare(self, sources: list[str]) -> CompareResult:
        """Finished runs (by id) or folders with a metrics.json, side by side (``evaluate/comparison.py``)."""
        from modelmill.errors import ModelMillError
        from modelmill.evaluate import comparison

        def build() -> CompareResult:
            measured = []
            for source in sources:
                record = self.records.get(source)
                if record is not None:
                    measured += comparison.run_results(source, record.events, record.output_dir)
                else:
                    measured += comparison.folder_results(Path(source).expanduser())
            return comparison.compare(measured)

        try:
            return await asyncio.to_thread(build)
        except ModelMillError as exc:
            raise RequestFailed(_message(exc)) from exc

    async def _start(self, record: RunRecord, job: Any) -> str:
        """Start a run of either kind in the engine's runner; its events come back through ``_on_event``."""
        from modelmill.engine.runner import start_run

        self.records[record.run_id] = record
        await self._begin(record)
        listener = self._listener(record)
        try:
            record.handle = await asyncio.to_thread(start_run, job, record.run_id, [listener])
        except Exception as exc:
            self._fail(record, f"the run could not start: {exc}")
            raise RequestFailed(f"the run could not start: {exc}") from exc
        if record.cancel_requested:
            record.handle.cancel()
        return record.run_id

    def cancel(self, run_id: str) -> bool:
        record = self.records.get(run_id)
        if record is None or record.status in ("succeeded", "failed", "cancelled"):
            return False
        record.cancel_requested = True
        if record.handle is not None:
            record.handle.cancel()
        return True

    def cancel_token(self, token: str) -> None:
        run_id = self.tokens.get(token)
        if run_id is not None:
            self.ls.log(f"[{run_id}] cancelled from the progress notification")
            self.cancel(run_id)

    def cancel_all(self) -> None:
        for run_id in list(self.records):
            try:
                self.cancel(run_id)
            except Exception:
                pass

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel the runs still going and give them time to clean up (no half-written folders)."""
        self.cancel_all()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(r.handle is not None and not r.handle.done
                                                  for r in self.records.values()):
            await asyncio.sleep(0.05)

    async def dry_run(self, snap: Snapshot) -> dict[str, Any]:
        return await asyncio.to_thread(self._dry_run, snap)

    # ------------------------------------------------------------------ planning

    def _workspace_folders(self) -> list[Path]:
        folders: list[Path] = []
        if self.ls.protocol.workspace is not None:
            for folder in (self.ls.workspace.folders or {}).values():
                path = uri_to_path(folder.uri)
                if path:
                    folders.append(Path(path))
            if self.ls.workspace.root_path:
                folders.append(Path(self.ls.workspace.root_path))
        return folders

    def _base_dir(self, snap: Snapshot) -> Path:
        """Relative output and cache folders resolve against the workspace folder holding the config."""
        config_dir = snap.base_dir or Path.cwd()
        folders = self._workspace_folders()
        for folder in sorted(folders, key=lambda p: len(str(p)), reverse=True):
            try:
                config_dir.resolve().relative_to(folder.resolve())
                return folder
            except ValueError:
                continue
        return config_dir

    def _plan(self, snap: Snapshot, fetch_samples: bool) -> Any:
        """The plan of a run (``fetch_samples``: a run, which fetches a sample model and checks the provider) or of
        a preview (Show Plan: an unfetched sample is refused, the provider left to its diagnostic)."""
        from modelmill.engine.prepare import RunDefaults, prepare_run
        from modelmill.errors import ModelMillError

        settings = self.ls.settings
        defaults = RunDefaults(settings.cache_dir, settings.default_device, settings.default_provider)
        # a run replaces its output folder: never a workspace folder or one that holds it
        protected = [(folder, "a workspace folder") for folder in self._workspace_folders()]
        try:
            return prepare_run(snap.doc, None, self._base_dir(snap), env=self.ls.env, defaults=defaults,
                               fetch_samples=fetch_samples, check_providers=fetch_samples, protected=protected).plan
        except ModelMillError as exc:
            raise RequestFailed(_message(exc)) from exc

    def _dry_run(self, snap: Snapshot) -> dict[str, Any]:
        from modelmill.errors import ModelMillError
        from modelmill.lsp.estimate import estimate_steps, parameter_count

        plan = self._plan(snap, False)
        cached = [False] * len(plan.steps)
        if (plan.cache_dir / "entries").exists():
            from modelmill.engine.cache import Cache
            from modelmill.engine.chain import step_keys

            try:
                cache = Cache(plan.cache_dir, create=False)
                cached = [cache.contains(key) for key in step_keys(plan, cache)]
            except (OSError, ModelMillError):
                pass
        count, precision = parameter_count(plan.input_model.path, plan.input_model.kind)
        steps = [(step.name, step.pass_cls.name, step.params.model_dump(mode="json", exclude_defaults=False),
                  step.pass_cls.accepts, step.pass_cls.supported_precisions, hit)
                 for step, hit in zip(plan.steps, cached)]
        passes = estimate_steps(count, precision, steps)
        for entry, step in zip(passes, plan.steps):
            entry["params"] = step.params.model_dump(mode="json", exclude_defaults=True)
        described = plan.describe()
        return {"passes": passes, "outputDir": str(plan.output_dir), "cacheDir": str(plan.cache_dir),
                "device": plan.accelerator.device, "executionProvider": plan.accelerator.execution_provider,
                "searchSpace": described["search_space"], "search": described["search"],
                "inputModel": {**plan.input_model.to_json(), "parameters": int(count), "precision": precision},
                "estimatedSeconds": round(sum(p["estimatedSeconds"] for p in passes), 1),
                "estimatedMemoryMB": max((p["estimatedMemoryMB"] for p in passes), default=0)}

    # ------------------------------------------------------------------ events

    def _listener(self, record: RunRecord) -> Any:
        loop = asyncio.get_running_loop()

        def listener(event: dict[str, Any]) -> None:  # the runner's reader thread
            loop.call_soon_threadsafe(self._on_event, record, event)

        return listener

    def _notifications(self) -> str:
        """What the client asked to hear of runs: ``events`` (default), ``state`` or ``both``."""
        wanted = self.ls.initialization_options.get("runNotifications")
        return wanted if wanted in ("events", "state", "both") else "events"

    def _on_event(self, record: RunRecord, event: dict[str, Any]) -> None:
        if self.ls.closing:
            return
        try:
            if not record.state.apply(event):
                return  # a duplicate
        except Exception:
            self.ls.log_exception("runEvent")
        record.events.append(event)
        if len(record.events) > 2 * MAX_EVENTS:
            record.events = bounded(record.events)
        # For run.finished the progress `end` goes out first: a client that sees run.finished has seen the end.
        finished = event.get("type") == "run.finished"
        if finished:
            self._safe_render(record, event)
        wanted = self._notifications()
        try:
            if wanted != "state":
                self.ls.protocol.notify(RUN_EVENT, event)
            if wanted != "events":
                self._send_state(record, at_once=finished or record.state.view.events == 1)
        except Exception:
            self.ls.log_exception("runEvent")
        if not finished:
            self._safe_render(record, event)

    def _send_state(self, record: RunRecord, at_once: bool = False) -> None:
        """``modelmill/runState`` now, or once ``STATE_INTERVAL_S`` has passed since the last one."""
        if record.state_timer is not None:
            if not at_once:
                return  # one is due already and will carry this change
            record.state_timer.cancel()
            record.state_timer = None
        wait = record.state_sent + STATE_INTERVAL_S - time.monotonic()
        if at_once or wait <= 0:
            record.state_sent = time.monotonic()
            self.ls.protocol.notify(RUN_STATE, record.state.to_json())
        else:
            record.state_timer = asyncio.get_running_loop().call_later(wait, self._flush_state, record)

    def _flush_state(self, record: RunRecord) -> None:
        record.state_timer = None
        if self.ls.closing:
            return
        try:
            self._send_state(record, at_once=True)
        except Exception:
            self.ls.log_exception("runState")

    def _safe_render(self, record: RunRecord, event: dict[str, Any]) -> None:
        try:
            self._render(record, event)
        except Exception:
            self.ls.log_exception("runEvent")

    def _render(self, record: RunRecord, event: dict[str, Any]) -> None:
        """The state as work-done progress; the events worth a line as log lines."""
        kind = event.get("type")
        view = record.state.view
        prefix = f"[{record.run_id}]"
        if kind == "run.finished":
            self._finish(record, event)
            return
        self._report(record)
        if kind == "metric.measured":
            self.ls.log(f"{prefix} {event.get('candidate', '')} {event.get('key')} = {event.get('value')} "
                        f"{event.get('unit') or ''}".rstrip())
        elif kind == "log":
            level = LOG_LEVELS.get(str(event.get("level")), types.MessageType.Log)
            where = f" {event['pass_name']}:" if event.get("pass_name") else ""
            self.ls.log(f"{prefix}{where} {event.get('message')}", level)
        elif kind == "warning":
            self.ls.log(f"{prefix} warning: {event.get('message')}", types.MessageType.Warning)
        elif kind == "error" and view.error is not None:
            fix = f" — {view.error.fix}" if view.error.fix else ""
            self.ls.log(f"{prefix} error: {view.error.message}{fix}", types.MessageType.Error)
            if not record.start_failed:
                self.ls.window_show_message(types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"ModelMill run failed: {view.error.message}{fix}"))

    def _report(self, record: RunRecord) -> None:
        """The state's step and percentage, when either moved (the percentage never goes back: LSP asks for a
        steadily rising one, and a search's next candidate starts its passes again)."""
        view = record.state.view
        percentage = max(record.reported[1] if record.reported else 0, view.percent)
        if record.reported == (view.step, percentage):
            return
        record.reported = (view.step, percentage)
        if record.token is not None:
            self.ls.work_done_progress.report(record.token, types.WorkDoneProgressReport(
                message=view.step, percentage=percentage, cancellable=True))
        else:
            self.ls.log(f"[{record.run_id}] {percentage}% {view.step}")

    async def _begin(self, record: RunRecord) -> None:
        message = "starting"
        if self.ls.client_supports("window.work_done_progress"):
            token = f"modelmill-{record.run_id}-{uuid.uuid4().hex[:8]}"
            try:
                await asyncio.wait_for(self.ls.work_done_progress.create_async(token), 10)
                record.token = token
                self.tokens[token] = record.run_id
                self.ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(
                    title=record.title, cancellable=True, message=message, percentage=0))
                return
            except Exception:
                self.ls.log_exception("progress")
        self.ls.log(f"[{record.run_id}] {record.title}: {message}")

    def _finish(self, record: RunRecord, event: dict[str, Any]) -> None:
        if record.finished is not None:
            return
        status = record.state.view.status
        record.finished = time.time()
        if event.get("output_dir") and status == "succeeded":
            record.output_dir = str(event["output_dir"])
        duration = event.get("duration_s")
        summary = f"{status}" + (f" in {duration:.1f}s" if isinstance(duration, (int, float)) else "")
        if status == "succeeded" and record.output_dir and record.kind == "optimize":
            summary += f": {record.output_dir}"
        if record.token is not None:
            self.ls.work_done_progress.end(record.token, types.WorkDoneProgressEnd(message=summary))
            self.tokens.pop(record.token, None)
            self.ls.work_done_progress.tokens.pop(record.token, None)
        level = types.MessageType.Info if status == "succeeded" else types.MessageType.Warning
        self.ls.log(f"[{record.run_id}] {record.title}: {summary}", level)
        if self.history is not None:
            self.history.save(record.describe(), record.events)

    def _fail(self, record: RunRecord, message: str) -> None:
        """A run that could not start ends as a failed run does: ``error``, then ``run.finished``."""
        record.start_failed = True
        bus = EventBus(record.run_id, [lambda event: self._on_event(record, event)])
        bus._seq = itertools.count(record.state.last_seq + 1)  # numbered after the run's own events
        bus.emit(ErrorEvent(message=message, fix=None, where=None, kind="internal"))
        bus.emit(RunFinishedEvent(status="failed", duration_s=round(time.time() - record.started, 3)))

def _message(exc: Exception) -> str:
    fix = getattr(exc, "fix", None)
    text = str(exc)
    return f"{text}\nfix: {fix}" if fix and fix not in text else text
