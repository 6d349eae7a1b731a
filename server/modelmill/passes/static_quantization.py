"""OnnxStaticQuantization: onnxruntime.quantization.quantize_static with calibration data (QDQ or QOperator)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.data import calibration_feeds, onnx_input_specs, resolve_data_config
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
    quiet_ort_logging,
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
    max_activation_range: float | None = Field(
        1e4, gt=0, description="Nodes whose calibrated inputs or outputs reach this magnitude stay in float, e.g. "
        "attention-mask Add/Softmax nodes that see the float minimum (int8 cannot represent such ranges). None "
        "quantizes them anyway, as Olive does.")
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
        data_config = resolve_data_config(params.data_config, ctx.data_configs)
        with quiet_ort_logging(ctx):
            from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        source = preprocess(model, params.quant_preprocess, ctx)
        ctx.progress(0.15, "preparing calibration data")
        samples = calibration_feeds(model, data_config, onnx_input_specs(source), params.max_calibration_samples,
                                    sequence_length=params.calibration_sequence_length)
        ctx.log(f"calibrating on {len(samples)} samples with {params.calibrate_method}")
        ctx.progress(0.25, f"calibrating ({len(samples)} samples, {params.calibrate_method})")
        extra = quant_extra_options(params, **_default_extra_options(source, params))
        mixed = model.attributes.get("mixed_precision_overrides")
        if mixed and "TensorQuantOverrides" not in extra:  # MixedPrecisionOverrides' 16-bit tensors (as Olive's QNN)
            extra["TensorQuantOverrides"] = {
                tensor: [{**o, "quant_type": getattr(QuantType, o["quant_type"])} for o in entries]
                for tensor, entries in mixed.items()}
            extra.setdefault("UseQDQContribOps", True)  # 16-bit Q/DQ below opset 21
        excluded = excluded_nodes(source, params) or []
        target = ctx.work_dir / "quantized" / "model.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        method = getattr(CalibrationMethod, params.calibrate_method)
        providers = params.calibration_providers or ["CPUExecutionProvider"]
        kwargs: dict[str, Any] = {}
        try:
            with quiet_ort_logging(ctx):
                if params.max_activation_range is not None:
                    cache = _calibrate(source, samples, params, method, providers, extra, ctx)
                    kwargs["calibration_cache_path"] = str(cache)
                    excluded += _outlier_nodes(source, cache, params.max_activation_range, excluded, ctx)
                if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
                    kwargs.pop("calibration_cache_path", None)  # older ORT: it calibrates once more itself
                ctx.progress(0.8, "quantizing")
                quantize_static(
                    str(source), str(target), _reader(samples, ctx),
                    quant_format=getattr(QuantFormat, params.quant_format),
                    op_types_to_quantize=params.op_types_to_quantize,
                    per_channel=params.per_channel,
                    reduce_range=params.reduce_range,
                    activation_type=getattr(QuantType, QUANT_TYPES[params.activation_type]),
                    weight_type=getattr(QuantType, QUANT_TYPES[params.precision]),
                    nodes_to_quantize=params.nodes_to_quantize,
                    nodes_to_exclude=excluded or None,
                    use_external_data_format=True,
                    calibrate_method=method,
                    calibration_providers=providers,
                    extra_options=extra,
                    **kwargs,
                )
        except PassError:
            raise
        except Exception as exc:  # noqa: BLE001 - ORT raises plain exceptions
            raise PassError(f"{self.name} failed: {type(exc).__name__}: {exc}",
                            fix="check that the calibration data matches the model's inputs, or exclude the failing "
                                "nodes (nodes_to_exclude / op_types_to_exclude)") from exc
        return save_quantized(model, target, ctx, precision=params.precision)


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


# ORT extra_options that configure the calibrator, and the calibrator's names for them.
CALIBRATOR_OPTIONS = {"CalibTensorRangeSymmetric": "symmetric", "CalibMovingAverage": "moving_average",
                      "CalibMovingAverageConstant": "averaging_constant",
                      "CalibMaxIntermediateOutputs": "max_intermediate_outputs", "CalibPercentile": "percentile"}


def _calibrate(source: Path, samples: list[dict[str, Any]], params: OnnxStaticQuantizationParams, method: Any,
               providers: list[str], extra: dict[str, Any], ctx: PassContext) -> Path:
    """Run ORT's calibrator once and save the tensor ranges as a calibration cache for quantize_static."""
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    calib_dir = ctx.work_dir / "calibration"
    calib_dir.mkdir(parents=True, exist_ok=True)
    options = {name: extra[key] for key, name in CALIBRATOR_OPTIONS.items() if key in extra}
    calibrator = create_calibrator(source, params.op_types_to_quantize,
                                   augmented_model_path=str(calib_dir / "augmented_model.onnx"),
                                   calibrate_method=method, use_external_data_format=True, providers=providers,
                                   extra_options=options)
    calibrator.collect_data(_reader(samples, ctx))
    ranges = calibrator.compute_data()
    del calibrator
    cache = calib_dir / "ranges.json"
    save_tensors_data(ranges, cache)
    return cache


def _outlier_nodes(source: Path, cache: Path, limit: float, already: list[str], ctx: PassContext) -> list[str]:
    """Nodes that read or write a tensor whose calibrated range reaches ``limit`` (or is not finite)."""
    import numpy as np
    import onnx
    from onnxruntime.quantization.calibrate import load_tensors_data

    ranges = load_tensors_data(cache)
    extreme = set()
    for name, data in ranges.items():
        values = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in data.range_value])
        if values.size and (not np.isfinite(values).all() or np.abs(values).max() >= limit):
            extreme.add(name)
    if not extreme:
        return []
    proto = onnx.load(str(source), load_external_data=False)
    nodes = [node.name for node in proto.graph.node
             if node.name and node.name not in already and extreme & {*node.input, *node.output}]
    if nodes:
        shown = ", ".join(nodes[:5]) + (f" and {len(nodes) - 5} more" if len(nodes) > 5 else "")
        ctx.log(f"keeping {len(nodes)} nodes in float: their activations reach {limit:g} or more "
                f"(max_activation_range): {shown}")
    return nodes
