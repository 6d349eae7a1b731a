"""Run a plan: each pass in order, then the output folder renamed into place with its manifest."""

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
from modelmill.engine.cache import Cache, CacheEntry, fingerprint
from modelmill.engine.cache import step_key as cache_step_key
from modelmill.engine.context import PassContext
from modelmill.engine.events import EventBus
from modelmill.engine.model import ModelRef
from modelmill.engine.cache import ENTRY_FILE
from modelmill.engine.output import copy_contents, describe_files, place, temp_sibling
from modelmill.engine.plan import Plan, PlanStep
from modelmill.engine.versions import library_versions
from modelmill.errors import ModelMillError, PassError

MANIFEST_NAME = "modelmill_run.json"


class RunCancelled(ModelMillError):
    exit_code = 130

    def __init__(self) -> None:
        super().__init__("the run was cancelled", fix="run it again; no partial output was written")


@dataclass
class PassRecord:
    name: str
    type: str
    params: dict[str, Any]
    duration_s: float
    output: str
    cached: bool = False
    cache_key: str = ""


@dataclass
class RunResult:
    run_id: str
    output_dir: Path
    model: ModelRef
    passes: list[PassRecord] = field(default_factory=list)
    duration_s: float = 0.0
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def run_plan(plan: Plan, bus: EventBus, cancel: threading.Event | None = None) -> RunResult:
    """Run every pass of ``plan``; the output folder appears only when all of them succeeded."""
    cancel = cancel or threading.Event()
    started = time.perf_counter()
    work_root = plan.cache_dir / "runs" / bus.run_id
    work_root.mkdir(parents=True, exist_ok=True)
    bus.emit("run.started", plan=plan.describe(), config=plan.source_config)
    model = plan.input_model
    records: list[PassRecord] = []
    cache = Cache(plan.cache_dir)
    try:
        keys = step_keys(plan, cache)
        for index, (step, key) in enumerate(zip(plan.steps, keys)):
            if cancel.is_set():
                raise RunCancelled()
            bus.emit("pass.started", pass_name=step.name, pass_type=step.pass_cls.name, index=index,
                     total=len(plan.steps), params=step.params.model_dump(mode="json"), cache_key=key)
            pass_start = time.perf_counter()
            entry = cache.get(key)
            cached = entry is not None
            if entry is None:
                entry = _run_step(plan, step, model, key, cache, bus, work_root / f"{index:02d}-{step.name}.work")
            model, final_files = entry.model, entry.meta["files"]
            duration = time.perf_counter() - pass_start
            records.append(PassRecord(step.name, step.pass_cls.name, step.params.model_dump(mode="json"),
                                      round(duration, 3), str(model.path), cached, key))
            bus.emit("pass.finished", pass_name=step.name, pass_type=step.pass_cls.name, index=index,
                     duration_s=round(duration, 3), output=str(model.path), cached=cached, cache_key=key)
        if cancel.is_set():
            raise RunCancelled()
        result = RunResult(bus.run_id, plan.output_dir, model, records)
        result.files = {name: info for name, info in final_files.items() if name != ENTRY_FILE}
        result.duration_s = round(time.perf_counter() - started, 3)
        result.model = _write_output(plan, result)
        bus.emit("run.finished", status="succeeded", output_dir=str(plan.output_dir),
                 duration_s=result.duration_s)
        return result
    except BaseException as exc:
        _report_failure(bus, exc)
        raise
    finally:
        cache.discard_staging()
        shutil.rmtree(work_root, ignore_errors=True)


def step_keys(plan: Plan, cache: Cache) -> list[str]:
    """The cache key of every step: each chains the previous one, starting from the input's content hash."""
    key = fingerprint(plan.input_model.path, cache.root / "fingerprints.json")
    accelerator = {"device": plan.accelerator.device, "execution_provider": plan.accelerator.execution_provider}
    keys = []
    for step in plan.steps:
        key = cache_step_key(key, step.pass_cls.name, step.params.model_dump(mode="json"), accelerator,
                             library_versions())
        keys.append(key)
    return keys


def _run_step(plan: Plan, step: PlanStep, model: ModelRef, key: str, cache: Cache, bus: EventBus,
              scratch: Path) -> CacheEntry:
    staging = cache.staging(key)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    ctx = PassContext(pass_name=step.name, output_dir=staging, work_dir=scratch, cache_dir=plan.cache_dir, bus=bus,
                      accelerator=plan.accelerator, data_configs=plan.data_configs)
    start = time.perf_counter()
    output = step.pass_cls().run(model, step.params, ctx)
    shutil.rmtree(scratch, ignore_errors=True)
    return cache.commit(key, staging, output, {"pass_type": step.pass_cls.name, "pass_name": step.name,
                                               "params": step.params.model_dump(mode="json"),
                                               "duration_s": round(time.perf_counter() - start, 3)})


def _write_output(plan: Plan, result: RunResult) -> ModelRef:
    tmp = temp_sibling(plan.output_dir, result.run_id)
    try:
        final = result.model
        tmp.mkdir(parents=True)
        if final.path.is_dir():
            copy_contents(final.path, tmp, skip={ENTRY_FILE})
        else:
            shutil.copy2(final.path, tmp / final.path.name)
        manifest = {
            "modelmill_version": __version__,
            "run_id": result.run_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "input_model": plan.input_model.to_json(),
            "device": plan.accelerator.device,
            "execution_provider": plan.accelerator.execution_provider,
            "passes": [record.__dict__ for record in result.passes],
            "duration_s": result.duration_s,
            "libraries": library_versions(),
            # Hashes come from the cache entry, verified when it was read: no second pass over the bytes.
            "files": result.files or describe_files(tmp),
            "config": plan.source_config,
        }
        for record in manifest["passes"]:
            record.pop("output", None)  # scratch paths mean nothing once the run is over
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
        place(tmp, plan.output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ModelRef(kind=result.model.kind, path=plan.output_dir, onnx_file=result.model.onnx_file,
                    attributes=result.model.attributes)


def _report_failure(bus: EventBus, exc: BaseException) -> None:
    if isinstance(exc, RunCancelled) or isinstance(exc, KeyboardInterrupt):
        bus.emit("run.finished", status="cancelled")
        return
    if isinstance(exc, ModelMillError):
        bus.emit("error", message=exc.message, fix=exc.fix, where=exc.where, kind=type(exc).__name__)
    else:
        bus.emit("error", message=f"{type(exc).__name__}: {exc}", fix=None, where=None, kind="internal",
                 traceback=traceback.format_exc(limit=8))
    bus.emit("run.finished", status="failed")


__all__ = ["run_plan", "RunResult", "RunCancelled", "new_run_id", "MANIFEST_NAME", "PassError"]
