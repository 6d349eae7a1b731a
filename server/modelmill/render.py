"""The CLI's view of a run: renders engine events with rich. Nothing else prints run progress."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

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
    """One bar per pass (per search candidate), a spinner per evaluation, log lines at ``log_level``."""

    def __init__(self, console: Console, log_level: int = 3) -> None:
        self.console = console
        self.log_level = log_level
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                                 TextColumn("[dim]{task.fields[message]}"), console=console, transient=False)
        self.tasks: dict[tuple[str, str], TaskID] = {}
        self.units: dict[str, str] = {}
        self.training: dict[tuple[str, str], TrainingSummary] = {}

    def __enter__(self) -> "ProgressRenderer":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _print(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        candidate = event.get("candidate") or ""
        key = (candidate, event.get("pass_name", ""))
        prefix = f"{candidate}{node_label(event)} " if candidate else ""
        if kind == "pass.started":
            label = f"{prefix}{event['index'] + 1}/{event['total']} {key[1]} ({event['pass_type']})"
            self.tasks[key] = self.progress.add_task(label, total=1.0, message="")
        elif kind == "pass.progress" and key in self.tasks:
            self.progress.update(self.tasks[key], completed=event["fraction"], message=event.get("message", "")[:60])
        elif kind == "pass.finished" and key in self.tasks:
            note = "cached" if event.get("cached") else f"{event['duration_s']:.1f}s"
            self.progress.update(self.tasks[key], completed=1.0, message=note)
            summary = self.training.pop(key, None)
            if summary is not None and summary.line():
                self._print(f"  {prefix}{key[1]}: {summary.line()}")
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
            task_key = (candidate, "evaluate")
            self.tasks[task_key] = self.progress.add_task(f"evaluate {candidate}", total=max(1, len(event["metrics"])),
                                                          message=", ".join(event["metrics"])[:60])
        elif kind == "metric.measured":
            self.units[event["key"]] = event.get("unit", "")
            task = self.tasks.get((candidate, "evaluate"))
            if task is not None:
                self.progress.advance(task)
                self.progress.update(task, message=f"{event['key']} = {format_value(event['value'], event.get('unit', ''))}")
        elif kind == "candidate.evaluated":
            task = self.tasks.get((candidate, "evaluate"))
            if task is not None:
                self.progress.update(task, completed=self.progress.tasks[task].total)
            metrics = ", ".join(f"{k} {format_value(v, self.units.get(k, ''))}" for k, v in event["metrics"].items())
            verdict = "" if event.get("is_input") else ("  [green]meets goals[/]" if event["accepted"]
                                                        else "  [yellow]misses a goal[/]")
            self._print(f"  {candidate}: {metrics}{verdict}")
        if kind in ("train.step", "train.eval"):
            self.training.setdefault(key, TrainingSummary()).add(event)
        if kind == "train.eval" and event.get("eval_loss") is not None:
            self._print(f"  {key[1]}: eval loss {event['eval_loss']:.4f} at step {event['step']}")
        elif kind == "train.step" and self.log_level <= 1 and event.get("loss") is not None:
            self._print(f"[dim]{key[1]}: step {event['step']}/{event['max_steps']} loss {event['loss']:.4f} "
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
        elif kind == "run.finished" and event.get("best_candidate"):
            self._print(f"best candidate: [bold]{event['best_candidate']}[/]")


class TrainingSummary:
    """A training pass's losses, for one line when it ends (also without a terminal, where no bar is drawn):
    the first and last training loss and the eval loss of the base model (step 0) and of the last evaluation."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.evals: list[tuple[int, float]] = []
        self.steps = 0

    def add(self, event: dict[str, Any]) -> None:
        if event["type"] == "train.step" and isinstance(event.get("loss"), (int, float)):
            self.losses.append(float(event["loss"]))
            self.steps = int(event.get("step") or self.steps)
        elif event["type"] == "train.eval" and isinstance(event.get("eval_loss"), (int, float)):
            self.evals.append((int(event.get("step") or 0), float(event["eval_loss"])))

    def line(self) -> str:
        parts = []
        if self.losses:
            parts.append(f"training loss {self.losses[0]:.4f} → {self.losses[-1]:.4f} ({self.steps} steps)")
        if self.evals:
            (first_step, first), (_, last) = self.evals[0], self.evals[-1]
            base = " (base model)" if first_step == 0 else f" (step {first_step})"
            parts.append(f"eval loss {last:.4f}" + (f", from {first:.4f}{base}" if len(self.evals) > 1 else ""))
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
