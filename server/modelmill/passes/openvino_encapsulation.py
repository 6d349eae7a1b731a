"""OpenVINOEncapsulation: an OpenVINO IR wrapped in an ONNX model of one EPContext node.

ONNX Runtime's OpenVINO execution provider (the ``onnxruntime-openvino`` package) runs such a model by loading
the IR the node names; plain ``onnxruntime`` cannot run it. The two packages provide the same ``onnxruntime``
module, so ModelMill never installs the OpenVINO one: evaluate the IR itself (the input of this pass) with the
OpenVINO runtime, and ship the encapsulated model to machines that have onnxruntime-openvino.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import openvino_common as ovc
from modelmill.passes.base import Pass, PassParams

# OpenVINO element type names → ONNX TensorProto data types.
OV_TO_ONNX = {"f32": 1, "u8": 2, "i8": 3, "u16": 4, "i16": 5, "i32": 6, "i64": 7, "boolean": 9, "f16": 10,
              "f64": 11, "u32": 12, "u64": 13, "bf16": 16}
DEFAULT_OPSETS: list[list[Any]] = [["com.microsoft.nchwc", 1], ["", 11], ["ai.onnx.ml", 5], ["com.ms.internal.nhwc", 11],
                                   ["ai.onnx.training", 1], ["ai.onnx.preview.training", 1],
                                   ["com.microsoft.experimental", 1], ["com.microsoft", 1], ["org.pytorch.aten", 1]]


class OpenVINOEncapsulationParams(PassParams):
    target_device: Literal["cpu", "gpu", "npu"] = Field("cpu", description="Device the encapsulated model runs on "
                                                        "(the EPContext node's DeviceClass and genai_config's "
                                                        "device_type).")
    ov_version: str | None = Field(None, description="OpenVINO version written as the node's ep_sdk_version; the "
                                   "installed OpenVINO's version when unset (needs 2025.1 or newer).")
    opset_imports: list[list[Any]] = Field(default_factory=lambda: [list(o) for o in DEFAULT_OPSETS],
                                           description="Opset [domain, version] pairs of the context model.")
    keep_ov_dynamic_dims: bool = Field(False, description="Write dynamic dims as -1, as OpenVINO does, instead of "
                                       "named ONNX dims (input_<i>_<axis>).")
    reuse_cache: bool = Field(False, description="Olive compatibility: ModelMill always writes a new folder.")
    genai_config_override: dict[str, Any] | None = Field(
        None, description="Values merged into the genai_config.json written for an LLM (config.json and "
                          "generation_config.json beside the IR), e.g. {\"search\": {\"max_length\": 2048}}.")


class OpenVINOEncapsulation(Pass):
    name = "OpenVINOEncapsulation"
    description = ("Wraps an OpenVINO IR in an ONNX model holding one com.microsoft EPContext node that points at the "
                   "IR (embed_mode 0), for ONNX Runtime's OpenVINO execution provider (onnxruntime-openvino, which "
                   "ModelMill does not install). For an LLM it also writes genai_config.json. Needs "
                   "modelmill[openvino].")
    Params = OpenVINOEncapsulationParams
    accepts = frozenset({"openvino"})
    required_packages = ("openvino",)
    install_hint = ovc.OPENVINO_EXTRA
    produces = "onnx"
    supported_providers = ("OpenVINOExecutionProvider",)

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OpenVINOEncapsulationParams)
        ovc.require_openvino_model(model, self.name)
        self.require_packages()
        import onnx
        import openvino as ov
        from onnx import helper

        name = ovc.model_name(model)
        version = params.ov_version or ov.get_version()
        loaded = ovc.read_ir(model)
        inputs = [_value_info(port, i, "input", params.keep_ov_dynamic_dims) for i, port in enumerate(loaded.inputs)]
        outputs = [_value_info(port, i, "output", params.keep_ov_dynamic_dims)
                   for i, port in enumerate(loaded.outputs)]
        node = helper.make_node("EPContext", [v.name for v in inputs], [v.name for v in outputs], name="ContextNode",
                                domain="com.microsoft", embed_mode=0, ep_cache_context=f"{name}.xml",
                                ep_sdk_version=version, main_context=1, max_size=0,
                                source="OpenVINOExecutionProvider", DeviceClass=params.target_device.upper())
        graph = helper.make_graph([node], "EP_Context_Model", inputs, outputs)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid(str(d), int(v))
                                                        for d, v in params.opset_imports])
        proto.ir_version = 10
        out = ctx.output_dir
        out.mkdir(parents=True, exist_ok=True)
        onnx_file = f"{name}.onnx"
        onnx.save_model(proto, str(out / onnx_file))
        shutil.copy2(model.model_file, out / f"{name}.xml")
        shutil.copy2(model.model_file.with_suffix(".bin"), out / f"{name}.bin")
        ovc.copy_companions(model, out)
        wrote_genai = write_genai_config(out, onnx_file, [v.name for v in inputs], [v.name for v in outputs],
                                         params.target_device, params.genai_config_override)
        ctx.report("genai_config", wrote_genai)
        return ModelRef(kind="onnx", path=out, onnx_file=onnx_file,
                        attributes={**model.attributes, "ep": "OpenVINOExecutionProvider",
                                    "device": params.target_device.upper(), "sdk_version": version})


def _value_info(port: Any, index: int, prefix: str, keep_dynamic: bool) -> Any:
    from onnx import helper

    try:
        name = port.get_any_name()
    except RuntimeError as exc:
        raise PassError(f"{prefix} {index} of the IR has no name", fix="run OpenVINOIoUpdate before this pass") from exc
    element = port.get_element_type().get_type_name()
    if element not in OV_TO_ONNX:
        raise PassError(f"{prefix} {name} has OpenVINO type {element}, which has no ONNX equivalent here",
                        fix="convert the model with float32/int64 inputs")
    dims: list[Any] = []
    for axis, dim in enumerate(port.get_partial_shape()):
        if not dim.is_dynamic:
            dims.append(dim.get_length())
        else:
            dims.append(-1 if keep_dynamic else f"{prefix}_{index}_{axis}")
    return helper.make_tensor_value_info(name, OV_TO_ONNX[element], dims)


def write_genai_config(folder: Path, onnx_file: str, inputs: list[str], outputs: list[str], device: str,
                       override: dict[str, Any] | None) -> bool:
    """genai_config.json for onnxruntime-genai with the OpenVINO provider (Olive's create_genai_config); False when
    config.json or generation_config.json is missing (not an LLM)."""
    config_file, generation_file = folder / "config.json", folder / "generation_config.json"
    if not (config_file.exists() and generation_file.exists()):
        return False
    src = json.loads(config_file.read_text())
    gen = json.loads(generation_file.read_text())
    heads, hidden = src.get("num_attention_heads", -1), src.get("hidden_size", -1)
    eos = gen.get("eos_token_id", -1)
    pad = gen.get("pad_token_id")
    if pad is None:
        pad = (eos[0] if isinstance(eos, list) and eos else eos)
    config: dict[str, Any] = {
        "model": {
            "bos_token_id": src.get("bos_token_id", -1),
            "context_length": src.get("max_position_embeddings", -1),
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "graph_optimization_level": "ORT_DISABLE_ALL",
                                    "provider_options": [{"OpenVINO": {"device_type": device.upper(),
                                                                       "enable_causallm": "True"}}]},
                "filename": onnx_file,
                "head_size": hidden // heads if isinstance(heads, int) and heads > 0 and isinstance(hidden, int)
                else -1,
                "hidden_size": hidden,
                "inputs": {name: name for name in inputs if name != "beam_idx"},
                "outputs": {name: name for name in outputs},
                "num_attention_heads": heads,
                "num_hidden_layers": src.get("num_hidden_layers", -1),
                "num_key_value_heads": src.get("num_key_value_heads", -1),
            },
            "eos_token_id": eos,
            "pad_token_id": pad,
            "type": src.get("model_type", ""),
            "vocab_size": src.get("vocab_size", -1),
        },
        "search": {"diversity_penalty": 0.0, "do_sample": False, "early_stopping": True, "length_penalty": 1.0,
                   "max_length": src.get("max_position_embeddings", -1), "min_length": 0, "no_repeat_ngram_size": 0,
                   "num_beams": 1, "num_return_sequences": 1, "past_present_share_buffer": False,
                   "repetition_penalty": 1.0, "temperature": 1.0, "top_k": 1, "top_p": 1.0},
    }
    _merge(config, override or {})
    (folder / "genai_config.json").write_text(json.dumps(config, indent=4))
    return True


def _merge(base: dict[str, Any], override: dict[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
