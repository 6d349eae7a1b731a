"""Dry-run estimates for ``modelmill.plan``: per pass, time, output size and peak memory.

How (also in docs/lsp.md):

- **Parameters** of the input model: exact for safetensors (tensor shapes from the file headers,
  no weights read); otherwise the weight files' size on disk divided by the bytes per parameter of
  ``torch_dtype`` in config.json (ONNX files: fp32 unless the file name says fp16/int8/int4).
- **Precision** after each pass: its ``precision`` parameter if it has one; else the single precision
  the pass supports; ``float16: true`` or an FP16 conversion pass → fp16; a dynamic/static
  quantization → int8; otherwise the precision flows through unchanged.
- **Output size** = parameters × bytes per parameter of that precision (int4: 0.5 plus one fp16
  scale per block, 32 by default) + 1 MB for graph and tokenizer files.
- **Time** (CPU, one process) = a fixed start-up cost + seconds per billion parameters, per kind of
  pass (``_COST``), from the timings of ModelMill's own runs; 0 for a cached step.
- **Peak memory** = 300 MB of runtime + the pass's working set: the input weights as loaded (HF
  passes load the PyTorch model in its dtype; ONNX passes hold input and output graphs).

They are order-of-magnitude numbers to compare plans, not promises.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BYTES = {"fp32": 4.0, "float32": 4.0, "fp16": 2.0, "float16": 2.0, "bf16": 2.0, "bfloat16": 2.0, "int8": 1.0,
         "uint8": 1.0, "int4": 0.5}
_SAFETENSOR_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                     "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
# kind of pass → (start-up seconds, seconds per billion parameters, working set × input bytes)
_COST = {"build": (8.0, 90.0, 2.5), "export": (6.0, 150.0, 3.0), "fuse": (4.0, 60.0, 2.0),
         "quantize": (3.0, 80.0, 2.0), "convert": (2.0, 20.0, 2.0), "light": (1.0, 10.0, 1.5),
         "tune": (15.0, 30.0, 1.5)}
_RUNTIME_MB = 300.0
_FILES_MB = 1.0


def parameter_count(path: Path, kind: str) -> tuple[float, str]:
    """(parameters, stored precision) of a model folder or file; (0, "fp32") when unknown."""
    folder = path if path.is_dir() else path.parent
    dtype = "fp32"
    config = folder / "config.json"
    if config.exists():
        try:
            stored = json.loads(config.read_text()).get("torch_dtype") or "float32"
            dtype = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(str(stored), "fp32")
        except (OSError, ValueError):
            pass
    tensors = sorted(folder.glob("*.safetensors")) if kind != "onnx" else []
    if tensors:
        total = 0.0
        for file in tensors:
            total += _safetensors_params(file)
        if total:
            return total, dtype
    if kind == "onnx":
        files = [path] if path.is_file() else [*folder.glob("*.onnx"), *folder.glob("*.onnx.data"),
                                               *folder.glob("*.data")]
        size = sum(f.stat().st_size for f in set(files) if f.is_file())
        name = path.name.lower()
        stored = next((p for p in ("int4", "int8", "fp16") if p in name), "fp32")
        return size / BYTES[stored], stored
    weights = [*folder.glob("*.bin"), *folder.glob("*.pt"), *folder.glob("*.pth")] if path.is_dir() else [path]
    size = sum(f.stat().st_size for f in weights if f.is_file())
    return size / BYTES.get(dtype, 4.0), dtype


def _safetensors_params(file: Path) -> float:
    try:
        with file.open("rb") as handle:
            length = struct.unpack("<Q", handle.read(8))[0]
            if length > 100_000_000:
                return 0.0
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return 0.0
    total = 0.0
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        count = 1
        for dim in info.get("shape", []):
            count *= int(dim)
        total += count
    return total


def output_precision(pass_name: str, params: dict[str, Any], supported: tuple[str, ...] | None,
                     current: str) -> str:
    precision = params.get("precision")
    if isinstance(precision, str) and precision.lower() in BYTES:
        return precision.lower()
    if supported and len(supported) == 1 and supported[0] in BYTES:
        return supported[0]
    lowered = pass_name.lower()
    if params.get("float16") is True or "float16" in lowered or "fp16" in lowered:
        return "fp16"
    if "dynamicquant" in lowered or "staticquant" in lowered:
        return "int8"
    if "torch_dtype" in params and isinstance(params["torch_dtype"], str):
        return {"float16": "fp16", "bfloat16": "bf16"}.get(params["torch_dtype"], current)
    return current


def _cost_kind(pass_name: str, accepts: frozenset[str]) -> str:
    lowered = pass_name.lower()
    if "builder" in lowered:
        return "build"
    if "conversion" in lowered and "hf" in accepts:
        return "export"
    if "transformersoptimization" in lowered:
        return "fuse"
    if "quant" in lowered or "rtn" in lowered or "hqq" in lowered:
        return "quantize"
    if "float16" in lowered:
        return "convert"
    if "tuning" in lowered:
        return "tune"
    return "light"


def estimate_steps(params_count: float, input_precision: str,
                   steps: list[tuple[str, str, dict[str, Any], frozenset[str], tuple[str, ...] | None, bool]]
                   ) -> list[dict[str, Any]]:
    """Per step (name, type, params, accepts, supported precisions, cached): the estimates."""
    precision = input_precision
    input_mb = params_count * BYTES.get(precision, 4.0) / 1e6
    result = []
    billions = params_count / 1e9
    for name, pass_type, params, accepts, supported, cached in steps:
        out_precision = output_precision(pass_type, params, supported, precision)
        bytes_per = BYTES.get(out_precision, 4.0)
        if out_precision == "int4":
            block = params.get("int4_block_size") or params.get("block_size") or 32
            bytes_per += 2.0 / max(int(block) if isinstance(block, int) else 32, 1)
        output_mb = params_count * bytes_per / 1e6 + _FILES_MB
        start, per_billion, working = _COST[_cost_kind(pass_type, accepts)]
        seconds = 0.0 if cached else start + per_billion * billions
        memory_mb = _RUNTIME_MB + working * input_mb + (output_mb if not cached else 0.0)
        result.append({"name": name, "type": pass_type, "params": params, "cached": cached,
                       "precision": out_precision, "estimatedSeconds": round(seconds, 1),
                       "estimatedOutputMB": round(output_mb, 1), "estimatedMemoryMB": round(memory_mb)})
        precision, input_mb = out_precision, output_mb
    return result
