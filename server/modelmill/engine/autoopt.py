"""auto-opt: pick the passes for a model, device and precision, as a flat Olive workflow config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmill.errors import ConfigError
from modelmill.paths import default_cache_dir

DEVICE_DEFAULT_EP = {"cpu": "CPUExecutionProvider", "gpu": "CUDAExecutionProvider", "npu": "QNNExecutionProvider"}

# Architectures onnxruntime-genai's builder turns into fused, KV-cached decoder models.
BUILDER_ARCHITECTURES = {
    "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Phi3ForCausalLM",
    "PhiForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration",
    "GraniteForCausalLM", "OlmoForCausalLM", "NemotronForCausalLM", "SmolLM3ForCausalLM", "ChatGLMModel",
    "ChatGLMForConditionalGeneration", "Ernie4_5ForCausalLM", "GptOssForCausalLM", "Phi3VForCausalLM",
    "PhiMoEForCausalLM", "Qwen3MoeForCausalLM", "GPTNeoXForCausalLM",
}
# HF model_type → onnxruntime.transformers optimizer model_type, for encoders.
ENCODER_OPT_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "distilbert": "bert",
                     "electra": "bert", "mpnet": "bert", "camembert": "bert", "albert": "bert"}


@dataclass
class AutoOptRequest:
    model: str
    output_path: str
    device: str = "cpu"
    provider: str | None = None
    precision: str = "int4"
    use_model_builder: bool | None = None
    task: str | None = None
    trust_remote_code: bool = False
    log_level: int = 3
    adapter_path: str | None = None
    adapter_format: str = "embedded"  # or "onnx_adapter": LoRA weights in a separate run-time adapter file
    tune_session: bool = True  # ModelBuilder on CPU: time session settings on this machine, write the fastest


def build_config(request: AutoOptRequest, model_dir: Path | None) -> dict[str, Any]:
    """The workflow config auto-opt runs. ``model_dir`` is the resolved local model (None = not inspected)."""
    ep = request.provider or DEFAULT_EP(request.device)
    kind, hf_config = _inspect(model_dir)
    passes = _choose_passes(kind, hf_config, request, ep)
    if request.adapter_format == "onnx_adapter":
        _add_adapter_extraction(passes, request, model_dir)
    input_model: dict[str, Any]
    if kind == "onnx":
        input_model = {"type": "ONNXModel", "model_path": request.model}
    else:
        input_model = {"type": "HfModel", "model_path": request.model}
        if request.adapter_path:
            input_model["adapter_path"] = request.adapter_path
        task = request.task or _default_task(hf_config)
        if task:
            input_model["task"] = task
        if request.trust_remote_code:
            input_model["load_kwargs"] = {"trust_remote_code": True}
    return {
        "input_model": input_model,
        "systems": {"local_system": {"type": "LocalSystem",
                                     "accelerators": [{"device": request.device, "execution_providers": [ep]}]}},
        "passes": passes,
        "target": "local_system",
        "host": "local_system",
        "output_dir": request.output_path,
        # One cache for every command-line run, wherever it starts (Olive would drop .olive-cache in the cwd).
        "cache_dir": str(default_cache_dir()),
        "log_severity_level": request.log_level,
    }


def plan_notes(request: AutoOptRequest, model_dir: Path | None) -> list[str]:
    """What auto-opt says with its plan besides the passes: a hint where another runtime measured faster on this
    CPU for this kind of model (engine/openvino_hint.py)."""
    from modelmill.engine.openvino_hint import openvino_hint

    kind, hf_config = _inspect(model_dir)
    encoder = kind == "hf" and str(hf_config.get("model_type", "")) in ENCODER_OPT_TYPES
    hint = openvino_hint(encoder, request.precision, request.provider or DEFAULT_EP(request.device))
    return [hint] if hint else []


def _add_adapter_extraction(passes: dict[str, Any], request: AutoOptRequest, model_dir: Path | None) -> None:
    """Base + adapter → the base model plus a separate .onnx_adapter file (needs the builder's LoRA branches)."""
    from modelmill.finetune.adapters import find_adapter

    has_adapter = bool(request.adapter_path) or (model_dir is not None and find_adapter(model_dir) is not None)
    if not has_adapter:
        raise ConfigError("--adapter_format onnx_adapter needs a LoRA adapter on top of the model",
                          fix="pass --adapter_path ADAPTER, or a finetune output made without --merge_adapter",
                          where="--adapter_format")
    if not any(entry["type"] == "ModelBuilder" for entry in passes.values()):
        raise ConfigError("--adapter_format onnx_adapter works with the ORT GenAI builder's LoRA branches",
                          fix="use a model architecture the builder supports, or drop --adapter_format",
                          where="--adapter_format")
    passes["extract_adapters"] = {"type": "ExtractAdapters"}


def DEFAULT_EP(device: str) -> str:  # noqa: N802 - reads like the constant it replaces
    try:
        return DEVICE_DEFAULT_EP[device]
    except KeyError:
        raise ConfigError(f"unknown device '{device}'", fix="use --device cpu, gpu or npu") from None


def _default_task(hf_config: dict[str, Any]) -> str | None:
    """feature-extraction for encoders: Olive's default task (text-generation-with-past) would export a BERT
    as a language-model head instead of its embeddings."""
    architectures = hf_config.get("architectures") or []
    if any(a.endswith(("ForCausalLM", "ForConditionalGeneration")) for a in architectures):
        return None
    if str(hf_config.get("model_type", "")) in ENCODER_OPT_TYPES or any(a.endswith("Model") for a in architectures):
        return "feature-extraction"
    return None


def _inspect(model_dir: Path | None) -> tuple[str, dict[str, Any]]:
    if model_dir is None:
        return "hf", {}
    if model_dir.is_file() and model_dir.suffix == ".onnx" or any(model_dir.glob("*.onnx")):
        return "onnx", {}
    config_file = model_dir / "config.json"
    if not config_file.exists():
        from modelmill.finetune.adapters import adapter_base, find_adapter

        adapter = find_adapter(model_dir)  # a finetune output or adapter: the base decides the passes
        if adapter is not None:
            return "hf", json.loads((adapter_base(adapter) / "config.json").read_text())
        raise ConfigError(f"{model_dir} is neither a Hugging Face folder (no config.json) nor an ONNX model",
                          fix="pass a folder saved with save_pretrained, an .onnx file, or sample:smollm2")
    return "hf", json.loads(config_file.read_text())


def _choose_passes(kind: str, hf_config: dict[str, Any], request: AutoOptRequest, ep: str) -> dict[str, Any]:
    precision = request.precision
    architectures = set(hf_config.get("architectures") or [])
    if kind == "onnx":
        return _onnx_passes(precision, request.device)
    if ep == "OpenVINOExecutionProvider":
        return openvino_passes(request)
    builder_ok = bool(architectures & BUILDER_ARCHITECTURES) or not architectures and not hf_config
    use_builder = request.use_model_builder if request.use_model_builder is not None else builder_ok
    if use_builder:
        if not builder_ok:
            raise ConfigError(f"the ORT GenAI model builder does not support {sorted(architectures) or 'this model'}",
                              fix="drop --use_model_builder to export with torch.onnx instead")
        if precision == "fp16" and ep == "CPUExecutionProvider":
            raise ConfigError("fp16 LLMs need a GPU execution provider",
                              fix="use --precision int4 (fastest on CPU) or int8/fp32, or --device gpu")
        params: dict[str, Any] = {"precision": precision}
        if precision in ("int4", "int8"):
            # Quantize the embedding table too: a 2-3x smaller output at no decode-speed cost.
            params.update({"int4_block_size": 32, "int4_op_types_to_quantize": ["MatMul", "Gather"]})
            if ep == "CPUExecutionProvider":
                params["int4_accuracy_level"] = 4
        if request.tune_session and ep == "CPUExecutionProvider":
            params["tune_session"] = True
        return {"model_builder": {"type": "ModelBuilder", **params}}
    passes: dict[str, Any] = {"conversion": {"type": "OnnxConversion", "target_opset": 17}}
    opt_type = ENCODER_OPT_TYPES.get(str(hf_config.get("model_type", "")))
    if opt_type:
        passes["transformers_optimization"] = {"type": "OrtTransformersOptimization", "model_type": opt_type}
    else:
        passes["peephole"] = {"type": "OnnxPeepholeOptimizer"}
    passes.update(_onnx_passes(precision, request.device, include_cleanup=False))
    return passes


def openvino_passes(request: AutoOptRequest) -> dict[str, Any]:
    """Olive 0.13's OpenVINO chain for a Hugging Face model (its ``optimize --provider OpenVINOExecutionProvider``):
    optimum-intel export with NNCF weight compression → I/O names → EPContext model for onnxruntime-openvino.

    One change from Olive: group size 128 with ``group_size_fallback: adjust``. Olive's plain 128 stops NNCF on any
    layer whose width 128 does not divide (SmolLM2's 576); adjust gives those layers the largest power-of-two group
    that divides them (64 there) and keeps 128 elsewhere."""
    if request.use_model_builder:
        raise ConfigError("--use_model_builder writes an ORT GenAI model, and --provider OpenVINOExecutionProvider "
                          "takes the OpenVINO path (optimum-intel export to OpenVINO IR)",
                          fix="drop one of the two flags", where="--provider")
    if request.adapter_path or request.adapter_format == "onnx_adapter":
        raise ConfigError("the OpenVINO path exports a whole model, not a base model plus a LoRA adapter",
                          fix="merge the adapter first (finetune --merge_adapter), or drop --provider "
                              "OpenVINOExecutionProvider", where="--provider")
    quant: dict[str, Any] = {"weight_format": request.precision}
    if request.precision == "int4":
        quant.update({"group_size": 128, "ratio": 1.0, "group_size_fallback": "adjust"})
    return {
        "optimum_openvino_conversion": {"type": "OpenVINOOptimumConversion", "device": request.device,
                                        "ov_quant_config": quant},
        "openvino_io_update": {"type": "OpenVINOIoUpdate", "static": False, "reuse_cache": True},
        "openvino_encapsulation": {"type": "OpenVINOEncapsulation", "target_device": request.device,
                                   "keep_ov_dynamic_dims": True, "reuse_cache": True},
    }


def _onnx_passes(precision: str, device: str, include_cleanup: bool = True) -> dict[str, Any]:
    if precision == "int4":
        return {"int4_quantization": {"type": "OnnxBlockWiseRtnQuantization", "block_size": 32,
                                      "accuracy_level": 4 if device == "cpu" else 0}}
    if precision == "int8":
        # Per-channel scales: per-tensor INT8 costs encoders ~3 points of embedding cosine (0.96 vs 0.99).
        return {"int8_quantization": {"type": "OnnxDynamicQuantization", "precision": "int8", "per_channel": True}}
    if precision == "fp16":
        return {"fp16_conversion": {"type": "OnnxFloatToFloat16", "keep_io_types": True}}
    return {"peephole": {"type": "OnnxPeepholeOptimizer"}} if include_cleanup else {}
