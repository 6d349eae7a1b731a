"""custom metrics: ``evaluate_func(model_path: str, **evaluate_func_kwargs)`` from a user script.

Only imported and run when a model is evaluated; validating a config never executes user code.
``user_script`` is resolved against ``script_dir`` (itself relative to the config's folder) or the
config's folder; ``script_dir`` (or the script's folder) is on sys.path while the script runs.
The function returns a float (reported for every requested sub type) or a dict sub_type → float.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any, Callable

from modelmill.engine.model import ModelRef
from modelmill.evaluate.runtime import EvaluationError


def resolve_script(user_script: str, script_dir: str | None, base_dir: Path | None) -> Path:
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    folder = Path(script_dir) if script_dir else None
    if folder is not None and not folder.is_absolute():
        folder = base / folder
    candidates = [Path(user_script)] if Path(user_script).is_absolute() else \
        [*([folder / user_script] if folder else []), base / user_script]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise EvaluationError(f"user_script {user_script} not found (looked in {', '.join(str(c) for c in candidates)})",
                          fix="give user_script relative to the config file's folder (or to script_dir)")


def load_function(script: Path, name: str, script_dir: Path | None = None) -> Callable[..., Any]:
    module_name = f"modelmill_user_{hashlib.sha1(str(script).encode()).hexdigest()[:12]}"
    search = str(script_dir or script.parent)
    added = search not in sys.path
    if added:
        sys.path.insert(0, search)
    try:
        spec = importlib.util.spec_from_file_location(module_name, script)
        if spec is None or spec.loader is None:
            raise EvaluationError(f"cannot import {script}", fix="user_script must be a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except EvaluationError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code
        raise EvaluationError(f"importing user_script {script} failed: {type(exc).__name__}: {exc}",
                              fix="fix the error in the script") from exc
    finally:
        if added and search in sys.path:
            sys.path.remove(search)
    func = getattr(module, name, None)
    if not callable(func):
        raise EvaluationError(f"{script} has no function {name}", fix="set evaluate_func to a function in user_script")
    return func


def run_custom(model: ModelRef, metric_name: str, sub_types: list[str], user_config: dict[str, Any],
               base_dir: Path | None = None) -> dict[str, float]:
    """Call the user's evaluate_func and return {sub_type: value} for the requested sub types."""
    script = user_config.get("user_script")
    func_name = user_config.get("evaluate_func")
    if not script or not func_name:
        if user_config.get("metric_func"):
            raise EvaluationError(f"custom metric {metric_name}: metric_func is not supported by modelmill",
                                  fix="write an evaluate_func(model_path, **kwargs) that runs the model itself")
        raise EvaluationError(f"custom metric {metric_name} needs user_config.user_script and evaluate_func",
                              fix='add "user_config": {"user_script": "my_metrics.py", "evaluate_func": "evaluate"}')
    script_dir = user_config.get("script_dir")
    path = resolve_script(script, script_dir, base_dir)
    folder = None
    if script_dir:
        folder = Path(script_dir) if Path(script_dir).is_absolute() else Path(base_dir or Path.cwd()) / script_dir
    func = load_function(path, func_name, folder)
    try:
        result = func(str(model.path), **(user_config.get("evaluate_func_kwargs") or {}))
    except Exception as exc:  # noqa: BLE001 - user code
        raise EvaluationError(f"custom metric {metric_name}: {func_name} raised {type(exc).__name__}: {exc}",
                              fix=f"fix {func_name} in {path}") from exc
    if isinstance(result, dict):
        missing = [name for name in sub_types if name not in result]
        if missing:
            raise EvaluationError(f"custom metric {metric_name}: {func_name} returned no value for {missing}",
                                  fix=f"return a dict with keys {sub_types}")
        values = {name: result[name] for name in sub_types}
    else:
        values = {name: result for name in sub_types}
    out = {}
    for name, value in values.items():
        try:
            out[name] = float(value)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"custom metric {metric_name}-{name}: {func_name} returned {value!r}, not a number",
                                  fix="return a float or a dict of floats") from exc
        if math.isnan(out[name]):
            raise EvaluationError(f"custom metric {metric_name}-{name} is NaN", fix=f"check {func_name}")
    return out
