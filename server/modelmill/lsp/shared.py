"""What the server and the VS Code extension must agree on, in one place.

The extension reads these from ``extension/src/shared.json``, which is generated from this module
(``python -m modelmill.lsp.shared --write``); tests/lsp/test_shared_constants.py fails when the file,
package.json's setting defaults or a TypeScript copy drift from here. Standard library only: the server's
start-up path imports this.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SECTION = "modelmill"
"""The settings section (``modelmill.*`` in package.json's ``contributes.configuration``)."""

SERVER_COMMANDS: dict[str, str] = {
    "optimize": "modelmill.optimize",
    "evaluate": "modelmill.evaluate",
    "cancel": "modelmill.cancel",
    "validate": "modelmill.validate",
    "plan": "modelmill.plan",
    "runs": "modelmill.runs",
    "runEvents": "modelmill.runEvents",
    "runState": "modelmill.runState",
    "debugInfo": "modelmill.debugInfo",
    "evaluateMetrics": "modelmill.evaluateMetrics",
    "compare": "modelmill.compare",
}
"""``workspace/executeCommand`` ids (docs/lsp.md). The client's own UI commands use other ids (package.json)."""

RUN_EVENT = "modelmill/runEvent"
"""The notification that carries each engine event of a run."""
RUN_STATE = "modelmill/runState"
"""The notification that carries a run's reduced state (``contracts.RunView``), for clients that ask for it
(``initializationOptions.runNotifications``)."""
RUN_NOTIFICATIONS = "state"
"""What the extension asks for in ``initializationOptions.runNotifications``: the state only (``events``, the
default, and ``both`` are for other clients)."""
SET_TRUSTED = "modelmill/setTrusted"
"""The notification the client sends when the workspace becomes trusted."""

DEFAULT_PATTERNS: tuple[str, ...] = ("**/*olive*.json", "**/*olive*.y?(a)ml", "**/*modelmill*.json",
                                     "**/*modelmill*.y?(a)ml")
"""``modelmill.configFilePatterns``'s default (also package.json's ``default``)."""

WORKFLOW_KEYS: tuple[str, ...] = ("input_model", "passes", "engine")
"""A JSON/YAML file with one of these top-level keys is a workflow config, whatever its name."""

UNTRUSTED = ("ModelMill runs are disabled in an untrusted workspace: a workflow config can run code (user "
             "scripts, model loaders). Trust the workspace to run it; validation, completion and hover keep working.")
"""Why a run or an evaluation is refused in an untrusted workspace (server error and client warning alike)."""

GENERATED = Path(__file__).resolve().parents[3] / "extension" / "src" / "shared.json"
"""Where the extension's copy lives in a source checkout (not in an installed package)."""


def as_json() -> dict[str, Any]:
    """The values above as the extension reads them."""
    return {
        "_generated": "by `python -m modelmill.lsp.shared --write` from server/modelmill/lsp/shared.py; do not edit",
        "section": SECTION,
        "serverCommands": dict(SERVER_COMMANDS),
        "notifications": {"runEvent": RUN_EVENT, "runState": RUN_STATE, "setTrusted": SET_TRUSTED},
        "runNotifications": RUN_NOTIFICATIONS,
        "defaultConfigFilePatterns": list(DEFAULT_PATTERNS),
        "workflowKeys": list(WORKFLOW_KEYS),
        "untrustedMessage": UNTRUSTED,
    }


def render() -> str:
    return json.dumps(as_json(), indent=2) + "\n"


if __name__ == "__main__":  # pragma: no cover - a maintenance tool
    import sys

    if "--write" in sys.argv:
        GENERATED.write_text(render())
        print(f"wrote {GENERATED}")
    else:
        sys.stdout.write(render())
