"""What a pass gets besides its input model and parameters."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelmill.contracts import LogEvent, PassProgressEvent, WarningEvent
from modelmill.engine.events import EventBus


@dataclass(frozen=True)
class Accelerator:
    device: str = "cpu"
    execution_provider: str = "CPUExecutionProvider"
    memory: int | None = None
    """The accelerator's memory in bytes (the target system's ``memory``), where the config gives it."""


@dataclass
class PassContext:
    """Per-pass services. Passes never print: they report through the context.

    ``output_dir`` is a fresh empty folder for this pass's output; ``work_dir`` a scratch
    folder for the pass; ``cache_dir`` is shared across runs (e.g. the builder's HF cache).
    """

    pass_name: str
    output_dir: Path
    work_dir: Path
    cache_dir: Path
    bus: EventBus
    accelerator: Accelerator = field(default_factory=Accelerator)
    data_configs: dict[str, Any] = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set when the run is cancelled; passes that can stop cleanly poll it (see engine/cancel.py)."""
    reports: dict[str, Any] = field(default_factory=dict)
    """What the pass measured or decided (JSON values): kept in the cache entry, so a cached rerun reports it
    too, and written to the run's manifest (``passes[i].report``)."""

    def progress(self, fraction: float, message: str = "") -> None:
        self.bus.emit(PassProgressEvent(pass_name=self.pass_name, fraction=max(0.0, min(1.0, fraction)),
                                        message=message))

    def log(self, message: str, level: str = "info") -> None:
        self.bus.emit(LogEvent(pass_name=self.pass_name, level=level, message=message))  # type: ignore[arg-type]

    def report(self, key: str, value: Any) -> None:
        """Record a JSON value under ``key`` in this pass's report (see ``reports``)."""
        self.reports[key] = value

    def warn(self, message: str) -> None:
        self.bus.emit(WarningEvent(pass_name=self.pass_name, message=message))
