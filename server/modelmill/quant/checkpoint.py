"""Quantized Hugging Face checkpoints in Olive's format: what to quantize, loading, saving, the builder's view.

A checkpoint's ``config.json`` holds ``quantization_config``::

    {"quant_method": "olive", "bits": 4, "symmetric": false, "group_size": 128, "lm_head": false,
     "embeds": false, "overrides": {"model.layers.0.mlp.down_proj": {"bits": 8}}, "tie_word_embeddings": false}

and each quantized module ``<name>`` stores ``<name>.qweight`` (uint8, codes packed along the input dimension),
``<name>.scales`` (rows x groups) and, when asymmetric, ``<name>.qzeros`` (uint8, packed). onnxruntime-genai's
builder reads this format (its ``olive`` loader) and emits MatMulNBits with these very codes.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modelmill.quant.weights import QuantizedWeight, QuantSpec, pack

QUANT_METHOD = "olive"
WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SPEC_KEYS = ("bits", "symmetric", "group_size")


@dataclass
class QuantConfig:
    """Olive's ``OliveHfQuantizationConfig``: defaults, which special modules are quantized, per-module overrides."""

    default: QuantSpec
    lm_head: bool = False
    embeds: bool = False
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    tie_word_embeddings: bool = False

    def spec_for(self, name: str) -> QuantSpec:
        values = {**self.default.as_dict(), **{k: v for k, v in self.overrides.get(name, {}).items()
                                                if k in _SPEC_KEYS and v is not None}}
        return QuantSpec(int(values["bits"]), bool(values["symmetric"]), int(values["group_size"]))

    def set_spec(self, name: str, spec: QuantSpec) -> None:
        """Record ``spec`` for ``name`` as the keys that differ from the defaults (none: no override)."""
        differs = {k: v for k, v in spec.as_dict().items() if self.default.as_dict()[k] != v}
        if differs:
            self.overrides[name] = differs
        else:
            self.overrides.pop(name, None)

    def to_json(self) -> dict[str, Any]:
        overrides = {name: self.overrides[name] for name in sorted(self.overrides, key=natural_key)}
        return {"quant_method": QUANT_METHOD, **self.default.as_dict(), "lm_head": self.lm_head,
                "embeds": self.embeds, "modules_to_not_convert": None, "overrides": overrides or None,
                "tie_word_embeddings": self.tie_word_embeddings}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "QuantConfig":
        overrides = {name: {k: v for k, v in (value or {}).items() if k in _SPEC_KEYS and v is not None}
                     for name, value in (data.get("overrides") or {}).items()}
        return cls(QuantSpec(int(data["bits"]), bool(data["symmetric"]), int(data["group_size"])),
                   bool(data.get("lm_head")), bool(data.get("embeds")), overrides,
                   bool(data.get("tie_word_embeddings")))


def natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in name.split(".")]


def read_quant_config(folder: Path) -> tuple[str | None, dict[str, Any] | None]:
    """(quant_method, quantization_config) of a Hugging Face folder's config.json; (None, None) when unquantized."""
    config = json.loads((folder / "config.json").read_text())
    found = config.get("quantization_config")
    if not isinstance(found, dict):
        return None, None
    return str(found.get("quant_method")), found


# --- the model's structure ----------------------------------------------------------------------------

@dataclass
class Structure:
    """Names of the modules the quantizers treat specially (Olive's ModelWrapper, for decoder-only LLMs)."""

    layers_name: str
    layers: torch.nn.ModuleList
    lm_head: str
    embeds: str
    final_norm: str | None
    qkv_groups: list[tuple[str, ...]]


def structure(model: torch.nn.Module) -> Structure:
    names = {id(module): name for name, module in model.named_modules()}
    count = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    layer_lists = [(name, module) for name, module in model.named_modules()
                   if isinstance(module, torch.nn.ModuleList) and len(module) == count and count > 0]
    if not layer_lists:
        raise ValueError(f"{type(model).__name__}: no list of {count} decoder layers found")
    layers_name, layers = layer_lists[0]
    output, inputs = model.get_output_embeddings(), model.get_input_embeddings()
    parent = model.get_submodule(layers_name.rsplit(".", 1)[0]) if "." in layers_name else model
    norm = next((getattr(parent, attr) for attr in ("norm", "final_layernorm", "ln_f") if hasattr(parent, attr)), None)
    groups = []
    for index in range(len(layers)):
        prefix = f"{layers_name}.{index}."
        members = [name for name, module in model.named_modules() if name.startswith(prefix)
                   and isinstance(module, torch.nn.Linear) and re.search(r"(^|\.)(q|k|v)_proj$", name)]
        if len(members) > 1:
            groups.append(tuple(sorted(members, key=lambda n: "qkv".index(n.rsplit(".", 1)[1][0]))))
    return Structure(layers_name, layers, names.get(id(output), "lm_head"), names.get(id(inputs), ""),
                     names.get(id(norm)) if norm is not None else None, groups)


# --- loading ------------------------------------------------------------------------------------------

@dataclass
class LoadedModel:
    """A causal LM in float, with the weights an earlier pass quantized kept as they are stored."""

    model: Any
    source: Path
    existing: QuantConfig | None
    locked: dict[str, QuantizedWeight]  # module name -> the stored quantized weight (never re-quantized)
    dtype: torch.dtype = torch.float32  # what float weights and scales are stored in (load_kwargs.torch_dtype)


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""By the names the run gives the ``torch_dtype`` attribute (engine/plan.LOAD_DTYPES maps Olive's other spellings to
them) and config.json's ``dtype``."""


def load_dtype(attributes: dict[str, Any], folder: Path) -> torch.dtype:
    """The dtype to load ``folder`` in: the input model's ``load_kwargs.torch_dtype`` (``torch_dtype`` attribute;
    ``auto``: the checkpoint's own), float32 when none is given (what these passes always used)."""
    name = attributes.get("torch_dtype")
    if not name:
        return torch.float32
    name = str(name).removeprefix("torch.")
    if name == "auto":
        config = json.loads((folder / "config.json").read_text())
        name = str(config.get("dtype") or config.get("torch_dtype") or "float32").removeprefix("torch.")
    if name not in _DTYPES:
        raise ValueError(f"load_kwargs.torch_dtype {attributes.get('torch_dtype')!r} is not a float dtype these passes "
                         "can load in (float32, float16, bfloat16, auto)")
    return _DTYPES[name]


def _for_compute(model: Any, dtype: torch.dtype) -> Any:
    """Half-precision weights are computed in fp32 (same values): CPU fp16/bf16 kernels are slow, some missing,
    and GPTQ/KLD statistics need the range. Olive runs these passes on a GPU, where it keeps the dtype."""
    return model.float() if dtype in (torch.float16, torch.bfloat16) else model


def load_model(folder: Path, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False) -> LoadedModel:
    """Load ``folder`` for quantization; an Olive-format checkpoint comes back dequantized, its weights locked.

    Weights are read in ``dtype`` (so fp16 rounds them as the user asked) and saved in it; computation runs in fp32.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    method, found = read_quant_config(folder)
    if method is None:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, trust_remote_code=trust_remote_code)
        return LoadedModel(_for_compute(model.eval(), dtype), folder, None, {}, dtype)
    if method != QUANT_METHOD:
        raise ValueError(f"the model is already quantized with {method}; only Olive-format checkpoints "
                         f"(quant_method olive, what rtn and gptq write) can be quantized further")
    existing = QuantConfig.from_json(found or {})
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code).eval()
    tensors = read_tensors(folder)
    locked = {}
    for key in [k for k in tensors if k.endswith(".qweight")]:
        name = key[: -len(".qweight")]
        module = model.get_submodule(name)
        stored = QuantizedWeight(existing.spec_for(name), tensors.pop(key), tensors.pop(f"{name}.scales"),
                                 tensors.pop(f"{name}.qzeros", None), int(module.weight.shape[1]))
        module.weight.data = stored.dequantize().to(dtype).reshape(module.weight.shape)
        locked[name] = stored
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if k[: -len(".weight")] not in locked and not k.endswith("inv_freq")]
    if unexpected or (missing and not (config.tie_word_embeddings and missing == [f"{structure(model).lm_head}.weight"])):
        raise ValueError(f"{folder}: checkpoint does not match the model (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]})")
    if config.tie_word_embeddings:
        model.tie_weights()
    return LoadedModel(_for_compute(model, dtype), folder, existing, locked, dtype)


def read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ValueError(f"{folder}: no .safetensors weights")
    tensors: dict[str, torch.Tensor] = {}
    for path in files:
        tensors.update(load_file(str(path)))
    return tensors


# --- saving -------------------------------------------------------------------------------------------

def save_model(loaded: LoadedModel, quantized: dict[str, QuantizedWeight], qconfig: QuantConfig, out: Path) -> int:
    """Write the checkpoint: float tensors, the quantized ones in Olive's layout, config and tokenizer files.

    Returns the weight bytes written. Embeddings tied to the LM head are written once while both stay float;
    once either is quantized each is written on its own (``tie_word_embeddings`` false in the model config,
    the quantization config records whether they may be tied again later).
    """
    from safetensors.torch import save_file

    model = loaded.model
    every = {**loaded.locked, **quantized}
    names = structure(model)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    untie = tied and (names.lm_head in every or names.embeds in every)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        module = key.rsplit(".", 1)[0]
        if module in every and key.endswith(".weight"):
            continue
        if tied and not untie and key == f"{names.lm_head}.weight":
            continue
        value = value.detach().to(loaded.dtype) if value.is_floating_point() else value.detach()
        tensors[key] = value.contiguous().clone() if untie else value.contiguous()
    for name, weight in every.items():
        tensors.update({key: value.to(loaded.dtype) if value.is_floating_point() else value
                        for key, value in weight.tensors(name).items()})
    out.mkdir(parents=True, exist_ok=True)
    copy_side_files(loaded.source, out)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    dtype_name = str(loaded.dtype).removeprefix("torch.")
    config["dtype"] = dtype_name  # the stored dtype (the compute copy may be fp32)
    if "torch_dtype" in config:
        config["torch_dtype"] = dtype_name
    if untie:
        config["tie_word_embeddings"] = False
    config["quantization_config"] = qconfig.to_json()
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    return sum(t.numel() * t.element_size() for t in tensors.values())


def copy_side_files(source: Path, out: Path) -> None:
    """Tokenizer, generation config, chat template...: everything but weights and config.json."""
    for item in source.iterdir():
        if item.is_file() and not item.name.endswith(WEIGHT_FILES) and item.name not in (*WEIGHT_INDEXES, "config.json"):
            shutil.copy2(item, out / item.name)


# --- what ModelBuilder reads --------------------------------------------------------------------------

def stored_embedding(folder: Path) -> QuantizedWeight | None:
    """The quantized input embedding of an Olive-format checkpoint (rtn ``embeds: true``), as stored; else None.

    ModelBuilder writes it as ``GatherBlockQuantized`` over these codes (``passes/builder_embedding.py``)."""
    from safetensors import safe_open

    method, found = read_quant_config(folder)
    if method != QUANT_METHOD:
        return None
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())
            name = next((key[: -len(".qweight")] for key in keys if key.endswith("embed_tokens.qweight")), None)
            if name is None:
                continue
            columns = int(json.loads((folder / "config.json").read_text())["hidden_size"])
            qzeros = handle.get_tensor(f"{name}.qzeros") if f"{name}.qzeros" in keys else None
            return QuantizedWeight(QuantConfig.from_json(found or {}).spec_for(name), handle.get_tensor(f"{name}.qweight"),
                                   handle.get_tensor(f"{name}.scales"), qzeros, columns)
    return None


def builder_view(folder: Path, scratch: Path) -> Path:
    """The folder onnxruntime-genai's builder should read for ``folder``.

    The builder's Olive loader takes quantized Linear layers (MatMulNBits as stored) with two gaps: quantized
    input embeddings (``model.embed_tokens.qweight``) are not read, and symmetric q/k/v projections (no
    ``qzeros``) cannot be fused into one MatMul. For such a checkpoint this writes, under ``scratch``, the same
    checkpoint with the embeddings dequantized to float (their exact quantized values: what the builder's loader
    reads, while ModelBuilder's embedding hook writes the stored codes, see ``stored_embedding``) and explicit
    middle zero points on symmetric q/k/v (the same values); every other file is linked. Any other folder is
    returned as is.
    """
    method, found = read_quant_config(folder)
    if method != QUANT_METHOD:
        return folder
    qconfig = QuantConfig.from_json(found or {})
    tensors = read_tensors(folder)
    quantized = [key[: -len(".qweight")] for key in tensors if key.endswith(".qweight")]
    embedded = [name for name in quantized if name.endswith("embed_tokens")]
    fused = [name for name in quantized if re.search(r"(^|\.)(q|k|v)_proj$", name) and f"{name}.qzeros" not in tensors]
    if not embedded and not fused:
        return folder
    from safetensors.torch import save_file

    columns = int(json.loads((folder / "config.json").read_text())["hidden_size"])
    for name in embedded:
        stored = QuantizedWeight(qconfig.spec_for(name), tensors.pop(f"{name}.qweight"), tensors.pop(f"{name}.scales"),
                                 tensors.pop(f"{name}.qzeros", None), columns)
        tensors[f"{name}.weight"] = stored.dequantize().to(stored.scales.dtype).contiguous()
        qconfig.overrides.pop(name, None)
    qconfig.embeds = qconfig.embeds and not embedded
    qconfig.tie_word_embeddings = False
    for name in fused:
        spec = qconfig.spec_for(name)
        middle = torch.full(tensors[f"{name}.scales"].shape, spec.midq, dtype=torch.int32)
        tensors[f"{name}.qzeros"] = pack(middle, spec.bits).contiguous()
    view = scratch / "builder-input"
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True)
    save_file(tensors, str(view / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = qconfig.to_json()
    (view / "config.json").write_text(json.dumps(config, indent=2))
    for item in folder.iterdir():
        if not item.name.endswith(WEIGHT_FILES) and item.name not in (*WEIGHT_INDEXES, "config.json"):
            (view / item.name).symlink_to(item.resolve())
    return view
