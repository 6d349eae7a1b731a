"""Library log records become ``log`` events, so the run's one event stream carries them too."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from modelmill.contracts import LogEvent
from modelmill.engine.events import EventBus

LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error",
               logging.CRITICAL: "critical"}


class EventLogHandler(logging.Handler):
    def __init__(self, bus: EventBus) -> None:
        super().__init__(logging.INFO)
        self.bus = bus

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = LEVEL_NAMES.get(record.levelno, "info")
            self.bus.emit(LogEvent(level=level, logger=record.name, message=record.getMessage()))
        except Exception:  # noqa: BLE001 - logging must never break a run
            self.handleError(record)


def route_worker_output(bus: EventBus, log_file: Path) -> None:
    """In a run's worker process: library logging → events; raw stdout/stderr (C++ warnings,
    progress bars of other libraries) → ``log_file``, so the user's terminal shows only the run's display."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.setdefault("TQDM_DISABLE", "1")
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(EventLogHandler(bus))
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s [%(levelname)s] %(message)s"))
    root.addHandler(file_handler)
    root.setLevel(logging.INFO)
    try:  # tqdm's default lock is a multiprocessing semaphore that a killed worker would leak
        import threading

        import tqdm

        tqdm.tqdm.set_lock(threading.RLock())
    except ImportError:
        pass
