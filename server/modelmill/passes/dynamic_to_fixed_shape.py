"""DynamicToFixedShape: onnxruntime.tools.make_dynamic_shape_fixed (named dims or whole input shapes)."""

from __future__ import annotations

from pydantic import Field, model_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams


class DynamicToFixedShapeParams(OnnxOutputParams):
    dim_param: list[str] | None = Field(None, description="Symbolic dimension names to fix, e.g. [\"batch_size\", "
                                        "\"sequence_length\"]; with dim_value. Not with input_name.")
    dim_value: list[int] | None = Field(None, description="The value for each dim_param (>= 0), same order.")
    input_name: list[str] | None = Field(None, description="Inputs whose whole shape to fix; with input_shape. "
                                         "Not with dim_param.")
    input_shape: list[list[int]] | None = Field(None, description="The fixed shape of each input_name (all > 0).")

    @model_validator(mode="after")
    def _one_way(self) -> DynamicToFixedShapeParams:
        if self.dim_param and self.input_name:
            raise ValueError("dim_param and input_name cannot both be set: fix named dims or whole inputs, not both")
        if not self.dim_param and not self.input_name:
            return self  # checked when the pass runs, so a bare pass type still validates in editors
        if bool(self.dim_param) != bool(self.dim_value):
            raise ValueError("dim_param and dim_value go together: give one value per name")
        if bool(self.input_name) != bool(self.input_shape):
            raise ValueError("input_name and input_shape go together: give one shape per input")
        if self.dim_param and (len(self.dim_param) != len(self.dim_value or []) or
                               any(v < 0 for v in self.dim_value or [])):
            raise ValueError("dim_value needs one value >= 0 per dim_param")
        if self.input_name and (len(self.input_name) != len(self.input_shape or []) or
                                any(d <= 0 for shape in self.input_shape or [] for d in shape)):
            raise ValueError("input_shape needs one shape of positive sizes per input_name")
        return self


class DynamicToFixedShape(Pass):
    name = "DynamicToFixedShape"
    aliases = ()
    description = ("Replaces dynamic input dimensions with fixed sizes using onnxruntime.tools.make_dynamic_shape_fixed "
                   "(by dim_param name, or whole input shapes): for EPs that need static shapes (NNAPI, CoreML, QNN) "
                   "and static-shape calibration.")
    Params = DynamicToFixedShapeParams
    accepts = frozenset({"onnx"})
    produces = "onnx"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, DynamicToFixedShapeParams)
        onnx_io.require_onnx(model, self.name)
        if not params.dim_param and not params.input_name:
            raise PassError(f"{self.name}: nothing to fix", fix="set dim_param + dim_value (e.g. [\"batch_size\"], "
                            "[1]) or input_name + input_shape")
        from onnxruntime.tools.onnx_model_utils import (
            fix_output_shapes,
            make_dim_param_fixed,
            make_input_shape_fixed,
        )

        ctx.progress(0.1, "loading model")
        proto = onnx_io.load(model)
        inputs = {value.name for value in proto.graph.input}
        ctx.progress(0.4, "fixing shapes")
        try:
            if params.dim_param:
                for name, value in zip(params.dim_param, params.dim_value or []):
                    make_dim_param_fixed(proto.graph, name, value)
            else:
                for name, shape in zip(params.input_name or [], params.input_shape or []):
                    if name not in inputs:
                        raise PassError(f"{self.name}: input_name {name!r} is not an input of the model",
                                        fix=f"use one of {', '.join(sorted(inputs))}")
                    make_input_shape_fixed(proto.graph, name, shape)
            fix_output_shapes(proto)
        except PassError:
            raise
        except Exception as exc:
            raise PassError(f"{self.name} failed: {type(exc).__name__}: {exc}",
                            fix="check that the shapes match the model's inputs (rank and fixed dims)") from exc
        ctx.progress(0.85, "saving")
        onnx_io.save(proto, ctx.output_dir)
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.progress(1.0, "shapes fixed")
        return onnx_io.output_ref(model, ctx.output_dir)
