"""OnnxQuantization: Olive's combined entry point, running OnnxDynamicQuantization or OnnxStaticQuantization by
``quant_mode``.

The parameters are the static pass's plus ``quant_mode``; in dynamic mode the static-only ones (calibration,
activation type, quant format) are ignored, as Olive ignores them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.base import Pass, PassParams, searchable
from modelmill.passes.dynamic_quantization import (
    OnnxDynamicQuantization,
    OnnxDynamicQuantizationParams,
)
from modelmill.passes.static_quantization import (
    OnnxStaticQuantization,
    OnnxStaticQuantizationParams,
)


class OnnxQuantizationParams(OnnxStaticQuantizationParams):
    quant_mode: Literal["dynamic", "static"] = searchable(
        "static", ["dynamic", "static"], "static: weights and activations quantized with ranges from calibration "
        "data (OnnxStaticQuantization); dynamic: int8 weights, activations quantized at run time, no calibration "
        "(OnnxDynamicQuantization).")
    calibrate_method: Literal["MinMax", "Entropy", "Percentile"] = searchable(
        "MinMax", ["MinMax", "Entropy", "Percentile"], "Static mode: how activation ranges are found from the "
        "calibration data: MinMax (fast), Entropy or Percentile (more robust to outliers, slower).")

    @model_validator(mode="after")
    def _dynamic_precision(self) -> OnnxQuantizationParams:
        if self.quant_mode == "dynamic" and self.precision not in ("int8", "uint8"):
            raise ValueError(f"precision {self.precision!r} needs quant_mode static: dynamic quantization takes "
                             "int8 or uint8 weights")
        return self


# The static pass's parameters that dynamic quantization does not use.
STATIC_ONLY = frozenset(OnnxStaticQuantizationParams.model_fields) - frozenset(OnnxDynamicQuantizationParams.model_fields)


class OnnxQuantization(Pass):
    name = "OnnxQuantization"
    aliases = ()
    description = ("ONNX Runtime int8/int16 quantization, Olive's combined entry point: quant_mode static "
                   "(default; calibrated QDQ or QOperator, as OnnxStaticQuantization) or dynamic (weights only, "
                   "activations quantized at run time, as OnnxDynamicQuantization).")
    Params = OnnxQuantizationParams
    accepts = frozenset({"onnx"})
    produces = "onnx"
    supported_precisions = ("int8", "uint8", "int16", "uint16")

    @classmethod
    def cache_context(cls, params: PassParams) -> dict[str, Any] | None:
        # The work is done by the delegate's code, which lives in another file than this pass.
        from modelmill.engine.cache import pass_code_digest

        return {"delegate_code": pass_code_digest(_delegate(params))}

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OnnxQuantizationParams)
        delegate = _delegate(params)
        values = params.model_dump(exclude={"quant_mode"})
        if delegate is OnnxDynamicQuantization:
            unused = sorted(STATIC_ONLY & params.model_fields_set)
            if unused:
                ctx.log(f"quant_mode dynamic: ignoring the static-only parameters {', '.join(unused)}")
            values = {key: value for key, value in values.items() if key not in STATIC_ONLY}
        ctx.log(f"quant_mode {params.quant_mode}: running {delegate.name}")
        try:
            delegate_params = delegate.Params(**values)
        except ValueError as exc:
            raise PassError(f"{self.name}: {exc}", fix="check the parameters for quant_mode "
                            f"{params.quant_mode}") from exc
        result = delegate().run(model, delegate_params, ctx)
        return result.with_attributes(quant_mode=params.quant_mode)


def _delegate(params: PassParams) -> type[Pass]:
    assert isinstance(params, OnnxQuantizationParams)
    return OnnxDynamicQuantization if params.quant_mode == "dynamic" else OnnxStaticQuantization
