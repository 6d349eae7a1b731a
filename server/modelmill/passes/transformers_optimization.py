"""OrtTransformersOptimization: onnxruntime.transformers.optimizer.optimize_model (attention/LayerNorm/Gelu fusions)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, model_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams

# HF config model_type → onnxruntime.transformers model type (types ORT knows by name are used as they are).
MODEL_TYPE_MAPPING = {
    "albert": "bert", "camembert": "bert", "deberta": "bert", "deberta-v2": "bert", "distilbert": "bert",
    "electra": "bert", "mpnet": "bert", "roberta": "bert", "xlm-roberta": "bert", "big-bird": "bert",
    "nystromformer": "bert", "longt5": "bert",
    "gpt-neo": "gpt2", "gpt-neox": "gpt2", "gptj": "gpt2", "gpt-j": "gpt2", "gpt-bigcode": "gpt2", "codegen": "gpt2",
    "bloom": "gpt2", "llama": "gpt2", "mistral": "gpt2", "qwen2": "gpt2", "granite": "gpt2", "phi3": "gpt2",
    "gemma": "gpt2", "gemma2": "gpt2", "olmo": "gpt2", "smollm3": "gpt2",
    "mbart": "bart", "marian": "bart", "whisper": "bart", "m2m-100": "bart", "mt5": "t5",
    "dinov2": "vit", "deit": "vit", "segformer": "vit", "clip_vision_model": "clip", "clip_text_model": "clip",
}

# ORT execution provider → optimize_model's provider name.
PROVIDERS = {"CUDAExecutionProvider": "cuda", "ROCMExecutionProvider": "rocm", "MIGraphXExecutionProvider": "migraphx",
             "DmlExecutionProvider": "dml"}


class OrtTransformersOptimizationParams(OnnxOutputParams):
    model_type: str | None = Field(
        None, description="onnxruntime.transformers model type: bert, gpt2, bart, t5, vit, clip, unet, vae, phi, ... "
                          "None infers it from config.json (or genai_config.json) beside the model, e.g. roberta → bert, "
                          "llama → gpt2.")
    num_heads: int = Field(0, ge=0, description="Attention heads. 0 reads num_attention_heads from the model's config.")
    num_key_value_heads: int = Field(0, ge=0, description="Key/value heads (for use_gqa). 0 reads it from the config.")
    hidden_size: int = Field(0, ge=0, description="Hidden size. 0 reads hidden_size from the model's config.")
    optimization_options: dict[str, Any] | None = Field(
        None, description="FusionOptions fields that switch fusions on or off, e.g. {\"enable_gelu_approximation\": "
                          "true, \"enable_attention\": false}.")
    opt_level: Literal[0, 1, 2, 99] | None = Field(
        None, description="ONNX Runtime graph optimization level run before the fusions: 0 none, 1 basic, 2 extended, "
                          "99 all (the saved model is then specific to the execution provider). None uses the model "
                          "type's default.")
    use_gpu: bool = Field(False, description="Optimize for GPU inference (not allowed with the CPU execution provider).")
    only_onnxruntime: bool = Field(False, description="Only run ONNX Runtime's graph optimizations (needs opt_level "
                                   "above 0), no Python fusions.")
    float16: bool = Field(False, description="Also convert the model to float16 (not allowed with the CPU execution "
                          "provider; use OnnxFloatToFloat16 to force it).")
    keep_io_types: bool = Field(True, description="With float16: keep float32 inputs and outputs.")
    force_fp32_ops: list[str] | None = Field(None, description="With float16: op types kept in float32.")
    force_fp32_nodes: list[str] | None = Field(None, description="With float16: node names kept in float32.")
    force_fp16_inputs: dict[str, list[int]] | None = Field(
        None, description="With float16: op type → input indexes forced to float16 even where the converter would keep "
                          "them float32.")
    use_gqa: bool = Field(False, description="Replace MultiHeadAttention with GroupQueryAttention (needs float16).")
    input_int32: bool = Field(False, description="Change int64 graph inputs (input_ids, attention_mask, ...) to int32.")

    @model_validator(mode="after")
    def _check(self) -> "OrtTransformersOptimizationParams":
        if self.use_gqa and not self.float16:
            raise ValueError("use_gqa needs float16: true")
        if self.only_onnxruntime and not self.opt_level:
            raise ValueError("only_onnxruntime needs opt_level 1, 2 or 99")
        return self


class OrtTransformersOptimization(Pass):
    name = "OrtTransformersOptimization"
    aliases = ()
    description = ("Fuses transformer subgraphs (attention, LayerNorm/SkipLayerNorm, Gelu, embeddings) into ONNX Runtime "
                   "contrib ops with onnxruntime.transformers.optimizer, optionally converting to float16. Works on "
                   "exported models; models from ModelBuilder are already fused and pass through almost unchanged.")
    Params = OrtTransformersOptimizationParams
    accepts = frozenset({"onnx"})
    produces = "onnx"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OrtTransformersOptimizationParams)
        onnx_io.require_onnx(model, self.name)
        ep = ctx.accelerator.execution_provider
        if params.float16 and ep in ("CPUExecutionProvider", "TensorrtExecutionProvider"):
            raise PassError(f"{self.name}: float16 is not supported with {ep}",
                            fix="set float16: false (or target a CUDA/DirectML system); to force fp16 on CPU, add an "
                                "OnnxFloatToFloat16 pass")
        if params.use_gpu and ep == "CPUExecutionProvider":
            raise PassError(f"{self.name}: use_gpu is set but the target execution provider is {ep}",
                            fix="set use_gpu: false, or target a GPU system")
        from modelmill.passes.dynamic_quantization import quiet_ort_logging

        with quiet_ort_logging(ctx):
            from onnxruntime.transformers.fusion_options import FusionOptions
            from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

        config = _model_config(model)
        model_type = params.model_type or _infer_model_type(config)
        if model_type is None:
            raise PassError(f"{self.name}: cannot tell the model type of {model.model_file} (no config.json with "
                            "model_type beside it)", fix=f"set model_type to one of: {', '.join(MODEL_TYPES)}")
        if model_type not in MODEL_TYPES:
            raise PassError(f"{self.name}: unknown model_type {model_type!r}",
                            fix=f"use one of: {', '.join(MODEL_TYPES)}")
        num_heads = params.num_heads or int(config.get("num_attention_heads") or 0)
        hidden_size = params.hidden_size or int(config.get("hidden_size") or 0)
        options = None
        if params.optimization_options:
            options = FusionOptions(model_type)
            unknown = sorted(set(params.optimization_options) - set(vars(options)))
            if unknown:
                raise PassError(f"{self.name}: unknown optimization_options {unknown}",
                                fix=f"use FusionOptions fields: {', '.join(sorted(vars(options)))}")
            vars(options).update(params.optimization_options)
        ctx.log(f"optimize_model: model_type={model_type} num_heads={num_heads} hidden_size={hidden_size} "
                f"opt_level={params.opt_level}")
        ctx.progress(0.1, f"fusing ({model_type})")
        try:
            with quiet_ort_logging(ctx, quiet_stdout=True), _ort_native_logging(3):
                optimizer = optimize_model(str(model.model_file), model_type=model_type, num_heads=num_heads,
                                           hidden_size=hidden_size, optimization_options=options,
                                           opt_level=params.opt_level, use_gpu=params.use_gpu,
                                           only_onnxruntime=params.only_onnxruntime, provider=PROVIDERS.get(ep))
                ctx.progress(0.6, "fused")
                _post_process(optimizer, params, config)
        except PassError:
            raise
        except Exception as exc:  # noqa: BLE001 - the fusion scripts raise anything
            raise PassError(f"{self.name} failed: {type(exc).__name__}: {exc}",
                            fix="set num_heads and hidden_size explicitly, or switch off the failing fusion in "
                                "optimization_options") from exc
        fused = optimizer.get_fused_operator_statistics()
        summary = ", ".join(f"{op} {count}" for op, count in fused.items() if count)
        ctx.log(f"fused operators: {summary or 'none'}")
        ctx.progress(0.85, "saving")
        onnx_io.save(optimizer.model, ctx.output_dir)
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.progress(1.0, f"optimized ({summary or 'no fusions'})")
        attributes: dict[str, Any] = {"fused_operators": {op: count for op, count in fused.items() if count}}
        if params.float16:
            attributes["precision"] = "fp16"
        return onnx_io.output_ref(model, ctx.output_dir, **attributes)


@contextlib.contextmanager
def _ort_native_logging(severity: int) -> Iterator[None]:
    """Raise the ORT C++ logger's threshold (e.g. hide the 'hardware specific optimizations' warning of opt_level 99)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(severity)
    try:
        yield
    finally:
        ort.set_default_logger_severity(2)  # ORT's default: warnings and above


def _post_process(optimizer: Any, params: OrtTransformersOptimizationParams, config: dict[str, Any]) -> None:
    """float16 conversion, GQA and int32 inputs after the fusions, as Olive does them."""
    if params.float16:
        optimizer.convert_float_to_float16(keep_io_types=params.keep_io_types, op_block_list=params.force_fp32_ops,
                                           node_block_list=params.force_fp32_nodes,
                                           force_fp16_inputs=params.force_fp16_inputs)
    if params.use_gqa:
        from onnxruntime.transformers.convert_generation import replace_mha_with_gqa

        inputs = {value.name for value in optimizer.model.graph.input}
        if "attention_mask" not in inputs:
            raise PassError("use_gqa needs a graph input named attention_mask", fix="set use_gqa: false")
        kv_heads = params.num_key_value_heads or int(config.get("num_key_value_heads") or 0)
        replace_mha_with_gqa(optimizer, "attention_mask", kv_num_heads=kv_heads)
    if params.input_int32:
        optimizer.change_graph_inputs_to_int32()
    optimizer.topological_sort()


def _model_config(model: ModelRef) -> dict[str, Any]:
    """config.json beside the model; for ORT GenAI folders, the decoder section of genai_config.json."""
    config = model.hf_config()
    if config:
        return config
    genai = model.path / "genai_config.json"
    if genai.exists():
        section = json.loads(genai.read_text()).get("model", {})
        return {"model_type": section.get("type"), **section.get("decoder", {})}
    return {}


def _infer_model_type(config: dict[str, Any]) -> str | None:
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    hf_type = config.get("model_type")
    if not hf_type:
        return None
    if hf_type in MODEL_TYPES:
        return str(hf_type)
    key = str(hf_type).replace("_", "-")
    return MODEL_TYPE_MAPPING.get(key) or MODEL_TYPE_MAPPING.get(str(hf_type)) or (
        "gpt2" if any(str(arch).endswith("ForCausalLM") for arch in config.get("architectures") or []) else "bert")
