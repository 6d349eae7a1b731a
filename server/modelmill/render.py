"""The CLI's view of a run: renders engine events with rich. Nothing else prints run progress."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

# Olive's log_severity_level: 0 verbose/debug, 1 info, 2 warning, 3 error, 4 fatal.
LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3, "critical": 4}


class ProgressRenderer:
    """One progress bar per pass; log lines shown at or above ``log_level``; warnings always."""

    def __init__(self, console: Console, log_level: int = 3) -> None:
        self.console = console
        self.log_level = log_level
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                                 TextColumn("[dim]{task.fields[message]}"), console=console, transient=False)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "ProgressRenderer":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        name = event.get("pass_name", "")
        if kind == "pass.started":
            label = f"{event['index'] + 1}/{event['total']} {name} ({event['pass_type']})"
            self.tasks[name] = self.progress.add_task(label, total=1.0, message="")
        elif kind == "pass.progress" and name in self.tasks:
            self.progress.update(self.tasks[name], completed=event["fraction"], message=event.get("message", "")[:60])
        elif kind == "pass.finished" and name in self.tasks:
            note = "cached" if event.get("cached") else f"{event['duration_s']:.1f}s"
            self.progress.update(self.tasks[name], completed=1.0, message=note)
        elif kind == "log" and LEVELS.get(event.get("level", "info"), 1) >= self.log_level:
            self.progress.console.print(f"[dim]{name}: {event['message']}")
        elif kind == "warning":
            self.progress.console.print(f"[yellow]warning[/]: {event['message']}")
        elif kind == "error":
            self.progress.console.print(f"[red bold]error[/]: {event['message']}")
            if event.get("fix"):
                self.progress.console.print(f"  [cyan]fix[/]: {event['fix']}")
            if event.get("traceback") and self.log_level <= 1:
                self.progress.console.print(event["traceback"])


class EventsFile:
    """``--events FILE``: every event as one JSON line, flushed as it happens."""

    def __init__(self, path: str | Path) -> None:
        self.handle: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def __call__(self, event: dict[str, Any]) -> None:
        self.handle.write(json.dumps(event, default=str) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False)
