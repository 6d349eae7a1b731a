"""OnnxFloatToFloat16: onnxruntime.transformers float16 conversion of weights and ops (fp32 → fp16)."""

from __future__ import annotations

from pydantic import Field, model_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams


class OnnxFloatToFloat16Params(OnnxOutputParams):
    min_positive_val: float = Field(1e-7, gt=0, description="Smallest positive magnitude kept: smaller non-zero "
                                    "constants are raised to it so they do not flush to zero in fp16.")
    max_finite_val: float = Field(1e4, gt=0, description="Largest magnitude kept: larger constants are clipped to it "
                                  "(fp16 overflows above 65504).")
    keep_io_types: bool | list[str] = Field(
        False, description="Keep graph inputs and outputs in float32 (Cast nodes are added): true for all, or a list "
                           "of input/output names. False makes float inputs/outputs fp16.")
    use_symbolic_shape_infer: bool = Field(
        True, description="Get tensor types with ORT's symbolic shape inference, which understands contrib ops "
                          "(fused attention etc.). False uses ONNX shape inference.")
    op_block_list: list[str] | None = Field(
        None, description="Op types kept in float32. None uses ORT's default list (TopK, Range, CumSum, ...).")
    op_include_list: list[str] | None = Field(
        None, description="Only these op types are converted; all others stay float32. Not with op_block_list.")
    node_block_list: list[str] | None = Field(None, description="Node names kept in float32.")
    node_include_list: list[str] | None = Field(
        None, description="Only these nodes are converted; all others stay float32. Not with node_block_list.")

    @model_validator(mode="after")
    def _exclusive_lists(self) -> "OnnxFloatToFloat16Params":
        if self.op_block_list is not None and self.op_include_list is not None:
            raise ValueError("op_block_list and op_include_list cannot both be set; use one of them")
        if self.node_block_list is not None and self.node_include_list is not None:
            raise ValueError("node_block_list and node_include_list cannot both be set; use one of them")
        return self


class OnnxFloatToFloat16(Pass):
    name = "OnnxFloatToFloat16"
    aliases = ()
    description = ("Converts float32 weights and ops to float16 with onnxruntime.transformers' float16 converter: half "
                   "the size; fast on GPUs (CUDA/DirectML). Ops without fp16 support stay float32 behind Cast nodes.")
    Params = OnnxFloatToFloat16Params
    accepts = frozenset({"onnx"})
    produces = "onnx"
    supported_precisions = ("fp16",)

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OnnxFloatToFloat16Params)
        onnx_io.require_onnx(model, self.name)
        from modelmill.passes.dynamic_quantization import quiet_ort_logging

        with quiet_ort_logging(ctx):
            from onnxruntime.transformers.onnx_model import OnnxModel

        ctx.progress(0.05, "loading model")
        proto = onnx_io.load(model)
        float_initializers = sum(1 for init in proto.graph.initializer if init.data_type == 1)
        if not float_initializers and not _has_float_io(proto):
            raise PassError(f"{self.name}: {model.model_file.name} has no float32 weights or inputs to convert",
                            fix="drop this pass: the model is already fp16 or quantized")
        op_types = {node.op_type for node in proto.graph.node}
        node_names = {node.name for node in proto.graph.node}
        op_block_list = params.op_block_list
        if params.op_include_list is not None:
            op_block_list = sorted(op_types - set(params.op_include_list))
        node_block_list = params.node_block_list
        if params.node_include_list is not None:
            node_block_list = sorted(node_names - set(params.node_include_list))
        ctx.progress(0.2, "converting to float16")
        wrapper = OnnxModel(proto)
        try:
            with quiet_ort_logging(ctx):
                wrapper.convert_float_to_float16(
                    use_symbolic_shape_infer=params.use_symbolic_shape_infer, min_positive_val=params.min_positive_val,
                    max_finite_val=params.max_finite_val, keep_io_types=params.keep_io_types,
                    op_block_list=op_block_list, node_block_list=node_block_list)
        except Exception as exc:  # noqa: BLE001
            raise PassError(f"{self.name} failed: {type(exc).__name__}: {exc}",
                            fix="try use_symbolic_shape_infer: false, or keep the failing ops in float32 "
                                "(op_block_list)") from exc
        ctx.progress(0.85, "saving")
        onnx_io.save(wrapper.model, ctx.output_dir)
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.progress(1.0, "converted to float16")
        return onnx_io.output_ref(model, ctx.output_dir, precision="fp16")


def _has_float_io(proto: object) -> bool:
    graph = proto.graph  # type: ignore[attr-defined]
    return any(value.type.tensor_type.elem_type == 1 for value in [*graph.input, *graph.output])
