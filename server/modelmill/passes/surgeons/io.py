"""Surgeons on the graph's inputs, outputs and shape information."""

from __future__ import annotations

from typing import Any

from modelmill.passes.surgeons import surgeon


def _graph(model: Any) -> Any:
    from modelmill.passes.surgeons.graph import Graph

    return Graph(model)


def _rename(model: Any, values: Any, old_names: list[str], new_names: list[str], what: str) -> Any:
    if len(old_names) != len(new_names):
        raise ValueError(f"old_names has {len(old_names)} names but new_names {len(new_names)}: give one new name "
                         "per old name")
    known = {value.name for value in values}
    for old, new in zip(old_names, new_names):
        if old not in known:
            raise ValueError(f"old_names: the model has no {what} {old!r} (it has {', '.join(sorted(known))})")
        _graph(model).rename_tensor(old, new)
    return model


@surgeon("RenameInputs", "Renames graph inputs (and every node reading them).")
def rename_inputs(model: Any, old_names: list[str], new_names: list[str]) -> Any:
    return _rename(model, model.graph.input, old_names, new_names, "input")


@surgeon("RenameOutputs", "Renames graph outputs (and the nodes producing them).")
def rename_outputs(model: Any, old_names: list[str], new_names: list[str]) -> Any:
    return _rename(model, model.graph.output, old_names, new_names, "output")


@surgeon("InferShapes", "Runs ONNX shape inference, adding value_info for intermediate tensors.")
def infer_shapes(model: Any) -> Any:
    import onnx

    return onnx.shape_inference.infer_shapes(model)


@surgeon("RemoveShapes", "Drops all intermediate value_info (shape and type annotations).")
def remove_shapes(model: Any) -> Any:
    del model.graph.value_info[:]
    return model


@surgeon("RemoveAllTensorValueShapes", "Clears the shape of every value_info entry, keeping the types.")
def remove_all_tensor_value_shapes(model: Any) -> Any:
    for info in model.graph.value_info:
        if info.type.HasField("tensor_type"):
            info.type.tensor_type.ClearField("shape")
    return model


@surgeon("RemoveInitializerFromInputs", "Removes initializers from the graph inputs (old IR-3 style exports).")
def remove_initializer_from_inputs(model: Any) -> Any:
    names = {init.name for init in model.graph.initializer}
    for value in [value for value in model.graph.input if value.name in names]:
        model.graph.input.remove(value)
    return model


@surgeon("ReorderInputs", "Reorders the graph inputs: permutation[i] is the old index of the new i-th input.")
def reorder_inputs(model: Any, permutation: list[int]) -> Any:
    import onnx

    inputs = list(model.graph.input)
    if sorted(permutation) != list(range(len(inputs))):
        raise ValueError(f"permutation {permutation} must list each of the {len(inputs)} input indices once")
    reordered = [onnx.ValueInfoProto() for _ in inputs]
    for target, index in zip(reordered, permutation):
        target.CopyFrom(inputs[index])
    del model.graph.input[:]
    model.graph.input.extend(reordered)
    return model


@surgeon("RemoveInputs", "Removes graph inputs and drops them from the nodes reading them; nodes left without "
                         "inputs are removed.")
def remove_inputs(model: Any, names: list[str]) -> Any:
    removed = set(names)
    for value in [value for value in model.graph.input if value.name in removed]:
        model.graph.input.remove(value)
    for node in list(model.graph.node):
        node.input[:] = [name for name in node.input if name not in removed]
        if not node.input:
            model.graph.node.remove(node)
    return model


def _output_info(model: Any, tensor: str) -> Any:
    """A ValueInfoProto for ``tensor``, from value_info or shape inference."""
    import onnx

    graph = _graph(model)
    info = graph.value_info(tensor)
    if info is None or not info.type.tensor_type.elem_type:
        inferred = onnx.shape_inference.infer_shapes(model)
        info = next((v for v in inferred.graph.value_info if v.name == tensor), None)
    if info is None:
        raise ValueError(f"cannot tell the type of {tensor!r}: run the InferShapes surgeon first or add value_info")
    copy = onnx.ValueInfoProto()
    copy.CopyFrom(info)
    return copy


@surgeon("ExposeOutputs", "Adds the first output of the named nodes to the graph outputs.")
def expose_outputs(model: Any, names: list[str]) -> Any:
    graph = _graph(model)
    for name in names:
        node = graph.node(name)
        if node is None:
            raise ValueError(f"names: no node named {name!r}")
        if not graph.is_output(node.output[0]):
            model.graph.output.append(_output_info(model, node.output[0]))
    return model


@surgeon("AddIntermediateTensorsToOutputs", "Debugging: adds the given intermediate tensors (all node outputs "
                                            "when none are given) to the graph outputs.")
def add_intermediate_tensors_to_outputs(model: Any, intermediate_tensor_to_add: list[str] | None = None) -> Any:
    import onnx

    graph = _graph(model)
    tensors = intermediate_tensor_to_add or [name for node in model.graph.node for name in node.output if name]
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v for v in [*inferred.graph.value_info, *model.graph.value_info]}
    for tensor in tensors:
        if graph.is_output(tensor):
            continue
        if tensor in types:
            info = onnx.ValueInfoProto()
            info.CopyFrom(types[tensor])
        else:
            info = onnx.helper.make_empty_tensor_value_info(tensor)
        model.graph.output.append(info)
    return model


@surgeon("RenameOutputDims", "Sets the symbolic name of one dimension of one graph output.")
def rename_output_dims(model: Any, output_idx: int, dim_idx: int, dim_name: str) -> Any:
    outputs = model.graph.output
    if not 0 <= output_idx < len(outputs):
        raise ValueError(f"output_idx {output_idx} is out of range: the model has {len(outputs)} outputs")
    dims = outputs[output_idx].type.tensor_type.shape.dim
    if not -len(dims) <= dim_idx < len(dims):
        raise ValueError(f"dim_idx {dim_idx} is out of range: output {outputs[output_idx].name} has {len(dims)} dims")
    dims[dim_idx].dim_param = dim_name
    return model


@surgeon("RenameInputDims", "Makes one dimension of a graph input (by input_name or input_idx) symbolic, named "
                            "dim_name.")
def rename_input_dims(model: Any, dim_idx: int, dim_name: str, input_name: str | None = None,
                      input_idx: int | None = None) -> Any:
    inputs = list(model.graph.input)
    if input_name is not None:
        matches = [value for value in inputs if value.name == input_name]
        if not matches:
            raise ValueError(f"input_name: the model has no input {input_name!r}")
        target = matches[0]
    elif input_idx is not None:
        if not 0 <= input_idx < len(inputs):
            raise ValueError(f"input_idx {input_idx} is out of range: the model has {len(inputs)} inputs")
        target = inputs[input_idx]
    else:
        raise ValueError("RenameInputDims needs input_name or input_idx to pick the input")
    dims = target.type.tensor_type.shape.dim
    if not -len(dims) <= dim_idx < len(dims):
        raise ValueError(f"dim_idx {dim_idx} is out of range: input {target.name} has {len(dims)} dims")
    dims[dim_idx].dim_param = dim_name
    return model


@surgeon("ZeroOutInput", "Feeds zeros to one input of a node (input_idx of node_name) instead of its tensor.")
def zero_out_input(model: Any, node_name: str, input_idx: int) -> Any:
    import numpy as np

    from modelmill.passes.surgeons.graph import np_dtype

    graph = _graph(model)
    node = graph.node(node_name)
    if node is None:
        raise ValueError(f"node_name: no node named {node_name!r}")
    tensor = node.input[input_idx]
    shape, elem = graph.shape(tensor), graph.elem_type(tensor)
    if shape is None or elem is None:
        info = _output_info(model, tensor) if not graph.is_input(tensor) else graph.value_info(tensor)
        elem = info.type.tensor_type.elem_type
        shape = [d.dim_value if d.HasField("dim_value") else 0 for d in info.type.tensor_type.shape.dim]
    if any(not isinstance(d, int) or d <= 0 for d in shape):
        if graph.is_input(tensor):
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
        else:
            raise ValueError(f"{tensor!r} has a dynamic shape {shape}: ZeroOutInput needs a static one")
    zeros = graph.add_initializer(np.zeros(shape, dtype=np_dtype(elem)), f"{node_name}_zero")
    node.input[input_idx] = zeros
    return model
