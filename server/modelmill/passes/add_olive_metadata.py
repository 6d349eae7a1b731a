"""AddOliveMetadata: Olive's metadata (version, source model, optimization info, model hash) in metadata_props.

As in Olive, the ONNX file is rewritten without loading its weights: the external data files it names are
copied beside it unchanged, the graph is renamed to ``graph_name`` and the metadata is merged into the model's
existing ``metadata_props`` (new keys win).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError, RunCancelled
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams

_HASH_CHUNK = 16 << 20


class AddOliveMetadataParams(OnnxOutputParams):
    graph_name: str = Field(..., min_length=1, description="Name the ONNX graph gets (graph.name). Required, as in "
                            "Olive.")
    custom_metadata: dict[str, Any] = Field(default_factory=dict, description="Extra key-value pairs for the "
                                            "model's metadata_props; values are written as strings.")
    add_optimization_info: bool = Field(True, description="Also write what is known of the optimization: "
                                        "optimization_passes, hf_task and quantization_config, where the model "
                                        "carries them.")


class AddOliveMetadata(Pass):
    name = "AddOliveMetadata"
    aliases = ()
    description = ("Writes Olive's metadata into the ONNX model's metadata_props (olive_version, hf_model_name, "
                   "model_hash, optimization info and custom_metadata) and sets the graph name; weights are "
                   "copied untouched.")
    Params = AddOliveMetadataParams
    accepts = frozenset({"onnx"})
    produces = "onnx"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, AddOliveMetadataParams)
        onnx_io.require_onnx(model, self.name)
        import onnx

        ctx.progress(0.05, "loading graph")
        proto = onnx.load(str(model.model_file), load_external_data=False)
        metadata = olive_metadata(model, params)
        ctx.progress(0.15, "hashing the model")
        metadata["model_hash"] = model_hash(model, proto, ctx)
        merged = {entry.key: entry.value for entry in proto.metadata_props}
        merged.update(metadata)
        onnx.helper.set_model_props(proto, merged)
        proto.graph.name = params.graph_name
        ctx.progress(0.8, "saving")
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        for location in external_files(proto):
            _copy(model.path / location, ctx.output_dir / location)
        onnx.save_model(proto, str(ctx.output_dir / model.onnx_file))
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.log(f"metadata keys written: {', '.join(sorted(metadata))}")
        ctx.report("metadata", metadata)
        ctx.progress(1.0, "metadata added")
        return onnx_io.output_ref(model, ctx.output_dir, file_name=model.onnx_file)


def olive_metadata(model: ModelRef, params: AddOliveMetadataParams) -> dict[str, str]:
    """The keys Olive writes, from the params and what the model folder and its attributes carry."""
    from modelmill import __version__
    from modelmill.config.olive_catalog import olive_version

    metadata = {str(key): str(value) for key, value in params.custom_metadata.items()}
    metadata["olive_version"] = olive_version()  # the Olive release whose passes ModelMill follows
    metadata["modelmill_version"] = __version__
    hf_name = hf_model_name(model)
    if hf_name:
        metadata["hf_model_name"] = hf_name
    if params.add_optimization_info:
        attributes = model.attributes
        passes = attributes.get("optimization_passes")
        if passes:
            metadata["optimization_passes"] = ", ".join(map(str, passes)) if isinstance(passes, list) else str(passes)
        task = attributes.get("hf_task") or attributes.get("task")
        if task:
            metadata["hf_task"] = str(task)
        if attributes.get("quantization_config"):
            metadata["quantization_config"] = str(attributes["quantization_config"])
    return metadata


def hf_model_name(model: ModelRef) -> str | None:
    """The Hugging Face model the ONNX model came from: config.json's _name_or_path beside it (what Olive reads
    from the HF input), else the name of the base model folder it was built from."""
    config = model.path / "config.json"
    if config.is_file():
        try:
            name = json.loads(config.read_text(encoding="utf-8")).get("_name_or_path")
        except (OSError, ValueError):
            name = None
        if isinstance(name, str) and name:
            return name
    base = model.attributes.get("base_model_path")
    return Path(str(base)).name if base else None


def external_files(proto: Any) -> list[str]:
    """Relative locations of the external data files the model's initializers name, in first-use order."""
    import onnx

    found: dict[str, None] = {}
    for tensor in _tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((entry.value for entry in tensor.external_data if entry.key == "location"), None)
            if location:
                found[location] = None
    return list(found)


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of a graph: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def model_hash(model: ModelRef, proto: Any, ctx: PassContext) -> str:
    """SHA-256 of the ONNX file and its external data files (first 16 hex digits), cancellable between chunks."""
    files = [model.model_file, *(model.path / location for location in external_files(proto))]
    total = sum(path.stat().st_size for path in files if path.exists()) or 1
    digest = hashlib.sha256()
    done = 0
    for path in files:
        if not path.exists():
            raise PassError(f"AddOliveMetadata: external data file {path} is missing",
                            fix="keep the model's .data file beside its .onnx file")
        with path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                if ctx.cancel.is_set():
                    raise RunCancelled()
                digest.update(chunk)
                done += len(chunk)
                ctx.progress(0.15 + 0.6 * done / total, "hashing the model")
    return digest.hexdigest()[:16]


def _copy(source: Path, target: Path) -> None:
    """Copy a weights file (a copy, not Olive's hard link: the output must not change when the input does)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
