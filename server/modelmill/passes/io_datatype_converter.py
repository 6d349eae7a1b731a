"""OnnxIODataTypeConverter (Olive's old name OnnxIOFloat16ToFloat32): Casts at graph inputs/outputs."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams


def _check_elem_type(value: int) -> int:
    import onnx

    if value not in onnx.TensorProto.DataType.values():
        raise ValueError(f"{value} is not an ONNX TensorProto data type number (1 = float32, 10 = float16, "
                         "16 = bfloat16)")
    return value


class OnnxIODataTypeConverterParams(OnnxOutputParams):
    name_pattern: str = Field("logits", description="Regular expression: only inputs/outputs whose name matches "
                              "are converted (re.search). Empty converts every one of source_dtype.")
    source_dtype: int = Field(10, description="ONNX data type number to convert from (10 = float16).")
    target_dtype: int = Field(1, description="ONNX data type number the graph inputs/outputs get (1 = float32).")

    @field_validator("source_dtype", "target_dtype")
    @classmethod
    def _elem_type(cls, value: int) -> int:
        return _check_elem_type(value)

    @field_validator("name_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"name_pattern is not a valid regular expression: {exc}") from exc
        return value


class OnnxIODataTypeConverter(Pass):
    name = "OnnxIODataTypeConverter"
    aliases = ("OnnxIOFloat16ToFloat32",)
    description = ("Changes the type of matching graph inputs/outputs (default: float16 'logits' → float32) by "
                   "adding Cast nodes; the graph inside keeps its type.")
    Params = OnnxIODataTypeConverterParams
    accepts = frozenset({"onnx"})
    produces = "onnx"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OnnxIODataTypeConverterParams)
        onnx_io.require_onnx(model, self.name)
        import onnx

        from modelmill.passes.surgeons.graph import Graph, topological_sort

        ctx.progress(0.1, "loading model")
        proto = onnx_io.load(model)
        graph = Graph(proto)
        pattern = re.compile(params.name_pattern) if params.name_pattern else None

        def matches(value: onnx.ValueInfoProto) -> bool:
            return value.type.tensor_type.elem_type == params.source_dtype and (
                pattern is None or bool(pattern.search(value.name)))

        converted = []
        for value in [v for v in proto.graph.input if matches(v)]:
            inner = graph.fresh(f"{value.name}_converted")
            graph.replace_uses(value.name, inner)
            proto.graph.node.insert(0, onnx.helper.make_node("Cast", [value.name], [inner], to=params.source_dtype,
                                                             name=f"{value.name}_cast"))
            value.type.tensor_type.elem_type = params.target_dtype
            converted.append(value.name)
        for value in [v for v in proto.graph.output if matches(v)]:
            inner = graph.fresh(f"{value.name}_converted")
            for node in proto.graph.node:
                node.output[:] = [inner if name == value.name else name for name in node.output]
                node.input[:] = [inner if name == value.name else name for name in node.input]
            proto.graph.node.append(onnx.helper.make_node("Cast", [inner], [value.name], to=params.target_dtype,
                                                          name=f"{value.name}_cast"))
            value.type.tensor_type.elem_type = params.target_dtype
            converted.append(value.name)
        if not converted:  # Olive passes the model through unchanged
            ctx.warn(f"{self.name}: no graph input or output of type {params.source_dtype} matches name_pattern "
                     f"{params.name_pattern!r}; the model is unchanged (drop the pass or widen name_pattern)")
        topological_sort(proto.graph)
        ctx.log(f"converted {len(converted)} inputs/outputs: {', '.join(converted)}")
        ctx.progress(0.85, "saving")
        onnx_io.save(proto, ctx.output_dir)
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.progress(1.0, "converted")
        return onnx_io.output_ref(model, ctx.output_dir)
