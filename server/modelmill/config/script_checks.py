"""user_script / script_dir / model_script that do not exist (checked on disk; never imported here).

Olive imports them when it builds the data, the metric, the model or the pass, and a missing one fails then
(``import_user_module``: "ValueError: ... doesn't exist", olive/common/import_lib.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from modelmill.config.diagnostics import Diagnostic, KeyPath
from modelmill.config.pass_checks import pass_entries
from modelmill.config.view import ConfigView

_SCRIPT_KEYS = ("user_script", "model_script", "script_dir")


def check_scripts(view: ConfigView) -> list[Diagnostic]:
    diagnostics = []
    for at, holder in _holders(view):
        for key in _SCRIPT_KEYS:
            value = holder.get(key)
            if not isinstance(value, str) or not value or view.resolve_path(value) is not None:
                continue
            what = "folder" if key == "script_dir" else "file"
            diagnostics.append(view.diag(
                at + (key,), "warning", "path-not-found",
                f"{key} '{value}' does not exist: Olive fails when it loads it (ValueError: doesn't exist)",
                f"give the {what}'s path relative to the config's folder (or an absolute path)"))
    return diagnostics


def _holders(view: ConfigView) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    """Every object that may name a script: input model, data configs, metrics' user_config, passes."""
    model = view.get(("input_model",))
    if isinstance(model, dict):
        yield ("input_model",), model
    data_configs = view.get(("data_configs",))
    for index, config in enumerate(data_configs if isinstance(data_configs, list) else ()):
        if isinstance(config, dict):
            yield ("data_configs", index), config
    evaluators = view.get(("evaluators",))
    for name, evaluator in (evaluators.items() if isinstance(evaluators, dict) else ()):
        metrics = evaluator.get("metrics") if isinstance(evaluator, dict) else None
        for index, metric in enumerate(metrics if isinstance(metrics, list) else ()):
            user_config = metric.get("user_config") if isinstance(metric, dict) else None
            if isinstance(user_config, dict):
                yield ("evaluators", name, "metrics", index, "user_config"), user_config
    for _, at, entry in pass_entries(view):
        yield at, entry
