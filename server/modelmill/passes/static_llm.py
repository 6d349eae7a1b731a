"""StaticLLM: a composite LLM (embeddings, transformer splits with GroupQueryAttention, lm_head) → static-shaped
context and iterator copies of each transformer split, for NPUs that need fixed shapes (Olive's onnx/static_llm.py).

Each transformer component gives a ``context`` model (sequence length = ``context_length``) and an ``iterator``
model (sequence length 1); both read one weights file (``transformer_N.onnx.data``). The batch and sequence dims
are the symbolic dims of the embeddings' ``input_ids``; a symbolic output dim that becomes fixed with them (as
ONNX Runtime's symbolic shape inference finds) is fixed in the later components too. Embeddings and lm_head keep
their shapes. genai_config.json becomes onnxruntime-genai's ``decoder-pipeline`` form with a sliding window of
``context_length`` tokens. Olive's other branch (one ONNX model for QNN's GPU backend) is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError, RunCancelled
from modelmill.passes import onnx_io
from modelmill.passes.base import Pass, PassParams

if TYPE_CHECKING:
    import onnx

GROUPS = ("context", "iterator")
RECIPE = ("CaptureSplitInfo (unique_embeds_lm_head_splits) → ModelBuilder → GraphSurgeries "
          "(AttentionMaskToSequenceLengths) → SplitModel, or SplitModel with split_assignments "
          "{\"model.embed_tokens\": 0, \"model.layers.0\": 1, ..., \"lm_head\": N}")


class StaticLLMParams(PassParams):
    batch_size: int = Field(1, ge=1, description="Batch size of the model.")
    context_length: int = Field(64, ge=1, description="Input length of the context model (the prompt window); the "
                                "iterator model takes one token.")
    group_session_options: dict[str, Any] | None = Field(
        None, description="Session options for the context and iterator models in genai_config.json. Only used "
                          "for models with genai_config.json; by default the first transformer component's own.")


class StaticLLM(Pass):
    name = "StaticLLM"
    description = ("Turns a composite LLM (embeddings, transformer splits with GroupQueryAttention, lm_head: "
                   "SplitModel's output) into static-shaped context (context_length tokens) and iterator (one token) "
                   "models for NPUs, and genai_config.json into onnxruntime-genai's decoder-pipeline with a sliding "
                   "window.")
    Params = StaticLLMParams
    # a single ONNX model is Olive's QNN-GPU branch: taken so that run() can say why it is refused
    accepts = frozenset({"composite", "onnx"})
    produces = "composite"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, StaticLLMParams)
        _refuse_qnn_gpu(ctx)
        components = _components(model, ctx.pass_name)
        ctx.progress(0.02, "reading shapes")
        first = onnx_io.load(components[0], load_external_data=False)
        batch, sequence = _token_dims(first, components[0])
        if "GroupQueryAttention" not in {n.op_type for n in onnx_io.load(components[1], False).graph.node}:
            raise PassError(f"{self.name}: only GroupQueryAttention models are supported, and "
                            f"{components[1].onnx_file} has none",
                            fix=f"build the model with ModelBuilder (fused GQA attention): {RECIPE}")
        mappings = {"context": {batch: params.batch_size, sequence: params.context_length},
                    "iterator": {batch: params.batch_size, sequence: 1}}
        for mapping in mappings.values():  # learn the output dims that follow input_ids' (as Olive does)
            fix_shape(_copy(first), mapping)

        out = ctx.output_dir
        entries: dict[str, dict[str, str]] = {}
        ctx.progress(0.05, "embeddings")
        entries["embeddings"] = _resave(components[0], out, "embeddings.onnx")
        transformers = components[1:-1]
        groups: dict[str, list[str]] = {group: [] for group in GROUPS}
        for index, component in enumerate(transformers):
            if ctx.cancel.is_set():
                raise RunCancelled()
            ctx.progress(0.1 + 0.8 * index / len(transformers), f"transformer {index + 1}/{len(transformers)}")
            suffix = f"_{index}" if len(transformers) > 1 else ""
            for group, file_name in _static_copies(component, out, suffix, mappings).items():
                name = f"{group}{suffix}"
                groups[group].append(name)
                entries[name] = {"name": name, "onnx_file": file_name}
        ctx.progress(0.92, "lm_head")
        entries["lm_head"] = _resave(components[-1], out, "lm_head.onnx")
        _copy_companions(model, out)
        pipeline = {"embeddings": "embeddings", **groups, "lm_head": "lm_head"}
        order = ["embeddings", *groups["context"], *groups["iterator"], "lm_head"]
        source = [str(c.attributes.get("component_name") or c.onnx_file) for c in components]
        if (out / "genai_config.json").exists():
            ctx.progress(0.96, "genai_config.json")
            update_genai_config(out / "genai_config.json", [entries[name] for name in order], pipeline,
                                params.context_length, params.group_session_options, source[1])
        else:
            ctx.log("no genai_config.json beside the model: only the ONNX components were made static")
        ctx.report("llm_pipeline", pipeline)
        ctx.report("fixed_dims", {group: dict(mapping) for group, mapping in mappings.items()})
        ctx.progress(1.0, f"{len(transformers)} context + {len(transformers)} iterator models")
        attributes = {key: value for key, value in model.attributes.items() if key not in ("components",)}
        attributes.update(components=[entries[name] for name in order], llm_pipeline=pipeline)
        return ModelRef(kind="composite", path=out, onnx_file="embeddings.onnx", attributes=attributes)


def _refuse_qnn_gpu(ctx: PassContext) -> None:
    if ctx.accelerator.execution_provider == "QNNExecutionProvider" and ctx.accelerator.device.lower() == "gpu":
        raise PassError("StaticLLM for QNNExecutionProvider on a GPU accelerator (Olive's qnn-gpu branch) rewrites "
                        "one ONNX model for onnxruntime-qnn's GPU backend and points genai_config.json at it; "
                        "ModelMill cannot run it: it needs onnxruntime-qnn with the QNN GPU backend, which has no "
                        "CPU form",
                        fix="run this workflow with Olive on a Windows-on-Snapdragon machine with onnxruntime-qnn, or "
                            "target the NPU/CPU (the generic path: a composite of embeddings, transformer splits "
                            "and lm_head)", where=f"passes.{ctx.pass_name}")


def _components(model: ModelRef, pass_name: str) -> list[ModelRef]:
    components = model.components
    if model.kind != "composite" or len(components) < 3:
        got = f"a composite of {len(components)}" if model.kind == "composite" else f"a {model.kind} model"
        raise PassError(f"StaticLLM needs a composite model of at least 3 ONNX components (embeddings, one or more "
                        f"transformer parts, lm_head) but got {got} at {model.path}",
                        fix=f"split out embeddings and lm_head first: {RECIPE}", where=f"passes.{pass_name}")
    for component in components:
        onnx_io.require_onnx(component, "StaticLLM")
    return components


def _token_dims(proto: onnx.ModelProto, component: ModelRef) -> tuple[str, str]:
    """The symbolic (batch, sequence) dims of the embeddings' input_ids."""
    value = next((v for v in proto.graph.input if v.name == "input_ids"), None)
    if value is None:
        raise PassError(f"StaticLLM: the first component {component.onnx_file} has no input_ids input, so it is "
                        "not the embeddings", fix=f"give the embeddings a split of their own: {RECIPE}")
    dims = [d.dim_param or None for d in value.type.tensor_type.shape.dim]
    if len(dims) != 2 or not all(dims):
        raise PassError(f"StaticLLM: input_ids of {component.onnx_file} must have two symbolic dims (batch, "
                        f"sequence) but has {_shape(value)}",
                        fix="run StaticLLM on the dynamic model (before DynamicToFixedShape)")
    return str(dims[0]), str(dims[1])


def _shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in value.type.tensor_type.shape.dim]


def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    return copy


def fix_shape(proto: onnx.ModelProto, mapping: dict[str, int]) -> None:
    """Fix the ``mapping`` dim params everywhere in ``proto``, then the output dims shape inference now finds
    fixed; each symbolic output dim that became fixed is added to ``mapping`` (later components read it)."""
    from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed

    before = {value.name: _shape(value) for value in proto.graph.output}
    for param, value in mapping.items():
        make_dim_param_fixed(proto.graph, param, value)
    _fix_output_shapes(proto)
    for value in proto.graph.output:
        for old, new in zip(before[value.name], _shape(value)):
            if isinstance(old, str) and old and isinstance(new, int) and mapping.setdefault(old, new) != new:
                raise PassError(f"StaticLLM: dim {old!r} is {mapping[old]} in one place and {new} in another "
                                f"(output {value.name})", fix="check the components' shapes (they disagree)")


def _fix_output_shapes(proto: onnx.ModelProto) -> None:
    """Copy output shapes that ORT's symbolic shape inference (it knows the contrib ops) finds fully fixed."""
    from onnxruntime.tools.onnx_model_utils import is_fixed_size_tensor
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    try:
        inferred = SymbolicShapeInference.infer_shapes(proto, auto_merge=True, guess_output_rank=True)
    except Exception:  # noqa: BLE001 - an op it cannot infer: the outputs keep their declared shapes
        return
    for value, new in zip(proto.graph.output, inferred.graph.output):
        if not is_fixed_size_tensor(value) and is_fixed_size_tensor(new):
            value.type.tensor_type.shape.CopyFrom(new.type.tensor_type.shape)


def _resave(component: ModelRef, out: Path, file_name: str) -> dict[str, str]:
    onnx_io.save(onnx_io.load(component), out, file_name)
    return {"name": Path(file_name).stem, "onnx_file": file_name}


def _static_copies(component: ModelRef, out: Path, suffix: str,
                   mappings: dict[str, dict[str, int]]) -> dict[str, str]:
    """``context{suffix}.onnx`` and ``iterator{suffix}.onnx``: the component with its dims fixed, both reading the
    weights from one ``transformer{suffix}.onnx.data``."""
    import onnx

    shared = f"transformer{suffix}.onnx"
    onnx_io.save(onnx_io.load(component), out, shared)
    proto = onnx.load(str(out / shared), load_external_data=False)  # weights stay in the shared side file
    (out / shared).unlink()
    files = {}
    for group, mapping in mappings.items():
        copy = _copy(proto)
        fix_shape(copy, mapping)
        files[group] = f"{group}{suffix}.onnx"
        onnx.save_model(copy, str(out / files[group]))
    return files


def _copy_companions(model: ModelRef, out: Path) -> None:
    """Tokenizer, config and genai_config.json; not the input's ONNX files or the folders of its components. Where
    a pass ran per component (``split_N/model.onnx``), the companions are in each component's folder."""
    components = model.components
    component_dirs = {c.path for c in components if c.path != model.path}
    source = model.path if (model.path / "genai_config.json").exists() or not component_dirs else components[0].path
    skip = {"entry.json", "modelmill_run.json"}
    for item in source.iterdir():
        if (item.name in skip or item.suffix == ".onnx" or item.name.endswith((".onnx.data", ".onnx_data"))
                or item in component_dirs or (out / item.name).exists()):
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, out / item.name)


def update_genai_config(path: Path, components: list[dict[str, str]], pipeline: dict[str, Any],
                        context_length: int, group_session_options: dict[str, Any] | None,
                        first_source: str) -> None:
    """onnxruntime-genai's decoder-pipeline form (Olive's update_llm_pipeline_genai_config): a pipeline entry
    per component with its inputs and outputs, context models off for token generation, iterator models off for
    the prompt, a left-aligned sliding window of ``context_length`` tokens, and past/total sequence length
    inputs (what AttentionMaskToSequenceLengths gives GroupQueryAttention)."""
    import onnx

    config = json.loads(path.read_text())
    config["model"]["type"] = "decoder-pipeline"
    decoder = config["model"]["decoder"]
    decoder.pop("filename", None)
    decoder.get("sliding_window", {}).pop("slide_inputs", None)  # ort-genai 0.9+ reads it as another window kind
    extra = {"inputs": {"past_sequence_length": "past_seq_len", "total_sequence_length": "total_seq_len"},
             "sliding_window": {"window_size": context_length, "pad_value": 0, "alignment": "left",
                                "slide_key_value_cache": False}}
    for key, value in extra.items():
        if isinstance(decoder.get(key), dict):
            decoder[key].update(value)
        else:
            decoder[key] = value
    # session options: the parameter, else those a previous pipeline gave the first transformer component
    options = group_session_options or decoder.get("pipeline", [{}])[0].get(first_source, {}).get("session_options")
    entries: dict[str, dict[str, Any]] = {}
    for component in components:
        proto = onnx.load(str(path.parent / component["onnx_file"]), load_external_data=False)
        initializers = {t.name for t in proto.graph.initializer}
        entries[component["name"]] = {"filename": component["onnx_file"],
                                      "inputs": [v.name for v in proto.graph.input if v.name not in initializers],
                                      "outputs": [v.name for v in proto.graph.output]}
    for group, not_on in zip(GROUPS, ("token_gen", "prompt")):
        for name in pipeline[group]:
            if options:
                entries[name]["session_options"] = options
            entries[name][f"run_on_{not_on}"] = False
    entries[pipeline["lm_head"]]["is_lm_head"] = True
    decoder["pipeline"] = [entries]
    path.write_text(json.dumps(config, indent=4))
