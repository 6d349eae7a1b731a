"""ExtractAdapters: move LoRA weights out of an ONNX model into a separate adapter file.

The ORT GenAI builder, given a base model and a peft adapter, adds each adapted MatMul's LoRA branch
(``.../lora_A/MatMul`` → ``.../lora_B/MatMul`` → Add) with the adapter's weights inside the graph. This
pass turns those weights into graph inputs with a dynamic rank (``lora_r``) and an empty default, and
writes their values to an ``.onnx_adapter`` file (onnxruntime's adapter format). The model then runs as
the base model by default, and with the adapter when onnxruntime-genai activates it
(``og.Adapters(model).load(file, name)``, ``generator.set_active_adapter(...)``); several adapters
trained on the same base share one model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import Pass, PassParams

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

ADAPTER_FILE = "adapter_weights.onnx_adapter"
RANK_DIM = "lora_r"
# Olive's WeightsFileFormat → the file's suffix (Olive names the file adapter_weights.<suffix>).
SAVE_SUFFIXES = {"onnx_adapter": ".onnx_adapter", "numpy": ".npz", "pt": ".pt", "safetensors": ".safetensors"}


class ExtractAdaptersParams(PassParams):
    adapter_type: Literal["lora"] = Field("lora", description="Adapter kind; ModelMill extracts LoRA adapters.")
    save_format: Literal["onnx_adapter", "numpy", "pt", "safetensors"] = Field(
        "onnx_adapter", description="File format of the weights: onnx_adapter (adapter_weights.onnx_adapter), which "
                                    "onnxruntime and onnxruntime-genai load at run time; numpy (.npz), pt or "
                                    "safetensors hold the same named arrays for your own code to feed as inputs.")
    make_inputs: Literal[True] = Field(True, description="Olive compatibility: the weights always become inputs.")
    dynamic_lora_r: Literal[True] = Field(True, description="Olive compatibility: the rank dimension is always "
                                          "dynamic, so adapters of any rank fit the model.")
    optional_inputs: Literal[True] = Field(True, description="Olive compatibility: the inputs have empty defaults, so "
                                           "the model runs as the base model when no adapter is active.")


class ExtractAdapters(Pass):
    name = "ExtractAdapters"
    description = ("Moves the LoRA weights of an ONNX model built from base + adapter into a separate "
                   f"{ADAPTER_FILE} file; the model takes them as optional inputs, so it runs as the base model "
                   "unless onnxruntime-genai activates the adapter.")
    Params = ExtractAdaptersParams

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        import numpy as np
        import onnx
        from onnx import numpy_helper

        proto = onnx_io.load(model)
        graph = proto.graph
        initializers = {init.name: init for init in graph.initializer}
        branches = [node for node in graph.node if "/lora_A/" in node.name or "/lora_B/" in node.name]
        if not branches:
            raise PassError(f"{model.model_file} has no LoRA branches (no .../lora_A/... nodes)",
                            fix="build the model from a base model plus an adapter (input_model.adapter_path, or a "
                                "finetune output without --merge_adapter) with ModelBuilder first")
        quantized = [node.name for node in branches if node.op_type != "MatMul"]
        if quantized:
            raise PassError(f"the LoRA branches are quantized ({quantized[0]} is {branches[0].op_type}), so their "
                            "weights cannot be swapped at run time",
                            fix="build with ModelMill's ModelBuilder, which keeps LoRA branches in float")
        weights: dict[str, np.ndarray] = {}
        rank_outputs = set()
        for node in branches:
            name = node.input[1]
            if name not in initializers:
                raise PassError(f"LoRA node {node.name} has no constant weight", fix="rebuild the model")
            value = numpy_helper.to_array(initializers[name])
            weights[name] = value
            is_a = "/lora_A/" in node.name
            shape: list[int | str] = [value.shape[0], RANK_DIM] if is_a else [RANK_DIM, value.shape[1]]
            graph.input.append(onnx.helper.make_tensor_value_info(name, initializers[name].data_type, shape))
            # The default: rank 0, so A gives [.., 0] and B turns that into zeros: the base model's output.
            empty = np.zeros((value.shape[0], 0) if is_a else (0, value.shape[1]), dtype=value.dtype)
            initializers[name].CopyFrom(numpy_helper.from_array(empty, name))
            if is_a:
                rank_outputs.update(node.output)
        # Shapes the builder recorded for the rank-sized intermediates would pin lora_r to the adapter's rank.
        kept = [info for info in graph.value_info if info.name not in rank_outputs]
        del graph.value_info[:]
        graph.value_info.extend(kept)
        ctx.progress(0.5, f"{len(weights)} LoRA weights → {ADAPTER_FILE}")
        onnx_io.save(proto, ctx.output_dir)
        onnx_io.copy_companions(model, ctx.output_dir)
        file_name = "adapter_weights" + SAVE_SUFFIXES[params.save_format]
        _save(weights, ctx.output_dir / file_name, params.save_format)
        ctx.log(f"extracted {len(weights)} LoRA weights ({sum(v.nbytes for v in weights.values()) / 2**20:.1f} MiB) "
                f"into {file_name}")
        return onnx_io.output_ref(model, ctx.output_dir, adapter_file=file_name)


def _save(weights: dict[str, np.ndarray], path: Path, save_format: str) -> None:
    """The weights as onnxruntime's adapter file, or as an npz / torch / safetensors file of the same arrays."""
    import numpy as np

    arrays = {name: np.ascontiguousarray(value) for name, value in weights.items()}
    if save_format == "numpy":
        with path.open("wb") as handle:
            np.savez(handle, **arrays)
    elif save_format == "pt":
        import torch

        torch.save({name: torch.from_numpy(value) for name, value in arrays.items()}, str(path))
    elif save_format == "safetensors":
        from safetensors.numpy import save_file

        save_file(arrays, str(path))
    else:
        import onnxruntime as ort

        adapter = ort.AdapterFormat()
        adapter.set_adapter_version(1)
        adapter.set_model_version(1)
        adapter.set_parameters({name: ort.OrtValue.ortvalue_from_numpy(value) for name, value in arrays.items()})
        adapter.export_adapter(str(path))


