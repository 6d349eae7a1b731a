"""OnnxConversion: torch.onnx.export of a Hugging Face folder or a torch.save'd module."""

from __future__ import annotations

import inspect
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io, split_metadata
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams
from modelmill.remote_code import FLAG, PYTORCH_KEY, is_trusted, require_trust

if TYPE_CHECKING:
    import onnx
    import torch

# Files of an HF folder that are weights (not copied beside the ONNX model).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx")
# Small files copied beside the ONNX model: tokenizer, configs, chat template.
COMPANION_SUFFIXES = (".json", ".txt", ".jinja", ".model", ".tiktoken")

# task → transformers Auto class name.
TASK_AUTO_CLASSES = {
    "text-generation": "AutoModelForCausalLM",
    "text-generation-with-past": "AutoModelForCausalLM",
    "causal-lm": "AutoModelForCausalLM",
    "feature-extraction": "AutoModel",
    "sentence-similarity": "AutoModel",
    "text-classification": "AutoModelForSequenceClassification",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "fill-mask": "AutoModelForMaskedLM",
    "question-answering": "AutoModelForQuestionAnswering",
}

TORCH_DTYPES = ("float32", "float16", "bfloat16")
# numpy/torch type names accepted in io_config input_types.
IO_TYPES = {"float32": "float32", "float": "float32", "float16": "float16", "bfloat16": "bfloat16",
            "int64": "int64", "long": "int64", "int32": "int32", "int": "int32", "bool": "bool", "uint8": "uint8"}


class OnnxConversionParams(OnnxOutputParams):
    target_opset: int = Field(20, ge=7, description="ONNX opset of the exported model. The dynamo exporter needs at "
                              "least 18 (lower values are raised to 18).")
    use_dynamo_exporter: bool = Field(False, description="Export with torch.export (dynamo) instead of TorchScript "
                                      "tracing. Slower to export; use it for models the tracer cannot handle.")
    dynamic: bool = Field(True, description="Make batch and sequence dimensions dynamic. False fixes them to the "
                          "dummy input's shape (batch 2, sequence 8) or io_config's input_shapes.")
    torch_dtype: Literal["float32", "float16", "bfloat16"] | None = Field(
        None, description="Load the model in this dtype before export. None keeps float32.")
    past_key_value_name: str = Field(
        "past_key_values", description="Name prefix for KV-cache inputs. Accepted for Olive configs; this pass exports "
        "without KV cache (logits only), so it is not used. Use ModelBuilder for a KV-cache LLM.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Device the model runs on during export.")
    optimize: bool = Field(True, description="Let the dynamo exporter run onnxscript's graph optimizer "
                           "(only with use_dynamo_exporter).")


class OnnxConversion(Pass):
    name = "OnnxConversion"
    aliases = ()
    description = ("Exports a Hugging Face model folder (or a torch.save'd PyTorch module) to ONNX with torch.onnx.export. "
                   "Causal LMs get inputs input_ids/attention_mask and output logits (no KV cache); encoders output "
                   "last_hidden_state. Tokenizer files and config.json are copied beside model.onnx.")
    Params = OnnxConversionParams
    accepts = frozenset({"hf", "pytorch"})
    produces = "onnx"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OnnxConversionParams)
        if model.kind not in self.accepts:
            raise PassError(f"OnnxConversion needs a Hugging Face or PyTorch model but got a {model.kind} model "
                            f"at {model.path}", fix="drop OnnxConversion: the model is already ONNX")
        import torch

        if params.device == "cuda" and not torch.cuda.is_available():
            raise PassError("OnnxConversion: device is cuda but torch sees no CUDA device",
                            fix='set "device": "cpu"')
        opset = params.target_opset
        if params.use_dynamo_exporter and opset < 18:
            ctx.log(f"the dynamo exporter needs opset 18 or newer; exporting with 18 instead of {opset}")
            opset = 18
        export_dir = ctx.work_dir / "export"
        shutil.rmtree(export_dir, ignore_errors=True)
        export_dir.mkdir(parents=True)
        ctx.progress(0.05, f"loading {model.kind} model")
        with torch.no_grad():
            if model.kind == "hf":
                attributes = _export_hf(model, params, opset, export_dir / "model.onnx", ctx)
            else:
                attributes = _export_pytorch(model, params, opset, export_dir / "model.onnx", ctx)
        ctx.progress(0.85, "saving ONNX model")
        proto = onnx_io.load(ModelRef(kind="onnx", path=export_dir))
        if model.kind == "hf":
            _drop_wrapper_scope(proto)
        if model.attributes.get("split_assignments"):  # from CaptureSplitInfo, for SplitModel (as Olive does)
            split_metadata.set_metadata(proto, split_metadata.METADATA_KEY,
                                        split_metadata.encode(model.attributes["split_assignments"]))
        onnx_io.save(proto, ctx.output_dir)
        if model.kind == "hf":
            _copy_hf_companions(model.base_model_path, ctx.output_dir)
        ctx.progress(1.0, "exported")
        return onnx_io.output_ref(model, ctx.output_dir, **attributes)


def _drop_wrapper_scope(proto: "onnx.ModelProto") -> None:
    """Name nodes after the HF model's modules (``/model/layers.0/...``), as an export of the model itself
    names them, not after the export wrapper's attribute (``/model/model/layers.0/...``): split assignments
    and layer names then match the module names."""
    prefix = "/model/"
    names = [node.name for node in proto.graph.node]
    renamed = [_scoped_name(node) or (name[len(prefix) - 1:] if name.startswith(prefix) else name)
               for node, name in zip(proto.graph.node, names)]
    if len(set(renamed)) != len(set(names)):
        return  # would collide: keep the exporter's names
    for node, name in zip(proto.graph.node, renamed):
        node.name = name


def _scoped_name(node: "onnx.NodeProto") -> str | None:
    """A dynamo-exported node's name with its module path in front, as TorchScript names nodes
    (``/model/layers.0/self_attn/k_proj/node_linear_1``), from the exporter's ``pkg.torch.onnx.name_scopes``
    metadata; the wrapper's own scope is left out. None when the node has no such metadata."""
    import ast

    text = next((prop.value for prop in node.metadata_props if prop.key == "pkg.torch.onnx.name_scopes"), None)
    if not text:
        return None
    try:
        scopes = [str(scope) for scope in ast.literal_eval(text)][:-1]  # the last one is the fx node
    except (ValueError, SyntaxError):
        return None
    parts, previous = [], ""
    for scope in filter(None, scopes):  # cumulative: "model", "model.model", "model.model.layers.0", ...
        parts.append(scope[len(previous) + 1:] if previous and scope.startswith(previous + ".") else scope)
        previous = scope
    return "/" + "/".join([*parts[1:], node.name])  # parts[0]: the wrapper's attribute holding the HF model


def _torch_dtype(name: str | None) -> "torch.dtype":
    import torch

    return getattr(torch, name or "float32")


def _export(module: "torch.nn.Module", args: tuple[Any, ...], path: Path, params: OnnxConversionParams, opset: int,
            input_names: list[str], output_names: list[str], dynamic_axes: dict[str, dict[int, str]] | None) -> None:
    """Run torch.onnx.export with the chosen exporter; errors become PassErrors."""
    try:
        with warnings.catch_warnings():
            # Tracer/exporter warnings are expected for HF models and say nothing the user can act on.
            warnings.simplefilter("ignore")
            _call_exporter(module, args, path, params, opset, input_names, output_names, dynamic_axes)
    except Exception as exc:  # noqa: BLE001 - exporter failures come in many types
        exporter = "dynamo" if params.use_dynamo_exporter else "TorchScript"
        fix = ("try use_dynamo_exporter: false" if params.use_dynamo_exporter
               else "try a lower target_opset (e.g. 20), or use_dynamo_exporter: true")
        raise PassError(f"torch.onnx.export ({exporter} exporter, opset {opset}) failed: "
                        f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                        fix=fix) from exc


def _call_exporter(module: "torch.nn.Module", args: tuple[Any, ...], path: Path, params: OnnxConversionParams,
                   opset: int, input_names: list[str], output_names: list[str],
                   dynamic_axes: dict[str, dict[int, str]] | None) -> None:
    import torch

    if params.use_dynamo_exporter:
        dynamic_shapes = None
        if dynamic_axes:
            # One Dim object per label, so inputs that share a label share the dimension.
            dims: dict[str, Any] = {}
            dynamic_shapes = tuple(
                {axis: dims.setdefault(label, torch.export.Dim(label))
                 for axis, label in dynamic_axes.get(name, {}).items()} or None
                for name in input_names)
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          opset_version=opset, dynamo=True, dynamic_shapes=dynamic_shapes,
                          optimize=params.optimize, external_data=True)
    else:
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          opset_version=opset, dynamo=False, dynamic_axes=dynamic_axes or None,
                          do_constant_folding=True)


def _auto_class_name(model: ModelRef, config: dict[str, Any]) -> str:
    task = model.attributes.get("task")
    if task:
        if task not in TASK_AUTO_CLASSES:
            raise PassError(f"OnnxConversion does not know task {task!r}",
                            fix=f"use one of: {', '.join(TASK_AUTO_CLASSES)}")
        return TASK_AUTO_CLASSES[task]
    architectures = config.get("architectures") or []
    if any(str(arch).endswith("ForCausalLM") for arch in architectures):
        return "AutoModelForCausalLM"
    return "AutoModel"


def _hf_wrapper(hf_model: "torch.nn.Module", causal: bool) -> "torch.nn.Module":
    """A module with named tensor inputs that returns the HF model's first output (logits / last_hidden_state)."""
    import torch

    class HfWrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = hf_model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            if causal:
                kwargs["use_cache"] = False
            return self.model(**kwargs, return_dict=False)[0]

    return HfWrapper()


def _export_hf(model: ModelRef, params: OnnxConversionParams, opset: int, path: Path,
               ctx: PassContext) -> dict[str, Any]:
    import torch
    import transformers

    config = model.hf_config()
    if not config:
        raise PassError(f"OnnxConversion: {model.path} has no config.json",
                        fix="point the model path at a Hugging Face model folder (saved with save_pretrained)")
    require_trust(model, "OnnxConversion")
    class_name = _auto_class_name(model, config)
    auto_class = getattr(transformers, class_name)
    # Eager attention exports the classic MatMul/Softmax pattern that OrtTransformersOptimization fuses
    # into Attention ops; SDPA exports a pattern it does not recognize. Numerics are the same.
    load_kwargs: dict[str, Any] = {"dtype": _torch_dtype(params.torch_dtype), "local_files_only": True,
                                   "attn_implementation": "eager", "trust_remote_code": is_trusted(model)}
    transformers.utils.logging.disable_progress_bar()
    try:
        try:
            hf_model = auto_class.from_pretrained(str(model.base_model_path), **load_kwargs)
        except ValueError:  # a model class without eager attention
            load_kwargs.pop("attn_implementation")
            hf_model = auto_class.from_pretrained(str(model.base_model_path), **load_kwargs)
        if model.adapter_dir is not None:  # export base + adapter as one model: merge the LoRA update in
            from peft import PeftModel

            hf_model = PeftModel.from_pretrained(hf_model, str(model.adapter_dir)).merge_and_unload()
    except Exception as exc:  # noqa: BLE001
        raise PassError(f"OnnxConversion could not load {model.path} with {class_name}: {exc}",
                        fix="check that the folder holds a complete Hugging Face model (config.json + weights)") from exc
    hf_model.eval().to(params.device)
    causal = class_name == "AutoModelForCausalLM"
    if causal and hasattr(hf_model.config, "use_cache"):
        hf_model.config.use_cache = False
    accepted = inspect.signature(hf_model.forward).parameters
    input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in accepted else [])
    output_name = "last_hidden_state" if class_name == "AutoModel" else "logits"
    vocab = int(config.get("vocab_size") or 100)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab, (2, 8), generator=generator)
    tensors = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
               "token_type_ids": torch.zeros_like(input_ids)}
    args = tuple(tensors[name].to(params.device) for name in input_names)
    dynamic_axes = None
    if params.dynamic:
        dynamic_axes = {name: {0: "batch_size", 1: "sequence_length"} for name in [*input_names, output_name]}
    ctx.progress(0.3, f"exporting {class_name} ({'dynamo' if params.use_dynamo_exporter else 'TorchScript'}, "
                      f"opset {opset})")
    _export(_hf_wrapper(hf_model, causal), args, path, params, opset, input_names, [output_name], dynamic_axes)
    io_config = {"input_names": input_names, "output_names": [output_name],
                 "input_types": ["int64"] * len(input_names)}
    return {"io_config": io_config, "model_type": config.get("model_type"),
            "task": model.attributes.get("task") or ("text-generation" if causal else None)}


def _export_pytorch(model: ModelRef, params: OnnxConversionParams, opset: int, path: Path,
                    ctx: PassContext) -> dict[str, Any]:
    import torch

    io_config = model.attributes.get("io_config")
    if not isinstance(io_config, dict) or not io_config.get("input_names") or not io_config.get("input_shapes"):
        raise PassError("OnnxConversion needs io_config (input_names, input_shapes, input_types, output_names) "
                        "to export a PyTorch model",
                        fix='add "io_config": {"input_names": [...], "input_shapes": [[...]], "output_names": [...]} '
                            "to input_model")
    if not model.path.is_file():
        raise PassError(f"OnnxConversion: PyTorch model {model.path} is not a file saved with torch.save(module)",
                        fix="save the whole module with torch.save(module, path) and point model_path at that file")
    module = _load_module(model, params.device)
    if not isinstance(module, torch.nn.Module):
        raise PassError(f"{model.path} holds a {type(module).__name__}, not a torch.nn.Module",
                        fix="save the module itself (torch.save(module, path)), not its state_dict")
    module.eval()
    if params.torch_dtype:
        module.to(_torch_dtype(params.torch_dtype))
    input_names: list[str] = list(io_config["input_names"])
    shapes: list[list[int]] = [list(shape) for shape in io_config["input_shapes"]]
    types: list[str] = list(io_config.get("input_types") or ["float32"] * len(input_names))
    if not len(input_names) == len(shapes) == len(types):
        raise PassError("io_config: input_names, input_shapes and input_types must have the same length",
                        fix="give one shape and one type per input name")
    generator = torch.Generator().manual_seed(0)
    args = []
    for name, shape, type_name in zip(input_names, shapes, types):
        dtype_name = IO_TYPES.get(str(type_name).lower())
        if dtype_name is None:
            raise PassError(f"io_config: input {name} has unknown type {type_name!r}",
                            fix=f"use one of: {', '.join(sorted(IO_TYPES))}")
        dtype = getattr(torch, dtype_name)
        if dtype.is_floating_point:
            args.append(torch.randn(shape, generator=generator).to(dtype))
        else:
            args.append(torch.ones(shape, dtype=dtype))
    output_names = list(io_config.get("output_names") or ["output"])
    dynamic_axes = None
    if params.dynamic and io_config.get("dynamic_axes"):
        dynamic_axes = {name: {int(axis): label for axis, label in axes.items()}
                        for name, axes in io_config["dynamic_axes"].items()}
    ctx.progress(0.3, f"exporting PyTorch module (opset {opset})")
    _export(module, tuple(arg.to(params.device) for arg in args), path, params, opset, input_names, output_names,
            dynamic_axes)
    return {"io_config": io_config}


def _load_module(model: ModelRef, device: str) -> Any:
    """torch.load a saved module. Unpickling a whole module runs code, so only with the user's consent."""
    import pickle

    import torch

    trusted = is_trusted(model)
    try:
        return torch.load(str(model.path), weights_only=not trusted, map_location=device)
    except pickle.UnpicklingError as exc:
        if trusted:
            raise PassError(f"OnnxConversion could not load {model.path}: {exc}",
                            fix="save the module with torch.save(module, path); its class must be importable") from exc
        raise PassError(f"OnnxConversion: {model.path} is a pickled module, and loading it would run code from the "
                        f"file; it was not loaded ({str(exc).splitlines()[0]})",
                        fix=f"if you trust the file, pass {FLAG} or set {PYTORCH_KEY}: true") from exc
    except Exception as exc:  # noqa: BLE001
        raise PassError(f"OnnxConversion could not load {model.path}: {exc}",
                        fix="save the module with torch.save(module, path); its class must be importable") from exc


def _copy_hf_companions(src: Path, out_dir: Path) -> None:
    """Copy tokenizer files, config.json and generation_config.json (not weights) beside the ONNX model."""
    for item in src.iterdir():
        if not item.is_file() or item.name.endswith(WEIGHT_SUFFIXES) or item.name.endswith(".index.json"):
            continue
        if item.suffix in COMPANION_SUFFIXES:
            shutil.copy2(item, out_dir / item.name)
