"""ComposeOnnxModels: a composite model's ONNX components chained back into one model (Olive's onnx/compose.py).

Each component's outputs that a later component reads become internal tensors; the composed model's inputs are
the components' inputs no earlier component produces, its outputs those no later component reads. Olive also
composes StaticLLM's llm_pipeline groups (each group into one model) and copies QNN EP-context binaries: ModelMill
does neither yet (EP-context binaries do not exist on CPU), so such models are refused with what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams

if TYPE_CHECKING:
    import onnx


class ComposeOnnxModelsParams(OnnxOutputParams):
    pass


class ComposeOnnxModels(Pass):
    name = "ComposeOnnxModels"
    description = ("Chains the ONNX components of a composite model (e.g. SplitModel's splits) into one ONNX model: "
                   "each component's outputs feed the later components' inputs of the same name.")
    Params = ComposeOnnxModelsParams
    accepts = frozenset({"composite"})
    produces = "onnx"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        if model.kind != "composite" or not model.components:
            raise PassError(f"{self.name} needs a composite model (several ONNX components) but got a {model.kind} "
                            f"model at {model.path}", fix="put SplitModel before it, or drop ComposeOnnxModels")
        if model.attributes.get("llm_pipeline"):
            raise PassError(f"{self.name}: {model.path} is an llm_pipeline model (StaticLLM's context/iterator "
                            "groups for QNN), which ModelMill cannot compose",
                            fix="run this workflow with Olive, or compose the splits before StaticLLM")
        import onnx

        ctx.progress(0.05, "loading components")
        protos = []
        for component in model.components:
            onnx_io.require_onnx(component, self.name)
            proto = onnx_io.load(component)
            if any(node.op_type == "EPContext" for node in proto.graph.node):
                raise PassError(f"{self.name}: {component.model_file} holds an EPContext node (a compiled QNN/EP "
                                "binary), which cannot be composed on CPU",
                                fix="compose the splits before EPContextBinaryGenerator, or run it with Olive")
            protos.append(proto)
        ctx.progress(0.4, f"composing {len(protos)} models")
        composed = compose(protos, [str(c.attributes.get("component_name") or c.onnx_file) for c in model.components])
        onnx.checker.check_model(composed, full_check=False)
        ctx.progress(0.8, "saving")
        onnx_io.save(composed, ctx.output_dir)
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.progress(1.0, "composed")
        attributes = {k: v for k, v in model.attributes.items() if k not in ("components", "component_name")}
        return ModelRef(kind="onnx", path=ctx.output_dir, onnx_file="model.onnx", attributes=attributes)


def compose(protos: list["onnx.ModelProto"], names: list[str]) -> "onnx.ModelProto":
    """One model running ``protos`` (called ``names`` in messages) in order. Shared initializers and nodes (copies
    of the same Constant or DequantizeLinear) must be identical and are kept once; a node name that two components
    use for different nodes is made unique."""
    import onnx

    seen_inputs: set[str] = set()
    seen_outputs: set[str] = set()
    for proto, name in zip(protos, names):
        inputs = {v.name for v in proto.graph.input}
        outputs = {v.name for v in proto.graph.output}
        for clash, what in ((outputs & seen_inputs, "inputs of an earlier model"),
                            (outputs & seen_outputs, "outputs of an earlier model")):
            if clash:
                raise PassError(f"ComposeOnnxModels: outputs {', '.join(sorted(clash))} of {name} are already "
                                f"{what}", fix="the components must form a chain without cycles or reused names")
        seen_inputs |= inputs
        seen_outputs |= outputs
    final_outputs = seen_outputs - seen_inputs

    first = protos[0]
    graph_inputs = {v.name: v for v in first.graph.input}
    graph_outputs = {v.name: v for v in first.graph.output}
    initializers = {t.name: t for t in first.graph.initializer}
    value_infos = {v.name: v for v in first.graph.value_info}
    nodes = list(first.graph.node)
    node_by_name = {node.name: node for node in nodes if node.name}
    producer = {out: node for node in nodes for out in node.output if out}
    opsets = {op.domain: op.version for op in first.opset_import}
    functions = {(f.domain, f.name): f for f in first.functions}
    for proto, name in zip(protos[1:], names[1:]):
        for value in proto.graph.input:
            known = graph_inputs.get(value.name) or graph_outputs.get(value.name)
            if known is not None:
                if known.type != value.type:
                    raise PassError(f"ComposeOnnxModels: input {value.name} of {name} has another type or shape "
                                    "than the tensor of that name before it",
                                    fix="the components must agree on the tensors they pass along")
                continue
            graph_inputs[value.name] = value
        for value in proto.graph.output:
            graph_outputs[value.name] = value
        for tensor in proto.graph.initializer:
            if tensor.name in initializers:
                if onnx.numpy_helper.to_array(tensor).tobytes() != \
                        onnx.numpy_helper.to_array(initializers[tensor.name]).tobytes():
                    raise PassError(f"ComposeOnnxModels: initializer {tensor.name} differs between the components",
                                    fix="the components must share identical weights under one name")
                continue
            initializers[tensor.name] = tensor
        for value in proto.graph.value_info:
            value_infos.setdefault(value.name, value)
        for node in proto.graph.node:
            made = [out for out in node.output if out]
            if made and all(out in producer for out in made):
                if not _same_work(producer[made[0]], node):
                    raise PassError(f"ComposeOnnxModels: {name} and an earlier component both compute "
                                    f"{made[0]}, differently", fix="the components must not reuse tensor names "
                                    "for different values")
                continue  # a copy both components hold (SplitModel copies Constant/DequantizeLinear nodes)
            if node.name and node.name in node_by_name:
                # same name, other work: passes run per component name new nodes independently ("Gather")
                node = _renamed(node, f"{node.name}_{name}", node_by_name)
            nodes.append(node)
            if node.name:
                node_by_name[node.name] = node
            for out in made:
                producer[out] = node
        for op in proto.opset_import:
            if opsets.setdefault(op.domain, op.version) != op.version:
                raise PassError(f"ComposeOnnxModels: {name} imports opset {op.version} of domain "
                                f"'{op.domain or 'ai.onnx'}', an earlier component {opsets[op.domain]}",
                                fix="export the components with the same opset")
        for function in proto.functions:
            functions.setdefault((function.domain, function.name), function)
    internal = seen_outputs - final_outputs
    for name in internal:  # the tensors that now pass inside: keep their types as value infos
        if name in graph_outputs:
            value_infos.setdefault(name, graph_outputs[name])
    graph = onnx.helper.make_graph(nodes, first.graph.name.rsplit("_split_", 1)[0] or "composed",
                                   list(graph_inputs.values()),
                                   [value for key, value in graph_outputs.items() if key in final_outputs],
                                   initializer=list(initializers.values()),
                                   value_info=[v for k, v in value_infos.items() if k not in graph_inputs
                                               and k not in final_outputs])
    composed = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets.items()],
                                      producer_name="modelmill", ir_version=max(p.ir_version for p in protos))
    composed.functions.extend(functions.values())
    seen_props: set[str] = set()
    for proto in protos:
        for prop in proto.metadata_props:
            if prop.key not in seen_props:
                seen_props.add(prop.key)
                composed.metadata_props.add(key=prop.key, value=prop.value)
    return composed


def _same_work(a: "onnx.NodeProto", b: "onnx.NodeProto") -> bool:
    """The same computation, whatever the node names."""
    return (a.op_type, a.domain, list(a.input), list(a.output), list(a.attribute)) == \
        (b.op_type, b.domain, list(b.input), list(b.output), list(b.attribute))


def _renamed(node: "onnx.NodeProto", base: str, taken: dict[str, "onnx.NodeProto"]) -> "onnx.NodeProto":
    import onnx

    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    name, suffix = base, 1
    while name in taken:
        suffix += 1
        name = f"{base}_{suffix}"
    copy.name = name
    return copy
