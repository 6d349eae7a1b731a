"""``output_dir``: a folder a run would replace must be one ModelMill wrote (see ``modelmill.output_guard``).

Runs in the editor as the user types: it only looks at the file system (a bounded walk of the target),
never runs anything.
"""

from __future__ import annotations

from pathlib import Path

from modelmill.config.diagnostics import Diagnostic
from modelmill.config.view import ConfigView
from modelmill.output_guard import output_refusal


def check_output_dir(view: ConfigView) -> list[Diagnostic]:
    value = view.get(("output_dir",))
    if not isinstance(value, str) or not value.strip():
        return []
    target = Path(value).expanduser()
    if not target.is_absolute():
        target = view.env.cwd / target  # as a run resolves it (the workspace folder in the editor)
    refusal = output_refusal(target, overwrite=view.env.overwrite_output, protected=_protected(view))
    if refusal is None:
        return []
    return [view.diag(("output_dir",), "error", "unsafe-output-dir", refusal.message, refusal.fix)]


def _protected(view: ConfigView) -> list[tuple[Path, str]]:
    folders = [(view.env.cwd, "the workspace (current) folder")]
    if view.doc.base_dir is not None:
        folders.append((view.doc.base_dir, "the config's folder"))
    model = view.get(("input_model", "model_path"))
    if isinstance(model, str) and not model.startswith("sample:"):
        local = view.resolve_path(model)
        if local is not None:
            folders.append((local if local.is_dir() else local.parent, "the input model"))
    return folders
