"""Surgeons that rewrite RMS/L2 normalization patterns."""

from __future__ import annotations

from typing import Any

from modelmill.passes.surgeons import surgeon


def _graph(model: Any) -> Any:
    from modelmill.passes.surgeons.graph import Graph

    return Graph(model)


def _only_child(graph: Any, node: Any, op_type: str) -> Any:
    children = graph.consumers(node.output[0])
    if len(children) == 1 and children[0].op_type == op_type and not graph.is_output(node.output[0]):
        return children[0]
    return None


def _scaled_weight(graph: Any, weight: str, scaled: dict[str, str]) -> str | None:
    """An initializer holding weight * sqrt(N) (N = its last dim; [sqrt(N)] for an all-ones weight)."""
    import numpy as np

    if weight in scaled:
        return scaled[weight]
    array = graph.array(weight)
    if array is None or array.ndim == 0:
        return None
    factor = np.sqrt(array.shape[-1]).astype(array.dtype)
    new = np.array([factor], dtype=array.dtype) if np.all(array == 1) else (array * factor).astype(array.dtype)
    scaled[weight] = graph.add_initializer(new, f"{weight}_l2norm")
    return scaled[weight]


@surgeon("RMSNormToL2Norm", "Replaces Pow→ReduceMean→Add→Sqrt→Div(→Mul) RMSNorm subgraphs with LpNormalization "
                            "(p=2) and the weight times sqrt(hidden size); epsilon is dropped.")
def rmsnorm_to_l2norm(model: Any) -> Any:
    graph = _graph(model)
    scaled: dict[str, str] = {}
    for pow_node in [n for n in model.graph.node if n.op_type == "Pow"]:
        root = pow_node.input[0]
        chain, current = [pow_node], pow_node
        for op_type in ("ReduceMean", "Add", "Sqrt", "Div", "Mul"):
            current = _only_child(graph, current, op_type)
            if current is None:
                break
            chain.append(current)
            if root in current.input:
                break
        if len(chain) < 5 or root not in chain[-1].input:
            continue
        end = chain[-1]
        children = graph.consumers(end.output[0])
        weight_mul = children[0] if len(children) == 1 else None
        if weight_mul is not None and weight_mul.op_type == "Cast":
            after_cast = graph.consumers(weight_mul.output[0])
            weight_mul = after_cast[0] if len(after_cast) == 1 else None
        if weight_mul is None or weight_mul.op_type != "Mul":
            continue
        weight = next((name for name in weight_mul.input if graph.array(name) is not None), None)
        new_weight = _scaled_weight(graph, weight, scaled) if weight else None
        if new_weight is None:
            continue
        weight_mul.input[list(weight_mul.input).index(weight)] = new_weight
        graph.add_node("LpNormalization", [root], [end.output[0]], axis=-1, p=2)
        for node in chain:
            graph.remove_node(node)
    graph.prune()
    return model


def _simplified_layer_norms(model: Any) -> list[Any]:
    kinds = {"SimplifiedLayerNormalization": 2, "SkipSimplifiedLayerNormalization": 3}
    return [n for n in model.graph.node if n.op_type in kinds and len([i for i in n.input if i]) == kinds[n.op_type]]


def _epsilon(node: Any) -> float:
    import onnx

    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"), 1e-5)


def _normalized_input(graph: Any, node: Any) -> str:
    """The tensor to normalize: input + skip for the Skip variant (its sum output is rewired to it)."""
    if node.op_type != "SkipSimplifiedLayerNormalization":
        return node.input[0]
    outputs = [name for name in node.output]
    sum_name = outputs[3] if len(outputs) > 3 and outputs[3] else None
    add = graph.add_node("Add", [node.input[0], node.input[1]], [sum_name] if sum_name else 1)
    return add.output[0]


@surgeon("SimplifiedLayerNormToRMSNorm", "Replaces com.microsoft (Skip)SimplifiedLayerNormalization with the RMSNorm "
                                         "subgraph in standard ops: x / sqrt(mean(x²) + eps) * gamma.")
def simplified_layer_norm_to_rmsnorm(model: Any) -> Any:
    import numpy as np

    from modelmill.passes.surgeons.graph import np_dtype

    graph = _graph(model)
    for node in _simplified_layer_norms(model):
        gamma = node.input[-1]
        x = _normalized_input(graph, node)
        dtype = np_dtype(graph.elem_type(node.input[0]) or 1)
        square = graph.add_node("Pow", [x, graph.add_initializer(np.array([2.0], dtype=dtype), "rms_two")])
        if graph.opset() >= 18:
            axes = graph.add_initializer(np.array([-1], dtype=np.int64), "rms_axes")
            mean = graph.add_node("ReduceMean", [square.output[0], axes], keepdims=1)
        else:
            mean = graph.add_node("ReduceMean", [square.output[0]], axes=[-1], keepdims=1)
        eps = graph.add_initializer(np.array([_epsilon(node)], dtype=dtype), "rms_eps")
        plus = graph.add_node("Add", [mean.output[0], eps])
        root = graph.add_node("Sqrt", [plus.output[0]])
        div = graph.add_node("Div", [x, root.output[0]])
        graph.add_node("Mul", [div.output[0], gamma], [node.output[0]])
        graph.remove_node(node)
    graph.prune()
    return model


@surgeon("SimplifiedLayerNormToL2Norm", "Replaces com.microsoft (Skip)SimplifiedLayerNormalization with "
                                        "LpNormalization (p=2) times gamma * sqrt(hidden size); epsilon is dropped.")
def simplified_layer_norm_to_l2norm(model: Any) -> Any:
    graph = _graph(model)
    scaled: dict[str, str] = {}
    for node in _simplified_layer_norms(model):
        weight = _scaled_weight(graph, node.input[-1], scaled)
        if weight is None:
            continue
        x = _normalized_input(graph, node)
        norm = graph.add_node("LpNormalization", [x], axis=-1, p=2)
        graph.add_node("Mul", [norm.output[0], weight], [node.output[0]])
        graph.remove_node(node)
    graph.prune()
    return model


@surgeon("PowReduceSumPowDiv2LpNorm", "Replaces x / Pow(ReduceSum(Pow(x, 2)), 0.5) with LpNormalization (p=2, "
                                      "last axis).")
def pow_reduce_sum_pow_div_to_lpnorm(model: Any) -> Any:
    graph = _graph(model)
    for pow_node in [n for n in model.graph.node if n.op_type == "Pow"]:
        exponent = graph.array(pow_node.input[1])
        if exponent is None or exponent.size != 1 or float(exponent.ravel()[0]) != 2.0:
            continue
        reduce = _only_child(graph, pow_node, "ReduceSum")
        sqrt = _only_child(graph, reduce, "Pow") if reduce is not None else None
        div = _only_child(graph, sqrt, "Div") if sqrt is not None else None
        half = graph.array(sqrt.input[1]) if sqrt is not None else None
        if div is None or half is None or float(half.ravel()[0]) != 0.5 or div.input[0] != pow_node.input[0]:
            continue
        if not _reduces_last_axis(graph, reduce):
            continue
        graph.add_node("LpNormalization", [pow_node.input[0]], [div.output[0]], axis=-1, p=2)
        for node in (pow_node, reduce, sqrt, div):
            graph.remove_node(node)
    graph.prune()
    return model


def _reduces_last_axis(graph: Any, reduce: Any) -> bool:
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in reduce.attribute}
    if not attrs.get("keepdims", 1):
        return False
    axes = graph.array(reduce.input[1]) if len(reduce.input) > 1 and reduce.input[1] else attrs.get("axes")
    if axes is None:
        return False
    rank = len(graph.shape(reduce.input[0]) or [])
    return [int(a) for a in list(axes)] in ([-1], [rank - 1] if rank else [-1])
