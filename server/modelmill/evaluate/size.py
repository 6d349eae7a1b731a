"""size_on_disk: bytes of a model's files.

- ONNX folders: every ``*.onnx`` file in the folder (a genai model may have several) plus the external
  data files they reference. Tokenizer and config files are not counted.
- HF folders: the weight files (safetensors, bin, pt, ...; shard index files are not counted).
- PyTorch: the saved file, or the weight files of a folder.
- Composite (SplitModel's output): each component's ONNX file and its external data.
"""

from __future__ import annotations

from pathlib import Path

from modelmill.engine.model import ModelRef
from modelmill.evaluate.runtime import EvaluationError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")


def external_data_files(onnx_file: Path) -> set[Path]:
    """Files that ``onnx_file``'s initializers (in the main graph and subgraphs) keep their data in."""
    import onnx

    proto = onnx.load(str(onnx_file), load_external_data=False)
    files: set[Path] = set()

    def visit(graph: "onnx.GraphProto") -> None:
        tensors = list(graph.initializer) + [attr.t for node in graph.node for attr in node.attribute
                                             if attr.type == onnx.AttributeProto.TENSOR]
        for tensor in tensors:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                for entry in tensor.external_data:
                    if entry.key == "location":
                        files.add(onnx_file.parent / entry.value)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(proto.graph)
    return files


def model_files(model: ModelRef) -> list[Path]:
    """The files counted by size_on_disk, sorted."""
    if model.kind == "openvino":  # the IR and its weights (tokenizer IRs are companions)
        return sorted(p for p in (model.model_file, model.model_file.with_suffix(".bin")) if p.exists())
    if model.kind == "composite":
        if not model.components:
            raise EvaluationError(f"composite model {model.path} lists no components", fix="check the model path")
        return sorted({path for component in model.components for path in model_files(component)})
    if model.kind == "onnx":
        if not model.model_file.exists():
            raise EvaluationError(f"ONNX file {model.model_file} does not exist", fix="check the model path")
        onnx_files = sorted({model.model_file, *([] if model.attributes.get("component_name")
                                                  else model.path.glob("*.onnx"))})
        files = set(onnx_files)
        for onnx_file in onnx_files:
            files |= external_data_files(onnx_file)
        missing = [f for f in files if not f.exists()]
        if missing:
            raise EvaluationError(f"external data file {missing[0]} is missing", fix="copy the whole model folder")
        return sorted(files)
    if model.path.is_file():
        return [model.path]
    if not model.path.is_dir():
        raise EvaluationError(f"model path {model.path} does not exist", fix="check the model path")
    files = sorted(p for p in model.path.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        raise EvaluationError(f"no weight files in {model.path}", fix="point the model at a folder with weights")
    return files


def size_on_disk(model: ModelRef) -> int:
    return sum(path.stat().st_size for path in model_files(model))
