"""The one reducer of run events: ``RunState.apply(event)`` folds each event (docs/events.md) into a ``RunView``
(modelmill/contracts.py): status, step, percentage, passes, candidates and their metrics, training, logs, warnings,
error, output folder.

The CLI's progress display (render.py) draws it, the language server (lsp/runs.py) reports it as work-done progress
and sends it to the editor (``modelmill/runState``), whose runs panel only renders it. Tolerant as the format asks:
unknown event types and fields are ignored, a missing field reads as unknown, a duplicate (a ``seq`` already seen)
is dropped and a gap in ``seq`` is counted (``missing``). Each event costs O(1): passes and candidates are found
through maps and log lines kept in a bounded ring.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from modelmill.contracts import CandidateRow, LogLine, PassRow, RunError, RunView, TrainingView, to_json
from modelmill.units import human_size, is_bytes

MAX_LOG_LINES = 300
MAX_WARNINGS = 50
_STATUSES = ("running", "succeeded", "failed", "cancelled")
_SECOND_UNITS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "seconds": 1.0}


class RunState:
    """One run's view, built from its events."""

    __slots__ = ("view", "passes", "candidates", "last_seq", "current")

    def __init__(self, run_id: str, label: str | None = None) -> None:
        self.view = RunView(run_id, label or run_id)
        self.passes: dict[tuple[str, str], PassRow] = {}
        self.candidates: dict[str, CandidateRow] = {}
        self.last_seq = -1
        self.current: PassRow | None = None
        """The pass that reported last: the run's percentage follows it."""

    @classmethod
    def replay(cls, run_id: str, events: list[dict[str, Any]], label: str | None = None) -> "RunState":
        state = cls(run_id, label)
        for event in events:
            state.apply(event)
        return state

    def to_json(self) -> dict[str, Any]:
        return to_json(self.view)

    def pass_row(self, candidate: str | None, name: str) -> PassRow | None:
        """The row an event of pass ``name`` (of ``candidate``) belongs to: a ``pass.progress`` may name no
        candidate, then it is the running pass of that name."""
        row = self.passes.get((candidate or "", name))
        if row is None and self.current is not None and self.current.name == name:
            row = self.current
        return row

    def apply(self, event: Any) -> bool:
        """Fold one event in; False for a duplicate or something that is not an event."""
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return False
        seq = event.get("seq")
        view = self.view
        if isinstance(seq, int) and not isinstance(seq, bool):
            if seq <= self.last_seq:
                return False
            view.missing += max(0, seq - self.last_seq - 1)
            self.last_seq = seq
        view.events += 1
        view.version += 1
        handler = _HANDLERS.get(event["type"])
        if handler is not None:  # a type this reducer does not know: ignored, as the format asks
            handler(self, event, _text(event.get("candidate")) if event.get("candidate") is not None else None)
        return True

    # ------------------------------------------------------------------ helpers

    def _candidate(self, candidate_id: str) -> CandidateRow:
        row = self.candidates.get(candidate_id)
        if row is None:
            row = CandidateRow(candidate_id, is_input=candidate_id == "input")
            self.candidates[candidate_id] = row
            self.view.candidates.append(row)
        return row

    def _metric_key(self, key: str, unit: Any = None) -> None:
        view = self.view
        if key not in view.metric_keys:
            view.metric_keys.append(key)
        if unit is not None and unit != "":
            view.metric_units[key] = str(unit)

    def _log(self, ts: Any, level: str, source: str, message: str) -> None:
        view = self.view
        view.logs.append(LogLine(_number(ts) or 0.0, level, source, message))
        if len(view.logs) > MAX_LOG_LINES * 1.5:
            drop = len(view.logs) - MAX_LOG_LINES
            del view.logs[:drop]  # amortised: one cut per MAX_LOG_LINES / 2 lines
            view.dropped_logs += drop

    def _training(self, pass_name: str) -> TrainingView:
        view = self.view
        if view.training is None or view.training.pass_name != pass_name:
            view.training = TrainingView(pass_name)
        return view.training

    def _update_percent(self) -> None:
        row = self.current
        if row is None or row.total <= 0:
            return
        done = row.fraction if row.state == "running" else 1.0
        self.view.percent = min(100, math.floor(100 * (row.index + done) / row.total))


# ---------------------------------------------------------------------------------------------- per event type


def _run_started(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    view = state.view
    plan = e.get("plan") if isinstance(e.get("plan"), dict) else {}
    model = plan.get("input_model") if isinstance(plan.get("input_model"), dict) else {}
    view.started_ts = _number(e.get("ts"))
    view.input_model = _text(model["path"]) if model.get("path") else None
    view.output_dir = _text(plan["output_dir"]) if plan.get("output_dir") else view.output_dir
    view.device = _text(plan["device"]) if plan.get("device") else None
    view.execution_provider = _text(plan["execution_provider"]) if plan.get("execution_provider") else None
    if view.label == view.run_id and view.output_dir:
        view.label = basename(view.output_dir)
    view.step = "started"


def _pass_started(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    key = (candidate or "", _text(e.get("pass_name")))
    row = PassRow(_text(e.get("pass_name")), _text(e.get("pass_type")), candidate, _int(e.get("index"), 0),
                  _int(e.get("total"), 1), node=_node(e))
    old = state.passes.get(key)
    if old is not None:  # the same pass again (a retried candidate): its row starts over
        for name in PassRow.__slots__:
            setattr(old, name, getattr(row, name))
        row = old
    else:
        state.passes[key] = row
        state.view.passes.append(row)
    training = state.view.training
    if training is not None and training.pass_name == row.name:
        state.view.training = None  # a training pass that runs again trains anew
    state.current = row
    prefix = f"{candidate} · " if candidate else ""
    state.view.step = f"{prefix}pass {row.index + 1}/{row.total} {row.name} ({row.type})"
    state._update_percent()


def _pass_progress(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    # pass.progress may carry no candidate: it belongs to the running pass of that name.
    name = _text(e.get("pass_name"))
    row = state.pass_row(candidate, name)
    if row is not None:
        row.fraction = max(row.fraction, _number(e.get("fraction")) or 0.0)
        row.message = _text(e.get("message"))
        state.current = row
        state._update_percent()
    owner = candidate or (row.candidate if row is not None else None)
    state.view.step = f"{f'{owner} · ' if owner else ''}{name}: {_text(e.get('message'))}"


def _pass_finished(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    name = _text(e.get("pass_name"))
    row = state.passes.get((candidate or "", name))
    cached = bool(e.get("cached"))
    if row is not None:
        row.state = "cached" if cached else "done"
        row.fraction = 1.0
        row.duration_s = _number(e.get("duration_s"))
        row.message = "from cache" if cached else ""
        state.current = row
        state._update_percent()
    prefix = f"{candidate} · " if candidate else ""
    done = "taken from the cache" if cached else f"done in {format_duration(_number(e.get('duration_s')))}"
    state.view.step = f"{prefix}{name} {done}"


def _candidate_started(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    row = state._candidate(candidate or "?")
    row.params = e["params"] if isinstance(e.get("params"), dict) else {}
    row.state = "running"
    row.node = _node(e) or row.node
    row.attempt = _int(e.get("attempt"), row.attempt)
    state.view.step = f"candidate {row.id} started{f' (attempt {row.attempt})' if row.attempt > 1 else ''}"


def _cluster_connected(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    nodes = len(e["nodes"]) if isinstance(e.get("nodes"), list) else 0
    step = f"connected to Ray cluster {_text(e.get('system'))} ({nodes} node{'' if nodes == 1 else 's'})"
    state.view.step = step
    state._log(e.get("ts"), "info", "cluster", f"{step} at {_text(e.get('address')) or 'a local Ray instance'}, "
                                               f"{_text(e.get('max_concurrent'))} candidates at once")


def _candidate_retried(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    row = state._candidate(candidate or "?")
    row.attempt = _int(e.get("attempt"), row.attempt + 1)
    row.state = "running"
    row.message = f"retrying (attempt {row.attempt} of {_text(e.get('max_attempts'))}): {_text(e.get('reason'))}"
    state._log(e.get("ts"), "warning", row.id, f"{row.message}{f' (was on {row.node})' if row.node else ''}")
    state.view.step = f"{row.id} {row.message}"


def _candidate_cancelled(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    row = state._candidate(candidate or "?")
    if row.state != "evaluated":
        row.state, row.message = "failed", "cancelled"


def _evaluation_started(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    row = state._candidate(candidate or "input")
    row.state = "evaluating"
    metrics = [_text(m) for m in e["metrics"]] if isinstance(e.get("metrics"), list) else []
    for key in metrics:
        state._metric_key(key)
    state.view.evaluated = True
    listed = f": {', '.join(metrics)}" if metrics else ""
    state.view.step = f"evaluating {row.id}{listed}"


def _metric_measured(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    row = state._candidate(candidate or "input")
    key = _text(e.get("key"))
    state._metric_key(key, e.get("unit"))
    row.metrics[key] = _number(e.get("value"))
    state.view.evaluated = True
    prefix = f"{candidate} · " if candidate else ""
    state.view.step = f"{prefix}{key} = {panel_value(_number(e.get('value')), _text(e.get('unit')))}"


def _candidate_evaluated(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    row = state._candidate(candidate or "input")
    metrics = e["metrics"] if isinstance(e.get("metrics"), dict) else {}
    for key, value in metrics.items():
        state._metric_key(key)
        row.metrics[key] = _number(value)
    if isinstance(e.get("params"), dict):
        row.params = e["params"]
    row.state = "evaluated"
    row.accepted = e["accepted"] if isinstance(e.get("accepted"), bool) else None
    row.is_input = bool(e.get("is_input")) or row.is_input
    row.duration_s = _number(e.get("duration_s"))
    row.node = _node(e) or row.node
    state.view.evaluated = True
    state.view.step = f"{row.id} evaluated"


def _candidate_failed(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    # Older engines name no candidate: then it is the one that started last and was not evaluated.
    row: CandidateRow | None
    if candidate is not None:
        row = state._candidate(candidate)
    else:
        row = next((c for c in reversed(state.view.candidates) if c.state in ("running", "evaluating")), None)
    message = _text(e.get("message"))
    if row is not None:
        row.state, row.message = "failed", message
    fix = f" (fix: {_text(e.get('fix'))})" if e.get("fix") else ""
    state._log(e.get("ts"), "warning", row.id if row is not None else "search", f"candidate failed: {message}{fix}")
    state.view.step = f"{row.id if row is not None else 'a candidate'} failed"


def _train_step(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    training = state._training(_text(e.get("pass_name")))
    training.step = _int(e.get("step"), training.step)
    training.max_steps = _int(e.get("max_steps"), training.max_steps)
    training.loss = _number(e.get("loss"))
    training.learning_rate = _number(e.get("learning_rate"))
    training.eta_s = _number(e.get("eta_s"))
    if training.first_loss is None:
        training.first_loss = training.loss


def _train_eval(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    training = state._training(_text(e.get("pass_name")))
    training.eval_loss = _number(e.get("eval_loss"))
    training.eval_step = _int(e.get("step"), None)
    if training.eval_loss is not None:
        training.evals += 1
    if training.first_eval_loss is None and training.eval_loss is not None:
        training.first_eval_loss, training.first_eval_step = training.eval_loss, training.eval_step
    state._log(e.get("ts"), "info", _text(e.get("pass_name")),
               f"eval loss {panel_value(training.eval_loss)} at step {_text(e.get('step'))}")


def _log_event(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    source = e.get("pass_name") if e.get("pass_name") is not None else e.get("logger")
    state._log(e.get("ts"), _text(e.get("level")) or "info", _text(source), _text(e.get("message")))


def _warning(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    if len(state.view.warnings) < MAX_WARNINGS:
        state.view.warnings.append(_text(e.get("message")))
    state._log(e.get("ts"), "warning", _text(e.get("pass_name")), _text(e.get("message")))


def _error(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    state.view.error = RunError(_text(e.get("message")), _text(e["fix"]) if e.get("fix") else None,
                                _text(e["where"]) if e.get("where") else None, _text(e.get("kind")))
    state._log(e.get("ts"), "error", _text(e.get("where")), _text(e.get("message")))


def _run_finished(state: RunState, e: dict[str, Any], candidate: str | None) -> None:
    view = state.view
    status = _text(e.get("status"))
    view.status = status if status in _STATUSES[1:] else "failed"  # type: ignore[assignment]
    view.finished_ts = _number(e.get("ts"))
    duration = _number(e.get("duration_s"))
    if duration is None and view.started_ts is not None and view.finished_ts is not None:
        duration = max(0.0, view.finished_ts - view.started_ts)
    view.duration_s = duration
    if e.get("output_dir"):
        view.output_dir = _text(e["output_dir"])
    view.best_candidate = _text(e["best_candidate"]) if e.get("best_candidate") else None
    for row in view.passes:
        if row.state == "running":
            row.state = "stopped"
    for candidate_row in view.candidates:
        if candidate_row.state in ("running", "evaluating"):
            candidate_row.state = "failed"
    if view.status == "succeeded":
        view.percent = 100
        view.step = f"done in {format_duration(view.duration_s)}"
    elif view.status == "cancelled":
        view.step = "cancelled"
    else:
        view.step = f"failed{f': {view.error.message}' if view.error else ''}"


_HANDLERS = {
    "run.started": _run_started, "pass.started": _pass_started, "pass.progress": _pass_progress,
    "pass.finished": _pass_finished, "candidate.started": _candidate_started, "cluster.connected": _cluster_connected,
    "candidate.retried": _candidate_retried, "candidate.cancelled": _candidate_cancelled,
    "evaluation.started": _evaluation_started, "metric.measured": _metric_measured,
    "candidate.evaluated": _candidate_evaluated, "candidate.failed": _candidate_failed, "train.step": _train_step,
    "train.eval": _train_eval, "log": _log_event, "warning": _warning, "error": _error, "run.finished": _run_finished,
}


# ---------------------------------------------------------------------------------------------- values


def _text(value: Any) -> str:
    """A field as text, as JavaScript's String() writes it (1.0 → "1", null → "")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _int(value: Any, default: Any) -> Any:
    number = _number(value)
    return int(number) if number is not None else default


def _node(e: dict[str, Any]) -> str | None:
    """A readable name for the Ray node an event came from: its IP, else the start of its id."""
    if e.get("node_ip"):
        return _text(e["node_ip"])
    return _text(e["node"])[:8] if e.get("node") else None


def basename(path: str) -> str:
    parts = [p for p in path.rstrip("/\\").replace("\\", "/").split("/")]
    return parts[-1] or path


def format_duration(seconds: float | None) -> str:
    """A duration as the editor writes it (runModel.ts's formatDuration, JavaScript's rounding included)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{Decimal(seconds).quantize(Decimal('0.1'), ROUND_HALF_UP)} s"
    if seconds < 3600:
        minutes = math.floor(seconds / 60)
        return f"{minutes} min {math.floor(seconds - minutes * 60 + 0.5)} s"
    hours = math.floor(seconds / 3600)
    return f"{hours} h {math.floor((seconds - hours * 3600) / 60 + 0.5)} min"


def panel_value(value: float | None, unit: str = "") -> str:
    """A value as the editor writes it (extension/src/runModel.ts's formatValue): sizes in KiB/MiB/GiB, times of a
    second or more as s / min / h, other numbers to 4 significant digits and never with an exponent
    (extension/test/fixtures/format_value.json lists where this differs from the terminal's render.format_value)."""
    if value is None:
        return "n/a"
    lower = unit.lower()
    if is_bytes(lower):
        return human_size(value)
    if lower in _SECOND_UNITS and abs(value * _SECOND_UNITS[lower]) >= 1:
        return format_duration(value * _SECOND_UNITS[lower])
    if abs(value) >= 1000:
        text = f"{math.floor(value + 0.5):,}"
    else:
        text = _js_number(float(f"{value:.4g}"))
    return f"{text} {unit}" if unit else text


def _js_number(value: float) -> str:
    """A float as JavaScript's Number#toString writes it."""
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if 1e-6 <= abs(value) < 1e21:
        return format(Decimal(repr(value)), "f")
    mantissa, exponent = repr(value).split("e")
    return f"{mantissa}e{int(exponent):+d}"
