"""Reading PEFT LoRA adapters and writing their weights in Olive's file formats (shared by the adapter commands).

The weights are named as the ORT GenAI builder names the LoRA weights of a model it builds from base + adapter
(``model.layers.0.attn.q_proj.lora_A.MatMul.weight``): the names `generate-adapter`'s model takes as inputs, so a
file written here can be activated on that model (onnxruntime-genai ``og.Adapters``). Olive's extract-adapters uses
the same names. Matrices are transposed (MatMul layout) and lora_B is scaled by alpha / r (alpha / sqrt(r) with
rslora), as the builder does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

FORMATS = ["pt", "numpy", "safetensors", "onnx_adapter"]
ADAPTER_CONFIG = "adapter_config.json"


def find_peft_adapter(path: Path, flag: str) -> Path:
    """The folder holding adapter_config.json: ``path`` itself or a finetune output's adapter/ folder."""
    from modelmill.errors import ConfigError

    for candidate in (path, path / "adapter"):
        if (candidate / ADAPTER_CONFIG).exists():
            return candidate
    raise ConfigError(f"{path} has no PEFT adapter (no {ADAPTER_CONFIG}, here or in adapter/)",
                      fix="pass a LoRA adapter folder saved by peft, or a `modelmill finetune` output", where=flag)


def find_peft_adapters(path: Path, flag: str, skip: Path | None = None) -> dict[str, Path]:
    """Every adapter under ``path`` by name, as Olive's extract-adapters finds them: each folder holding
    adapter_config.json, named after the folder ("default", peft's name, for one at ``path`` itself)."""
    from modelmill.errors import ConfigError

    found: dict[str, Path] = {}
    for config in sorted(path.rglob(ADAPTER_CONFIG)):
        folder = config.parent
        if skip is not None and skip.resolve() in folder.resolve().parents:
            continue
        name = "default" if folder == path else folder.name
        if name in found:
            raise ConfigError(f"two adapters under {path} are both named {name!r} ({found[name]} and {folder})",
                              fix="rename one of the folders: the folder name names the adapter file", where=flag)
        found[name] = folder
    if not found:
        raise ConfigError(f"{path} holds no PEFT adapter (no {ADAPTER_CONFIG} in it or its subfolders)",
                          fix="pass a LoRA adapter folder saved by peft, a folder of such adapters, or a "
                              "`modelmill finetune` output", where=flag)
    return found


def _split_sizes(config_dir: Path | None, flag: str) -> dict[str, list[tuple[str, int]]]:
    """How packed projections split into the builder's modules: qkv_proj → q/k/v, gate_up_proj → gate/up."""
    from modelmill.errors import ConfigError

    if config_dir is None or not (config_dir / "config.json").exists():
        raise ConfigError("the adapter has packed projections (qkv_proj / gate_up_proj) which split into q/k/v and "
                          "gate/up by the base model's sizes, but the base model's config.json is not available",
                          fix="keep the base model folder at the adapter's base_model_name_or_path (a local folder)",
                          where=flag)
    config = json.loads((config_dir / "config.json").read_text())
    config = config.get("text_config") or config
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    kv_size = int(config.get("num_key_value_heads") or heads) * head_dim
    inter = int(config["intermediate_size"])
    return {"qkv_proj": [("q_proj", heads * head_dim), ("k_proj", kv_size), ("v_proj", kv_size)],
            "gate_up_proj": [("gate_proj", inter), ("up_proj", inter)]}


def base_model_dir(adapter_dir: Path) -> Path | None:
    """The adapter's base model folder, when adapter_config.json names a local one."""
    base = json.loads((adapter_dir / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if base and (adapter_dir / base).is_dir():
        return adapter_dir / base
    return None


def graph_name(peft_name: str) -> str:
    """A peft weight name → the builder's initializer name:
    base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight → model.layers.0.attn.q_proj.lora_A.MatMul.weight"""
    name = peft_name.removeprefix("base_model.model.")
    name = name.replace(".self_attn.", ".attn.")
    for part in ("lora_A", "lora_B"):
        name = name.replace(f".{part}.weight", f".{part}.MatMul.weight")
    return name


def lora_weights(adapter_dir: Path, dtype: str, flag: str, config_dir: Path | None = None) -> dict[str, Any]:
    """Graph-ready LoRA weights of the adapter in ``adapter_dir``, named as the builder names them (see the module
    docstring). ``config_dir``: the base model folder, needed only to split packed qkv_proj/gate_up_proj."""
    import torch
    from peft import load_peft_weights

    from modelmill.errors import ConfigError

    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
    if config.get("use_dora"):
        raise ConfigError("DoRA adapters cannot be exported as plain LoRA weights", fix="use a LoRA adapter",
                          where=flag)
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise ConfigError(f"{adapter_dir} holds a {config.get('peft_type')} adapter; only LoRA adapters convert",
                          fix="use a LoRA adapter", where=flag)
    rank, alpha = int(config.get("r", 8)), float(config.get("lora_alpha", 8))
    scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    splits: dict[str, list[tuple[str, int]]] | None = None
    weights = {}
    for name, value in load_peft_weights(str(adapter_dir), device="cpu").items():
        if not (name.endswith(".lora_A.weight") or name.endswith(".lora_B.weight")):
            raise ConfigError(f"{adapter_dir} has the weight {name}, which is not a LoRA A/B matrix of a linear "
                              "layer (embedding LoRA, modules_to_save and LoRA biases have no place in the model's "
                              "adapter inputs)", fix="train the adapter on linear layers only "
                              "(target_modules such as q_proj, v_proj)", where=flag)
        value = value.to(getattr(torch, dtype))  # cast first: numpy has no bfloat16
        is_b = name.endswith(".lora_B.weight")
        parts = [(name, value)]
        packed = next((p for p in ("qkv_proj", "gate_up_proj") if f".{p}.lora_" in name), None)
        if packed:
            splits = splits or _split_sizes(config_dir or base_model_dir(adapter_dir), flag)
            parts, start = [], 0
            for module, size in splits[packed]:
                parts.append((name.replace(packed, module), value[start:start + size] if is_b else value))
                start += size if is_b else 0
        for part_name, part in parts:
            array = part.numpy().transpose().copy()
            if is_b:
                array *= scaling
            weights[graph_name(part_name)] = array
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


def save_weights(weights: dict[str, Any], path: str, file_format: str, *, overwrite: bool = False,
                 inputs: tuple[Path, ...] = (), flag: str = "--output_path") -> Path:
    """Write ``weights`` (name → numpy array) as ``file_format``; the suffix is added when missing. Atomic, and an
    existing file is replaced only with ``overwrite``."""
    from modelmill.engine.output import write_file_output

    suffix = ".npz" if file_format == "numpy" else f".{file_format}"
    target = Path(path if path.endswith(suffix) else path + suffix)

    def write(tmp: Path) -> None:
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
            import numpy as np
            import onnxruntime as ort

            adapter = ort.AdapterFormat()
            adapter.set_adapter_version(1)
            adapter.set_model_version(1)
            adapter.set_parameters({k: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v))
                                    for k, v in weights.items()})
            adapter.export_adapter(str(tmp))

    write_file_output(target, write, overwrite=overwrite, inputs=inputs, flag=flag)
    return target
