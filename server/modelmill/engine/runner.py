"""Runs in a child process: a crash or a kill never takes the caller down, and cancel is immediate.

``start_run(plan)`` returns a ``RunHandle`` at once. The child runs the plan and sends every
event through a pipe; the parent hands them to its listeners in order. ``cancel()`` stops the
child (SIGTERM, then SIGKILL after a grace period) and the parent removes whatever the child
left half-written: no partial output folder, and only complete cache entries remain. Several
runs may go at once. A plan whose every step is already cached runs in-process (no child start-up).

A run is of one kind (``RunKind``): a workflow ``Plan`` (optimize; ``PlanRun``) or an evaluation
(``modelmill.evaluate.job.EvaluateRun``). Every kind gets the same worker process, event stream, cancel
and lost-worker report; the kind says what the worker does and what the parent cleans up after it.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, runtime_checkable

from modelmill.engine.events import EventBus, Listener

if TYPE_CHECKING:  # not imported at run time: a worker of another kind (evaluate) never loads the pass machinery
    from modelmill.engine.plan import Plan

CANCEL_GRACE_S = 0.5
_worker_context: Any = None  # None: each worker is spawned (a fresh interpreter); see use_warm_workers


def use_warm_workers(preload: list[str]) -> None:
    """Fork later workers from one server process that has imported ``preload`` once (multiprocessing's
    forkserver), instead of spawning each one: a worker then starts in milliseconds instead of importing torch and
    transformers again (~3 s of CPU). For a process that starts many runs (the test suite); POSIX only. Workers
    stay separate processes, and each takes the caller's environment and working folder as they are at its start."""
    global _worker_context
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    _worker_context = context


@runtime_checkable
class RunKind(Protocol):
    """What a run does. Picklable: the worker process receives it."""

    @property
    def output_dir(self) -> Path | None:
        """The folder a successful run leaves in place (None: the run writes no folder)."""

    def cancel_grace_s(self) -> float:
        """How long the worker may take to stop after SIGTERM before it is killed."""

    def log_path(self, run_id: str) -> Path:
        """Where the worker's raw output and full log go (kept after the run for diagnosis)."""

    def rerun_note(self) -> str:
        """What running again after a lost worker does (part of the error's fix)."""

    def in_process(self) -> bool:
        """True when the run has nothing heavy to do and goes in a thread of the caller (no worker start-up)."""

    def prepare(self) -> None:
        """In the parent, before the worker starts."""

    def execute(self, bus: EventBus, cancel: threading.Event) -> Any:
        """The run itself: reports through ``bus``, from ``run.started`` to ``run.finished``; raises after
        reporting a failure."""

    def clean_after(self, run_id: str, pid: int) -> None:
        """In the parent, after the worker ended: remove what a killed worker left half-written."""


@dataclass
class PlanRun:
    """A workflow plan as a run kind (optimize, ``modelmill run`` and the commands built on it)."""

    plan: Plan

    @property
    def output_dir(self) -> Path:
        return self.plan.output_dir

    def cancel_grace_s(self) -> float:
        # Passes that stop cleanly at their next step (training) get longer before the kill.
        grace = max([CANCEL_GRACE_S, *(step.pass_cls.cancel_grace_s for step in self.plan.steps)])
        if self.plan.cluster is not None:  # the driver cancels its Ray tasks before it exits
            from modelmill.engine.distributed import CLUSTER_CANCEL_GRACE_S

            grace = max(grace, CLUSTER_CANCEL_GRACE_S)
        return grace

    def log_path(self, run_id: str) -> Path:
        return log_path(self.plan, run_id)

    def rerun_note(self) -> str:
        return "finished passes are cached"

    def in_process(self) -> bool:
        return _all_cached(self.plan)

    def prepare(self) -> None:
        from modelmill.engine.cache import Cache

        try:
            Cache(self.plan.cache_dir)  # before the child writes its log there: a new cache folder gets its marker
        except OSError:
            pass  # the child reports what is wrong with the folder

    def execute(self, bus: EventBus, cancel: threading.Event) -> Any:
        from modelmill.engine.workflow import run_plan

        return run_plan(self.plan, bus, cancel)

    def clean_after(self, run_id: str, pid: int) -> None:
        _clean_after_child(self.plan, run_id, pid)


@dataclass
class RunOutcome:
    run_id: str
    status: str  # succeeded | failed | cancelled
    output_dir: Path | None = None
    error: dict[str, Any] | None = None
    duration_s: float = 0.0


@dataclass
class RunHandle:
    run_id: str
    job: RunKind
    listeners: list[Listener] = field(default_factory=list)
    _events: list[dict[str, Any]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _done: threading.Event = field(default_factory=threading.Event)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _process: Any = None
    _outcome: RunOutcome | None = None
    _last_seq: int = -1

    # --- public API ------------------------------------------------------------------------

    def events(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Every event of the run, from the first, until it finishes (safe from several threads)."""
        index = 0
        while True:
            with self._cond:
                while index >= len(self._events) and not self._done.is_set():
                    if not self._cond.wait(timeout):
                        return
                if index >= len(self._events):
                    return
                event = self._events[index]
            index += 1
            yield event

    def cancel(self) -> None:
        """Stop the run; returns at once (``result()`` waits for the clean-up)."""
        self._cancel.set()
        process = self._process
        if process is not None and process.is_alive():
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            threading.Thread(target=self._kill_after_grace, daemon=True).start()

    def result(self, timeout: float | None = None) -> RunOutcome:
        if not self._done.wait(timeout):
            raise TimeoutError(f"run {self.run_id} still going after {timeout}s")
        assert self._outcome is not None
        return self._outcome

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run finishes or ``timeout`` seconds pass; True when it has finished."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # --- internals -------------------------------------------------------------------------

    def _kill_after_grace(self) -> None:
        process = self._process
        process.join(self.job.cancel_grace_s())
        if process.is_alive():
            process.kill()

    def _deliver(self, event: dict[str, Any]) -> None:
        self._last_seq = max(self._last_seq, int(event.get("seq", -1)))
        for listener in self.listeners:
            try:
                listener(event)
            except BaseException:  # noqa: BLE001 - a broken listener, even one raising SystemExit, must not end
                pass  # this thread: the run would never finish and its caller would wait forever
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def _parent_bus(self) -> EventBus:
        """Events the parent itself reports (a killed child), numbered after the child's."""
        bus = EventBus(self.run_id, [self._deliver])
        bus._seq = iter(range(self._last_seq + 1, 1 << 62))  # type: ignore[assignment]
        return bus

    def _finish(self, started: float) -> None:
        finished = next((e for e in reversed(self._events) if e["type"] == "run.finished"), None)
        error = next((e for e in reversed(self._events) if e["type"] == "error"), None)
        status = finished["status"] if finished else "failed"
        self._outcome = RunOutcome(self.run_id, status, self.job.output_dir if status == "succeeded" else None,
                                   error, round(time.perf_counter() - started, 3))
        with self._cond:
            self._done.set()
            self._cond.notify_all()


def start_run(plan: Plan | RunKind, run_id: str, listeners: list[Listener] | None = None,
              in_process: bool | None = None) -> RunHandle:
    """Start ``plan`` (or a run of another kind); events go to ``listeners`` (called from a reader thread) and
    ``handle.events()``."""
    job: RunKind = plan if isinstance(plan, RunKind) else PlanRun(plan)
    handle = RunHandle(run_id, job, list(listeners or []))
    if in_process is None:
        in_process = job.in_process()
    target = _run_in_thread if in_process else _run_in_child
    threading.Thread(target=target, args=(handle,), name=f"modelmill-run-{run_id}", daemon=True).start()
    return handle


def _all_cached(plan: Plan) -> bool:
    """True when every step's output is cached (an input the fingerprint index does not know is not)."""
    from modelmill.engine.cache import FINGERPRINTS, Cache, known_fingerprint
    from modelmill.engine.chain import chain_keys

    if plan.search_space.dimensions or plan.metrics:
        return False  # candidates and evaluations: leave it to the worker
    try:
        cache = Cache(plan.cache_dir, create=False)
        known = known_fingerprint(plan.input_model.path, cache.root / FINGERPRINTS)
        return known is not None and all(cache.contains(key) for key in chain_keys(plan, known, plan.steps))
    except OSError:
        return False


def _run_in_thread(handle: RunHandle) -> None:
    started = time.perf_counter()
    try:
        handle.job.execute(EventBus(handle.run_id, [handle._deliver]), handle._cancel)
    except BaseException:  # noqa: BLE001 - reported through events already
        pass
    handle._finish(started)


def _run_in_child(handle: RunHandle) -> None:
    started = time.perf_counter()
    handle.job.prepare()
    context = _worker_context or multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    # The environment and working folder go along: a forkserver's worker would otherwise have the server's.
    process = context.Process(target=_child_main, name=f"modelmill-run-{handle.run_id}", daemon=True,
                              args=(handle.job, handle.run_id, sender, dict(os.environ), os.getcwd()))
    if handle._cancel.is_set():
        _report_cancel_before_start(handle)
        handle._finish(started)
        return
    process.start()
    handle._process = process
    sender.close()
    if handle._cancel.is_set():  # cancelled while starting
        handle.cancel()
    while True:
        try:
            event = receiver.recv()
        except (EOFError, OSError):
            break
        handle._deliver(event)
    process.join()
    receiver.close()
    finished = any(e["type"] == "run.finished" for e in handle._events)
    if not finished:
        _report_lost_child(handle, process.exitcode)
    handle.job.clean_after(handle.run_id, process.pid)
    handle._finish(started)


def _report_cancel_before_start(handle: RunHandle) -> None:
    EventBus(handle.run_id, [handle._deliver]).emit("run.finished", status="cancelled")


def _report_lost_child(handle: RunHandle, exitcode: int | None) -> None:
    bus = handle._parent_bus()
    if handle._cancel.is_set():
        bus.emit("run.finished", status="cancelled")
        return
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (the system's out-of-memory killer sends this when memory runs out)" if name == "SIGKILL" else ""
        message = f"the run's worker process was killed by {name}{hint}"
        fix = f"free memory or pick a smaller precision/model, then run again; {handle.job.rerun_note()}"
    else:
        message = f"the run's worker process exited unexpectedly (exit code {exitcode})"
        fix = f"see the worker's log {handle.job.log_path(handle.run_id)}; run again ({handle.job.rerun_note()})"
    bus.emit("error", message=message, fix=fix, where=None, kind="worker-lost")
    bus.emit("run.finished", status="failed")


def log_path(plan: Plan, run_id: str) -> Path:
    """Where a worker's raw output and full log go (kept after the run for diagnosis)."""
    return plan.cache_dir / "logs" / f"{run_id}.log"


def _clean_after_child(plan: Plan, run_id: str, pid: int) -> None:
    """Remove what a killed child could not: its half-written output and cache staging folders."""
    from modelmill.engine.output import partial_name

    shutil.rmtree(plan.output_dir.parent / partial_name(plan.output_dir, run_id), ignore_errors=True)
    from modelmill.engine.output import owner_tag

    entries = plan.cache_dir / "entries"
    if entries.exists():
        for folder in entries.glob(f".tmp-*-{owner_tag(pid)}"):
            shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(plan.cache_dir / "runs" / run_id, ignore_errors=True)


def _child_main(job: RunKind, run_id: str, sender: Any, environ: dict[str, str], cwd: str) -> None:
    if os.environ != environ:
        os.environ.clear()
        os.environ.update(environ)
    try:
        os.chdir(cwd)
    except OSError:  # removed meanwhile: stay where the worker started
        pass
    # The parent owns Ctrl-C: it decides to cancel and cleans up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from modelmill.engine.cancel import install_sigterm_handler
    from modelmill.engine.logbridge import route_worker_output

    cancel = threading.Event()
    install_sigterm_handler(cancel)
    send: Callable[[dict[str, Any]], None] = sender.send
    bus = EventBus(run_id, [send])
    route_worker_output(bus, job.log_path(run_id))
    try:
        job.execute(bus, cancel)
    except BaseException:  # noqa: BLE001 - the failure was reported as events
        os._exit(1)
    finally:
        sender.close()
    os._exit(0)
