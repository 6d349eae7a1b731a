"""QuarkQuantization: AMD Quark's ONNX quantizer (quark.onnx.ModelQuantizer) on CPU.

Olive's ONNX branch: ``global_config`` / ``specific_layer_config`` / ``layer_type_config`` / ``exclude`` /
``algo_config`` / ``extra_options`` become a ``quark.onnx`` QConfig; calibration samples come from ModelMill's
data configs (built-in text when data_config is None). Olive's Torch branch (an HF model, AWQ on the pileval
dataset) needs a Hub download and a GPU, and the Vitis AI/NPU variants need AMD's Ryzen AI stack: both are
refused with what they need.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.data import (
    calibration_feeds,
    onnx_input_specs,
    resolve_data_config,
)
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams

QUARK_EXTRA = "pip install 'modelmill[quark]' (amd-quark pins onnx<=1.22; see docs/openvino.md)"
# extra_options that target the Vitis AI execution provider on Ryzen AI NPUs.
NPU_OPTIONS = ("EnableNPUCnn", "EnableNPUTransformer", "EnableVaimlBF16", "BF16WithClip")
SCALE_TYPES = ("Float32", "PowerOf2", "Int16")
CALIB_METHODS = ("MinMax", "Entropy", "Percentile", "Distribution", "MinMSE", "LayerwisePercentile")
GRANULARITIES = ("Tensor", "Channel", "Group")
ALGORITHMS = {"smooth_quant": "SmoothQuantConfig", "cle": "CLEConfig", "bias_correction": "BiasCorrectionConfig",
              "gptq": "GPTQConfig", "auto_mixprecision": "AutoMixprecisionConfig", "adaround": "AdaRoundConfig",
              "adaquant": "AdaQuantConfig", "quarot": "QuarotConfig"}
QUANT_TYPES = {"Int8": ("QuantType", "QInt8"), "UInt8": ("QuantType", "QUInt8"), "Int16": ("QuantType", "QInt16"),
               "UInt16": ("QuantType", "QUInt16"), "Int32": ("ExtendedQuantType", "QInt32"),
               "UInt32": ("ExtendedQuantType", "QUInt32"), "Float16": ("ExtendedQuantType", "QFloat16"),
               "BFloat16": ("ExtendedQuantType", "QBFloat16"), "BFP16": ("ExtendedQuantType", "QBFP"),
               "BFP": ("ExtendedQuantType", "QBFP"), "MX": ("ExtendedQuantType", "QMX")}
DEFAULT_GLOBAL = {"activation": {"symmetric": False, "calibration_method": "MinMax", "data_type": "UInt8"},
                  "weight": {"symmetric": True, "calibration_method": "MinMax", "data_type": "Int8"}}


class QuarkQuantizationParams(OnnxOutputParams):
    # The Torch branch's parameters (Hugging Face input): accepted so that Olive's configs validate; a Hugging Face
    # input itself is a config error (``input_hint``).
    quant_scheme: str = Field("uint4_wo_128", description="[Torch] Olive's Quark-Torch scheme; ModelMill runs the "
                              "ONNX branch only.")
    quant_algo: str | list[str] = Field("awq", description="[Torch] Olive's Quark-Torch algorithms (ONNX branch "
                                        "only here).")
    dataset: str = Field("pileval_for_awq_benchmark", description="[Torch] Olive's Hub calibration dataset (not "
                         "downloaded here).")
    data_type: str = Field("bfloat16", description="[Torch] model data type.")
    num_calib_data: int = Field(128, description="[Torch] calibration samples. The ONNX branch uses "
                                "max_calibration_samples.")
    model_export: str | list[str] = Field("hf_format", description="[Torch] export formats.")
    exclude_layers: list[str] | None = Field(None, description="[Torch] layers left unquantized.")
    layer_quant_scheme: list[Any] | None = Field(None, description="[Torch] per-layer schemes.")
    kv_cache_dtype: str | None = Field(None, description="[Torch] KV cache dtype.")
    min_kv_scale: float = Field(0.0, description="[Torch] minimum KV cache scale.")
    kv_cache_post_rope: bool = Field(False, description="[Torch] quantize the KV cache after RoPE.")
    attention_dtype: str | None = Field(None, description="[Torch] attention dtype.")
    seq_len: int = Field(512, description="[Torch] calibration sequence length.")
    batch_size: int = Field(1, description="[Torch] calibration batch size.")
    pack_method: str = Field("reorder", description="[Torch] pack method.")
    export_weight_format: str = Field("real_quantized", description="[Torch] exported weight format.")
    custom_mode: str = Field("quark", description="[Torch] export mode.")
    trust_remote_code: bool = Field(True, description="[Torch] trust the model's own code.")
    # The ONNX branch.
    quant_mode: Literal["static", "dynamic"] = Field("static", description="[ONNX] Olive compatibility: Quark's "
                                                     "ONNX quantizer calibrates (static).")
    quant_format: Literal["QDQ", "QOperator"] = Field("QDQ", description="[ONNX] Olive compatibility: the output "
                                                      "uses QuantizeLinear/DequantizeLinear pairs.")
    data_config: str | dict[str, Any] | None = Field(
        None, description="[ONNX] Calibration data: a data_configs name or an inline config (local_dataset, "
                          "DummyDataContainer); built-in text when None.")
    global_config: dict[str, Any] | None = Field(
        None, description="[ONNX] Quantization of every layer: {activation: {...}, weight: {...}} with "
                          "symmetric, calibration_method (MinMax, Percentile...), data_type (Int8, UInt8, Int16...), "
                          "scale_type, quant_granularity (Tensor, Channel, Group). Default: UInt8 asymmetric "
                          "activations, Int8 symmetric weights, MinMax.")
    specific_layer_config: list[Any] | None = Field(
        None, description="[ONNX] [[layer config, [node names]], ...] overriding global_config.")
    layer_type_config: list[Any] | None = Field(
        None, description="[ONNX] [[layer config, [op types]], ...] overriding global_config.")
    exclude: list[Any] | None = Field(None, description="[ONNX] Node names (or subgraphs) left in float.")
    algo_config: list[dict[str, Any]] | None = Field(
        None, description="[ONNX] Algorithms, e.g. [{\"name\": \"smooth_quant\", \"alpha\": 0.5}] or "
                          "[{\"name\": \"cle\"}]; names: " + ", ".join(ALGORITHMS) + ".")
    extra_options: dict[str, Any] | None = Field(None, description="[ONNX] Quark extra options, as Olive passes them.")
    max_calibration_samples: int = Field(64, ge=1, description="ModelMill: calibration samples for the ONNX branch.")
    calibration_sequence_length: int = Field(64, ge=1, description="ModelMill: tokens per calibration sample.")


class QuarkQuantization(Pass):
    name = "QuarkQuantization"
    description = ("AMD Quark's ONNX quantizer (quark.onnx) on CPU: static QDQ quantization (default UInt8 "
                   "activations, Int8 weights) with calibration, per-layer and per-op-type overrides and "
                   "algorithms such as SmoothQuant, CLE or GPTQ. Hugging Face input (Quark-Torch) and the Vitis "
                   "AI/NPU options are not runnable here. Needs modelmill[quark].")
    Params = QuarkQuantizationParams
    accepts = frozenset({"onnx"})
    produces = "onnx"
    required_packages = ("quark",)
    install_hint = QUARK_EXTRA
    input_hint = ("a Hugging Face input runs Olive's Quark-Torch branch (AWQ calibrated on the Hub's pileval, on a "
                  "GPU), which ModelMill does not run: export to ONNX first (OnnxConversion or ModelBuilder) to use "
                  "Quark's ONNX quantizer")
    supported_providers = ("CPUExecutionProvider",)

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, QuarkQuantizationParams)
        if model.kind != "onnx":
            raise PassError(f"{self.name} of a Hugging Face model runs Quark-Torch (AWQ/GPTQ calibrated on the Hub "
                            f"dataset {params.dataset!r}, on a GPU), which ModelMill does not run",
                            fix="export to ONNX first (OnnxConversion or ModelBuilder) to use Quark's ONNX quantizer")
        refuse_npu_options(params.extra_options, ctx.accelerator.execution_provider)
        self.require_packages()
        from quark.onnx import ModelQuantizer
        from quark.onnx.quantization.config.config import QConfig

        data_config = resolve_data_config(params.data_config, ctx.data_configs)
        ctx.progress(0.1, "preparing calibration data")
        samples = calibration_feeds(model, data_config, onnx_input_specs(model.model_file),
                                    params.max_calibration_samples, sequence_length=params.calibration_sequence_length)
        config = QConfig(global_config=layer_config(params.global_config or DEFAULT_GLOBAL),
                         specific_layer_config=_layer_map(params.specific_layer_config),
                         layer_type_config=_layer_map(params.layer_type_config), exclude=params.exclude,
                         algo_config=algorithms(params.algo_config), use_external_data_format=True,
                         **extra_options(params.extra_options))
        target = ctx.work_dir / "quark" / "model.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        ctx.progress(0.3, f"quantizing with Quark ({len(samples)} calibration samples)")
        try:
            with onnx_io.working_directory(ctx.work_dir):
                ModelQuantizer(config).quantize_model(str(model.model_file), str(target), _Reader(samples))
        except Exception as exc:  # noqa: BLE001 - Quark raises many types
            raise PassError(f"{self.name} failed: {type(exc).__name__}: {exc}",
                            fix="check global_config and the calibration data, or exclude the failing nodes") from exc
        import onnx

        proto = onnx.load(str(target))
        onnx_io.copy_companions(model, ctx.output_dir)
        onnx_io.save(proto, ctx.output_dir, model.onnx_file)
        return onnx_io.output_ref(model, ctx.output_dir, model.onnx_file, precision="int8")


def refuse_npu_options(options: dict[str, Any] | None, provider: str) -> None:
    npu = [key for key in (options or {}) if key in NPU_OPTIONS and options and options[key]]
    if npu or provider == "VitisAIExecutionProvider":
        what = f"extra_options {', '.join(npu)}" if npu else "the VitisAIExecutionProvider target"
        raise PassError(f"QuarkQuantization with {what} targets AMD Ryzen AI NPUs, which is not runnable here",
                        fix="it needs a Ryzen AI machine with the NPU driver and onnxruntime-vitisai (AMD's Ryzen AI "
                            "Software); drop those options to quantize for the CPU")


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over prepared feeds."""

    def __init__(self, samples: list[dict[str, Any]]) -> None:
        self.samples = samples
        self.index = 0

    def get_next(self) -> dict[str, Any] | None:
        if self.index >= len(self.samples):
            return None
        self.index += 1
        return self.samples[self.index - 1]

    def rewind(self) -> None:
        self.index = 0

    def reset(self) -> None:
        self.index = 0


def _tensor_config(config: dict[str, Any]) -> dict[str, Any]:
    """Olive's convert_tensor_config: short names → Quark's enum strings, with Olive's defaults."""
    from quark.onnx.quantization.config.spec import (
        CalibMethod,
        QuantGranularity,
        ScaleType,
    )

    out = dict(config)
    out.setdefault("symmetric", True)
    for key, names, enum, default in (("scale_type", SCALE_TYPES, ScaleType, "Float32"),
                                      ("calibration_method", CALIB_METHODS, CalibMethod, "Percentile"),
                                      ("quant_granularity", GRANULARITIES, QuantGranularity, "Tensor")):
        value = out.get(key, default)
        if value not in names:
            raise PassError(f"{key} {value!r} is not a Quark {key}", fix=f"use one of {', '.join(names)}")
        out[key] = f"{enum.__name__}.{getattr(enum, value).name}"
    out.setdefault("data_type", "Int8")
    return out


def layer_config(config: dict[str, Any]) -> Any:
    from quark.onnx.quantization.config.spec import QLayerConfig

    if not isinstance(config, dict):
        raise PassError("a Quark layer config must be an object", fix="e.g. {activation: {...}, weight: {...}}")
    converted = copy.deepcopy(config)
    for key in ("activation", "weight", "bias", "input_tensors", "output_tensors"):
        if key in converted:
            converted[key] = _tensor_config(converted[key])
    if "activation" in converted and "input_tensors" not in converted:
        converted["input_tensors"] = converted["activation"]
    return QLayerConfig.from_dict(converted)


def _layer_map(items: list[Any] | None) -> dict[Any, list[str]] | None:
    if items is None:
        return None
    result = {}
    for item in items:
        if not isinstance(item, list) or len(item) != 2:
            raise PassError("each entry must be [layer config, [names]]", fix="e.g. [[{weight: {...}}, [\"MatMul\"]]]")
        result[layer_config(item[0])] = list(item[1])
    return result


def algorithms(items: list[dict[str, Any]] | None) -> list[Any] | None:
    """Quark AlgoConfig objects; every key besides name sets the attribute of that name."""
    if not items:
        return None
    from quark.onnx.quantization.config import algorithm

    configs = []
    for item in items:
        name = item.get("name")
        if name not in ALGORITHMS:
            raise PassError(f"algo_config name {name!r} is not a Quark algorithm", fix=f"use one of {', '.join(ALGORITHMS)}")
        config = getattr(algorithm, ALGORITHMS[name])()
        for key, value in item.items():
            if key == "name":
                continue
            if not hasattr(config, key):
                raise PassError(f"algo_config {name} has no option {key!r}", fix="check Quark's documentation")
            setattr(config, key, tuple(value) if isinstance(value, list) and key in ("lr_adjust", "beta_range")
                    else value)
        configs.append(config)
    return configs


def extra_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Olive's get_extra_options: quant type names in MixedPrecisionTensor/TensorQuantOverrides become Quark's."""
    import quark.onnx as qonnx

    def quant_type(name: str) -> Any:
        if name not in QUANT_TYPES:
            raise PassError(f"quant type {name!r} is not known", fix=f"use one of {', '.join(QUANT_TYPES)}")
        holder, member = QUANT_TYPES[name]
        return getattr(getattr(qonnx, holder), member)

    result: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key == "MixedPrecisionTensor" and isinstance(value, dict):
            result[key] = {quant_type(k): v for k, v in value.items()}
        elif key == "TensorQuantOverrides" and isinstance(value, dict):
            result[key] = {tensor: [{**o, "quant_type": quant_type(o["quant_type"])} if "quant_type" in o else o
                                    for o in overrides] for tensor, overrides in value.items()}
        else:
            result[key] = value
    return result
