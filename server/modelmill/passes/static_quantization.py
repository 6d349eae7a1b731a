"""OnnxStaticQuantization: onnxruntime.quantization.quantize_static with calibration data (QDQ or QOperator)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import Pass, PassParams, searchable
from modelmill.passes.dynamic_quantization import (
    QUANT_TYPES,
    QuantizationParams,
    excluded_nodes,
    preprocess,
    quant_extra_options,
    save_quantized,
)

Precision = Literal["int8", "uint8", "int16", "uint16"]


class OnnxStaticQuantizationParams(QuantizationParams):
    precision: Precision = searchable("int8", ["int8", "uint8"], "Weight type: int8, uint8, int16 or uint16.")
    activation_type: Precision = searchable("int8", ["int8", "uint8"],
                                            "Activation type: int8, uint8, int16 or uint16. 16-bit types use "
                                            "com.microsoft Q/DQ ops on models below opset 21.")
    quant_format: Literal["QDQ", "QOperator"] = searchable(
        "QDQ", ["QDQ", "QOperator"], "QDQ inserts QuantizeLinear/DequantizeLinear pairs around float ops (portable, "
        "what most EPs want); QOperator uses quantized ops such as QLinearMatMul.")
    calibrate_method: Literal["MinMax", "Entropy", "Percentile"] = Field(
        "MinMax", description="How activation ranges are found from calibration data: MinMax (fast), Entropy or "
                              "Percentile (more robust to outliers, slower).")
    data_config: str | dict[str, Any] | None = Field(
        None, description="Calibration data: the name of an entry in data_configs, or an inline data config. None "
                          "tokenizes built-in English text with the model's tokenizer (random token ids without one).")
    max_calibration_samples: int = Field(16, ge=1, description="Calibration samples to run (batch 1 each).")
    calibration_sequence_length: int = Field(
        32, ge=1, description="Tokens per calibration sample when the model's sequence length is dynamic.")
    calibration_providers: list[str] | None = Field(
        None, description="Execution providers for the calibration runs. None uses CPUExecutionProvider.")
    min_real_range: float | None = Field(
        None, description="Smallest allowed range (rmax - rmin) of quantization parameters; small ranges are widened.")
    tensor_quant_overrides: dict[str, Any] | None = Field(
        None, description="Per-tensor quantization overrides (ORT's TensorQuantOverrides extra option).")


class OnnxStaticQuantization(Pass):
    name = "OnnxStaticQuantization"
    aliases = ()
    description = ("Quantizes weights and activations with onnxruntime.quantization.quantize_static. Activation ranges "
                   "come from running calibration data through the model; the output has QuantizeLinear/"
                   "DequantizeLinear pairs (QDQ) or quantized ops (QOperator).")
    Params = OnnxStaticQuantizationParams
    accepts = frozenset({"onnx"})
    produces = "onnx"
    supported_precisions = ("int8", "uint8", "int16", "uint16")

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OnnxStaticQuantizationParams)
        onnx_io.require_onnx(model, self.name)
        data_config = resolve_data_config(params.data_config, ctx)
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        from modelmill.engine.data import calibration_feeds, onnx_input_specs

        source = preprocess(model, params.quant_preprocess, ctx)
        ctx.progress(0.15, "preparing calibration data")
        samples = calibration_feeds(model, data_config, onnx_input_specs(source), params.max_calibration_samples,
                                    sequence_length=params.calibration_sequence_length)
        ctx.log(f"calibrating on {len(samples)} samples with {params.calibrate_method}")
        ctx.progress(0.25, f"calibrating ({len(samples)} samples, {params.calibrate_method})")
        extra = quant_extra_options(params, **_default_extra_options(source, params))
        target = ctx.work_dir / "quantized" / "model.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            quantize_static(
                str(source), str(target), _reader(samples, ctx),
                quant_format=getattr(QuantFormat, params.quant_format),
                op_types_to_quantize=params.op_types_to_quantize,
                per_channel=params.per_channel,
                reduce_range=params.reduce_range,
                activation_type=getattr(QuantType, QUANT_TYPES[params.activation_type]),
                weight_type=getattr(QuantType, QUANT_TYPES[params.precision]),
                nodes_to_quantize=params.nodes_to_quantize,
                nodes_to_exclude=excluded_nodes(source, params),
                use_external_data_format=True,
                calibrate_method=getattr(CalibrationMethod, params.calibrate_method),
                calibration_providers=params.calibration_providers or ["CPUExecutionProvider"],
                extra_options=extra,
            )
        except PassError:
            raise
        except Exception as exc:  # noqa: BLE001 - ORT raises plain exceptions
            raise PassError(f"{self.name} failed: {type(exc).__name__}: {exc}",
                            fix="check that the calibration data matches the model's inputs, or exclude the failing "
                                "nodes (nodes_to_exclude / op_types_to_exclude)") from exc
        return save_quantized(model, target, ctx, precision=params.precision)


def resolve_data_config(data_config: str | dict[str, Any] | None, ctx: PassContext) -> dict[str, Any] | None:
    """An inline data config as is; a name looked up in the workflow's data_configs."""
    if not isinstance(data_config, str):
        return data_config
    if data_config not in ctx.data_configs:
        defined = ", ".join(sorted(ctx.data_configs)) or "none"
        raise PassError(f"data_config {data_config!r} is not defined (defined: {defined})",
                        fix="add an entry with that name under data_configs, or use one of the defined names")
    found = ctx.data_configs[data_config]
    if hasattr(found, "model_dump"):
        found = found.model_dump()
    return dict(found)


def _default_extra_options(model_file: Any, params: OnnxStaticQuantizationParams) -> dict[str, Any]:
    """Options the pass sets by default: contrib Q/DQ ops for 16-bit types below opset 21, range overrides."""
    options: dict[str, Any] = {}
    if "16" in params.activation_type or "16" in params.precision:
        import onnx

        proto = onnx.load(str(model_file), load_external_data=False)
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
        if opset < 21:
            options["UseQDQContribOps"] = True
    if params.min_real_range is not None:
        options["MinimumRealRange"] = params.min_real_range
    if params.tensor_quant_overrides:
        options["TensorQuantOverrides"] = params.tensor_quant_overrides
    return options


def _reader(samples: list[dict[str, Any]], ctx: PassContext) -> Any:
    """A CalibrationDataReader over prepared feeds that reports calibration progress."""
    from onnxruntime.quantization import CalibrationDataReader

    class FeedsReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._iter = iter(samples)
            self._done = 0

        def get_next(self) -> dict[str, Any] | None:
            sample = next(self._iter, None)
            if sample is not None:
                self._done += 1
                ctx.progress(0.25 + 0.55 * min(self._done, len(samples)) / len(samples),
                             f"calibration sample {self._done}/{len(samples)}")
            return sample

        def rewind(self) -> None:
            self._iter = iter(samples)

    return FeedsReader()
