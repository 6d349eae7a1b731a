"""Surgeons between MatMul(+Add) and Gemm."""

from __future__ import annotations

from typing import Any

from modelmill.passes.surgeons import surgeon


def _graph(model: Any) -> Any:
    from modelmill.passes.surgeons.graph import Graph

    return Graph(model)


@surgeon("MatMulAddToGemm", "Replaces MatMul(x, W) + b (W 2-D, b 1-D) with Gemm; x of rank > 2 with a static "
                            "inner shape is reshaped to 2-D around the Gemm.")
def matmul_add_to_gemm(model: Any) -> Any:
    import numpy as np

    graph = _graph(model)
    for matmul in [n for n in model.graph.node if n.op_type == "MatMul"]:
        weight_shape = graph.shape(matmul.input[1])
        adds = graph.consumers(matmul.output[0])
        if weight_shape is None or len(weight_shape) != 2 or len(adds) != 1 or adds[0].op_type != "Add":
            continue
        if graph.is_output(matmul.output[0]):
            continue
        add = adds[0]
        bias = add.input[1] if add.input[0] == matmul.output[0] else add.input[0]
        bias_shape = graph.shape(bias)
        if bias_shape is None or len(bias_shape) != 1:
            continue
        x_shape = graph.shape(matmul.input[0])
        if x_shape is None:
            continue
        if len(x_shape) == 2:
            graph.add_node("Gemm", [matmul.input[0], matmul.input[1], bias], [add.output[0]])
        else:
            if not all(isinstance(d, int) and d > 0 for d in x_shape[1:]):
                continue  # needs static inner dims to reshape back
            k = x_shape[-1]
            flat = graph.add_node("Reshape", [matmul.input[0],
                                              graph.add_initializer(np.array([-1, k], dtype=np.int64), "gemm_in")])
            gemm = graph.add_node("Gemm", [flat.output[0], matmul.input[1], bias])
            back = np.array([-1, *x_shape[1:-1], weight_shape[1]], dtype=np.int64)
            graph.add_node("Reshape", [gemm.output[0], graph.add_initializer(back, "gemm_out")], [add.output[0]])
        graph.remove_node(add)
        graph.remove_node(matmul)
    return model


@surgeon("GemmToMatMulAdd", "Replaces Gemm (alpha = beta = 1, no transA) with MatMul (+ Add for the bias), so "
                            "INT4 block quantizers that only take MatMul can quantize its weight; transB is "
                            "folded into a constant weight or a Transpose.")
def gemm_to_matmul_add(model: Any) -> Any:
    import onnx

    graph = _graph(model)
    for gemm in [n for n in model.graph.node if n.op_type == "Gemm"]:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute}
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
            continue
        weight = gemm.input[1]
        if attrs.get("transB", 0):
            array = graph.array(weight)
            if array is not None and graph.initializer(weight) is not None and len(graph.consumers(weight)) == 1:
                graph.set_initializer(weight, array.T.copy())
            else:
                weight = graph.add_node("Transpose", [weight], perm=[1, 0]).output[0]
        has_bias = len(gemm.input) > 2 and gemm.input[2]
        if has_bias:
            matmul = graph.add_node("MatMul", [gemm.input[0], weight])
            graph.add_node("Add", [matmul.output[0], gemm.input[2]], [gemm.output[0]])
        else:
            graph.add_node("MatMul", [gemm.input[0], weight], [gemm.output[0]])
        graph.remove_node(gemm)
    return model
