"""All passes by name. Lookups are case-insensitive and know Olive's old names."""

from __future__ import annotations

import difflib
from functools import lru_cache

from modelmill.passes.base import Pass

# Modules that define passes, in the order they are listed in docs and completions.
PASS_MODULES = (
    "modelmill.passes.model_builder",
    "modelmill.passes.onnx_conversion",
    "modelmill.passes.transformers_optimization",
    "modelmill.passes.dynamic_quantization",
    "modelmill.passes.static_quantization",
    "modelmill.passes.blockwise_rtn",
    "modelmill.passes.float16",
    "modelmill.passes.peephole",
    "modelmill.passes.session_params_tuning",
    "modelmill.passes.lora",
    "modelmill.passes.sd_lora",
    "modelmill.passes.extract_adapters",
    "modelmill.passes.openvino_optimum",
    "modelmill.passes.openvino_conversion",
    "modelmill.passes.openvino_quantization",
    "modelmill.passes.openvino_io_update",
    "modelmill.passes.openvino_encapsulation",
    "modelmill.passes.quark_quantization",
    "modelmill.passes.graph_surgeries",
    "modelmill.passes.dynamic_to_fixed_shape",
    "modelmill.passes.mixed_precision_overrides",
    "modelmill.passes.io_datatype_converter",
    "modelmill.passes.quarot",
    "modelmill.passes.rtn",
    "modelmill.passes.gptq",
    "modelmill.passes.gptqmodel",
    "modelmill.passes.selective_mixed_precision",
    "modelmill.passes.add_olive_metadata",
    "modelmill.passes.onnx_quantization",
    "modelmill.passes.mnb_to_qdq",
    "modelmill.passes.capture_split_info",
    "modelmill.passes.split_model",
    "modelmill.passes.compose_onnx_models",
    "modelmill.passes.static_llm",
)


@lru_cache(maxsize=1)
def all_passes() -> dict[str, type[Pass]]:
    """Canonical name → pass class, for every pass module that imports."""
    import importlib

    found: dict[str, type[Pass]] = {}
    for module_name in PASS_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Pass) and value is not Pass and value.__module__ == module_name:
                found[value.name] = value
    return found


@lru_cache(maxsize=1)
def _index() -> dict[str, type[Pass]]:
    index: dict[str, type[Pass]] = {}
    for cls in all_passes().values():
        index[cls.name.lower()] = cls
        for alias in cls.aliases:
            index[alias.lower()] = cls
    return index


def find_pass(type_name: str) -> type[Pass] | None:
    """The pass for ``type_name`` (any case, canonical or alias), or None."""
    return _index().get(type_name.lower())


def suggest_pass(type_name: str) -> str | None:
    """The closest canonical pass name, for a did-you-mean hint."""
    names = {name.lower(): name for name in all_passes()}
    match = difflib.get_close_matches(type_name.lower(), list(names), n=1, cutoff=0.6)
    return names[match[0]] if match else None
