"""Run events: one versioned JSON stream feeds the CLI, --events files and the language server.

Every event is ``{"v": 1, "type": ..., "run_id": ..., "ts": <unix seconds>, "seq": n, ...data}``.
See docs/events.md for the list of types and their fields.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

EVENTS_VERSION = 1

Listener = Callable[[dict[str, Any]], None]


@dataclass
class EventBus:
    """Stamps events and hands them to every listener, in order."""

    run_id: str
    listeners: list[Listener] = field(default_factory=list)
    _seq: itertools.count = field(default_factory=itertools.count)

    def emit(self, type: str, **data: Any) -> dict[str, Any]:
        event = {"v": EVENTS_VERSION, "type": type, "run_id": self.run_id, "ts": round(time.time(), 3),
                 "seq": next(self._seq), **data}
        for listener in self.listeners:
            listener(event)
        return event
