"""The CLI's view of a run: renders engine events with rich. Nothing else prints run progress."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from modelmill.contracts import TrainingView
from modelmill.run_state import RunState
from modelmill.units import human_size, is_bytes

# Olive's log_severity_level: 0 verbose/debug, 1 info, 2 warning, 3 error, 4 fatal.
LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3, "critical": 4}


def format_value(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if is_bytes(unit):
        return human_size(value)
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return f"{text} {unit}".strip()


class ProgressRenderer:
    """One bar per pass (per search candidate), a spinner per evaluation, log lines at ``log_level``.

    The run's state is ``run_state.RunState``'s (the reducer the language server uses too): the bars follow its pass
    rows, metric units and training losses come from it; the lines printed as events arrive are this view's own."""

    def __init__(self, console: Console, log_level: int = 3) -> None:
        self.console = console
        self.log_level = log_level
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                                 TextColumn("[dim]{task.fields[message]}"), console=console, transient=False)
        self.state: RunState | None = None
        self.bars: dict[int, TaskID] = {}
        """Per pass row (its id()): its bar."""
        self.spinners: dict[str, TaskID] = {}
        """Per candidate: its evaluation's spinner."""

    def __enter__(self) -> "ProgressRenderer":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _print(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def __call__(self, event: dict[str, Any]) -> None:
        if self.state is None:
            self.state = RunState(str(event.get("run_id") or "run"))
        state = self.state
        if not state.apply(event):
            return
        kind = event["type"]
        candidate = event.get("candidate") or ""
        pass_name = str(event.get("pass_name") or "")
        prefix = f"{candidate}{node_label(event)} " if candidate else ""
        row = state.pass_row(candidate, pass_name) if kind.startswith("pass.") else None
        if kind == "pass.started" and row is not None:
            label = f"{prefix}{row.index + 1}/{row.total} {row.name} ({row.type})"
            self.bars[id(row)] = self.progress.add_task(label, total=1.0, message="")
        elif kind == "pass.progress" and row is not None and id(row) in self.bars:
            self.progress.update(self.bars[id(row)], completed=row.fraction, message=row.message[:60])
        elif kind == "pass.finished" and row is not None and id(row) in self.bars:
            note = "cached" if row.state == "cached" else f"{row.duration_s or 0.0:.1f}s"
            self.progress.update(self.bars[id(row)], completed=1.0, message=note)
            training = state.view.training
            summary = training_line(training) if training is not None and training.pass_name == row.name else ""
            if summary:
                self._print(f"  {prefix}{row.name}: {summary}")
        elif kind == "candidate.started" and event.get("params"):
            where = f" on {node_label(event).strip(' @')}" if event.get("node") else ""
            self._print(f"[bold]candidate {candidate}[/]{where}: {json.dumps(event['params'])}")
        elif kind == "cluster.connected":
            nodes = ", ".join(f"{n['ip']} ({n['node'][:NODE_CHARS]}, {n['cpus']:g} CPU"
                              + (f", {n['gpus']:g} GPU" if n.get("gpus") else "") + ")" for n in event["nodes"])
            self._print(f"[bold]Ray cluster[/] {event['address']}: {len(event['nodes'])} node(s): {nodes}; "
                        f"up to {event['max_concurrent']} candidates at once")
        elif kind == "candidate.retried":
            self._print(f"[yellow]{candidate}: lost on {node_label(event).strip(' @') or 'its worker'} "
                        f"({event['reason']}); retrying, attempt {event['attempt']} of {event['max_attempts']}[/]")
        elif kind == "candidate.cancelled":
            self._print(f"[dim]{candidate}: Ray task cancelled{node_label(event)}[/]")
        elif kind == "evaluation.started":
            self.spinners[candidate] = self.progress.add_task(f"evaluate {candidate}",
                                                              total=max(1, len(event["metrics"])),
                                                              message=", ".join(event["metrics"])[:60])
        elif kind == "metric.measured":
            task = self.spinners.get(candidate)
            if task is not None:
                self.progress.advance(task)
                self.progress.update(task, message=f"{event['key']} = {format_value(event['value'], event.get('unit', ''))}")
        elif kind == "candidate.evaluated":
            task = self.spinners.get(candidate)
            if task is not None:
                self.progress.update(task, completed=self.progress.tasks[task].total)
            units = state.view.metric_units
            metrics = ", ".join(f"{k} {format_value(v, units.get(k, ''))}" for k, v in event["metrics"].items())
            verdict = "" if event.get("is_input") else ("  [green]meets goals[/]" if event["accepted"]
                                                        else "  [yellow]misses a goal[/]")
            self._print(f"  {candidate}: {metrics}{verdict}")
        if kind == "train.eval" and event.get("eval_loss") is not None:
            self._print(f"  {pass_name}: eval loss {event['eval_loss']:.4f} at step {event['step']}")
        elif kind == "train.step" and self.log_level <= 1 and event.get("loss") is not None:
            self._print(f"[dim]{pass_name}: step {event['step']}/{event['max_steps']} loss {event['loss']:.4f} "
                        f"lr {event['learning_rate']:.2e}[/]")
        elif kind == "log" and LEVELS.get(event.get("level", "info"), 1) >= self.log_level:
            source = event.get("pass_name") or event.get("logger") or ""
            self._print(f"[dim]{source}: {event['message']}[/]")
        elif kind == "warning":
            self._print(f"[yellow]warning[/]: {event['message']}")
        elif kind == "error":
            self._print(f"[red bold]error[/]: {event['message']}")
            if event.get("fix"):
                self._print(f"  [cyan]fix[/]: {event['fix']}")
            if event.get("traceback") and self.log_level <= 1:
                self._print(event["traceback"])
        elif kind == "run.finished" and state.view.best_candidate:
            self._print(f"best candidate: [bold]{state.view.best_candidate}[/]")


def training_line(training: TrainingView) -> str:
    """A training pass's losses in one line, for when it ends (also without a terminal, where no bar is drawn): the
    first and last training loss, and the eval loss of the last evaluation beside the first (step 0: the base
    model's)."""
    parts = []
    if training.first_loss is not None and training.loss is not None:
        parts.append(f"training loss {training.first_loss:.4f} → {training.loss:.4f} ({training.step} steps)")
    if training.eval_loss is not None:
        first = training.first_eval_loss
        base = " (base model)" if training.first_eval_step == 0 else f" (step {training.first_eval_step})"
        parts.append(f"eval loss {training.eval_loss:.4f}"
                     + (f", from {first:.4f}{base}" if training.evals > 1 and first is not None else ""))
    return "; ".join(parts)


NODE_CHARS = 8


def node_label(event: dict[str, Any]) -> str:
    """`` @10.0.0.5/3fa9c1d2`` for an event from a Ray worker (ip and the start of its node id), else ""."""
    node = event.get("node")
    if not node:
        return ""
    return f" @{event['node_ip']}/{node[:NODE_CHARS]}" if event.get("node_ip") else f" @{node[:NODE_CHARS]}"


class EventsFile:
    """``--events FILE``: every event as one JSON line, flushed as it happens."""

    def __init__(self, path: str | Path) -> None:
        self.handle: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def __call__(self, event: dict[str, Any]) -> None:
        self.handle.write(json.dumps(event, default=str) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class PipeSafeConsole(Console):
    """A console that goes quiet when its reader is gone, and says so through ``output_closed``.

    rich's default raises SystemExit from whichever thread wrote; in the run's event thread that only
    ended the thread, and the CLI then waited forever (``modelmill run ... | head -3``). The main
    thread watches ``output_closed`` instead: it stops the run and exits (pipes.EXIT_STATUS).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.output_closed = threading.Event()

    def on_broken_pipe(self) -> None:
        from modelmill.pipes import silence

        self.quiet = True
        silence(self.file)
        self.output_closed.set()


def stderr_console() -> PipeSafeConsole:
    return PipeSafeConsole(file=sys.stderr, highlight=False)
