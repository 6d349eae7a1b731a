"""An evaluation as a run: ``modelmill evaluate`` and the editor's Evaluate both start an ``EvaluateRun`` with
``engine.runner.start_run``, so both get the runner's worker process, event stream, cancel and lost-worker
report (docs/events.md).

Events: ``run.started`` (``plan.evaluate``: label → model path, ``plan.metrics``, ``plan.output_dir``: the report
folder or null), then per model ``evaluation.started`` (``candidate``: its label, ``metrics``: the keys), one
``metric.measured`` per value and ``candidate.evaluated``; ``run.finished`` carries ``results`` (label → the
object ``modelmill evaluate --json`` prints) and ``output_dir`` (the report folder, once its files are in place).
The labels are ``model`` and ``compare``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmill.engine.events import EventBus
from modelmill.engine.model import ModelRef, several_onnx_files
from modelmill.errors import ConfigError, ModelMillError, RunCancelled

_REPORT_STARTS = {"metrics.json": '{\n  "version": 1,\n  "metrics": ', "metrics.md": "# ModelMill evaluation\n",
                  "report.html": "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>ModelMill evaluation"}
"""How each report file ModelMill writes begins (evaluate/report.py): an existing file that begins otherwise is the
user's, and is never replaced."""
REPORT_FILES = tuple(_REPORT_STARTS)


def model_ref(value: str, trust_remote_code: bool = False) -> ModelRef:
    """A ModelRef for a folder or file the user names (samples fetched, hub ids refused)."""
    from modelmill.engine.composite import composite_in
    from modelmill.remote_code import ATTRIBUTE
    from modelmill.samples import resolve_model_path

    path = resolve_model_path(value)
    composite = composite_in(path)
    if composite is not None:
        return composite
    if path.is_file() and path.suffix == ".onnx":
        return ModelRef("onnx", path.parent, onnx_file=path.name)
    if (path / "genai_config.json").exists() or (path / "model.onnx").exists():
        return ModelRef("onnx", path)
    ambiguous = several_onnx_files(path) if path.is_dir() else None
    if ambiguous:
        raise ModelMillError(ambiguous, fix="pass the .onnx file to evaluate")
    onnx_files = sorted(path.glob("*.onnx")) if path.is_dir() else []
    if onnx_files:
        return ModelRef("onnx", path, onnx_file=onnx_files[0].name)
    if (path / "config.json").exists():
        return ModelRef("hf", path, attributes={ATTRIBUTE: True} if trust_remote_code else {})
    raise ModelMillError(f"{path} is not a model ModelMill can evaluate",
                         fix="pass an output folder, an .onnx file, or a Hugging Face folder")


def source_model(model: ModelRef, trust_remote_code: bool = False) -> ModelRef | None:
    """The PyTorch model an output was made from, from its manifest (for similarity)."""
    from modelmill.remote_code import ATTRIBUTE

    manifest = model.path / "modelmill_run.json"
    if manifest.exists():
        source = json.loads(manifest.read_text()).get("input_model", {})
        if source.get("kind") == "hf" and Path(source.get("path", "")).exists():
            return ModelRef("hf", Path(source["path"]), attributes={ATTRIBUTE: True} if trust_remote_code else {})
    return None


def model_profile(model: ModelRef) -> str:
    """genai, onnx, hf_causal, hf or composite: what decides the metrics that can measure it (evaluate/presets.py)."""
    from modelmill.evaluate.presets import profile

    architectures = model.hf_config().get("architectures") or []
    return profile(model.kind, model.is_genai, any(str(a).endswith("ForCausalLM") for a in architectures))


def metric_options(path: str, trust_remote_code: bool = False) -> tuple[str, list[tuple[str, str, list[str], bool]]]:
    """The model's profile and the presets that can measure it: (name, description, keys, measured by default).
    A sample not fetched yet is not fetched for this: its task says its kind."""
    from modelmill.evaluate.presets import AVAILABLE, DEFAULTS, DESCRIPTIONS, metrics_for
    from modelmill.samples import SAMPLE_PREFIX, get_sample

    sample = get_sample(path) if path.startswith(SAMPLE_PREFIX) else None
    if sample is not None and not sample.fetched:
        kind = "hf_causal" if sample.task == "text-generation" else "hf"
    else:
        kind = model_profile(model_ref(path, trust_remote_code))
    return kind, [(name, DESCRIPTIONS[name], metric_keys(metrics_for([name])), name in DEFAULTS[kind])
                  for name in AVAILABLE[kind]]


def choose_metrics(names: str | None, model: ModelRef) -> list[dict[str, Any]]:
    """The metrics a comma list of preset names (``--metrics``) names, or the defaults for this kind of model."""
    from modelmill.evaluate.presets import DEFAULTS, metrics_for

    if names:
        chosen = [n.strip() for n in names.split(",") if n.strip()]
    else:
        chosen = list(DEFAULTS[model_profile(model)])
    try:
        return metrics_for(chosen)
    except ValueError as exc:
        raise ModelMillError(str(exc), fix="pass --metrics with known names") from exc


def metric_keys(metrics: list[dict[str, Any]]) -> list[str]:
    """The ``<metric>-<sub_type>`` keys the metrics will report, in order."""
    return [f"{metric['name']}-{sub['name']}" for metric in metrics for sub in metric.get("sub_types") or []]


@dataclass
class EvaluateRun:
    """Measure ``model`` (and ``compare``) with the preset ``metrics`` (comma list; None: by model kind);
    ``report_dir``: also write metrics.json, metrics.md and report.html there. A run kind of engine/runner.py."""

    model: str
    compare: str | None = None
    metrics: str | None = None
    reference: str | None = None
    """The PyTorch (HF) reference for similarity; default: the source recorded in each model's manifest."""
    report_dir: Path | None = None
    trust_remote_code: bool = False

    # --- the runner's RunKind ---------------------------------------------------------------

    @property
    def output_dir(self) -> Path | None:
        return self.report_dir

    def cancel_grace_s(self) -> float:
        from modelmill.engine.runner import CANCEL_GRACE_S

        return CANCEL_GRACE_S

    def log_path(self, run_id: str) -> Path:
        from modelmill.paths import home

        return home() / "logs" / f"{run_id}.log"

    def rerun_note(self) -> str:
        return "nothing was written"

    def in_process(self) -> bool:
        return False  # measuring loads models and libraries: always in a worker

    def prepare(self) -> None:
        pass

    def execute(self, bus: EventBus, cancel: threading.Event) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            models, metrics, reference = self._resolve()
        except BaseException as exc:
            bus.emit("run.started", plan=self._describe(None, None), config=self._config())
            _report_failure(bus, exc)
            raise
        bus.emit("run.started", plan=self._describe(models, metrics), config=self._config())
        try:
            results = self._measure(bus, cancel, models, metrics, reference)
            if cancel.is_set():
                raise RunCancelled()
            if self.report_dir is not None:
                self._write_reports(results, bus.run_id)
        except BaseException as exc:
            _report_failure(bus, exc)
            raise
        payload = {label: result.to_json() for label, result in results.items()}
        bus.emit("run.finished", status="succeeded",
                 output_dir=str(self.report_dir) if self.report_dir is not None else None,
                 duration_s=round(time.perf_counter() - started, 3), best_candidate=None, results=payload)
        return payload

    def clean_after(self, run_id: str, pid: int) -> None:
        if self.report_dir is not None:
            shutil.rmtree(_staging(self.report_dir, run_id), ignore_errors=True)

    # --- the evaluation ---------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {"path": self.model, "metrics": self.metrics, "compare": self.compare, "reference": self.reference,
                "report": str(self.report_dir) if self.report_dir is not None else None,
                "trust_remote_code": self.trust_remote_code}

    def _describe(self, models: dict[str, ModelRef] | None, metrics: list[dict[str, Any]] | None) -> dict[str, Any]:
        given = {"model": self.model, **({"compare": self.compare} if self.compare else {})}
        return {"evaluate": {label: str(model.path) for label, model in models.items()} if models else given,
                "metrics": metrics if metrics is not None else [], "passes": [],
                "output_dir": str(self.report_dir) if self.report_dir is not None else None}

    def _resolve(self) -> tuple[dict[str, ModelRef], list[dict[str, Any]], ModelRef | None]:
        """The models, the metrics and the similarity reference; the report folder checked before any work."""
        if self.report_dir is not None:
            check_report_dir(self.report_dir)
        models = {"model": model_ref(self.model, self.trust_remote_code)}
        if self.compare:
            models["compare"] = model_ref(self.compare, self.trust_remote_code)
        reference = None
        if self.reference:  # loaded by transformers, whatever else the folder holds
            from modelmill.remote_code import ATTRIBUTE

            reference = ModelRef("hf", model_ref(self.reference).path,
                                 attributes={ATTRIBUTE: True} if self.trust_remote_code else {})
        return models, choose_metrics(self.metrics, models["model"]), reference

    def _measure(self, bus: EventBus, cancel: threading.Event, models: dict[str, ModelRef],
                 metrics: list[dict[str, Any]], reference: ModelRef | None) -> dict[str, Any]:
        from modelmill.evaluate import evaluate_model

        results = {}
        for label, model in models.items():
            if cancel.is_set():
                raise RunCancelled()
            begun = time.perf_counter()
            bus.emit("evaluation.started", candidate=label, metrics=metric_keys(metrics))

            def emit(type_: str, _label: str = label, **data: Any) -> None:
                bus.emit(type_, candidate=_label, **data)

            result = evaluate_model(model, metrics, emit=emit,
                                    reference=reference or source_model(model, self.trust_remote_code))
            results[label] = result
            bus.emit("candidate.evaluated", candidate=label, params={},
                     metrics={value.key: value.value for value in result.values}, accepted=True,
                     duration_s=round(time.perf_counter() - begun, 3))
        return results

    def _write_reports(self, results: dict[str, Any], run_id: str) -> None:
        """Write the reports in a folder beside the target, then move them in: a new folder is renamed into place
        whole, an existing one gets each file replaced by rename (its other files stay)."""
        from modelmill.evaluate.report import write_reports

        assert self.report_dir is not None
        target = Path(os.path.abspath(self.report_dir))
        check_report_dir(target)  # again: files may have appeared during the run
        staging = _staging(target, run_id)
        shutil.rmtree(staging, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            written = write_reports(results, staging)
            if target.exists():
                for path in written.values():
                    os.replace(path, target / path.name)
            else:
                staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _report_failure(bus: EventBus, exc: BaseException) -> None:
    from modelmill.engine.workflow import report_failure  # only now: the workflow engine is slow to import

    report_failure(bus, exc)


def _staging(target: Path, run_id: str) -> Path:
    from modelmill.engine.output import partial_name

    target = Path(os.path.abspath(target))
    return target.parent / partial_name(target, run_id)


def check_report_dir(folder: Path) -> None:
    """Refuse a report folder that is a file, or that holds a report-named file ModelMill did not write."""
    folder = Path(os.path.abspath(folder.expanduser()))
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--report {folder} is an existing file, not a folder", where="--report",
                          fix="give --report a folder (new, or one that holds earlier ModelMill reports)")
    for name, start in _REPORT_STARTS.items():
        path = folder / name
        if path.is_symlink() or (path.exists() and not _written_by_modelmill(path, start)):
            raise ConfigError(f"--report {folder} already holds {name}, which ModelMill did not write; the report "
                              "would replace it", where="--report",
                              fix="choose another --report folder, or move that file away")


def _written_by_modelmill(path: Path, start: str) -> bool:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return handle.read(len(start)) == start
    except OSError:
        return False
