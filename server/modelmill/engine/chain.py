"""A chain of passes run through the cache: the unit both plain runs and search candidates are made of.

Each step's cache key chains the previous one, starting from the input model's content fingerprint;
a step whose key is in the cache is served from there, any other one runs its pass in a scratch folder
and commits the output as a new entry.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from modelmill.contracts import PassFinishedEvent, PassStartedEvent, WarningEvent
from modelmill.engine.cache import FINGERPRINTS, Cache, CacheEntry, fingerprint, known_fingerprint, pass_code_digest
from modelmill.engine.cache import step_key as cache_step_key
from modelmill.engine.composite import run_per_component
from modelmill.engine.context import PassContext
from modelmill.engine.data_inputs import data_context
from modelmill.engine.events import EventBus
from modelmill.engine.model import ModelRef
from modelmill.engine.plan import Plan, PlanStep
from modelmill.engine.versions import library_versions
from modelmill.errors import RunCancelled
from modelmill.passes.onnx_io import working_directory


@dataclass
class PassRecord:
    name: str
    type: str
    params: dict[str, Any]
    duration_s: float
    cached: bool = False
    cache_key: str = ""
    report: dict[str, Any] | None = None


class Chain:
    """Runs a list of steps through the cache; shared by plain runs and every search candidate."""

    def __init__(self, plan: Plan, bus: EventBus, cancel: threading.Event, work_root: Path) -> None:
        self.plan, self.bus, self.cancel, self.work_root = plan, bus, cancel, work_root
        self.cache = Cache(plan.cache_dir)
        self.records: list[PassRecord] = []
        self.last_entry: CacheEntry | None = None
        self._hashing: concurrent.futures.Future[str] | None = None

    def __call__(self, steps: list[PlanStep], candidate: str | None = None) -> tuple[ModelRef, list[str]]:
        model = self.plan.input_model
        keys = self._keys(steps)
        self.records = []
        for index, step in enumerate(steps):
            if self.cancel.is_set():
                raise RunCancelled()
            key = keys.known[index] if keys.known else None
            self.bus.emit(PassStartedEvent(pass_name=step.name, pass_type=step.pass_cls.name, index=index,
                                           total=len(steps), params=step.params.model_dump(mode="json"),
                                           cache_key=key, candidate=candidate or None))
            start = time.perf_counter()
            # An entry whose bytes the next pass reads is re-hashed first (cheap beside the pass itself):
            # a damaged file must not flow into a new output. The last entry is hashed as it is copied out.
            read_next = key is not None and index + 1 < len(steps) and not self.cache.contains(keys.known[index + 1])
            entry = self.cache.get(key, full=read_next) if key else None
            self._report_dropped()
            cached = entry is not None
            if entry is None:
                entry = self._run_step(step, model, lambda i=index: keys.resolve()[i],
                                       self.work_root / f"{index:02d}-{step.name}.work")
            model, self.last_entry = entry.model, entry
            duration = round(time.perf_counter() - start, 3)
            report = entry.meta.get("report") or None
            self.records.append(PassRecord(step.name, step.pass_cls.name, step.params.model_dump(mode="json"),
                                           duration, cached, entry.key, report))
            self.bus.emit(PassFinishedEvent(pass_name=step.name, pass_type=step.pass_cls.name, index=index,
                                            duration_s=duration, output=str(model.path), cached=cached,
                                            cache_key=entry.key, candidate=candidate or None, report=report))
        return model, keys.resolve()

    def _report_dropped(self) -> None:
        while self.cache.dropped:
            key, reason = self.cache.dropped.pop(0)
            self.bus.emit(WarningEvent(message=f"cache entry {key[:12]} was damaged ({reason}); it is rebuilt",
                                       cache_key=key, reason=reason))

    def _keys(self, steps: list[PlanStep]) -> "_StepKeys":
        """The steps' cache keys. When the input is new to the fingerprint index, hashing it (seconds for a
        large checkpoint) overlaps the first pass: an input never seen here cannot have cached outputs."""
        known = known_fingerprint(self.plan.input_model.path, self.cache.root / FINGERPRINTS)
        if known is not None:
            return _StepKeys(chain_keys(self.plan, known, steps))
        if self._hashing is None:
            self._hashing = concurrent.futures.ThreadPoolExecutor(1).submit(input_key, self.plan, self.cache)
        return _StepKeys(None, lambda: chain_keys(self.plan, self._hashing.result(), steps))

    def _run_step(self, step: PlanStep, model: ModelRef, key: Callable[[], str], scratch: Path) -> CacheEntry:
        staging = self.cache.staging(uuid.uuid4().hex[:12])
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        ctx = PassContext(pass_name=step.name, output_dir=staging, work_dir=scratch, cache_dir=self.plan.cache_dir,
                          bus=self.bus, accelerator=self.plan.accelerator, data_configs=self.plan.data_configs,
                          cancel=self.cancel)
        start = time.perf_counter()
        # Some libraries drop temporary files in the current folder (ORT's symbolic shape inference,
        # external-data UUID files): run the pass inside its scratch folder so they vanish with it.
        with working_directory(scratch):
            if model.kind == "composite" and "composite" not in step.pass_cls.accepts:
                output = run_per_component(step.pass_cls(), model, step.params, ctx)
            else:
                output = step.pass_cls().run(model, step.params, ctx)
        shutil.rmtree(scratch, ignore_errors=True)
        meta = {"pass_type": step.pass_cls.name, "pass_name": step.name,
                "params": step.params.model_dump(mode="json"), "duration_s": round(time.perf_counter() - start, 3)}
        if ctx.reports:
            meta["report"] = ctx.reports
        return self.cache.commit(key(), staging, output, meta)


@dataclass
class _StepKeys:
    known: list[str] | None
    compute: Callable[[], list[str]] | None = None

    def resolve(self) -> list[str]:
        if self.known is None:
            assert self.compute is not None
            self.known = self.compute()
        return self.known


def input_key(plan: Plan, cache: Cache) -> str:
    return fingerprint(plan.input_model.path, cache.root / FINGERPRINTS)


def step_keys(plan: Plan, cache: Cache, steps: list[PlanStep] | None = None) -> list[str]:
    """The cache key of every step: each chains the previous one, starting from the input's content hash."""
    return chain_keys(plan, input_key(plan, cache), steps if steps is not None else plan.steps)


def chain_keys(plan: Plan, key: str, steps: list[PlanStep]) -> list[str]:
    # How the input is read matters as much as its bytes: the same folder exported for feature-extraction
    # and for text-generation gives different models.
    source = plan.input_model
    key = hashlib.sha256(json.dumps({"content": key, "kind": source.kind, "file": source.onnx_file,
                                     "attributes": source.attributes}, sort_keys=True, default=str).encode()
                         ).hexdigest()[:32]
    accelerator = {"device": plan.accelerator.device, "execution_provider": plan.accelerator.execution_provider}
    if plan.accelerator.memory is not None:  # only then: keys of runs without it stay as they were
        accelerator["memory"] = str(plan.accelerator.memory)
    keys = []
    for step in steps:
        key = cache_step_key(key, step.pass_cls.name, step.params.model_dump(mode="json"), accelerator,
                             library_versions(), pass_code_digest(step.pass_cls), step_context(plan, step))
        keys.append(key)
    return keys


def step_context(plan: Plan, step: PlanStep) -> dict[str, Any] | None:
    """What a step's output depends on besides its input, params, code, accelerator and libraries: the pass's
    own ``cache_context`` and the data configs its params reference (their content and their files' digests)."""
    context = step.pass_cls.cache_context(step.params)
    data = data_context(step.params, plan.data_configs, plan.cache_dir / FINGERPRINTS)
    if data is None:
        return context  # a pass that reads no data config keeps the key it had
    return {**(context or {}), "data": data}
