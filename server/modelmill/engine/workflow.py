"""Run a plan: each pass in order through the cache, optionally evaluated and searched, then the
output folder renamed into place with its manifest and reports."""

from __future__ import annotations

import json
import shutil
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelmill import __version__
from modelmill.contracts import CandidateEvaluatedEvent, ErrorEvent, RunFinishedEvent, RunStartedEvent
from modelmill.engine.cache import ENTRY_FILE, CacheEntry
from modelmill.engine.chain import Chain, PassRecord
from modelmill.engine.events import EventBus
from modelmill.engine.executors import Executor, LocalExecutor
from modelmill.engine.model import ModelRef
from modelmill.engine.output import CorruptFile, copy_verified, place, temp_sibling
from modelmill.engine.plan import Plan
from modelmill.engine.search import Search
from modelmill.engine.versions import library_versions
from modelmill.errors import ModelMillError, RunCancelled
from modelmill.output_guard import MANIFEST_NAME


@dataclass
class RunResult:
    run_id: str
    output_dir: Path
    model: ModelRef
    passes: list[PassRecord] = field(default_factory=list)
    duration_s: float = 0.0
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    search: dict[str, Any] | None = None


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def run_plan(plan: Plan, bus: EventBus, cancel: threading.Event | None = None) -> RunResult:
    """Run ``plan`` (searching when it has a search space); the output appears only when all succeeded."""
    cancel = cancel or threading.Event()
    started = time.perf_counter()
    work_root = plan.cache_dir / "runs" / bus.run_id
    chain = Chain(plan, bus, cancel, work_root)  # opens (and, when new, marks) the cache folder first
    work_root.mkdir(parents=True, exist_ok=True)
    bus.emit(RunStartedEvent(plan=plan.describe(), config=plan.source_config))
    try:
        if not plan.steps:  # no passes: measure the input model (Olive's evaluator-only workflow, `benchmark`)
            result = _evaluate_input(plan, bus, cancel, chain, started)
            bus.emit(RunFinishedEvent(status="succeeded", output_dir=str(plan.output_dir),
                                      duration_s=result.duration_s, best_candidate=None))
            return result
        for attempt in range(2):
            if plan.metrics or plan.search or plan.cluster:  # a Ray host runs even one candidate remotely
                result, entry = _run_search(plan, bus, cancel, chain)
            else:
                model, _ = chain(plan.steps)
                result, entry = RunResult(bus.run_id, plan.output_dir, model, list(chain.records)), chain.last_entry
            assert entry is not None
            if cancel.is_set():
                raise RunCancelled()
            result.duration_s = round(time.perf_counter() - started, 3)
            try:
                result.model = _write_output(plan, result, entry)
                break
            except CorruptFile as exc:
                # The served entry was damaged after it was written: drop it and run again (once); the
                # other steps come from the cache, this one is rebuilt.
                chain.cache.drop(entry.key, str(exc.path))
                chain._report_dropped()
                if attempt:
                    raise
        bus.emit(RunFinishedEvent(status="succeeded", output_dir=str(plan.output_dir), duration_s=result.duration_s,
                                  best_candidate=(result.search or {}).get("best")))
        return result
    except BaseException as exc:
        report_failure(bus, exc)
        raise
    finally:
        chain.cache.discard_staging()
        shutil.rmtree(work_root, ignore_errors=True)


def _evaluate_input(plan: Plan, bus: EventBus, cancel: threading.Event, chain: Chain, started: float) -> RunResult:
    """A workflow without passes: evaluate the input model in this process and write an output folder that holds
    the reports (metrics.json, metrics.md, report.html, lm_eval/) and the manifest, not a copy of the model."""
    from modelmill.engine.candidate import evaluate_cached
    from modelmill.engine.chain import input_key
    from modelmill.evaluate import write_reports

    evaluation = evaluate_cached(plan, chain.cache, bus, plan.input_model, input_key(plan, chain.cache), "input")
    bus.emit(CandidateEvaluatedEvent(candidate="input", params={}, metrics=evaluation.to_json()["metrics"],
                                     accepted=True, duration_s=round(evaluation.duration_s, 3), is_input=True))
    if cancel.is_set():
        raise RunCancelled()
    result = RunResult(bus.run_id, plan.output_dir, plan.input_model,
                       duration_s=round(time.perf_counter() - started, 3))
    tmp = temp_sibling(plan.output_dir, result.run_id)
    try:
        tmp.mkdir(parents=True)
        reports = write_reports({"input": evaluation}, tmp)
        manifest = _manifest(plan, result, {}, evaluation_only=True,
                             reports={name: str(path.relative_to(tmp)) for name, path in reports.items()})
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, default=str))
        place(tmp, plan.output_dir, plan.overwrite, plan.protected)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _executor(plan: Plan, bus: EventBus, cancel: threading.Event, chain: Chain) -> Executor:
    """This process, or the Ray cluster the workflow's host names (connecting now: a wrong address fails
    before any work)."""
    if plan.cluster is None:
        return LocalExecutor(plan, bus, chain)
    from modelmill.engine.distributed import RayExecutor  # imports ray: only for cluster runs

    return RayExecutor(plan, bus, cancel)


def _run_search(plan: Plan, bus: EventBus, cancel: threading.Event, chain: Chain) -> tuple[RunResult, CacheEntry]:
    search = Search(plan, bus, cancel, _executor(plan, bus, cancel, chain))
    best = search.run(plan.search_space)
    summary = {
        "strategy": plan.search,
        "best": best.id,
        "baseline": search.baseline.to_json() if search.baseline is not None else None,
        "candidates": [c.footprint() for c in search.candidates],
        "pareto_front": [c.id for c in search.pareto_front()],
        "evaluations": {c.id: c.evaluation for c in search.candidates if c.evaluation is not None},
    }
    if search.baseline is not None:
        summary["evaluations"] = {"input": search.baseline, **summary["evaluations"]}
    return RunResult(bus.run_id, plan.output_dir, best.model, best.records, search=summary), best.entry


def _manifest(plan: Plan, result: RunResult, files: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The output folder's manifest: what ran, on what, with which libraries, and the files it holds."""
    return {
        "modelmill_version": __version__,
        "run_id": result.run_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "input_model": plan.input_model.to_json(),
        "device": plan.accelerator.device,
        "execution_provider": plan.accelerator.execution_provider,
        "passes": [record.__dict__ for record in result.passes],
        "duration_s": result.duration_s,
        "libraries": library_versions(),
        "files": files,
        "config": plan.source_config,
        **extra,
    }


def _write_output(plan: Plan, result: RunResult, entry: CacheEntry) -> ModelRef:
    """Copy the final entry's files into a new folder (each hashed as it is copied and checked against the
    entry's record), add the manifest and reports, and rename it into place."""
    tmp = temp_sibling(plan.output_dir, result.run_id)
    try:
        final = result.model
        tmp.mkdir(parents=True)
        base = final.path if final.path.is_dir() else final.path.parent
        within = base.relative_to(entry.folder) if base.is_relative_to(entry.folder) else Path(".")
        prefix = "" if str(within) == "." else f"{within}/"
        # Only the files recorded in the entry (under the model's folder) go out; their names in the output
        # drop that folder.
        result.files = {name[len(prefix):]: {"bytes": info["bytes"], "sha256": info["sha256"]}
                        for name, info in entry.meta["files"].items()
                        if name != ENTRY_FILE and name.startswith(prefix)
                        and (final.path.is_dir() or name[len(prefix):] == final.path.name)}
        copy_verified(entry.folder / within, tmp, result.files)
        # Hashes come from the cache entry, checked while the files were copied: no second pass over the bytes.
        manifest = _manifest(plan, result, result.files)
        if result.search is not None:
            evaluations = result.search.pop("evaluations")
            manifest["search"] = result.search
            if evaluations:
                from modelmill.evaluate import write_reports

                reports = write_reports(evaluations, tmp)
                manifest["reports"] = {name: str(path.relative_to(tmp)) for name, path in reports.items()}
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, default=str))
        place(tmp, plan.output_dir, plan.overwrite, plan.protected)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ModelRef(kind=result.model.kind, path=plan.output_dir, onnx_file=result.model.onnx_file,
                    attributes=result.model.attributes)


def report_failure(bus: EventBus, exc: BaseException) -> None:
    """The events that end a failed or cancelled run (every run kind ends this way: engine/runner.py)."""
    if isinstance(exc, (RunCancelled, KeyboardInterrupt)):
        bus.emit(RunFinishedEvent(status="cancelled"))
        return
    if isinstance(exc, ModelMillError):
        bus.emit(ErrorEvent(message=exc.message, fix=exc.fix, where=exc.where, kind=type(exc).__name__))
    else:
        bus.emit(ErrorEvent(message=f"{type(exc).__name__}: {exc}", fix=None, where=None, kind="internal",
                            traceback=traceback.format_exc(limit=8)))
    bus.emit(RunFinishedEvent(status="failed"))
