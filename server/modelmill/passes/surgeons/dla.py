"""Olive's NVIDIA DLA surgeons (olive/passes/onnx/dla_transforms.py).

Most of them rewrite a model into the 4-D layout NVIDIA's Deep Learning Accelerator wants (2-D/3-D tensors padded
to 4-D, axes shifted, hard-coded shapes such as ReduceMax → [1, 1, 1, 3600]). They are only correct applied all
together, in the order of Olive's DLA recipe, to the model that recipe was written for, and the result only
runs through TensorRT on a DLA. ModelMill refuses those and runs the two that are plain graph rewrites.
"""

from __future__ import annotations

from typing import Any

from modelmill.passes.surgeons import surgeon


@surgeon("Flatten", "Replaces Flatten with Reshape to [1, 1, 1, -1] (DLA has no Flatten); exact for batch 1.")
def flatten(model: Any) -> Any:
    import numpy as np

    from modelmill.passes.surgeons.graph import Graph

    graph = Graph(model)
    for node in [n for n in model.graph.node if n.op_type == "Flatten"]:
        shape = graph.add_initializer(np.array([1, 1, 1, -1], np.int64), "flatten_shape")
        graph.add_node("Reshape", [node.input[0], shape], list(node.output))
        graph.remove_node(node)
    return model


@surgeon("RemoveIntermediarySqueezeAndUnsqueeze", "Removes Squeeze/Unsqueeze nodes that do not read a graph input "
                                                  "(DLA keeps tensors 4-D); only shape-neutral for 4-D pipelines.")
def remove_intermediary_squeeze_and_unsqueeze(model: Any) -> Any:
    from modelmill.passes.surgeons.graph import Graph

    graph = Graph(model)
    for node in [n for n in model.graph.node if n.op_type in ("Squeeze", "Unsqueeze")]:
        if graph.is_input(node.input[0]):
            continue
        if graph.is_output(node.output[0]):
            graph.add_node("Identity", [node.input[0]], [node.output[0]])
        else:
            graph.replace_uses(node.output[0], node.input[0])
        graph.remove_node(node)
    graph.prune()
    return model


_DLA = ("an NVIDIA DLA layout rewrite that is only correct as part of Olive's whole DLA recipe and only runs "
        "through TensorRT on a DLA; ModelMill targets ONNX Runtime on CPU/GPU, so drop it")

_REFUSED = {
    "MatMulToTransposeConvTranspose": "Replaces 2-D MatMul/Gemm with Transpose → 1x1 Conv → Transpose.",
    "Non4DModelInputs": "Unsqueezes 2-D/3-D graph inputs to 4-D.",
    "Non4DModelOutputs": "Squeezes 4-D results back to the 2-D/3-D graph outputs.",
    "StandaloneReduceSum": "Sets keepdims=1 on ReduceSum and shifts axes [1] → [2].",
    "Gather": "Makes scalar Gather indices 1-D and shifts axis 1 → 2.",
    "GatherElements": "Makes GatherElements indices 4-D.",
    "Non4DInitializers": "Expands 1-D/2-D/3-D initializers to 4-D.",
    "Non4DReshape": "Pads 3-D Reshape targets to 4-D.",
    "Non4DExpand": "Pads 3-D Expand shapes to 4-D.",
    "Non4DTranspose": "Shifts Transpose perms for tensors padded to 4-D.",
    "Non4DSlice": "Moves Slice axes to the last axis.",
    "Non4DLpNorm": "Moves LpNormalization to the last axis.",
    "ReshapeReduceSum": "Splits Reshape → ReduceSum into two Slice → ReduceSum paths and a Concat.",
    "ReshapeClipReduceSum": "Splits Reshape → Clip → ReduceSum into two parallel paths.",
    "ReduceMax": "Adds a Reshape to [1, 1, 1, 3600] after ReduceMax.",
}


def _refused(model: Any) -> Any:
    return model


for _name, _summary in _REFUSED.items():
    surgeon(_name, f"Olive (NVIDIA DLA): {_summary}", refused=_DLA)(_refused)
