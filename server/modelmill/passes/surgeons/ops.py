"""Surgeons that rewrite single ops or small op patterns into equivalent ones."""

from __future__ import annotations

from typing import Any

from modelmill.passes.surgeons import surgeon


def _graph(model: Any) -> Any:
    from modelmill.passes.surgeons.graph import Graph

    return Graph(model)


def _scalar(graph: Any, value: float, like: str, base: str) -> str:
    """An initializer holding ``value`` in the float type of tensor ``like`` (float32 when unknown)."""
    import numpy as np

    from modelmill.passes.surgeons.graph import np_dtype

    elem = graph.elem_type(like) or 1
    return graph.add_initializer(np.array(value, dtype=np_dtype(elem)), base)


@surgeon("ReplaceErfWithTanh", "Replaces Erf(x) with Tanh(605/503 * x), an approximation for hardware without Erf.")
def replace_erf_with_tanh(model: Any) -> Any:
    graph = _graph(model)
    for node in [n for n in model.graph.node if n.op_type == "Erf" and n.domain in ("", "ai.onnx")]:
        scale = _scalar(graph, 605 / 503, node.input[0], "erf_tanh_scale")
        mul = graph.add_node("Mul", [node.input[0], scale])
        graph.add_node("Tanh", [mul.output[0]], list(node.output))
        graph.remove_node(node)
    return model


@surgeon("DecomposeQuickGelu", "Replaces com.microsoft QuickGelu(x) with x * Sigmoid(alpha * x) in standard ops.")
def decompose_quick_gelu(model: Any) -> Any:
    import onnx

    graph = _graph(model)
    for node in [n for n in model.graph.node if n.op_type == "QuickGelu" and n.domain == "com.microsoft"]:
        alpha = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "alpha"), 1.702)
        scaled = graph.add_node("Mul", [node.input[0], _scalar(graph, alpha, node.input[0], "quick_gelu_alpha")])
        sigmoid = graph.add_node("Sigmoid", [scaled.output[0]])
        graph.add_node("Mul", [node.input[0], sigmoid.output[0]], list(node.output))
        graph.remove_node(node)
    return model


@surgeon("ReciprocalMulToDiv", "Replaces Mul(a, Reciprocal(x)) with Div(a, x), so ORT's SimplifiedLayerNorm "
                               "fusion matches rsqrt-based RMSNorm exports.")
def reciprocal_mul_to_div(model: Any) -> Any:
    graph = _graph(model)
    for recip in [n for n in model.graph.node if n.op_type == "Reciprocal"]:
        consumers = graph.consumers(recip.output[0])
        if not consumers or any(c.op_type != "Mul" for c in consumers) or graph.is_output(recip.output[0]):
            continue
        for mul in consumers:
            other = mul.input[1] if mul.input[0] == recip.output[0] else mul.input[0]
            if other == recip.output[0]:  # Mul(r, r): not this pattern
                break
            graph.add_node("Div", [other, recip.input[0]], list(mul.output))
            graph.remove_node(mul)
        else:
            graph.remove_node(recip)
    return model


@surgeon("DeduplicateNodes", "Removes nodes whose outputs an earlier node already produces (e.g. duplicate Casts "
                             "from fp16 conversion), which makes a model invalid.")
def deduplicate_nodes(model: Any) -> Any:
    seen: set[str] = set()
    for node in list(model.graph.node):
        if any(name and name in seen for name in node.output):
            model.graph.node.remove(node)
            continue
        seen.update(name for name in node.output if name)
    return model


@surgeon("DeduplicateSubgraphInitializers", "Removes initializers in Loop/If/Scan subgraphs that repeat a name "
                                            "already defined in the subgraph or an enclosing graph.")
def deduplicate_subgraph_initializers(model: Any) -> Any:
    import onnx

    def visit(graph: Any, outer: set[str]) -> None:
        names = set(outer)
        for init in list(graph.initializer):
            if init.name in names:
                graph.initializer.remove(init)
            else:
                names.add(init.name)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g, names)
                for sub in attr.graphs:
                    visit(sub, names)

    outer = {init.name for init in model.graph.initializer}
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                visit(attr.g, outer)
    return model


@surgeon("RemoveMemcpy", "Removes MemcpyToHost/MemcpyFromHost nodes left by GPU-partitioned optimization; ORT "
                         "re-inserts the copies it needs when the session is created.")
def remove_memcpy(model: Any) -> Any:
    import onnx

    def visit(graph: Any) -> None:
        for node in list(graph.node):
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
            if node.op_type not in ("MemcpyToHost", "MemcpyFromHost"):
                continue
            source, target = node.input[0], node.output[0]
            graph.node.remove(node)
            if any(o.name == target for o in graph.output):
                graph.node.append(onnx.helper.make_node("Identity", [source], [target], name=node.name))
            else:
                _rename_reads(graph, target, source)

    visit(model.graph)
    return model


def _rename_reads(graph: Any, old: str, new: str) -> None:
    import onnx

    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename_reads(attr.g, old, new)


@surgeon("ReplaceAttentionMaskValue", "Replaces float constants below threshold (the extended attention mask's "
                                      "float-min) with replacement, which quantizes better.")
def replace_attention_mask_value(model: Any, threshold: float = -3e30, replacement: float = -1e4) -> Any:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    allowed = {"Add", "Mul", "Expand", "Where", "Shape"}
    graph = _graph(model)

    def only_mask_consumers(name: str) -> bool:
        return all(c.op_type in allowed for c in graph.consumers(name))

    def replaced(array: np.ndarray) -> np.ndarray | None:
        if not np.any(array < threshold):
            return None
        array = array.copy()
        array[array < threshold] = replacement
        return array

    for node in model.graph.node:
        if node.op_type not in ("Constant", "ConstantOfShape") or not node.attribute:
            continue
        attr = node.attribute[0]
        if attr.t.data_type != onnx.TensorProto.FLOAT or not only_mask_consumers(node.output[0]):
            continue
        new = replaced(numpy_helper.to_array(attr.t))
        if new is not None:
            attr.t.CopyFrom(numpy_helper.from_array(new, attr.t.name))
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and only_mask_consumers(init.name):
            new = replaced(numpy_helper.to_array(init))
            if new is not None:
                init.CopyFrom(numpy_helper.from_array(new, init.name))
    return model
