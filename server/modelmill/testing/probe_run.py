"""A run kind that only reports what its worker process sees: its environment variable, working folder and pid
(tests of ``modelmill.engine.runner``: spawned and forkserver workers alike)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmill.engine.events import EventBus


@dataclass(frozen=True)
class ProbeRun:
    variable: str
    """The environment variable whose value the worker reports."""
    log_folder: Path
    output_dir: Path | None = None

    def cancel_grace_s(self) -> float:
        return 0.5

    def log_path(self, run_id: str) -> Path:
        return self.log_folder / f"{run_id}.log"

    def rerun_note(self) -> str:
        return "nothing was written"

    def in_process(self) -> bool:
        return False

    def prepare(self) -> None:
        pass

    def execute(self, bus: EventBus, cancel: threading.Event) -> Any:
        seen = {"value": os.environ.get(self.variable), "cwd": os.getcwd(), "pid": os.getpid()}
        bus.emit("run.finished", status="succeeded", results=seen)
        return seen

    def clean_after(self, run_id: str, pid: int) -> None:
        pass
