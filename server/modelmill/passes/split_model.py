"""SplitModel: one ONNX model → a composite of ``split_0.onnx``, ``split_1.onnx``, ... that run in cascade
(Olive's onnx/split.py), following the split assignments CaptureSplitInfo recorded in the model's metadata.

A node goes to the split of the longest module name its name starts with (``/model/layers.3/mlp/MatMul`` →
``model.layers.3``), never to an earlier split than its inputs' producers; nodes outside every assigned module
go to the split of their first consumer (or split 0). Constants and DequantizeLinear nodes are copied into
every split that consumes them, so quantized weights stay beside their op. A tensor crossing from one split to
a later one becomes an output of the first and an input of the next, with its type from the model's value
infos (or onnxruntime's symbolic shape inference where the export left none).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io, split_metadata
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams

if TYPE_CHECKING:
    import onnx

PASS_THROUGH = frozenset({"QuantizeLinear", "DequantizeLinear"})


class SplitModelParams(OnnxOutputParams):
    split_assignments: dict[str, int] | str | None = Field(
        None, description="Module name → split index, as {\"model.layers.0\": 0, ...} or \"name1=0;name2=1\". "
                          "Overrides the assignments CaptureSplitInfo recorded in the model's metadata.")


class SplitModel(Pass):
    name = "SplitModel"
    description = ("Splits an ONNX model into parts that run in cascade (split_0.onnx, split_1.onnx, ...), following "
                   "the split assignments CaptureSplitInfo recorded (or split_assignments): each part's outputs "
                   "feed the next by name.")
    Params = SplitModelParams
    accepts = frozenset({"onnx"})
    produces = "composite"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, SplitModelParams)
        onnx_io.require_onnx(model, self.name)
        ctx.progress(0.05, "loading model")
        proto = onnx_io.load(model)
        assignments = _assignments(params.split_assignments, proto, model, ctx.pass_name)
        ctx.progress(0.2, "assigning nodes")
        splits = split_graph(proto, assignments)
        kept = [(index, part) for index, part in enumerate(splits) if len(part.graph.node)]
        for index, part in enumerate(splits):
            if not len(part.graph.node):
                ctx.warn(f"split {index} got no nodes: no node name matched its modules; it is left out")
        if len(kept) < 2:
            ctx.warn(f"only {len(kept)} split has nodes: check that the assignments' module names "
                     f"({', '.join(list(assignments)[:3])}...) match the model's node names")
        components = []
        for done, (index, part) in enumerate(kept):
            ctx.progress(0.6 + 0.35 * done / len(kept), f"saving split_{index}")
            file_name = f"split_{index}.onnx"
            onnx_io.save(part, ctx.output_dir, file_name)
            components.append({"name": f"split_{index}", "onnx_file": file_name})
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.report("num_splits", len(components))
        ctx.progress(1.0, f"{len(components)} splits")
        attributes = {**model.attributes, "components": components}
        return ModelRef(kind="composite", path=ctx.output_dir, onnx_file=components[0]["onnx_file"],
                        attributes=attributes)


def _assignments(given: dict[str, int] | str | None, proto: "onnx.ModelProto", model: ModelRef,
                 pass_name: str) -> dict[str, int]:
    where = f"passes.{pass_name}.split_assignments"
    value: Any = given
    if value is None:
        value = next((prop.value for prop in proto.metadata_props if prop.key == split_metadata.METADATA_KEY), None)
        where = f"{model.model_file} metadata_props"
    if not value:
        raise PassError(f"SplitModel: no split assignments found in the metadata of {model.model_file}",
                        fix="put CaptureSplitInfo (num_splits or cost_model) before the conversion pass, or set "
                            "split_assignments, e.g. \"model.layers.0=0;model.layers.1=1\"")
    if isinstance(value, str):
        try:
            value = split_metadata.decode(value)
        except ValueError as exc:
            raise PassError(f"SplitModel: split assignments in {where}: {exc}",
                            fix="write them as name1=0;name2=1", where=where) from exc
    if any(index < 0 for index in value.values()):
        raise PassError("SplitModel: split indices must be >= 0", fix="number the splits from 0", where=where)
    return dict(value)


def assignment(node_name: str, assignments: dict[str, int]) -> int | None:
    """The split of the longest assigned module that ``node_name`` (``/a/b.0/Op``) lies in."""
    parts = node_name.replace("/", ".").lstrip(".").split(".")
    while parts:
        index = assignments.get(".".join(parts))
        if index is not None:
            return index
        parts.pop()
    return None


# ------------------------------------------------------------------ the graph


def _subgraph_inputs(node: "onnx.NodeProto") -> list[str]:
    """Outer-scope values that the node's subgraphs (If/Loop/Scan bodies) read."""
    import onnx

    found: list[str] = []

    def visit(graph: "onnx.GraphProto", outer_defined: set[str]) -> None:
        defined = {*outer_defined, *(v.name for v in graph.input), *(t.name for t in graph.initializer)}
        for inner in graph.node:
            for name in inner.input:
                if name and name not in defined:
                    found.append(name)
            for attr in inner.attribute:
                for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else []) + list(attr.graphs):
                    visit(sub, defined)
            defined.update(inner.output)

    for attr in node.attribute:
        for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else []) + list(attr.graphs):
            visit(sub, set())
    return list(dict.fromkeys(found))


def _typed(value: "onnx.ValueInfoProto") -> bool:
    return value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape")


class _Graph:
    """The main graph as producers/consumers by node index (nested graphs are not split)."""

    def __init__(self, graph: "onnx.GraphProto") -> None:
        self.nodes = list(graph.node)
        self.inputs = {v.name: v for v in graph.input}
        self.initializers = {t.name: t for t in graph.initializer}
        self.outputs = [v.name for v in graph.output]
        # only value infos with a type and shape: a split's inputs and outputs need both (onnx.checker)
        self.value_infos = {v.name: v for v in graph.value_info if _typed(v)}
        self.node_inputs = [[*node.input, *_subgraph_inputs(node)] for node in self.nodes]
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            for name in node.output:
                if name:
                    self.producer[name] = index
            for name in self.node_inputs[index]:
                if name:
                    self.consumers[name].append(index)

    def remove_identities(self) -> None:
        """Drop Identity nodes that do not produce a graph output: their consumers read the Identity's input."""
        outputs = set(self.outputs)
        for index, node in enumerate(self.nodes):
            if node.op_type != "Identity" or node.output[0] in outputs:
                continue
            source, target = node.input[0], node.output[0]
            users = self.consumers.get(target, [])
            if any(target not in self.nodes[user].input for user in users):
                continue  # read inside a subgraph: renaming it there is not worth the risk
            for user in users:
                consumer = self.nodes[user]
                for position, name in enumerate(consumer.input):
                    if name == target:
                        consumer.input[position] = source
                self.node_inputs[user] = [source if name == target else name for name in self.node_inputs[user]]
                self.consumers[source].append(user)
            self.consumers[source] = [user for user in self.consumers[source] if user != index]
            self.consumers.pop(target, None)
            self.producer.pop(target, None)
            self.nodes[index] = None  # type: ignore[call-overload]

    def order(self) -> list[int]:
        """Node indices in topological order (Kahn; ties in file order)."""
        live = [i for i, node in enumerate(self.nodes) if node is not None]
        pending = {i: len({self.producer[n] for n in self.node_inputs[i] if n in self.producer}) for i in live}
        ready = [i for i in live if pending[i] == 0]
        order: list[int] = []
        import heapq

        heapq.heapify(ready)
        while ready:
            index = heapq.heappop(ready)
            order.append(index)
            children = {c for name in self.nodes[index].output if name for c in self.consumers.get(name, [])}
            for child in children:
                pending[child] -= 1
                if pending[child] == 0:
                    heapq.heappush(ready, child)
        if len(order) != len(live):
            raise PassError("SplitModel: the model's graph has a cycle", fix="check the ONNX model (onnx.checker)")
        return order


def _assign(graph: _Graph, order: list[int], assignments: dict[str, int]) -> dict[int, list[int]]:
    """Node index → the splits it goes to."""
    placed: dict[int, int] = {}
    constants: list[int] = []
    dequantize: list[int] = []
    for index in order:
        node = graph.nodes[index]
        if node.op_type == "Constant":
            constants.append(index)
            continue
        if node.op_type == "DequantizeLinear":
            dequantize.append(index)
        own = assignment(node.name, assignments) if node.op_type not in PASS_THROUGH else None
        parents = [placed[graph.producer[name]] for name in graph.node_inputs[index]
                   if name in graph.producer and graph.producer[name] in placed]
        if own is None and not parents:
            continue  # before the first assigned module, or outside all: placed by its consumers below
        # never before a parent's split (a module may run before the one listed ahead of it)
        placed[index] = max([*([own] if own is not None else []), *parents])
    constant_set = set(constants)
    for index in reversed(order):
        if index in placed or index in constant_set:
            continue
        children = [placed[c] for name in graph.nodes[index].output if name
                    for c in graph.consumers.get(name, []) if c in placed]
        placed[index] = min(children) if children else 0
    result = {index: [split] for index, split in placed.items()}
    # Constants and DequantizeLinear: a copy in every split that reads them (DQ first: it may read a Constant)
    for index in [*dequantize, *constants]:
        splits = sorted({split for name in graph.nodes[index].output if name
                         for c in graph.consumers.get(name, []) for split in result.get(c, [])})
        if splits:
            result[index] = splits
    return result


def split_graph(proto: "onnx.ModelProto", assignments: dict[str, int]) -> list["onnx.ModelProto"]:
    """The split models, one per split index up to the largest (a split may come out empty)."""
    import onnx

    graph = _Graph(proto.graph)
    graph.remove_identities()
    order = graph.order()
    placement = _assign(graph, order, assignments)
    count = max(assignments.values()) + 1
    parts: list[dict[str, Any]] = [{"nodes": [], "inputs": {}, "initializers": {}, "outputs": [], "value_infos": {},
                                    "produced": set()} for _ in range(count)]
    missing: dict[str, list[int]] = defaultdict(list)
    model_outputs = set(graph.outputs)
    for index in order:
        splits = placement.get(index)
        if splits is None:
            continue
        node = graph.nodes[index]
        for split in splits:
            part = parts[split]
            for name in graph.node_inputs[index]:
                if not name or name in part["inputs"] or name in part["initializers"] or name in part["produced"]:
                    continue
                if name in graph.inputs or name in graph.initializers:
                    if name in graph.inputs:
                        part["inputs"][name] = graph.inputs[name]
                    if name in graph.initializers:
                        part["initializers"][name] = graph.initializers[name]
                    continue
                info = graph.value_infos.get(name)  # a tensor from an earlier split
                if info is None:
                    missing[name].append(split)
                part["inputs"][name] = info
            part["nodes"].append(index)
            part["produced"].update(node.output)
            for name in node.output:
                if not name:
                    continue
                leaves = name in model_outputs or any(set(placement.get(c, [])) - set(splits)
                                                      for c in graph.consumers.get(name, []))
                if leaves:
                    part["outputs"].append(name)
                    if name not in model_outputs and name not in graph.value_infos:
                        missing[name].append(split)
                elif name in graph.value_infos:
                    part["value_infos"][name] = graph.value_infos[name]
    infos = _value_infos(proto, graph, missing) if missing else {}
    declared_outputs = {v.name: v for v in proto.graph.output}
    models = []
    for split, part in enumerate(parts):
        inputs = [info if info is not None else infos[name] for name, info in part["inputs"].items()]
        outputs = [declared_outputs.get(name) or graph.value_infos.get(name) or infos[name]
                   for name in dict.fromkeys(part["outputs"])]
        body = onnx.helper.make_graph([graph.nodes[i] for i in part["nodes"]], f"{proto.graph.name}_split_{split}",
                                      inputs, outputs, initializer=list(part["initializers"].values()),
                                      value_info=list(part["value_infos"].values()))
        split_proto = onnx.helper.make_model(body, opset_imports=list(proto.opset_import),
                                             producer_name="modelmill", ir_version=proto.ir_version)
        split_proto.functions.extend(proto.functions)
        split_proto.metadata_props.extend(proto.metadata_props)
        models.append(split_proto)
    return models


def _value_infos(proto: "onnx.ModelProto", graph: _Graph, missing: dict[str, list[int]]) -> dict[str, Any]:
    """Types and shapes of the tensors crossing splits that the model does not declare: onnxruntime's symbolic
    shape inference (as Olive does), then onnx's own."""
    import onnx

    found: dict[str, Any] = {}
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(proto, auto_merge=True)  # works on a copy
        found = {v.name: v for v in inferred.graph.value_info if _typed(v)} if inferred is not None else {}
    except Exception:  # noqa: BLE001 - symbolic inference gives up on some ops; onnx's below may still work
        found = {}
    if any(name not in found for name in missing):
        try:
            inferred = onnx.shape_inference.infer_shapes(proto)
            found = {**{v.name: v for v in inferred.graph.value_info if _typed(v)}, **found}
        except Exception:  # noqa: BLE001
            pass
    unknown = [name for name in missing if name not in found]
    if unknown:
        raise PassError(f"SplitModel: no type for the tensor {unknown[0]} that crosses splits "
                        f"{', '.join(map(str, missing[unknown[0]]))}",
                        fix="export the model with shape information (value_info), or move the split point")
    return {name: found[name] for name in missing}
