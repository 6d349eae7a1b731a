"""Run a plan: each pass in order through the cache, optionally evaluated and searched, then the
output folder renamed into place with its manifest and reports."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import shutil
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from modelmill import __version__
from modelmill.engine.cache import ENTRY_FILE, FINGERPRINTS, Cache, CacheEntry, fingerprint, known_fingerprint, \
    pass_code_digest
from modelmill.engine.cache import step_key as cache_step_key
from modelmill.engine.context import PassContext
from modelmill.engine.events import EventBus
from modelmill.engine.model import ModelRef
from modelmill.engine.output import MANIFEST_NAME, CorruptFile, copy_verified, place, temp_sibling
from modelmill.engine.plan import Plan, PlanStep
from modelmill.engine.versions import library_versions
from modelmill.passes.onnx_io import working_directory
from modelmill.errors import ModelMillError



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
    cached: bool = False
    cache_key: str = ""
    report: dict[str, Any] | None = None


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
            tag = {"candidate": candidate} if candidate else {}
            self.bus.emit("pass.started", pass_name=step.name, pass_type=step.pass_cls.name, index=index,
                          total=len(steps), params=step.params.model_dump(mode="json"), cache_key=key, **tag)
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
            extra = {"report": report} if report else {}
            self.bus.emit("pass.finished", pass_name=step.name, pass_type=step.pass_cls.name, index=index,
                          duration_s=duration, output=str(model.path), cached=cached, cache_key=entry.key, **tag,
                          **extra)
        return model, keys.resolve()

    def _report_dropped(self) -> None:
        while self.cache.dropped:
            key, reason = self.cache.dropped.pop(0)
            self.bus.emit("warning", message=f"cache entry {key[:12]} was damaged ({reason}); it is rebuilt",
                          cache_key=key, reason=reason)

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
    keys = []
    for step in steps:
        key = cache_step_key(key, step.pass_cls.name, step.params.model_dump(mode="json"), accelerator,
                             library_versions(), pass_code_digest(step.pass_cls),
                             step.pass_cls.cache_context(step.params))
        keys.append(key)
    return keys


def run_plan(plan: Plan, bus: EventBus, cancel: threading.Event | None = None) -> RunResult:
    """Run ``plan`` (searching when it has a search space); the output appears only when all succeeded."""
    cancel = cancel or threading.Event()
    started = time.perf_counter()
    work_root = plan.cache_dir / "runs" / bus.run_id
    chain = Chain(plan, bus, cancel, work_root)  # opens (and, when new, marks) the cache folder first
    work_root.mkdir(parents=True, exist_ok=True)
    bus.emit("run.started", plan=plan.describe(), config=plan.source_config)
    try:
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
        bus.emit("run.finished", status="succeeded", output_dir=str(plan.output_dir),
                 duration_s=result.duration_s, best_candidate=(result.search or {}).get("best"))
        return result
    except BaseException as exc:
        _report_failure(bus, exc)
        raise
    finally:
        chain.cache.discard_staging()
        shutil.rmtree(work_root, ignore_errors=True)


def _run_search(plan: Plan, bus: EventBus, cancel: threading.Event, chain: Chain) -> tuple[RunResult, CacheEntry]:
    from modelmill.engine.search import Search

    search = Search(plan, bus, cancel, chain)
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
        manifest: dict[str, Any] = {
            "modelmill_version": __version__,
            "run_id": result.run_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "input_model": plan.input_model.to_json(),
            "device": plan.accelerator.device,
            "execution_provider": plan.accelerator.execution_provider,
            "passes": [record.__dict__ for record in result.passes],
            "duration_s": result.duration_s,
            "libraries": library_versions(),
            # Hashes come from the cache entry, checked while the files were copied: no second pass over the bytes.
            "files": result.files,
            "config": plan.source_config,
        }
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


def _report_failure(bus: EventBus, exc: BaseException) -> None:
    if isinstance(exc, (RunCancelled, KeyboardInterrupt)):
        bus.emit("run.finished", status="cancelled")
        return
    if isinstance(exc, ModelMillError):
        bus.emit("error", message=exc.message, fix=exc.fix, where=exc.where, kind=type(exc).__name__)
    else:
        bus.emit("error", message=f"{type(exc).__name__}: {exc}", fix=None, where=None, kind="internal",
                 traceback=traceback.format_exc(limit=8))
    bus.emit("run.finished", status="failed")
