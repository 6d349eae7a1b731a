"""Models side by side: rows = metrics, columns = models, each value's ratio to the first column's (the baseline),
and report.html's plots of them all (the editor's *Compare Runs/Outputs*, ``modelmill.compare``).

The values come from what runs already measured: an evaluation's ``run.finished`` results, or a folder's
``metrics.json`` (an optimize run's output folder, a ``modelmill evaluate --report`` folder). Values are written as
report.html writes them (``report.format_value``: sizes in KiB/MiB/GiB), directions come with each value (the
catalogue's, or the config's ``higher_is_better``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmill.contracts import CompareCell, CompareColumn, ComparePlot, CompareResult, CompareRow
from modelmill.errors import ModelMillError
from modelmill.evaluate.report import figures, format_value, header, metric_columns
from modelmill.evaluate.results import EvaluationResult

MANIFEST = "modelmill_run.json"


@dataclass
class Measured:
    """One model's results and where they came from."""

    source: str
    candidate: str
    result: EvaluationResult
    name: str = ""
    """What to call it: the folder's name (default: the measured model's)."""

    def __post_init__(self) -> None:
        self.name = self.name or Path(self.result.model_path).name or self.result.model_path


def folder_results(folder: Path) -> list[Measured]:
    """The models a folder's metrics.json measured: an optimize output's best candidate (its manifest says which;
    the input model is the run's own baseline), otherwise every candidate (``model`` and ``compare`` of an
    evaluate report, ``input`` of an evaluation-only workflow)."""
    path = folder / "metrics.json"
    if not path.is_file():
        raise ModelMillError(f"{folder} holds no metrics.json: nothing was measured there",
                             fix="evaluate it first (ModelMill: Evaluate Model, or `modelmill evaluate "
                                 f"{folder} --report {folder}`), or pick a run that evaluated it")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        candidates = {name: EvaluationResult.from_json(value) for name, value in data["candidates"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelMillError(f"{path} cannot be read as ModelMill's metrics.json: {exc}",
                             fix="evaluate the folder again to rewrite it") from exc
    best = _best_candidate(folder)
    if best in candidates:
        candidates = {best: candidates[best]}
    return [Measured(str(folder), name, result, folder.name) for name, result in candidates.items()]


def _best_candidate(folder: Path) -> str | None:
    try:
        search = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("search") or {}
    except (OSError, ValueError, AttributeError):
        return None
    best = search.get("best") if isinstance(search, dict) else None
    return best if isinstance(best, str) else None


def run_results(run_id: str, events: list[dict[str, Any]], output_dir: str | None) -> list[Measured]:
    """The models a finished run measured: an evaluation's ``run.finished`` results (``model``, ``compare``), or
    the metrics.json of an optimize run's output folder."""
    finished = next((e for e in reversed(events) if e.get("type") == "run.finished"), None)
    if finished is None or finished.get("status") != "succeeded":
        raise ModelMillError(f"run {run_id} did not finish successfully: it has no results to compare",
                             fix="pick a run that succeeded")
    results = finished.get("results")
    if isinstance(results, dict) and results:
        return [Measured(run_id, label, EvaluationResult.from_json(data)) for label, data in results.items()]
    folder = finished.get("output_dir") or output_dir
    if not folder:
        raise ModelMillError(f"run {run_id} wrote no output folder to read metrics from", fix="pick another run")
    return [Measured(run_id, m.candidate, m.result, m.name) for m in folder_results(Path(folder))]


def compare(measured: list[Measured], plots: bool = True) -> CompareResult:
    """The comparison of two or more models; the first is the baseline of every ratio."""
    if len(measured) < 2:
        raise ModelMillError(f"a comparison needs two or more models, not {len(measured)}",
                             fix="pick two or more runs or folders")
    labels = _labels(measured)
    results = {label: m.result for label, m in zip(labels, measured)}
    columns = [CompareColumn(label=label, source=m.source, candidate=m.candidate, model_path=m.result.model_path)
               for label, m in zip(labels, measured)]
    rows, warnings = [], []
    for metric in metric_columns(results):
        values = [_finite(r.get(metric.key)) for r in results.values()]
        missing = [label for label, value in zip(labels, values) if value is None]
        if missing:
            warnings.append(f"{metric.key} was not measured on {', '.join(missing)}")
        rows.append(CompareRow(key=metric.key, label=header(metric), metric_type=metric.metric_type,
                               unit=metric.unit, higher_is_better=metric.higher_is_better,
                               cells=_cells(values, metric.unit, metric.higher_is_better)))
    if not rows:
        warnings.append("none of these models has measured values")
    return CompareResult(columns=columns, rows=rows,
                         plots=[ComparePlot(caption, png) for caption, png in figures(results)] if plots else [],
                         warnings=warnings)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _cells(values: list[float | None], unit: str, higher_is_better: bool) -> list[CompareCell]:
    present = [v for v in values if v is not None]
    best = (max if higher_is_better else min)(present) if len(present) > 1 else None
    baseline = values[0]
    cells = []
    for index, value in enumerate(values):
        ratio = better = None
        if index and value is not None and baseline is not None:
            if baseline:
                ratio = value / baseline
            if value != baseline:
                better = value > baseline if higher_is_better else value < baseline
        cells.append(CompareCell(value=value, text=format_value(value, unit), ratio=ratio,
                                 ratio_text=_ratio_text(ratio), better=better,
                                 best=best is not None and value == best))
    return cells


def _ratio_text(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.3g}x" if ratio < 100 else f"{ratio:,.0f}x"


def _labels(measured: list[Measured]) -> list[str]:
    """Short distinct column names: the model folder's name, with the candidate and a number where they repeat."""
    names = [m.name for m in measured]
    labels: list[str] = []
    for name, m in zip(names, measured):
        label = name if names.count(name) == 1 else f"{name} ({m.candidate})"
        while label in labels:
            label = f"{label} #{len(labels) + 1}"
        labels.append(label)
    return labels
