"""Flags every config key that lets code shipped with the model run (``remote-code``, a warning).

The check only reads the model folder's config files; it never imports anything from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelmill.config.diagnostics import Diagnostic, KeyPath
from modelmill.config.pass_checks import pass_entries
from modelmill.config.view import ConfigView
from modelmill.remote_code import FLAG, remote_code_modules

_CODE = "remote-code"
_HINT = (f"keep it only if you have read that code and trust it; remove the key to refuse it (the command line's "
         f"{FLAG} allows it for one run)")


def check_remote_code(view: ConfigView) -> list[Diagnostic]:
    model = view.get(("input_model",))
    if not isinstance(model, dict):
        return []
    what = _what_runs(view, model)
    found: list[tuple[KeyPath, str]] = []
    if _on(view.get(("input_model", "load_kwargs", "trust_remote_code"))):
        found.append((("input_model", "load_kwargs", "trust_remote_code"), "load_kwargs.trust_remote_code"))
    if _on(view.get(("input_model", "model_attributes", "trust_remote_code"))):
        found.append((("input_model", "model_attributes", "trust_remote_code"), "model_attributes.trust_remote_code"))
    for name, at, entry in pass_entries(view):
        options = entry.get("extra_options")
        if isinstance(options, dict) and _on(options.get("hf_remote")):
            # Not consent by itself: the run also needs the input model's trust_remote_code (or the flag).
            found.append((at + ("extra_options", "hf_remote"), f"passes.{name}.extra_options.hf_remote"))
        if _on(entry.get("trust_remote_code")):
            found.append((at + ("trust_remote_code",), f"passes.{name}.trust_remote_code"))
    return [view.diag(at, "warning", _CODE, f"{key} lets {what} run with your permissions", _HINT, key=True)
            for at, key in found]


def _on(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


def _what_runs(view: ConfigView, model: dict[str, Any]) -> str:
    """Names the code: the folder's auto_map modules, or the pickled module file."""
    path = model.get("model_path")
    local = view.resolve_path(path) if isinstance(path, str) and not path.startswith("sample:") else None
    if model.get("type") == "PyTorchModel":
        return f"the pickled module {local or path} (unpickling runs any code it holds)"
    if local is None or not local.is_dir():
        return "Python code shipped with the model (the auto_map modules of its config.json)"
    modules = remote_code_modules(Path(local))
    if not modules:
        return f"Python code shipped with the model (none is named by {local}'s config.json today)"
    return f"Python code from {local}: {', '.join(modules)}"
