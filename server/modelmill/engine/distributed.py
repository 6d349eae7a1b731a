"""Search candidates as Ray tasks: the workflow's ``host`` names a system of type ``Ray``.

The driver (the run's worker process) connects to the cluster, submits each candidate (its pass chain
and its evaluation, ``search.execute_candidate``) as one Ray task and gets back what it produced. The
cache folder is shared by every node (same path everywhere), so a pass output or an evaluation computed
on one node is a cache hit on the others; entries are committed by rename, so two nodes computing the
same step never leave a mixed entry.

Remote events travel through a small relay actor; the driver re-emits them on the run's one stream,
tagged with ``node`` (Ray node id), ``node_ip`` and ``worker`` (host-pid). A worker or node that dies
fails its task with a Ray system error: the candidate is submitted again (``max_retries``) and a
``candidate.retried`` event says so. ``ray`` is imported only here, only when a run uses a cluster.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from modelmill.contracts import (CandidateCancelledEvent, CandidateRetriedEvent, ClusterConnectedEvent, WarningEvent,
                                 make_event)
from modelmill.engine.candidate import CandidateJob, CandidateOutcome, execute_candidate
from modelmill.engine.chain import Chain
from modelmill.engine.events import EventBus
from modelmill.engine.logbridge import EventLogHandler
from modelmill.engine.output import owner_tag
from modelmill.engine.plan import ClusterSpec, Plan
from modelmill.errors import ModelMillError

# How long the parent gives a cancelled run to cancel its Ray tasks before it kills the driver.
CLUSTER_CANCEL_GRACE_S = 10.0
POLL_S = 0.2
# After ray.cancel, a task on a lost node may never report back: give up on it after this long.
ABANDON_AFTER_CANCEL_S = 15.0
_RELAY_TIMEOUT_S = 10.0
_ENVELOPE = ("v", "type", "run_id", "ts", "seq")


class ClusterError(ModelMillError):
    """The Ray cluster could not be reached or cannot run the candidates."""


# --------------------------------------------------------------------------------------------- connecting


def _probe(address: str, timeout: float, where: str) -> None:
    """Fail in seconds on an address nothing listens on (``ray.init`` would retry for minutes)."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ClusterError(f"no Ray cluster answers at {address} ({exc})",
                           fix="start one with `ray start --head --port 6379` on the head node (Ray Client: "
                               "ray://HOST:10001), or correct the address", where=where) from exc


def connect(spec: ClusterSpec) -> list[dict[str, Any]]:
    """``ray.init`` for the spec; the alive nodes as ``{node, ip, cpus, gpus, memory}``."""
    import ray

    where = f"systems.{spec.name}.address"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a run never phones home by default
    if spec.address not in (None, "local", "auto"):
        _probe(spec.address, spec.connect_timeout_s, where)
    options: dict[str, Any] = {"namespace": "modelmill", "log_to_driver": False, "ignore_reinit_error": True}
    # ray.init makes SIGTERM raise SystemExit; the run's own handler (cancel the tasks, then exit) must stay.
    main = threading.current_thread() is threading.main_thread()
    on_sigterm = signal.getsignal(signal.SIGTERM) if main else None
    try:
        if spec.address in (None, "local"):
            ray.init(include_dashboard=False, **options)
        else:
            ray.init(address=spec.address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"could not connect to the Ray cluster {spec.address or '(local)'}: {exc}",
                           fix="`ray status` on the head node shows whether it runs; \"auto\" needs this machine "
                               "to have joined it with `ray start`; with token authentication every node and "
                               "this machine need the cluster's token (RAY_AUTH_TOKEN or ~/.ray/auth_token)",
                           where=where) from exc
    finally:
        if main and on_sigterm is not None:
            signal.signal(signal.SIGTERM, on_sigterm)
    return [{"node": n["NodeID"], "ip": n.get("NodeManagerAddress"), "cpus": n["Resources"].get("CPU", 0.0),
             "gpus": n["Resources"].get("GPU", 0.0), "memory": n["Resources"].get("memory", 0.0)}
            for n in ray.nodes() if n.get("Alive")]


def capacity(spec: ClusterSpec, nodes: list[dict[str, Any]]) -> int:
    """How many candidates fit at once; a clear error when no node can take even one."""
    def fits(node: dict[str, Any]) -> int:
        counts = [int(node["cpus"] // spec.num_cpus)]
        if spec.num_gpus:
            counts.append(int(node["gpus"] // spec.num_gpus))
        if spec.memory:
            counts.append(int(node["memory"] // spec.memory))
        return max(0, min(counts))

    total = sum(fits(node) for node in nodes)
    if total == 0:
        have = "; ".join(f"{n['ip']}: {n['cpus']:g} CPU, {n['gpus']:g} GPU, {n['memory'] / 1e9:.1f} GB"
                         for n in nodes) or "no alive nodes"
        need = f"{spec.num_cpus:g} CPU, {spec.num_gpus:g} GPU" + (f", {spec.memory / 1e9:.1f} GB" if spec.memory
                                                                  else "")
        raise ClusterError(f"no node of the Ray cluster can run a candidate ({need}); the cluster has: {have}",
                           fix=f"lower num_cpus / num_gpus / memory in systems.{spec.name}, or add a node that has "
                               "them (`ray start --address HEAD:PORT --num-gpus 1`)", where=f"systems.{spec.name}")
    return spec.max_concurrent or total


# --------------------------------------------------------------------------------------------- the worker side


def limit_threads(threads: int) -> None:
    """One candidate uses ``threads`` cores: PyTorch, OpenMP/BLAS and every ONNX Runtime session it opens
    (read by evaluate.runtime), so candidates side by side on one node do not fight over cores."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MODELMILL_INTRA_OP_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


class _Forwarder:
    """A worker's event listener: tags each event and sends it to the driver's relay actor."""

    def __init__(self, relay: Any, tags: dict[str, Any]) -> None:
        self.relay, self.tags = relay, tags

    def __call__(self, event: dict[str, Any]) -> None:
        event = {**event, **self.tags}
        self.relay.push.remote([event])  # fire and forget: calls from one worker arrive in order

    def sync(self) -> None:
        """Wait until every event sent so far is at the relay (before the task returns its result)."""
        import ray

        try:
            ray.get(self.relay.push.remote([]), timeout=_RELAY_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - a lost relay costs events, never the candidate's result
            pass


def run_candidate_task(plan: Plan, job: CandidateJob, run_id: str, relay: Any, threads: int) -> CandidateOutcome:
    """The Ray task: one candidate's passes and evaluation on this node, through the shared cache."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    forward = _Forwarder(relay, {"candidate": job.id, "node": node, "node_ip": ray.util.get_node_ip_address(),
                                 "worker": owner_tag()})
    bus = EventBus(run_id, [forward])
    limit_threads(threads)
    # Scratch lives under the run's folder in the shared cache: the driver removes it with the run, even when
    # this worker is killed mid-pass.
    work = plan.cache_dir / "runs" / run_id / f"{job.id}-{job.attempt}-{owner_tag()}"
    chain = Chain(plan, bus, threading.Event(), work)
    handler = EventLogHandler(bus)
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        outcome = execute_candidate(plan, chain, bus, job)
        outcome.node = node
        return outcome
    finally:
        logging.getLogger().removeHandler(handler)
        chain.cache.discard_staging()
        shutil.rmtree(work, ignore_errors=True)
        forward.sync()


def _relay_class() -> Any:
    import ray

    @ray.remote(num_cpus=0, max_restarts=0)
    class EventRelay:
        """Holds remote candidates' events until the driver drains them (ordered per sender)."""

        def __init__(self) -> None:
            self.events: list[dict[str, Any]] = []

        def push(self, events: list[dict[str, Any]]) -> None:
            self.events.extend(events)

        def drain(self) -> list[dict[str, Any]]:
            events, self.events = self.events, []
            return events

    return EventRelay


# --------------------------------------------------------------------------------------------- the driver side


@dataclass
class _Attempt:
    job: CandidateJob
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    node: str | None = None
    worker: str | None = None
    cancelled_at: float | None = None
    reason: str | None = None


class RayExecutor:
    """Runs candidates on a Ray cluster, ``capacity`` at a time; the search's executor interface."""

    def __init__(self, plan: Plan, bus: EventBus, cancel: threading.Event) -> None:
        import ray

        assert plan.cluster is not None
        self.plan, self.bus, self.cancel, self.spec = plan, bus, cancel, plan.cluster
        nodes = connect(self.spec)
        try:
            self.capacity = capacity(self.spec, nodes)
            self._relay = _relay_class().remote()
            options: dict[str, Any] = {"num_cpus": self.spec.num_cpus, "num_gpus": self.spec.num_gpus,
                                       "max_retries": 0, "retry_exceptions": False}
            if self.spec.memory:
                options["memory"] = self.spec.memory
            # Retries are ours (max_retries=0 here): each one is reported, and bounded by the config.
            self._task, self._options = ray.remote(run_candidate_task), options
        except BaseException:
            ray.shutdown()
            raise
        self.running: list[CandidateJob] = []
        self._refs: dict[Any, _Attempt] = {}
        self._by_candidate: dict[str, _Attempt] = {}
        self._relay_lost = False
        self._late: list[tuple[CandidateJob, BaseException]] = []  # failures found by the timeout watch
        bus.emit(ClusterConnectedEvent(system=self.spec.name, address=self.spec.address or "local", nodes=nodes,
                                       max_concurrent=self.capacity,
                                       per_candidate={"num_cpus": self.spec.num_cpus, "num_gpus": self.spec.num_gpus,
                                                      "memory": self.spec.memory}))

    # --- the executor interface ------------------------------------------------------------------------

    def submit(self, job: CandidateJob) -> None:
        ref = self._task.options(**self._options, name=f"modelmill:{self.bus.run_id}:{job.id}").remote(
            self.plan, job, self.bus.run_id, self._relay, self.spec.threads)
        attempt = _Attempt(job)
        self._refs[ref] = attempt
        self._by_candidate[job.id] = attempt
        if job.attempt == 1:
            self.running.append(job)

    def wait(self) -> list[tuple[CandidateJob, "CandidateOutcome | BaseException"]]:
        """Results of candidates that finished (after retries) in the next poll interval."""
        import ray

        refs = list(self._refs)
        ready: list[Any] = []
        if refs:  # back as soon as one finishes (or after POLL_S, to relay events), then every one that is done
            if ray.wait(refs, num_returns=1, timeout=POLL_S)[0]:
                ready = ray.wait(refs, num_returns=len(refs), timeout=0)[0]
        self._drain()
        finished: list[tuple[CandidateJob, CandidateOutcome | BaseException]] = list(self._late)
        self._late.clear()
        for ref in ready:
            attempt = self._refs.pop(ref)
            result = self._result(ref, attempt)
            if result is not None:
                finished.append(result)
        self._watch_timeouts()
        for job, _ in finished:
            self.running = [j for j in self.running if j.id != job.id]
        return finished

    def cancel_all(self) -> None:
        """Cancel every submitted task (ray.cancel; force kills a running worker)."""
        import ray

        for ref, attempt in list(self._refs.items()):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or its node is gone
                pass
            self.bus.emit(CandidateCancelledEvent(candidate=attempt.job.id, **self._where(attempt)))
            self._clean_worker(attempt)
        self._refs.clear()
        self.running.clear()

    def close(self) -> None:
        import ray

        if self._refs:
            self.cancel_all()
        try:
            ray.kill(self._relay)
        except Exception:  # noqa: BLE001
            pass
        ray.shutdown()

    # --- internals -------------------------------------------------------------------------------------

    def _result(self, ref: Any, attempt: _Attempt) -> tuple[CandidateJob, Any] | None:
        import ray
        from pydantic import ValidationError

        job = attempt.job
        try:
            outcome = ray.get(ref, timeout=_RELAY_TIMEOUT_S)
        except ray.exceptions.RayTaskError as exc:  # the candidate's own code raised
            cause = getattr(exc, "cause", None)
            if isinstance(cause, (ModelMillError, ValidationError)):  # PassError, EvaluationError, ...
                return job, cause
            return job, ClusterError(f"candidate {job.id} failed on node {attempt.node or '?'}: "
                                     f"{type(cause).__name__ if cause else 'error'}: {cause or exc}",
                                     fix="the remote traceback is in the run's log; run the config without the "
                                         "Ray host to reproduce it locally")
        except (ray.exceptions.RayError, TimeoutError) as exc:  # the worker, its node or the task was lost
            return self._retry(attempt, attempt.reason or _reason(exc))
        return job, outcome

    def _retry(self, attempt: _Attempt, reason: str) -> tuple[CandidateJob, BaseException] | None:
        job = attempt.job
        self._clean_worker(attempt)
        if job.attempt > self.spec.max_retries:
            from modelmill.engine.candidate import CandidateFailed

            return job, CandidateFailed(
                f"candidate {job.id} was lost {job.attempt} time(s), the last on node {attempt.node or '?'}: {reason}",
                fix=f"check the nodes' memory and logs (`ray logs`, /tmp/ray/session_latest/logs); raise "
                    f"systems.{self.spec.name}.max_retries or candidate_timeout_s", where=f"systems.{self.spec.name}")
        again = replace(job, attempt=job.attempt + 1)
        self.bus.emit(CandidateRetriedEvent(candidate=job.id, attempt=again.attempt,
                                            max_attempts=self.spec.max_retries + 1, reason=reason,
                                            **self._where(attempt)))
        self.submit(again)
        return None

    def _watch_timeouts(self) -> None:
        """Cancel candidates over their time limit; give up on cancelled tasks that never report back."""
        import ray

        now = time.monotonic()
        limit = self.spec.candidate_timeout_s
        for ref, attempt in list(self._refs.items()):
            if attempt.cancelled_at is None and limit and attempt.started and now - attempt.started > limit:
                attempt.cancelled_at, attempt.reason = now, f"timed out after {limit:g}s"
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001
                    pass
            elif attempt.cancelled_at is not None and now - attempt.cancelled_at > ABANDON_AFTER_CANCEL_S:
                # Its node is unreachable: never wait on it again; the retry runs elsewhere.
                del self._refs[ref]
                result = self._retry(attempt, f"{attempt.reason}; its node did not answer the cancel")
                if result is not None:
                    self._late.append(result)

    def _drain(self) -> None:
        """Re-emit the remote events on the run's stream (seq and ts are the driver's)."""
        import ray

        if self._relay_lost:
            return
        try:
            events = ray.get(self._relay.drain.remote(), timeout=_RELAY_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - results still come back through the tasks
            self._relay_lost = True
            self.bus.emit(WarningEvent(message=f"events from remote candidates are lost from now on ({exc}); "
                                               "their results still arrive"))
            return
        for event in events:
            attempt = self._by_candidate.get(event.get("candidate", ""))
            if attempt is not None and event.get("worker"):
                attempt.node, attempt.worker = event.get("node"), event["worker"]
                if event["type"] == "candidate.started" and attempt.started is None:
                    attempt.started = time.monotonic()
            self.bus.emit(make_event(event["type"], **{k: v for k, v in event.items() if k not in _ENVELOPE}))

    def _where(self, attempt: _Attempt) -> dict[str, Any]:
        return {key: value for key, value in (("node", attempt.node), ("worker", attempt.worker)) if value}

    def _clean_worker(self, attempt: _Attempt) -> None:
        """A lost worker's unfinished cache entries (staging folders named after it) go at once."""
        if attempt.worker:
            entries = self.plan.cache_dir / "entries"
            for folder in entries.glob(f".tmp-*-{attempt.worker}"):
                shutil.rmtree(folder, ignore_errors=True)


def _reason(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:300]


__all__ = ["ClusterSpec", "ClusterError", "RayExecutor", "CLUSTER_CANCEL_GRACE_S", "connect", "capacity"]
