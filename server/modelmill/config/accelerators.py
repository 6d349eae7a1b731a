"""Devices, execution providers and what this machine has installed (without importing onnxruntime)."""

from __future__ import annotations

import importlib.metadata as metadata
import re
from functools import lru_cache
from typing import Any

from modelmill.engine.context import Accelerator

DEVICES = ("cpu", "cpu_spr", "gpu", "npu", "vpu", "intel_myriad", "any")

EXECUTION_PROVIDERS = (
    "CPUExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider", "OpenVINOExecutionProvider",
    "TensorrtExecutionProvider", "ROCMExecutionProvider", "MIGraphXExecutionProvider",
    "NvTensorRTRTXExecutionProvider", "JsExecutionProvider", "QNNExecutionProvider", "VitisAIExecutionProvider",
    "WebGpuExecutionProvider",
)

# Olive's device → EP map, used to drop EPs that do not run on the device (reference §3).
DEVICE_EPS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider", "OpenVINOExecutionProvider"),
    "gpu": ("QNNExecutionProvider", "DmlExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider",
            "MIGraphXExecutionProvider", "TensorrtExecutionProvider", "NvTensorRTRTXExecutionProvider",
            "OpenVINOExecutionProvider", "JsExecutionProvider", "WebGpuExecutionProvider"),
    "npu": ("DmlExecutionProvider", "QNNExecutionProvider", "VitisAIExecutionProvider", "OpenVINOExecutionProvider"),
}

# The EP a device gets when only the device is given; other devices need an explicit EP.
DEFAULT_EP = {"cpu": "CPUExecutionProvider", "gpu": "CUDAExecutionProvider"}

# The device an EP implies when only the EP is given: its most common home.
_EP_HOME = {"CPUExecutionProvider": "cpu", "OpenVINOExecutionProvider": "cpu", "QNNExecutionProvider": "npu",
            "VitisAIExecutionProvider": "npu"}


def infer_device(ep: str) -> str:
    return _EP_HOME.get(ep) or ("gpu" if ep in DEVICE_EPS["gpu"] else "cpu")


def ep_runs_on(ep: str, device: str) -> bool:
    """False when Olive would drop ``ep`` for ``device``; devices outside the map are not checked."""
    return device not in DEVICE_EPS or ep in DEVICE_EPS[device]


# onnxruntime distributions → the EPs their wheels ship (reference: ModelMill brief).
_DIST_EPS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("CPUExecutionProvider", "AzureExecutionProvider"),
    "onnxruntime-gpu": ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"),
    "onnxruntime-directml": ("CPUExecutionProvider", "DmlExecutionProvider"),
    "onnxruntime-openvino": ("CPUExecutionProvider", "OpenVINOExecutionProvider"),
    "onnxruntime-qnn": ("CPUExecutionProvider", "QNNExecutionProvider"),
    "onnxruntime-rocm": ("CPUExecutionProvider", "ROCMExecutionProvider", "MIGraphXExecutionProvider"),
    "onnxruntime-migraphx": ("CPUExecutionProvider", "MIGraphXExecutionProvider"),
    "onnxruntime-vitisai": ("CPUExecutionProvider", "VitisAIExecutionProvider"),
    "onnxruntime-webgpu": ("CPUExecutionProvider", "WebGpuExecutionProvider"),
}

# Shared-library stems in onnxruntime/capi, e.g. libonnxruntime_providers_cuda.so → CUDA.
_LIB_EPS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
            "openvino": "OpenVINOExecutionProvider", "qnn": "QNNExecutionProvider", "rocm": "ROCMExecutionProvider",
            "migraphx": "MIGraphXExecutionProvider", "vitisai": "VitisAIExecutionProvider",
            "dml": "DmlExecutionProvider", "nv_tensorrt_rtx": "NvTensorRTRTXExecutionProvider",
            "webgpu": "WebGpuExecutionProvider"}
_LIB = re.compile(r"onnxruntime_providers_([a-z_]+)\.(?:so|dll|dylib)")

# Which pip package brings an EP, for the "install" hint.
EP_PACKAGES = {"CUDAExecutionProvider": "onnxruntime-gpu", "TensorrtExecutionProvider": "onnxruntime-gpu",
               "DmlExecutionProvider": "onnxruntime-directml", "OpenVINOExecutionProvider": "modelmill[openvino]",
               "QNNExecutionProvider": "onnxruntime-qnn", "ROCMExecutionProvider": "onnxruntime-rocm",
               "MIGraphXExecutionProvider": "onnxruntime-migraphx", "VitisAIExecutionProvider": "onnxruntime-vitisai",
               "WebGpuExecutionProvider": "onnxruntime-webgpu", "CPUExecutionProvider": "onnxruntime"}


@lru_cache(maxsize=1)
def installed_execution_providers() -> frozenset[str] | None:
    """EPs the installed onnxruntime wheel(s) provide, or None when onnxruntime is not installed.

    Read from package metadata (distribution names and the provider libraries in RECORD):
    importing onnxruntime would take seconds and is not allowed in config tooling.
    """
    found: set[str] = set()
    any_ort = False
    # Look up only the onnxruntime distributions by name: scanning every installed package's metadata
    # costs ~0.2 s, a fifth of a cached run.
    for name, eps in _DIST_EPS.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        any_ort = True
        found.update(eps)
        for file in dist.files or ():
            match = _LIB.search(file.name)
            if match and match.group(1) in _LIB_EPS:
                found.add(_LIB_EPS[match.group(1)])
    if any_ort and _has_distribution("openvino"):
        # ModelMill runs OpenVINO targets with the OpenVINO runtime itself (modelmill[openvino]), never with
        # onnxruntime-openvino, which would replace the onnxruntime module.
        found.add("OpenVINOExecutionProvider")
    return frozenset(found) if any_ort else None


def _has_distribution(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def first_ep(accelerator: dict[str, Any]) -> str | None:
    """The accelerator's EP name (an entry may be a [name, library path] pair)."""
    eps = accelerator.get("execution_providers")
    if not isinstance(eps, list) or not eps:
        return None
    first = eps[0]
    if isinstance(first, list) and first:
        first = first[0]
    return first if isinstance(first, str) else None


def resolve_accelerator(system: dict[str, Any] | None) -> Accelerator:
    """The device and EP a target system gives a run, by Olive's rules (reference §3).

    No system or no accelerator: cpu + CPU EP. Only a device: cpu → CPU EP, gpu → CUDA EP,
    others raise ValueError. Only an EP: the device is inferred. An EP that does not run on
    the device is dropped for the CPU EP, as Olive does.
    """
    accelerators = system.get("accelerators") if isinstance(system, dict) else None
    if not isinstance(accelerators, list) or not accelerators or not isinstance(accelerators[0], dict):
        return Accelerator()
    device, ep = accelerators[0].get("device"), first_ep(accelerators[0])
    device = device.lower() if isinstance(device, str) else device  # Olive lower-cases it
    if ep is None:
        if device not in DEFAULT_EP:
            raise ValueError(f"specify the execution provider for the device: {device}")
        return Accelerator(device, DEFAULT_EP[device])
    if not isinstance(device, str) or device == "any":
        return Accelerator(infer_device(ep), ep)
    if not ep_runs_on(ep, device):
        return Accelerator(device, "CPUExecutionProvider")
    return Accelerator(device, ep)
