"""Checks on systems, accelerators and the input model: what the run targets and reads."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from typing import Any

from modelmill.config.accelerators import (
    DEFAULT_EP,
    DEVICE_EPS,
    EP_PACKAGES,
    EXECUTION_PROVIDERS,
    ep_runs_on,
    first_ep,
    infer_device,
)
from modelmill.config.diagnostics import Diagnostic, KeyPath, replacing
from modelmill.config.hub_hints import hub_id_hint
from modelmill.config.input_models import OTHER_MODEL_TYPES
from modelmill.config.pydantic_errors import choices_hint
from modelmill.config.view import ConfigView
from modelmill.engine.model import several_onnx_files
from modelmill.samples import SAMPLE_PREFIX, SAMPLES

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
# A path ending like a model file is a missing local file, not a hub id (models/resnet.pt).
_FILE_SUFFIX = re.compile(r"\.(pt|pth|onnx|bin|safetensors|gguf|ckpt|h5|tflite|json)$", re.I)


# ------------------------------------------------------------------ systems and accelerators


def _systems(view: ConfigView) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    named = view.get(("systems",))
    if isinstance(named, dict):
        for name, system in named.items():
            if isinstance(system, dict):
                yield ("systems", name), system
    for key in ("host", "target"):
        if isinstance(view.get((key,)), dict):
            yield (key,), view.get((key,))


def check_accelerators(view: ConfigView) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for at, system in _systems(view):
        accelerators = system.get("accelerators")
        if not isinstance(accelerators, list):
            continue
        if len(accelerators) > 1:
            diagnostics.append(view.diag(at + ("accelerators", 1), "error", "invalid-value",
                                         "only one accelerator is supported", "keep one accelerator per system",
                                         remove=True))
        for index, accelerator in enumerate(accelerators):
            if isinstance(accelerator, dict):
                diagnostics.extend(_accelerator(view, system, accelerator, at + ("accelerators", index)))
    return diagnostics


def _accelerator(view: ConfigView, system: dict[str, Any], accelerator: dict[str, Any],
                 at: KeyPath) -> list[Diagnostic]:
    device, ep = accelerator.get("device"), first_ep(accelerator)
    device = device.lower() if isinstance(device, str) else device  # Olive lower-cases it
    if ep is None:
        if isinstance(device, str) and device not in DEFAULT_EP and device != "any":
            return [view.diag(at + ("device",), "error", "missing-required",
                              f"device '{device}' needs execution_providers",
                              f"add \"execution_providers\": [\"{DEVICE_EPS.get(device, ('',))[0]}\"]"
                              if device in DEVICE_EPS else "add execution_providers")]
        return []
    ep_path = at + ("execution_providers", 0)
    if not ep.endswith("ExecutionProvider"):
        return []  # a schema error
    if ep not in EXECUTION_PROVIDERS:
        hint, replacement = choices_hint(ep, list(EXECUTION_PROVIDERS))
        extra = replacing(replacement)
        return [view.diag(ep_path, "warning", "invalid-value", f"unknown execution provider '{ep}' (names are "
                          "case-sensitive)", hint, **extra)]
    diagnostics = []
    if isinstance(device, str) and not ep_runs_on(ep, device):
        right = DEFAULT_EP.get(device) or DEVICE_EPS[device][0]
        diagnostics.append(view.diag(
            ep_path, "warning", "ep-device-mismatch",
            f"{ep} does not run on device '{device}': Olive drops it and falls back to CPUExecutionProvider",
            f"for {device} use one of: {', '.join(DEVICE_EPS[device])}; or set \"device\": \"{infer_device(ep)}\"",
            replace_with=right))
    if system.get("type") == "LocalSystem":
        diagnostics.extend(_installed(view, ep, ep_path))
    return diagnostics


def _installed(view: ConfigView, ep: str, at: KeyPath) -> list[Diagnostic]:
    installed = view.env.installed_eps
    if installed is not None and ep in installed:
        return []
    package = EP_PACKAGES.get(ep)
    if installed is None:
        message = f"onnxruntime is not installed here, so {ep} is not available"
    else:
        message = f"{ep} is not available in the installed onnxruntime (it has: {', '.join(sorted(installed))})"
    if package is None:
        return [view.diag(at, "warning", "ep-not-installed", message)]
    return [view.diag(at, "warning", "ep-not-installed", message,
                      f"pip install {package} (instead of other onnxruntime packages)", install=package)]


def check_ray(view: ConfigView) -> list[Diagnostic]:
    """A Ray system only takes effect as the workflow's host; ray must be importable to use it."""
    systems = view.get(("systems",))
    if not isinstance(systems, dict):
        return []
    ray_names = [name for name, system in systems.items() if isinstance(system, dict) and system.get("type") == "Ray"]
    if not ray_names:
        return []
    diagnostics: list[Diagnostic] = []
    from modelmill.config.pass_checks import pass_entries

    for name, at, entry in pass_entries(view):
        if entry.get("host") in ray_names:
            diagnostics.append(view.diag(at + ("host",), "warning", "invalid-value",
                                         f"pass '{name}' cannot run on Ray system '{entry['host']}' by itself: the "
                                         "whole candidate (every pass and its evaluation) is the unit a Ray "
                                         "cluster runs", f"remove this host and set \"host\": \"{entry['host']}\" "
                                         "at the top level", remove=True))
    host = view.get(("host",))
    if host in ray_names and importlib.util.find_spec("ray") is None:
        diagnostics.append(view.diag(("systems", host, "type"), "warning", "ray-not-installed",
                                     "the host is a Ray cluster, but the ray package is not installed",
                                     "pip install \"ray[default]\" (the same version as the cluster's)",
                                     install="ray[default]"))
    named = {host, view.get(("target",)), *(entry.get("host") for _, _, entry in pass_entries(view))}
    unused = [name for name in ray_names if name not in named]
    for name in unused:
        diagnostics.append(view.diag(("systems", name), "hint", "unused-system",
                                     f"Ray system '{name}' is not used: candidates run on it only when the "
                                     "workflow's host names it", f"add \"host\": \"{name}\"", key=True))
    return diagnostics


# ------------------------------------------------------------------ input model


def check_input_model(view: ConfigView) -> list[Diagnostic]:
    model = view.get(("input_model",))
    if not isinstance(model, dict):
        return []
    if model.get("type") in OTHER_MODEL_TYPES:
        return [view.diag(("input_model", "type"), "warning", "unsupported-model-type",
                          f"ModelMill does not run {model['type']} models (Olive does)",
                          "use HfModel, PyTorchModel, ONNXModel or DiffusersModel")]
    path = model.get("model_path")
    if not isinstance(path, str) or model.get("type") not in ("HfModel", "PyTorchModel", "ONNXModel",
                                                                "DiffusersModel"):
        return []
    at = ("input_model", "model_path")
    if path.startswith(SAMPLE_PREFIX):
        name = path.removeprefix(SAMPLE_PREFIX)
        if name.lower() in SAMPLES:
            return []
        hint, replacement = choices_hint(name, list(SAMPLES))
        extra = replacing(SAMPLE_PREFIX + replacement) if replacement else {}
        return [view.diag(at, "error", "invalid-value", f"unknown sample '{name}'", hint, **extra)]
    local = view.resolve_path(path)
    if local is not None:
        if model["type"] == "HfModel" and local.is_dir() and not (local / "config.json").exists():
            return [view.diag(at, "warning", "path-not-found", f"'{path}' has no config.json: it is not a "
                              "Hugging Face model folder")]
        if model["type"] == "DiffusersModel" and not (local / "model_index.json").exists():
            return [view.diag(at, "warning", "path-not-found", f"'{path}' has no model_index.json: it is not a "
                              "diffusers pipeline folder")]
        ambiguous = several_onnx_files(local) if model["type"] == "ONNXModel" and local.is_dir() \
            and not model.get("onnx_file_name") else None
        if ambiguous:  # the run refuses it with the same words
            return [view.diag(at, "error", "invalid-value", ambiguous,
                              "set input_model.onnx_file_name to the one to use (or model_path to that file)")]
        return []
    if model["type"] in ("HfModel", "PyTorchModel", "DiffusersModel") and _HUB_ID.match(path) \
            and not _FILE_SUFFIX.search(path):
        message, hint, sample = hub_id_hint(model, path)
        return [view.diag(at, "warning", "hub-id-not-local", message, hint,
                          **({"replace_with": sample} if sample else {}))]
    return [view.diag(at, "warning", "path-not-found", f"model_path '{path}' does not exist")]
