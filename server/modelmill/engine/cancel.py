"""Cooperative cancel: a pass that can stop cleanly (training stops at its next step) says so.

The parent cancels a run's worker with SIGTERM. In the worker, SIGTERM sets the run's cancel event;
while no pass has declared itself able to stop cleanly it then ends the process at once, as before.
Inside ``graceful_cancel()`` the pass keeps running, sees ``ctx.cancel`` and stops on its own; the
parent waits up to the plan's ``cancel_grace_s`` before it kills the worker.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

_graceful = threading.Event()


@contextmanager
def graceful_cancel() -> Iterator[None]:
    """Within this block SIGTERM only sets the cancel event: the caller polls it and stops cleanly."""
    _graceful.set()
    try:
        yield
    finally:
        _graceful.clear()


def install_sigterm_handler(cancel: threading.Event) -> None:
    """SIGTERM sets ``cancel``; outside ``graceful_cancel()`` it also ends the process as SIGTERM does."""

    def on_sigterm(signum: int, frame: Any) -> None:
        cancel.set()
        if not _graceful.is_set():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
