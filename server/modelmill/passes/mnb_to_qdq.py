"""MatMulNBitsToQDQ: com.microsoft MatMulNBits → DequantizeLinear (block-wise, opset 21) + MatMul (+ Add for a bias).

MatMulNBits keeps the weight as [N, K] codes packed along K with one scale (and optional packed zero point) per
block of ``block_size``; the QDQ form has the codes as a [K, N] uint4/int4/uint8/int8 initializer (or [N, K] and a
Transpose with ``use_transpose_op``) that a standard DequantizeLinear expands, so EPs without the contrib op (and
tools that read QDQ) can use the model. The conversion is exact: DQ computes (code - zero_point) * scale as
MatMulNBits does, with MatMulNBits' default zero point (2^(bits-1)) written out where the node has none.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError, RunCancelled
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams

if TYPE_CHECKING:
    import numpy as np
    import onnx


class MatMulNBitsToQDQParams(OnnxOutputParams):
    use_transpose_op: bool = Field(False, description="Keep the codes as [N, K] and add a Transpose after the "
                                   "DequantizeLinear, instead of transposing the initializer. Can be faster on some "
                                   "EPs (DirectML).")
    use_int4: bool = Field(False, description="Store 4-bit codes as int4 (shifted by -8) instead of uint4. Olive "
                           "deprecates it in favour of use_signed_int.")
    use_signed_int: bool = Field(False, description="Store codes as signed int2/int4/int8 (shifted by -2^(bits-1)) "
                                 "instead of unsigned; a zero point that is then all 0 is left out.")
    add_zero_point: bool = Field(False, description="Write a zero point even where it is 0 (signed codes of "
                                 "symmetric weights); by default such zero points are left out.")
    nodes_to_exclude: list[str] | None = Field(None, description="Names of MatMulNBits nodes to leave as they are.")


class MatMulNBitsToQDQ(Pass):
    name = "MatMulNBitsToQDQ"
    aliases = ()
    description = ("Rewrites com.microsoft MatMulNBits nodes (int2/4/8 weights with constant inputs) as standard "
                   "DequantizeLinear + MatMul (+ Add for a bias), the QDQ form other EPs and tools read; the "
                   "model's opset becomes at least 21 (25 with 2-bit weights). Outputs stay the same.")
    Params = MatMulNBitsToQDQParams
    accepts = frozenset({"onnx"})
    produces = "onnx"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, MatMulNBitsToQDQParams)
        onnx_io.require_onnx(model, self.name)
        ctx.progress(0.05, "loading model")
        proto = onnx_io.load(model)
        graph = proto.graph
        excluded = set(params.nodes_to_exclude or [])
        targets = [n for n in graph.node if n.op_type == "MatMulNBits" and n.domain == "com.microsoft"
                   and n.name not in excluded]
        if not targets:
            raise PassError(f"{self.name}: {model.model_file.name} has no MatMulNBits node to convert",
                            fix="quantize first (OnnxBlockWiseRtnQuantization, ModelBuilder int4), check "
                                "nodes_to_exclude, or drop this pass")
        initializers = {tensor.name: tensor for tensor in graph.initializer}
        graph_inputs = {value.name for value in graph.input}
        converted, skipped, max_opset = 0, [], 21
        for index, node in enumerate(targets):
            if ctx.cancel.is_set():
                raise RunCancelled()
            ctx.progress(0.1 + 0.75 * index / len(targets), f"converting {index + 1}/{len(targets)}")
            reason = convert_node(graph, node, initializers, graph_inputs, params)
            if reason:
                skipped.append(f"{node.name or node.output[0]}: {reason}")
                continue
            converted += 1
            if _attributes(node)["bits"] == 2:
                max_opset = 25
        if not converted:
            raise PassError(f"{self.name}: none of the {len(targets)} MatMulNBits nodes could be converted: "
                            f"{'; '.join(skipped[:3])}", fix="only constant weights with 2/4/8 bits and a trivial "
                            "g_idx can be written as DequantizeLinear")
        _drop_unused_initializers(graph)
        _raise_opset(proto, max_opset)
        for line in skipped:
            ctx.warn(f"{self.name}: kept MatMulNBits {line}")
        ctx.log(f"{converted} of {len(targets)} MatMulNBits nodes converted to DequantizeLinear + MatMul")
        ctx.report("converted", converted)
        ctx.progress(0.88, "saving")
        onnx_io.save(proto, ctx.output_dir)
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.progress(1.0, f"{converted} nodes converted")
        return onnx_io.output_ref(model, ctx.output_dir, quantization_encoding="qdq")


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    import onnx

    return {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}


def _elem_type(bits: int, signed: bool) -> int:
    from onnx import TensorProto

    return {(2, True): TensorProto.INT2, (2, False): TensorProto.UINT2, (4, True): TensorProto.INT4,
            (4, False): TensorProto.UINT4, (8, True): TensorProto.INT8, (8, False): TensorProto.UINT8}[(bits, signed)]


def convert_node(graph: onnx.GraphProto, node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto],
                 graph_inputs: set[str], params: MatMulNBitsToQDQParams) -> str | None:
    """Replace one MatMulNBits node in ``graph`` by its QDQ form; the reason it cannot be, or None when done."""
    import numpy as np
    from onnx import helper, numpy_helper

    inputs = list(node.input) + [""] * (6 - len(node.input))
    constant = [name for name in inputs[1:] if name]
    if any(name not in initializers or name in graph_inputs for name in constant):
        return "its weight, scales or zero points are not constant initializers"
    attributes = _attributes(node)
    k, n, block_size, bits = attributes["K"], attributes["N"], attributes["block_size"], attributes.get("bits", 4)
    if bits not in (2, 4, 8):
        return f"{bits}-bit weights (DequantizeLinear takes 2, 4 or 8)"
    blocks = math.ceil(k / block_size)
    if inputs[4]:
        g_idx = numpy_helper.to_array(initializers[inputs[4]])
        if not np.array_equal(g_idx, np.arange(k, dtype=np.int32) // block_size):
            return "a reordered g_idx (act-order), which DequantizeLinear cannot express"
    zero_points = numpy_helper.to_array(initializers[inputs[3]]) if inputs[3] else None
    if zero_points is not None and zero_points.dtype != np.uint8:
        return "float zero points"
    per_axis = blocks == 1
    signed = params.use_signed_int or (bits == 4 and params.use_int4)
    midpoint = 1 << (bits - 1)
    scales = numpy_helper.to_array(initializers[inputs[2]])
    base = _unique_name(graph, node.name or node.output[0], "DequantizeLinear")

    codes = unpack_rows(numpy_helper.to_array(initializers[inputs[1]]).reshape(n, -1), bits)[:, :k]
    dq_inputs = [_quantized(f"{base}.qweight", codes, bits, signed, params.use_transpose_op)]
    scale_values = scales.reshape(n, -1)
    scale_values = scale_values.flatten() if per_axis else scale_values
    dq_inputs.append(numpy_helper.from_array(scale_values if params.use_transpose_op else scale_values.T,
                                             f"{base}.scales"))
    if zero_points is not None:
        zp = unpack_rows(zero_points.reshape(n, -1), bits)[:, :blocks]
    else:
        zp = np.full((n, blocks), midpoint, np.uint8)  # MatMulNBits' zero point when it has none
    zp = zp.flatten() if per_axis else zp
    if params.add_zero_point or not signed or np.any(zp != midpoint):
        dq_inputs.append(_quantized(f"{base}.qzeros", zp, bits, signed, params.use_transpose_op))
    graph.initializer.extend(dq_inputs)

    nodes = [helper.make_node("DequantizeLinear", [t.name for t in dq_inputs], [f"{base}/output_0"], name=base,
                              axis=(1 if params.use_transpose_op else 0) ^ (1 if per_axis else 0),
                              **({} if per_axis else {"block_size": block_size}))]
    weight = nodes[-1].output[0]
    if params.use_transpose_op:
        name = _unique_name(graph, node.name or node.output[0], "Transpose")
        nodes.append(helper.make_node("Transpose", [weight], [f"{name}/output_0"], name=name, perm=[1, 0]))
        weight = nodes[-1].output[0]
    matmul = _unique_name(graph, node.name or node.output[0], "MatMul")
    output = node.output[0]
    nodes.append(helper.make_node("MatMul", [inputs[0], weight], [f"{matmul}/output_0" if inputs[5] else output],
                                  name=matmul))
    if inputs[5]:
        add = _unique_name(graph, node.name or node.output[0], "Add")
        nodes.append(helper.make_node("Add", [nodes[-1].output[0], inputs[5]], [output], name=add))
    position = list(graph.node).index(node)
    graph.node.remove(node)
    for offset, new in enumerate(nodes):
        graph.node.insert(position + offset, new)
    return None


def _quantized(name: str, values: np.ndarray, bits: int, signed: bool, keep_layout: bool) -> onnx.TensorProto:
    """An int2/4/8 initializer of ``values`` (unsigned codes, [N, ...]); transposed unless ``keep_layout``."""
    import numpy as np
    from onnx import helper

    values = values.astype(np.int16)
    if values.ndim == 2 and not keep_layout:
        values = values.T
    if signed:
        values = values - (1 << (bits - 1))
    return helper.make_tensor(name, _elem_type(bits, signed), values.shape, pack_flat(values, bits).tobytes(),
                              raw=True)


def unpack_rows(packed: np.ndarray, bits: int) -> np.ndarray:
    """uint8 rows holding 8/bits codes per byte (lowest bits first) → one code per uint8."""
    import numpy as np

    if bits == 8:
        return packed.astype(np.uint8)
    per_byte = 8 // bits
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    codes = (packed[:, :, None] >> shifts[None, None, :]) & ((1 << bits) - 1)
    return codes.reshape(packed.shape[0], -1).astype(np.uint8)


def pack_flat(values: np.ndarray, bits: int) -> np.ndarray:
    """Codes (any int dtype, two's complement for signed) → ONNX's packed sub-byte layout (lowest bits first)."""
    import numpy as np

    flat = (values.flatten().astype(np.int16) & ((1 << bits) - 1)).astype(np.uint8)
    if bits == 8:
        return flat
    per_byte = 8 // bits
    flat = np.pad(flat, (0, -len(flat) % per_byte))
    packed = np.zeros(len(flat) // per_byte, np.uint8)
    for index in range(per_byte):
        packed |= flat[index::per_byte] << (index * bits)
    return packed


def _unique_name(graph: onnx.GraphProto, old: str, op_type: str) -> str:
    """Olive's naming: MatMulNBits/MatMul_Q4/MatMul_Q8 in the old name replaced by op_type, made unique."""
    base = next((old.replace(tag, op_type) for tag in ("MatMulNBits", "MatMul_Q4", "MatMul_Q8") if tag in old),
                f"{old}_{op_type}")
    taken = {node.name for node in graph.node}
    name, index = base, 0
    while name in taken:
        name, index = f"{base}_{index}", index + 1
    return name


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """Remove the initializers no node reads any more (subgraphs included: they may read outer names)."""
    used = _used_names(graph) | {value.name for value in graph.output}
    keep = [tensor for tensor in graph.initializer if tensor.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


def _used_names(graph: onnx.GraphProto) -> set[str]:
    used: set[str] = set()
    for node in graph.node:
        used.update(node.input)
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                used |= _used_names(subgraph)
    return used


def _raise_opset(proto: onnx.ModelProto, version: int) -> None:
    """DequantizeLinear with block_size needs opset 21 (int2: 25), and the IR version that goes with it."""
    from onnx import helper

    default = next((o for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if default is None:
        default = proto.opset_import.add(domain="", version=version)
    default.version = max(default.version, version)
    proto.ir_version = max(proto.ir_version, helper.find_min_ir_version_for([default]))
