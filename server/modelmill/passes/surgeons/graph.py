"""Small helpers over an onnx.ModelProto's main graph, shared by the surgeons."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper


class Graph:
    """The main graph of ``model`` with name lookups; edits go straight to the proto."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self._counter = itertools.count()

    # lookups -------------------------------------------------------------------------------------
    def producer(self, tensor: str) -> onnx.NodeProto | None:
        return next((node for node in self.graph.node if tensor in node.output), None)

    def consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [node for node in self.graph.node if tensor in node.input]

    def node(self, name: str) -> onnx.NodeProto | None:
        return next((node for node in self.graph.node if node.name == name), None)

    def initializer(self, name: str) -> onnx.TensorProto | None:
        return next((init for init in self.graph.initializer if init.name == name), None)

    def array(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant-node output, else None."""
        init = self.initializer(name)
        if init is not None:
            return numpy_helper.to_array(init)
        node = self.producer(name)
        if node is not None and node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            return numpy_helper.to_array(node.attribute[0].t)
        return None

    def is_input(self, name: str) -> bool:
        return any(value.name == name for value in self.graph.input)

    def is_output(self, name: str) -> bool:
        return any(value.name == name for value in self.graph.output)

    def value_info(self, name: str) -> onnx.ValueInfoProto | None:
        return next((v for v in [*self.graph.input, *self.graph.output, *self.graph.value_info] if v.name == name),
                    None)

    def elem_type(self, name: str) -> int | None:
        init = self.initializer(name)
        if init is not None:
            return init.data_type
        info = self.value_info(name)
        if info is not None and info.type.tensor_type.elem_type:
            return info.type.tensor_type.elem_type
        return None

    def shape(self, name: str) -> list[int | str] | None:
        init = self.initializer(name)
        if init is not None:
            return list(init.dims)
        info = self.value_info(name)
        if info is None or not info.type.tensor_type.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in info.type.tensor_type.shape.dim]

    def opset(self, domain: str = "") -> int:
        return next((o.version for o in self.model.opset_import if o.domain in (domain, "ai.onnx" if not domain
                                                                               else domain)), 13)

    # edits ---------------------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """A tensor/node name not used in the graph."""
        used = {n for node in self.graph.node for n in (*node.input, *node.output, node.name)}
        used |= {init.name for init in self.graph.initializer}
        while True:
            name = f"{base}_{next(self._counter)}"
            if name not in used:
                return name

    def add_initializer(self, array: np.ndarray, base: str) -> str:
        name = self.fresh(base)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def set_initializer(self, name: str, array: np.ndarray) -> None:
        init = self.initializer(name)
        assert init is not None, name
        init.CopyFrom(numpy_helper.from_array(np.asarray(array), name))

    def add_node(self, op_type: str, inputs: Iterable[str], outputs: int | list[str] = 1, *,
                 after: onnx.NodeProto | None = None, domain: str = "", **attrs: Any) -> onnx.NodeProto:
        """Add a node; ``outputs`` is a count of fresh names or the names. Inserted after ``after`` if given."""
        name = self.fresh(op_type)
        names = [self.fresh(f"{name}_out") for _ in range(outputs)] if isinstance(outputs, int) else outputs
        node = onnx.helper.make_node(op_type, list(inputs), names, name=name, domain=domain or None, **attrs)
        if after is None:
            self.graph.node.append(node)
        else:
            index = list(self.graph.node).index(after) + 1
            self.graph.node.insert(index, node)
        return self.graph.node[len(self.graph.node) - 1 if after is None else index]

    def remove_node(self, node: onnx.NodeProto) -> None:
        self.graph.node.remove(node)

    def replace_uses(self, old: str, new: str, keep_outputs: bool = False) -> None:
        """Every node input named ``old`` reads ``new``; graph outputs too unless ``keep_outputs``."""
        for node in self.graph.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    _rename_in_subgraph(attr.g, old, new)
        if not keep_outputs:
            for output in self.graph.output:
                if output.name == old:
                    output.name = new

    def rename_tensor(self, old: str, new: str) -> None:
        """Rename a tensor everywhere: producer, consumers, graph I/O, value_info, initializer."""
        for node in self.graph.node:
            node.input[:] = [new if name == old else name for name in node.input]
            node.output[:] = [new if name == old else name for name in node.output]
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    _rename_in_subgraph(attr.g, old, new)
        for value in [*self.graph.input, *self.graph.output, *self.graph.value_info]:
            if value.name == old:
                value.name = new
        for init in self.graph.initializer:
            if init.name == old:
                init.name = new

    def prune(self) -> None:
        """Drop nodes and initializers nothing reaches from the graph outputs."""
        topological_sort(self.graph)
        needed = {output.name for output in self.graph.output}
        keep: set[int] = set()
        nodes = list(self.graph.node)
        for index in range(len(nodes) - 1, -1, -1):
            node = nodes[index]
            if any(name in needed for name in node.output if name):
                keep.add(index)
                needed.update(name for name in node.input if name)
                needed.update(_subgraph_inputs(node))
        for index in sorted(set(range(len(nodes))) - keep, reverse=True):
            del self.graph.node[index]
        for init in list(self.graph.initializer):
            if init.name not in needed:
                self.graph.initializer.remove(init)
        for info in list(self.graph.value_info):
            if info.name not in needed:
                self.graph.value_info.remove(info)


def _rename_in_subgraph(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename_in_subgraph(attr.g, old, new)


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Outer-scope names a node's subgraphs read."""
    names: set[str] = set()
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            for inner in attr.g.node:
                names.update(inner.input)
                names.update(_subgraph_inputs(inner))
    return names


def np_dtype(elem_type: int) -> np.dtype:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node follows the producers of its inputs (surgeons append nodes)."""
    available = {value.name for value in graph.input} | {init.name for init in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        progressed = False
        rest = []
        for node in pending:
            if all(name in available for name in node.input) and _subgraph_inputs(node) - available <= _local_names(node):
                ordered.append(node)
                available.update(node.output)
                progressed = True
            else:
                rest.append(node)
        if not progressed:  # a cycle or outer-scope names: keep the remaining order as it is
            ordered.extend(rest)
            break
        pending = rest
    copies = [onnx.NodeProto() for _ in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def _local_names(node: onnx.NodeProto) -> set[str]:
    """Names defined inside a node's subgraphs (their inputs, initializers and node outputs)."""
    names: set[str] = set()
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            names.update(v.name for v in attr.g.input)
            names.update(i.name for i in attr.g.initializer)
            for inner in attr.g.node:
                names.update(inner.output)
                names.update(_local_names(inner))
    return names
