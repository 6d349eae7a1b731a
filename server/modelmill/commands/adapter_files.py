"""Reading PEFT LoRA adapters and writing their weights in Olive's file formats (shared by the adapter commands)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

FORMATS = ["pt", "numpy", "safetensors", "onnx_adapter"]


def find_peft_adapter(path: Path, flag: str) -> Path:
    """The folder holding adapter_config.json: ``path`` itself or a finetune output's adapter/ folder."""
    from modelmill.errors import ConfigError

    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").exists():
            return candidate
    raise ConfigError(f"{path} has no PEFT adapter (no adapter_config.json, here or in adapter/)",
                      fix="pass a LoRA adapter folder saved by peft, or a `modelmill finetune` output", where=flag)


def lora_weights(adapter_dir: Path, dtype: str, flag: str) -> dict[str, Any]:
    """Graph-ready LoRA weights as Olive exports them: keys without the PEFT prefix, matrices transposed (MatMul
    layout), lora_B scaled by alpha / r (alpha / sqrt(r) with rslora)."""
    import json

    import torch
    from peft import load_peft_weights

    from modelmill.errors import ConfigError

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    if config.get("use_dora"):
        raise ConfigError("DoRA adapters cannot be exported as plain LoRA weights", fix="use a LoRA adapter",
                          where=flag)
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise ConfigError(f"{adapter_dir} holds a {config.get('peft_type')} adapter; only LoRA adapters convert",
                          fix="use a LoRA adapter", where=flag)
    rank, alpha = int(config.get("r", 8)), float(config.get("lora_alpha", 8))
    scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    weights = {}
    for name, value in load_peft_weights(str(adapter_dir), device="cpu").items():
        array = value.to(getattr(torch, dtype)).numpy().transpose().copy()  # cast first: numpy has no bfloat16
        if "lora_B" in name:
            array *= scaling
        weights[name.replace("base_model.model.model", "model")] = array
    return weights


def int4_block_quantize(weight: Any, block_size: int, symmetric: bool) -> tuple[Any, Any, Any]:
    """Blockwise int4 (column blocks), the MatMulNBits layout onnxruntime's quantizer writes."""
    import numpy as np

    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import quantize_matmul_4bits
    except ImportError:  # onnxruntime < 1.22
        from onnxruntime.quantization.matmul_4bits_quantizer import quantize_matmul_4bits
    rows, cols = weight.shape
    k_blocks = (rows + block_size - 1) // block_size
    pad = k_blocks * block_size - rows
    if pad:
        weight = np.pad(weight, ((0, pad), (0, 0)), "constant")
    packed = np.zeros((cols, k_blocks, block_size // 2), dtype="uint8")
    scales = np.zeros(cols * k_blocks, dtype=weight.dtype)
    zero_point = np.zeros(cols * ((k_blocks + 1) // 2), dtype="uint8")
    quantize_matmul_4bits(packed, np.ascontiguousarray(weight), scales, zero_point, block_size, cols, rows, symmetric)
    return packed, scales, zero_point


def save_weights(weights: dict[str, Any], path: str, file_format: str) -> Path:
    """Write ``weights`` (name → numpy array) as ``file_format``; the suffix is added when missing. Atomic."""
    suffix = ".npz" if file_format == "numpy" else f".{file_format}"
    target = Path(path if path.endswith(suffix) else path + suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{suffix}")
    if file_format == "pt":
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, tmp)
    elif file_format == "numpy":
        import numpy as np

        np.savez(tmp, **weights)
    elif file_format == "safetensors":
        from safetensors.numpy import save_file

        save_file(weights, str(tmp))
    else:
        import onnxruntime as ort

        adapter = ort.AdapterFormat()
        adapter.set_parameters({k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in weights.items()})
        adapter.export_adapter(str(tmp))
    tmp.replace(target)
    return target
