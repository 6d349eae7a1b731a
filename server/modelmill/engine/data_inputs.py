"""The data a pass or a metric reads through a data config: its digest for cache keys, and its paths made absolute.

A pass output depends on the calibration or training data as much as on the model, so a step whose params name
a data config (``data_config``, ``train_data_config``, ``eval_data_config``: by name or inline) gets that config's
content and a content digest of the local files it points to in its cache key. The files are hashed with the
model fingerprint's code (``cache.fingerprint``: every file, folders walked once each, memoized by size and mtime).

Passes run inside a scratch folder (see ``engine/chain.py``), so a relative data path in a config would resolve
there. ``anchor_data_config`` makes them absolute when the run is planned, against the folder the run starts
from (Olive's rule: its data loaders open paths as given, from the current folder).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from modelmill.engine.cache import fingerprint
from modelmill.errors import ModelMillError

if TYPE_CHECKING:
    from modelmill.engine.plan import Plan

PassParamsT = TypeVar("PassParamsT", bound=BaseModel)

DATA_CONFIG_FIELD = "data_config"
# data_name values that are no local path: the samples ModelMill builds, and the loader names of Olive's
# {"data_name": "json", "data_files": ...} form.
LOADER_NAMES = frozenset({"json", "text", "csv", "parquet", "arrow"})


def data_config_refs(params: BaseModel | dict[str, Any]) -> dict[str, str | dict[str, Any]]:
    """The params that reference a data config (``data_config`` or ``*_data_config``), by name or inline."""
    values = params.model_dump(mode="json") if isinstance(params, BaseModel) else params
    return {name: value for name, value in sorted(values.items())
            if (name == DATA_CONFIG_FIELD or name.endswith(f"_{DATA_CONFIG_FIELD}"))
            and isinstance(value, (str, dict))}


def data_context(params: BaseModel | dict[str, Any], data_configs: dict[str, Any],
                 index_file: Path) -> dict[str, Any] | None:
    """What the data configs a pass's params reference hold (each config and a digest of its local files),
    for the step's cache key; None when the params reference none, so those keys stay as they were."""
    return refs_context(data_config_refs(params), data_configs, index_file)


def metrics_data_context(metrics: list[Any], data_configs: dict[str, Any], index_file: Path) -> dict[str, Any] | None:
    """The same for an evaluation's metrics (config ``Metric`` models), keyed by metric name."""
    refs = {}
    for metric in metrics:
        ref = getattr(metric, "data_config", None)
        if isinstance(ref, BaseModel):
            ref = ref.model_dump(mode="json", exclude_none=True)
        if isinstance(ref, (str, dict)):
            refs[str(metric.name)] = ref
    return refs_context(refs, data_configs, index_file)


def refs_context(refs: dict[str, str | dict[str, Any]], data_configs: dict[str, Any],
                 index_file: Path) -> dict[str, Any] | None:
    """Each referenced data config (looked up by name, or inline) with its files' digests; None for no refs."""
    if not refs:
        return None
    context: dict[str, Any] = {}
    for field, ref in refs.items():
        config = data_configs.get(ref) if isinstance(ref, str) else ref
        if not isinstance(config, dict):  # an undefined name: the pass stops with the defined names
            context[field] = {"undefined": ref}
            continue
        context[field] = {"config": config, "files": files_digest(config, index_file)}
    return context


def files_digest(config: dict[str, Any], index_file: Path) -> list[list[str]]:
    """[path, content digest] of every local path the data config reads (a folder: all its files)."""
    return [[str(path), path_digest(path, index_file)] for path in data_paths(config)]


def path_digest(path: Path, index_file: Path | None = None) -> str:
    """The content fingerprint of a file or folder (memoized in ``index_file`` where given); a missing or empty
    one is named as such (the pass that reads it stops with the path)."""
    if not path.exists():
        return "missing"
    try:
        return fingerprint(path, index_file, save=index_file is not None and index_file.parent.is_dir())
    except ModelMillError:
        return "empty"
    except OSError as exc:
        return f"unreadable: {exc.strerror or type(exc).__name__}"


def data_paths(config: dict[str, Any]) -> list[Path]:
    """The local files and folders a data config reads, as its loaders find them: ``data_files`` inside
    ``data_dir`` (or inside a ``data_name`` folder), else the whole ``data_dir`` or ``data_name``."""
    load = _component_params(config.get("load_dataset_config"))
    found: list[Path] = []
    name = _local(load.get("data_name"))
    data_dir = _local(load.get("data_dir"))
    files = _file_names(load.get("data_files"))
    if name is not None:
        found.append(name)
    folder = data_dir or (name if name is not None and name.is_dir() else None)
    if files:
        found.extend(folder / file if folder is not None else Path(file).expanduser() for file in files)
    elif data_dir is not None:
        found.append(data_dir)
    return sorted(set(found))


def anchor_data_config(config: dict[str, Any], bases: list[Path]) -> dict[str, Any]:
    """A copy of ``config`` whose relative ``data_dir``, ``data_files`` and local ``data_name`` are absolute:
    each against the first of ``bases`` (absolute folders) where it exists, else the first. ``data_files``
    inside a ``data_dir`` or a ``data_name`` folder stay relative to it."""
    result = copy.deepcopy(config)
    load = result.get("load_dataset_config")
    if not isinstance(load, dict):
        return result
    for holder in (load, load.get("params")):
        if not isinstance(holder, dict):
            continue
        name = holder.get("data_name")
        if _is_path_like(name) and not Path(name).expanduser().is_absolute():
            found = _existing(name, bases)
            if found is not None:  # a name found nowhere may be a hub id: left as written, refused later
                holder["data_name"] = found
        if isinstance(holder.get("data_dir"), str) and holder["data_dir"]:
            holder["data_dir"] = _anchored(holder["data_dir"], bases)
    params = _component_params(load)
    name_dir = _is_path_like(params.get("data_name")) and Path(str(params["data_name"])).expanduser().is_dir()
    if params.get("data_dir") or name_dir:
        return result
    for holder in (load, load.get("params")):
        if isinstance(holder, dict) and holder.get("data_files"):
            holder["data_files"] = _anchor_files(holder["data_files"], bases)
    return result


def anchor_pass_params(params: PassParamsT, bases: list[Path]) -> PassParamsT:
    """``params`` with their inline data configs and path params (``path_params``) anchored (see
    ``anchor_data_config``); the same object when there is nothing to change."""
    updates: dict[str, Any] = {field: anchor_data_config(value, bases)
                               for field, value in data_config_refs(params).items() if isinstance(value, dict)}
    for field in getattr(params, "path_params", ()):
        value = getattr(params, field, None)
        if isinstance(value, str) and value:
            updates[field] = _anchored(value, bases)
    updates = {field: value for field, value in updates.items() if value != getattr(params, field)}
    return params.model_copy(update=updates) if updates else params


def _anchor_files(files: Any, bases: list[Path]) -> Any:
    if isinstance(files, str):
        return ",".join(_anchored(part.strip(), bases) for part in files.split(",") if part.strip())
    if isinstance(files, list):
        return [_anchored(item, bases) if isinstance(item, str) else item for item in files]
    if isinstance(files, dict):  # {"train": ..., "validation": ...}
        return {split: _anchor_files(value, bases) for split, value in files.items()}
    return files


def _anchored(value: str, bases: list[Path]) -> str:
    path = Path(value).expanduser()
    if path.is_absolute() or not bases:
        return str(path)
    return _existing(value, bases) or str(bases[0] / path)


def _existing(value: str, bases: list[Path]) -> str | None:
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path) if path.exists() else None
    for base in bases:
        if (base / path).exists():
            return str(base / path)
    return None


def _is_path_like(name: Any) -> bool:
    return isinstance(name, str) and bool(name) and not name.startswith("sample:") and name not in LOADER_NAMES


def _local(value: Any) -> Path | None:
    """A local path a data config names, or None (unset, a sample, a loader name, a hub id)."""
    if not _is_path_like(value):
        return None
    path = Path(value).expanduser()
    return path if path.exists() or path.is_absolute() else None


def _file_names(files: Any) -> list[str]:
    if isinstance(files, str):
        return [part.strip() for part in files.split(",") if part.strip()]
    if isinstance(files, list):
        return [str(item) for item in files if isinstance(item, str)]
    if isinstance(files, dict):
        return [name for value in files.values() for name in _file_names(value)]
    return []


def _component_params(component: Any) -> dict[str, Any]:
    """A data-config component's params, written nested under ``params`` or flat."""
    if not isinstance(component, dict):
        return {}
    flat = {key: value for key, value in component.items() if key not in ("type", "params")}
    return {**flat, **(component.get("params") or {})}


def run_bases(base_dir: Path | None, config_dir: Path | None) -> list[Path]:
    """Where a run's relative data paths resolve, in order: for the command line (``base_dir`` None) the
    folder the run starts from, then the config's folder; for the editor the config's folder, then its
    workspace folder (as the model path)."""
    folders = [Path.cwd(), config_dir] if base_dir is None else [config_dir, base_dir]
    found: list[Path] = []
    for folder in folders:
        if folder is not None and Path(os.path.abspath(folder)) not in found:
            found.append(Path(os.path.abspath(folder)))
    return found


def anchor_plan(plan: Plan, bases: list[Path]) -> None:
    """Make every relative data path of ``plan`` absolute (see ``anchor_data_config``): its data configs, the
    inline ones of its passes and metrics, and the passes' path params (``PassParams.path_params``)."""
    plan.data_configs = {name: anchor_data_config(config, bases) for name, config in plan.data_configs.items()}
    for step in plan.steps:
        step.params = anchor_pass_params(step.params, bases)
    if plan.metrics:
        plan.metrics = [_anchor_metric(metric, bases) for metric in plan.metrics]


def _anchor_metric(metric: Any, bases: list[Path]) -> Any:
    ref = getattr(metric, "data_config", None)
    if not isinstance(ref, BaseModel):
        return metric
    anchored = anchor_data_config(ref.model_dump(mode="json", exclude_none=True), bases)
    return metric.model_copy(update={"data_config": type(ref).model_validate(anchored)})
