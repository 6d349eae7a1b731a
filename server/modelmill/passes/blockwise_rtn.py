"""Weight-only int4 block quantization of MatMul (and Gather) weights → MatMulNBits / GatherBlockQuantized.

Uses onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer with one of its algorithms:
``rtn`` (DefaultWeightOnlyQuantConfig: ORT's native block-wise round-to-nearest, what Olive's
OnnxBlockWiseRtnQuantization does), ``hqq`` (HQQWeightOnlyQuantConfig, half-quadratic optimization of
scales and zero points) or ``k_quant`` (KQuantWeightOnlyQuantConfig). OnnxHqqQuantization and
OnnxKQuantQuantization are the same pass with another default algorithm, as in Olive.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams, searchable

Algorithm = Literal["rtn", "default", "hqq", "k_quant"]


class OnnxBlockWiseRtnQuantizationParams(OnnxOutputParams):
    algorithm: Algorithm = Field(
        "rtn", description="Weight quantization algorithm: rtn (block-wise round to nearest; 'default' is the same), "
                           "hqq (optimizes scales and zero points, asymmetric, MatMul only, slower) or k_quant "
                           "(llama.cpp-style k-quant search of scales, MatMul only).")
    bits: Literal[4] = Field(4, description="Bits per weight. Only 4 is supported.")
    block_size: int = searchable(128, [32, 64, 128], "Weights per quantization block (a power of two, at least 16). "
                                 "Smaller blocks keep more accuracy; larger ones give a smaller, slightly faster model.")
    axis: int = Field(0, description="Axis of Gather (embedding) weights that blocks run along, when Gather is in "
                      "op_types_to_quantize. MatMul weights are always blocked along their input dimension.")
    is_symmetric: bool = Field(True, description="Symmetric int4 (no zero points). False stores a zero point per "
                               "block: slightly more accurate, slightly larger. hqq is always asymmetric.")
    accuracy_level: Literal[0, 1, 2, 3, 4] = searchable(
        0, [0, 4], "Minimum compute precision of MatMulNBits: 0 unset (the EP's default), 1 fp32, 2 fp16, 3 bf16, "
                   "4 int8 (fastest on CPU, quantizes activations to int8 on the fly).")
    nodes_to_exclude: list[str] | None = Field(None, description="Node names left in float, e.g. [\"/lm_head/MatMul\"].")
    nodes_to_include: list[str] | None = Field(
        None, description="Only quantize these nodes (by name). None quantizes every MatMul (and Gather) with a constant "
                          "weight.")
    op_types_to_quantize: list[Literal["MatMul", "Gather"]] = Field(
        default_factory=lambda: ["MatMul"], description="Op types whose constant weights are quantized. Add Gather to "
        "quantize embedding tables too (GatherBlockQuantized; rtn only).")

    @model_validator(mode="after")
    def _check(self) -> "OnnxBlockWiseRtnQuantizationParams":
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two of at least 16, not {self.block_size}")
        if "Gather" in self.op_types_to_quantize and self.algorithm in ("hqq", "k_quant"):
            raise ValueError(f"algorithm {self.algorithm} quantizes MatMul only; remove Gather from "
                             "op_types_to_quantize or use algorithm rtn")
        return self


class OnnxHqqQuantizationParams(OnnxBlockWiseRtnQuantizationParams):
    algorithm: Algorithm = Field("hqq", description="Weight quantization algorithm (hqq for this pass; see "
                                 "OnnxBlockWiseRtnQuantization for the others).")


class OnnxKQuantQuantizationParams(OnnxBlockWiseRtnQuantizationParams):
    algorithm: Algorithm = Field("k_quant", description="Weight quantization algorithm (k_quant for this pass; see "
                                 "OnnxBlockWiseRtnQuantization for the others).")
    block_size: int = searchable(32, [32, 64, 128], "Weights per quantization block (a power of two, at least 16).")


class OnnxBlockWiseRtnQuantization(Pass):
    name = "OnnxBlockWiseRtnQuantization"
    aliases = ("OnnxMatMul4Quantizer", "OnnxMatMulNBits")
    description = ("Weight-only int4 quantization: MatMul weights are quantized block-wise (round to nearest by default) "
                   "and the MatMuls become MatMulNBits contrib ops (optionally Gather → GatherBlockQuantized). About 7x "
                   "smaller weights; activations stay float. No calibration data needed.")
    Params = OnnxBlockWiseRtnQuantizationParams
    accepts = frozenset({"onnx"})
    produces = "onnx"
    supported_precisions = ("int4",)
    supported_providers = ("CPUExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider")

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OnnxBlockWiseRtnQuantizationParams)
        onnx_io.require_onnx(model, self.name)
        from modelmill.passes.dynamic_quantization import quiet_ort_logging

        with quiet_ort_logging(ctx):
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        ctx.progress(0.05, "loading model")
        proto = onnx_io.load(model)
        candidates = _count_candidates(proto, params)
        if not candidates:
            raise PassError(f"{self.name}: {model.model_file.name} has no {'/'.join(params.op_types_to_quantize)} node "
                            "with a constant 2-D weight to quantize",
                            fix="check nodes_to_include / nodes_to_exclude, or drop this pass for this model")
        algorithm = "rtn" if params.algorithm == "default" else params.algorithm
        ctx.progress(0.15, f"quantizing {candidates} weights to int4 ({algorithm}, block {params.block_size})")
        try:
            with quiet_ort_logging(ctx, quiet_stdout=algorithm == "k_quant"):
                quantizer = MatMulNBitsQuantizer(
                    proto, bits=params.bits, block_size=params.block_size, is_symmetric=params.is_symmetric,
                    accuracy_level=params.accuracy_level or None, nodes_to_exclude=params.nodes_to_exclude or [],
                    nodes_to_include=params.nodes_to_include, op_types_to_quantize=tuple(params.op_types_to_quantize),
                    quant_axes=(("MatMul", 0), ("Gather", params.axis)), algo_config=_algo_config(params, algorithm))
                quantizer.process()
        except Exception as exc:  # noqa: BLE001 - ORT raises plain exceptions
            raise PassError(f"{self.name} ({algorithm}) failed: {type(exc).__name__}: {exc}",
                            fix="exclude the failing nodes (nodes_to_exclude) or try algorithm rtn") from exc
        result = quantizer.model.model
        quantized = sum(1 for node in result.graph.node if node.op_type in ("MatMulNBits", "GatherBlockQuantized"))
        if not quantized:
            raise PassError(f"{self.name}: no weight was quantized",
                            fix="check nodes_to_include / nodes_to_exclude and op_types_to_quantize")
        ctx.log(f"{quantized} of {candidates} nodes quantized to int4")
        ctx.progress(0.85, "saving")
        onnx_io.save(result, ctx.output_dir)
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.progress(1.0, f"{quantized} nodes quantized")
        return onnx_io.output_ref(model, ctx.output_dir, precision="int4")


class OnnxHqqQuantization(OnnxBlockWiseRtnQuantization):
    name = "OnnxHqqQuantization"
    aliases = ()
    description = ("Weight-only int4 quantization of MatMul weights with HQQ (half-quadratic quantization, which "
                   "optimizes each block's scale and zero point); MatMuls become MatMulNBits. No calibration data.")
    Params = OnnxHqqQuantizationParams


class OnnxKQuantQuantization(OnnxBlockWiseRtnQuantization):
    name = "OnnxKQuantQuantization"
    aliases = ()
    description = ("Weight-only int4 quantization of MatMul weights with k-quant (searches each block's scale to "
                   "minimize error, as llama.cpp does); MatMuls become MatMulNBits. No calibration data.")
    Params = OnnxKQuantQuantizationParams


def _algo_config(params: OnnxBlockWiseRtnQuantizationParams, algorithm: str) -> Any:
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    op_types = tuple(params.op_types_to_quantize)
    if algorithm == "hqq":
        return mnq.HQQWeightOnlyQuantConfig(block_size=params.block_size, bits=params.bits, op_types_to_quantize=op_types)
    if algorithm == "k_quant":
        return mnq.KQuantWeightOnlyQuantConfig(op_types_to_quantize=op_types)
    return mnq.DefaultWeightOnlyQuantConfig(
        block_size=params.block_size, is_symmetric=params.is_symmetric, accuracy_level=params.accuracy_level or None,
        op_types_to_quantize=op_types, quant_axes=(("MatMul", 0), ("Gather", params.axis)), bits=params.bits)


def _count_candidates(proto: Any, params: OnnxBlockWiseRtnQuantizationParams) -> int:
    """Nodes the quantizer can take: MatMul with a constant 2-D B, Gather with a constant 2-D table."""
    shapes = {init.name: len(init.dims) for init in proto.graph.initializer}
    excluded = set(params.nodes_to_exclude or [])
    included = set(params.nodes_to_include or [])
    count = 0
    for node in proto.graph.node:
        if node.name in excluded or (included and node.name not in included):
            continue
        if node.op_type == "MatMul" and "MatMul" in params.op_types_to_quantize and len(node.input) > 1:
            count += shapes.get(node.input[1]) == 2
        elif node.op_type == "Gather" and "Gather" in params.op_types_to_quantize:
            count += shapes.get(node.input[0]) == 2
    return count
