"""MixedPrecisionOverrides: resolve 16-bit activation overrides into initializer overrides (Olive 0.13's QNN pass).

Olive's ``olive.passes.onnx.mixed_precision_overrides``: for each element-wise binary op (Add, Sub, Mul, Div by
default) whose output or an input is overridden to QUInt16, its constant (initializer) inputs must be 16-bit too. An
initializer shared with nodes that do not need 16 bits is copied (``<name>_MixedPrecision_copy``) so both precisions
can coexist. The overrides land in the model's ``mixed_precision_overrides`` attribute, which OnnxStaticQuantization
passes to onnxruntime as TensorQuantOverrides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams


class MixedPrecisionOverridesParams(OnnxOutputParams):
    overrides_config: str | dict[str, str] | None = Field(
        None, description="Tensor name → onnxruntime QuantType name (e.g. {\"/attn/Softmax_output_0\": \"QUInt16\"}), "
        "or the path of a JSON file holding that mapping. Tensors set to QUInt16 are the 16-bit activations.")
    element_wise_binary_ops: list[str] | None = Field(
        None, description="Ops whose inputs and output must share a precision; None: Add, Sub, Mul, Div.")


class MixedPrecisionOverrides(Pass):
    name = "MixedPrecisionOverrides"
    aliases = ("olive.passes.onnx.mixed_precision_overrides.MixedPrecisionOverrides",)
    description = ("Prepares 16-bit activation overrides for static quantization (Olive's QNN pass): constant inputs "
                   "of Add/Sub/Mul/Div next to a QUInt16 tensor become 16-bit too, shared ones are copied, and the "
                   "overrides go to OnnxStaticQuantization (TensorQuantOverrides).")
    Params = MixedPrecisionOverridesParams
    accepts = frozenset({"onnx"})
    produces = "onnx"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, MixedPrecisionOverridesParams)
        onnx_io.require_onnx(model, self.name)
        content = _overrides_content(params.overrides_config)
        ctx.progress(0.1, "loading model")
        proto = onnx_io.load(model)
        overrides, copies = resolve(proto, content, params.element_wise_binary_ops or ["Add", "Sub", "Mul", "Div"])
        ctx.log(f"{len(overrides)} tensors at 16 bits, {copies} shared initializers copied")
        ctx.progress(0.8, "saving")
        onnx_io.save(proto, ctx.output_dir)
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.progress(1.0, "overrides resolved")
        return onnx_io.output_ref(model, ctx.output_dir, mixed_precision_overrides=overrides)


def _overrides_content(value: str | dict[str, str] | None) -> dict[str, str]:
    from onnxruntime.quantization import QuantType

    if value is None:
        raise PassError("MixedPrecisionOverrides needs overrides_config",
                        fix="set overrides_config to {\"tensor name\": \"QUInt16\", ...} or a JSON file of that")
    if isinstance(value, str):
        path = Path(value)
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PassError(f"MixedPrecisionOverrides: cannot read overrides_config {path}: {exc}",
                            fix="give a JSON file mapping tensor names to QuantType names") from exc
    if not isinstance(value, dict):
        raise PassError("MixedPrecisionOverrides: overrides_config must map tensor names to QuantType names",
                        fix="e.g. {\"/attn/Softmax_output_0\": \"QUInt16\"}")
    names = [t.name for t in QuantType]
    for tensor, quant_type in value.items():
        if quant_type not in names:
            raise PassError(f"MixedPrecisionOverrides: {tensor}: unknown quant type {quant_type!r}",
                            fix=f"use one of {', '.join(names)}")
    return value


def resolve(proto: Any, content: dict[str, str], binary_ops: list[str]) -> tuple[dict[str, list[dict]], int]:
    """Olive's algorithm on ``proto`` (changed in place): the overrides as JSON, and how many initializers were
    copied."""
    import onnx

    sixteen = [t for t in content if content[t] == "QUInt16"]
    overrides: dict[str, list[dict[str, Any]]] = {t: [{"quant_type": "QUInt16"}] for t in sixteen}
    conflicts: dict[str, dict[str, Any]] = {}
    inits = {init.name: init for init in proto.graph.initializer}
    graph = proto.graph

    def consumers(tensor: str) -> dict[str, Any]:
        return {node.name: node for node in graph.node if tensor in node.input}

    def conflict(tensor: str, node: Any) -> bool:
        if tensor not in conflicts:
            users = consumers(tensor)
            if len(users) > 1:
                conflicts[tensor] = {"counts": len(users) - 1, "nodes": [node], "node_names": [node.name]}
                return True
            return False
        if node.name not in conflicts[tensor]["node_names"]:
            conflicts[tensor]["counts"] -= 1
            conflicts[tensor]["nodes"].append(node)
            conflicts[tensor]["node_names"].append(node.name)
        return True

    def needs(tensor: str, node: Any) -> bool:
        return tensor not in sixteen and tensor in inits and not conflict(tensor, node)

    for node in graph.node:
        if node.op_type not in binary_ops or len(node.input) < 2:
            continue
        if node.output[0] in sixteen:
            for name in node.input:
                if needs(name, node):
                    overrides[name] = [{"quant_type": "QUInt16"}]
        elif node.input[0] in sixteen:
            if needs(node.input[1], node):
                overrides[node.input[1]] = [{"quant_type": "QUInt16"}]
        elif node.input[1] in sixteen and needs(node.input[0], node):
            overrides[node.input[0]] = [{"quant_type": "QUInt16"}]

    copies = 0
    for tensor, info in conflicts.items():
        if info["counts"] == 0:  # every consumer wants 16 bits: convert it as it is
            overrides[tensor] = [{"quant_type": "QUInt16"}]
            continue
        copy = onnx.TensorProto()
        copy.CopyFrom(inits[tensor])
        copy.name = tensor + "_MixedPrecision_copy"
        graph.initializer.append(copy)
        for node in info["nodes"]:
            for i, item in enumerate(node.input):
                if item == tensor:
                    node.input[i] = copy.name
        overrides[copy.name] = [{"quant_type": "QUInt16"}]
        copies += 1
    return overrides, copies
