"""Finished runs on disk, per workspace and bounded, so that the runs panel can show them after a restart.

Each finished run is one JSON file ``{"run": <modelmill.runs entry>, "events": [...]}`` under
``$MODELMILL_HOME/lsp/runs/<workspace key>/``; the newest ``MAX_RUNS`` are kept, and each keeps its first
event and its last ``MAX_EVENTS - 1`` (a long run's middle is dropped; the panel counts the gap in ``seq``).
A file that cannot be read is skipped; a history that cannot be written only costs the history.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

MAX_RUNS = 20
MAX_EVENTS = 2000
logger = logging.getLogger("modelmill.lsp")


def bounded(events: list[dict[str, Any]], limit: int = MAX_EVENTS) -> list[dict[str, Any]]:
    """The first event (run.started) and the last ``limit - 1``."""
    return events if len(events) <= limit else [events[0], *events[len(events) - limit + 1:]]


class RunHistory:
    def __init__(self, workspace: Path | None, root: Path | None = None) -> None:
        if root is None:
            from modelmill.paths import home

            root = home() / "lsp" / "runs"
        key = str(workspace.resolve()) if workspace is not None else "(no workspace)"
        self.folder = root / hashlib.sha256(key.encode()).hexdigest()[:16]

    def save(self, run: dict[str, Any], events: list[dict[str, Any]]) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.folder / f"{_safe(str(run['runId']))}.json"
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps({"run": run, "events": bounded(events)}, default=str), encoding="utf-8")
            os.replace(partial, target)
            self._prune()
        except OSError as exc:
            logger.warning("the run history could not be written: %s", exc)

    def load(self) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """The runs kept, oldest first."""
        found = []
        for path in self._files():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                run, events = data["run"], data["events"]
                if isinstance(run, dict) and isinstance(run.get("runId"), str) and isinstance(events, list):
                    found.append((run, [e for e in events if isinstance(e, dict)]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(found, key=lambda item: item[0].get("started") or 0)

    def _files(self) -> list[Path]:
        try:
            return sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        except OSError:
            return []

    def _prune(self) -> None:
        files = self._files()
        for old in files[: max(0, len(files) - MAX_RUNS)]:
            old.unlink(missing_ok=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100]
