"""Run events: one versioned JSON stream feeds the CLI, --events files and the language server.

Every event is ``{"v": 1, "type": ..., "run_id": ..., "ts": <unix seconds>, "seq": n, ...data}``. The types and
their fields are the dataclasses of ``modelmill.contracts`` (docs/events.md is generated from them).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from modelmill.contracts import EVENTS_VERSION, Event, make_event

__all__ = ["EVENTS_VERSION", "EventBus", "Listener"]

Listener = Callable[[dict[str, Any]], None]


@dataclass
class EventBus:
    """Stamps events and hands them to every listener, in order."""

    run_id: str
    listeners: list[Listener] = field(default_factory=list)
    _seq: itertools.count = field(default_factory=itertools.count)

    def emit(self, event: Event | str, /, **data: Any) -> dict[str, Any]:
        """Send a typed event (``emit(PassStarted(...))``), or build one from its type name and fields
        (``emit("pass.started", pass_name=...)``): either way a field its type does not declare is a TypeError."""
        if isinstance(event, str):
            event = make_event(event, **data)
        elif data:
            raise TypeError("emit(event) takes the event's fields in the event")
        record = {"v": EVENTS_VERSION, "type": event.TYPE, "run_id": self.run_id, "ts": round(time.time(), 3),
                  "seq": next(self._seq), **event.fields()}
        for listener in self.listeners:
            listener(record)
        return record
