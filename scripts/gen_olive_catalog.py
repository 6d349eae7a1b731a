"""Generate ModelMill's catalogue of Olive passes from an Olive source checkout, without importing Olive.

    .venv/bin/python scripts/gen_olive_catalog.py /path/to/Olive [--version 0.13.0] \
        [-o server/modelmill/config/olive_passes.json]

Reads ``olive/olive_config.json`` (pass names, module paths, providers, accelerators, precisions, extra
packages) and, with ``ast``, each pass class's ``_default_config``: every ``PassConfigParam`` it returns,
following dict literals, ``**`` splats, ``config.update(...)``, ``config[key] = ...``, module-level dicts,
helper functions (also imported ones) and base classes (``super()._default_config``). Branches that depend on
the accelerator are merged, so a parameter any accelerator has is listed. For each parameter it records the
type as written, a JSON type description the validator checks values against, the default (or, when it is
computed at run time, the expression), whether it is required, whether Olive can search it (and its default
search values when they are literals) and its category (path, object, data). The model kinds a pass accepts
come from the ``model`` annotation of ``_run_for_config``.

Rerun it for a new Olive version; descriptions are ModelMill's own (``DESCRIPTIONS`` below), not Olive's text.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE.parent / "server" / "modelmill" / "config" / "olive_passes.json"

# Olive model handler classes → ModelMill's model kind names.
HANDLER_KINDS = {
    "HfModelHandler": "hf", "DistributedHfModelHandler": "hf", "PyTorchModelHandler": "pytorch",
    "ONNXModelHandler": "onnx", "DistributedOnnxModelHandler": "onnx", "CompositeModelHandler": "composite",
    "OpenVINOModelHandler": "openvino", "QNNModelHandler": "qnn", "QairtModelHandler": "qairt",
    "TensorFlowModelHandler": "tensorflow", "DiffusersModelHandler": "diffusers", "OliveModelHandler": "any",
}
SCALARS = {"bool": "bool", "int": "int", "float": "float", "str": "str"}
PATH_TYPES = {"Path", "ResourcePath", "PathLike", "os.PathLike", "ResourcePathConfig"}
LIST_TYPES = {"list", "List", "tuple", "Tuple", "set", "Set", "Sequence", "Iterable", "frozenset"}
DICT_TYPES = {"dict", "Dict", "Mapping"}
ENUM_BASES = {"Enum", "StrEnum", "IntEnum", "StrEnumBase", "CaseInsensitiveEnum"}

# One line per pass in ModelMill's words (for hover and completion); passes without one get a generic line.
DESCRIPTIONS: dict[str, str] = {
    "AddOliveMetadata": "Writes Olive's metadata (model name, pass history) into an ONNX model's properties.",
    "AimetQuantization": "Quantizes an ONNX model with Qualcomm's AIMET toolkit (calibration data needed).",
    "AutoAWQQuantizer": "Activation-aware weight quantization (AWQ) of a Hugging Face model with AutoAWQ.",
    "AutoClip": "Finds per-layer clipping ranges for a PyTorch model's weights before quantization.",
    "CaptureSplitInfo": "Records how to split a large PyTorch model into parts (for SplitModel later).",
    "CaptureLayerAnnotations": "Records layer names of a PyTorch model so later ONNX passes can keep them.",
    "ComposeOnnxModels": "Joins the ONNX parts of a split model back into one composite model.",
    "DoRA": "Fine-tunes a Hugging Face model with weight-decomposed low-rank adapters (DoRA).",
    "DynamicToFixedShape": "Replaces dynamic input dimensions of an ONNX model with fixed sizes.",
    "EPContextBinaryGenerator": "Compiles an ONNX model into an execution provider's context binary (on the target).",
    "ExtractAdapters": "Moves LoRA adapter weights of an ONNX model out into inputs or an adapter file.",
    "Gptq": "Olive's own GPTQ weight quantization of a Hugging Face model.",
    "GptqQuantizer": "GPTQ weight quantization of a Hugging Face model with auto-gptq.",
    "GptqModel": "GPTQ weight quantization of a Hugging Face model with the gptqmodel package.",
    "GraphSurgeries": "Applies a list of named graph edits (surgeons) to an ONNX model.",
    "IncDynamicQuantization": "Dynamic quantization of an ONNX model with Intel Neural Compressor.",
    "IncQuantization": "Quantization of an ONNX model with Intel Neural Compressor (dynamic or static).",
    "IncStaticQuantization": "Static quantization of an ONNX model with Intel Neural Compressor.",
    "InputNCHWtoNHWC": "Changes an ONNX model's image inputs from NCHW to NHWC layout (Vitis AI).",
    "MatMulNBitsToQDQ": "Rewrites MatMulNBits nodes as QuantizeLinear/DequantizeLinear + MatMul.",
    "MergeAdapterWeights": "Merges LoRA adapter weights into a Hugging Face model's base weights.",
    "MixedPrecisionOverrides": "Sets per-tensor precision overrides for a later QDQ quantization.",
    "ModelBuilder": "Builds an ONNX Runtime GenAI model (ONNX + genai_config.json) from a Hugging Face LLM.",
    "MobiusBuilder": "Builds an ONNX model with the mobius-ai builder.",
    "LoftQ": "LoRA fine-tuning with LoftQ initialization of the quantized base weights.",
    "LoHa": "Fine-tunes a Hugging Face model with LoHa (low-rank Hadamard) adapters.",
    "LoKr": "Fine-tunes a Hugging Face model with LoKr (low-rank Kronecker) adapters.",
    "LoRA": "Fine-tunes a Hugging Face model with low-rank adapters (LoRA).",
    "NVModelOptGraphSurgery": "Graph edits from NVIDIA ModelOpt for an ONNX model.",
    "NVModelOptQuantization": "Quantizes an ONNX model with NVIDIA TensorRT Model Optimizer.",
    "OnnxBlockWiseRtnQuantization": "Round-to-nearest block-wise weight quantization of an ONNX model's MatMul/Gather.",
    "OnnxKQuantQuantization": "k-quant style block-wise weight quantization of an ONNX model.",
    "OnnxBnb4Quantization": "4-bit (FP4/NF4) bitsandbytes-style weight quantization of an ONNX model.",
    "OnnxConversion": "Exports a PyTorch or Hugging Face model to ONNX.",
    "OnnxDiscrepancyCheck": "Compares an ONNX model's outputs with a reference to catch conversion errors.",
    "OnnxDynamicQuantization": "Dynamic (weights-only calibration-free) int8 quantization with ONNX Runtime.",
    "OnnxFloatToFloat16": "Converts an ONNX model's float32 weights and ops to float16.",
    "OnnxIODataTypeConverter": "Changes the element type of an ONNX model's inputs and outputs.",
    "OnnxHqqQuantization": "Half-quadratic (HQQ) block-wise 4-bit weight quantization of an ONNX model.",
    "OnnxOpVersionConversion": "Converts an ONNX model to another opset version.",
    "OnnxPeepholeOptimizer": "Small graph clean-ups (constant folding, redundant nodes) of an ONNX model.",
    "OnnxQuantization": "ONNX Runtime quantization, dynamic or static (static needs calibration data).",
    "OnnxQuantizationPreprocess": "Shape inference and graph clean-up that prepares an ONNX model for quantization.",
    "OnnxScriptFusion": "Operator fusions written with onnxscript's rewriter.",
    "OnnxStaticQuantization": "Static (calibrated) quantization with ONNX Runtime; needs calibration data.",
    "OpenVINOConversion": "Converts a model to OpenVINO IR.",
    "OpenVINOEncapsulation": "Wraps an OpenVINO model in an ONNX model for ONNX Runtime's OpenVINO EP.",
    "OpenVINOIoUpdate": "Fixes the input shapes and names of an OpenVINO model.",
    "OpenVINOOptimumConversion": "Exports a Hugging Face model to OpenVINO with optimum-intel.",
    "OpenVINOQuantization": "Post-training quantization of an OpenVINO model with NNCF.",
    "OpenVINOQuantizationWithAccuracy": "NNCF quantization of an OpenVINO model that keeps accuracy within a bound.",
    "OpenVINOWeightCompression": "Weight compression (int4/int8) of an OpenVINO model with NNCF.",
    "OptimumConversion": "Exports a Hugging Face model to ONNX with optimum.",
    "OptimumMerging": "Merges optimum's decoder and decoder-with-past ONNX models into one.",
    "OrtMixedPrecision": "Converts an ONNX model to mixed float16/float32 precision.",
    "OrtSessionParamsTuning": "Measures ONNX Runtime session settings (threads, EP, options) and keeps the fastest.",
    "OrtTransformersOptimization": "ONNX Runtime's transformer graph fusions (attention, layer norm, GELU).",
    "QairtEncapsulation": "Wraps a QAIRT model for ONNX Runtime (Qualcomm AI Runtime).",
    "QairtGenAIBuilder": "Builds a generative model with the Qualcomm AI Runtime tools.",
    "QairtMHA2SHA": "Splits multi-head attention into single-head attention for Qualcomm NPUs.",
    "QairtPipelinePass": "Runs a Qualcomm AI Runtime preparation pipeline.",
    "QairtPreparation": "Prepares a model for the Qualcomm AI Runtime.",
    "QLoRA": "Fine-tunes a 4-bit quantized Hugging Face model with low-rank adapters (QLoRA).",
    "SDLoRA": "Fine-tunes a Stable Diffusion model with LoRA adapters.",
    "QNNContextBinaryGenerator": "Generates a QNN context binary from a QNN model library.",
    "QNNConversion": "Converts a model to a QNN model with the Qualcomm QNN SDK.",
    "QNNModelLibGenerator": "Compiles a QNN model into a model library.",
    "QNNPreprocess": "Prepares an ONNX model for the QNN execution provider.",
    "QuarkQuantization": "Quantizes a model with AMD Quark.",
    "KQuant": "k-quant style weight quantization of a PyTorch/Hugging Face model.",
    "QuaRot": "Rotates a Hugging Face model's weights (QuaRot) to make them easier to quantize.",
    "Rtn": "Round-to-nearest weight quantization of a Hugging Face model.",
    "SelectiveMixedPrecision": "Chooses which layers of a model keep higher precision when quantizing.",
    "SliceGPT": "Removes rows and columns of a Hugging Face model's weights (SliceGPT pruning).",
    "SparseGPT": "One-shot unstructured or N:M pruning of a Hugging Face model (SparseGPT).",
    "SpinQuant": "Learns rotations of a Hugging Face model's weights (SpinQuant) before quantization.",
    "SplitModel": "Splits an ONNX model into parts, following recorded split information.",
    "StaticLLM": "Rewrites an LLM's ONNX model with static shapes for NPUs.",
    "VitisAIAddMetaData": "Adds the metadata AMD Vitis AI expects to an ONNX model.",
    "VitisGenerateModelLLM": "Generates an LLM model for AMD Ryzen AI (Vitis AI) NPUs.",
    "VitisGenerateModelSD": "Generates a Stable Diffusion model for AMD Ryzen AI (Vitis AI) NPUs.",
}


# ------------------------------------------------------------------ source modules


@dataclass
class Module:
    name: str
    tree: ast.Module
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name → (module, name)
    globals: dict[str, ast.expr] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)


class Source:
    """Olive's modules, parsed on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._modules: dict[str, Module | None] = {}

    def module(self, name: str) -> Module | None:
        if name not in self._modules:
            self._modules[name] = self._load(name)
        return self._modules[name]

    def _load(self, name: str) -> Module | None:
        base = self.root.joinpath(*name.split("."))
        path = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if not path.exists():
            return None
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = Module(name, tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    source = ".".join([*parts, source] if source else parts)
                for alias in node.names:
                    module.imports[alias.asname or alias.name] = (source, alias.name)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                module.globals[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                module.globals[node.target.id] = node.value
            elif isinstance(node, ast.FunctionDef):
                module.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                module.classes[node.name] = node
        return module

    def resolve(self, module: Module, name: str, kind: str, depth: int = 0) -> tuple[Module, Any] | None:
        """Where ``name`` (a global, function or class as seen from ``module``) is defined."""
        table = {"global": module.globals, "function": module.functions, "class": module.classes}[kind]
        if name in table:
            return module, table[name]
        if name in module.imports and depth < 8:
            source, original = module.imports[name]
            target = self.module(source)
            if target is not None:
                return self.resolve(target, original, kind, depth + 1)
        return None


# ------------------------------------------------------------------ types and values


class Converter:
    """Type annotations and literal values, as JSON."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def type_schema(self, module: Module, node: ast.expr | None) -> dict[str, Any]:
        if node is None:
            return {"kind": "any"}
        if isinstance(node, ast.Constant) and node.value is None:
            return {"kind": "null"}
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a forward reference
            try:
                return self.type_schema(module, ast.parse(node.value, mode="eval").body)
            except SyntaxError:
                return {"kind": "any"}
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return _union([self.type_schema(module, node.left), self.type_schema(module, node.right)])
        name = _dotted(node.value if isinstance(node, ast.Subscript) else node)
        short = name.rpartition(".")[2] if name else ""
        if isinstance(node, ast.Subscript):
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if short in ("Union", "Optional"):
                items = [self.type_schema(module, arg) for arg in args]
                return _union(items + ([{"kind": "null"}] if short == "Optional" else []))
            if short == "Literal":
                return {"kind": "enum", "values": [a.value for a in args if isinstance(a, ast.Constant)]}
            if short in LIST_TYPES:
                items = [self.type_schema(module, arg) for arg in args if not _is_ellipsis(arg)]
                return {"kind": "list", "items": _union(items) if items else {"kind": "any"}}
            if short in DICT_TYPES:
                return {"kind": "dict"}
            if short in ("Annotated",):
                return self.type_schema(module, args[0])
            return {"kind": "any", "name": short}
        if short in SCALARS:
            return {"kind": SCALARS[short]}
        if short in PATH_TYPES:
            return {"kind": "path"}
        if short in LIST_TYPES:
            return {"kind": "list", "items": {"kind": "any"}}
        if short in DICT_TYPES:
            return {"kind": "dict"}
        if short in ("Any", "object", "Callable"):
            return {"kind": "any"}
        enum = self.enum(module, short) if short else None
        if enum is not None:
            return enum
        return {"kind": "any", "name": short} if short else {"kind": "any"}

    def enum(self, module: Module, name: str) -> dict[str, Any] | None:
        found = self.source.resolve(module, name, "class") or _nested_class(module, name)
        if found is None:
            return None
        cls = found[1]
        bases = {(_dotted(b) or "").rpartition(".")[2] for b in cls.bases}
        if not bases & ENUM_BASES:
            return None
        values = []
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) and \
                    isinstance(stmt.value, ast.Constant):
                values.append(stmt.value.value)
        if not values:
            return None
        return {"kind": "enum", "values": values, "name": name,
                "case_insensitive": "CaseInsensitiveEnum" in bases}

    def value(self, module: Module, node: ast.expr | None) -> tuple[Any, str | None]:
        """(value, None) for a literal or an enum member; (None, source text) for anything computed."""
        if node is None:
            return None, None
        try:
            return ast.literal_eval(node), None
        except (ValueError, SyntaxError, TypeError):
            pass
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            found = self.source.resolve(module, node.value.id, "class")
            if found is not None:
                for stmt in found[1].body:
                    if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) and \
                            stmt.targets[0].id == node.attr and isinstance(stmt.value, ast.Constant):
                        return stmt.value.value, None
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.value(module, elt) for elt in node.elts]
            if all(text is None for _, text in items):
                return [value for value, _ in items], None
        return None, ast.unparse(node)


def _nested_class(module: Module, name: str) -> tuple[Module, ast.ClassDef] | None:
    """A class defined inside a class of ``module`` (``ModelBuilder.BlockSize``)."""
    for outer in module.classes.values():
        for stmt in outer.body:
            if isinstance(stmt, ast.ClassDef) and stmt.name == name:
                return module, stmt
    return None


def _union(items: list[dict[str, Any]]) -> dict[str, Any]:
    flat: list[dict[str, Any]] = []
    for item in items:
        for sub in item.get("anyOf", [item]) if item["kind"] == "union" else [item]:
            if sub not in flat:
                flat.append(sub)
    return flat[0] if len(flat) == 1 else {"kind": "union", "anyOf": flat}


def _is_ellipsis(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is Ellipsis


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


# ------------------------------------------------------------------ _default_config


Params = dict[str, dict[str, Any]]


class ConfigReader:
    """Evaluates a ``_default_config`` body far enough to collect its parameters."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.convert = Converter(source)
        self.unresolved: list[str] = []
        self.locals: dict[str, ast.expr] = {}  # simple local assignments (``type_ = Union[Path, str]``)

    def pass_config(self, module: Module, cls: ast.ClassDef, depth: int = 0) -> Params:
        method = _method(cls, "_default_config")
        if method is None:
            base = self.base_class(module, cls)
            return self.pass_config(*base, depth + 1) if base and depth < 10 else {}
        return self.function(module, method, cls, depth)

    def base_class(self, module: Module, cls: ast.ClassDef) -> tuple[Module, ast.ClassDef] | None:
        for base in cls.bases:
            name = _dotted(base)
            if name and name.rpartition(".")[2] != "Pass":
                found = self.source.resolve(module, name.rpartition(".")[2], "class")
                if found is not None:
                    return found
        return None

    def function(self, module: Module, func: ast.FunctionDef, cls: ast.ClassDef | None, depth: int) -> Params:
        scope: dict[str, Params] = {}
        result: Params = {}
        self.locals = {}
        self._block(module, func.body, scope, result, cls, depth, top=True)
        return result

    def _block(self, module: Module, body: list[ast.stmt], scope: dict[str, Params], result: Params,
               cls: ast.ClassDef | None, depth: int, top: bool) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                value = stmt.value
                if value is None:
                    continue
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.locals[target.id] = value
                        found = self.expr(module, value, scope, cls, depth)
                        if found is not None:
                            scope[target.id] = {**scope.get(target.id, {}), **found} if not top else found
                    elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and \
                            isinstance(target.slice, ast.Constant) and _is_param_call(value):
                        scope.setdefault(target.value.id, {})[target.slice.value] = self.param(module, value)
                    elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Subscript):
                        self._set_attribute(module, target, value, scope)
            elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
                found = self.expr(module, stmt.value, scope, cls, depth)
                if found:
                    scope.setdefault(stmt.target.id, {}).update(found)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                call = stmt.value
                if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name):
                    var, method = call.func.value.id, call.func.attr
                    if method == "update" and call.args:
                        found = self.expr(module, call.args[0], scope, cls, depth)
                        if found:
                            scope.setdefault(var, {}).update(found)
                    elif method == "pop" and top and call.args and isinstance(call.args[0], ast.Constant):
                        scope.get(var, {}).pop(call.args[0].value, None)
            elif isinstance(stmt, ast.Delete) and top:
                for target in stmt.targets:
                    if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and \
                            isinstance(target.slice, ast.Constant):
                        scope.get(target.value.id, {}).pop(target.slice.value, None)
            elif isinstance(stmt, ast.Return) and stmt.value is not None:
                found = self.expr(module, stmt.value, scope, cls, depth)
                if found:
                    result.update(found)
            elif isinstance(stmt, (ast.If, ast.For, ast.With, ast.Try, ast.While)):
                for block in _sub_blocks(stmt):
                    self._block(module, block, scope, result, cls, depth, top=False)

    def _set_attribute(self, module: Module, target: ast.Attribute, value: ast.expr,
                       scope: dict[str, Params]) -> None:
        sub = target.value
        if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name) and isinstance(sub.slice, ast.Constant):
            param = scope.get(sub.value.id, {}).get(sub.slice.value)
            if param is not None and target.attr == "default_value":
                default, computed = self.convert.value(module, value)
                param["default"], param["default_expr"] = default, computed
                if computed is None:
                    param.pop("default_expr")
            elif param is not None and target.attr == "required":
                param["required"] = bool(getattr(value, "value", False))

    def expr(self, module: Module, node: ast.expr, scope: dict[str, Params], cls: ast.ClassDef | None,
             depth: int) -> Params | None:
        if depth > 12:
            return None
        if isinstance(node, ast.Dict):
            result: Params = {}
            for key, value in zip(node.keys, node.values):
                if key is None:
                    result.update(self.expr(module, value, scope, cls, depth) or {})
                elif isinstance(key, ast.Constant) and isinstance(key.value, str) and _is_param_call(value):
                    result[key.value] = self.param(module, value)
            return result
        if isinstance(node, ast.Name):
            if node.id in scope:
                return dict(scope[node.id])
            found = self.source.resolve(module, node.id, "global")
            return self.expr(found[0], found[1], {}, None, depth + 1) if found else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return {**(self.expr(module, node.left, scope, cls, depth) or {}),
                    **(self.expr(module, node.right, scope, cls, depth) or {})}
        if isinstance(node, ast.Call):
            return self.call(module, node, scope, cls, depth)
        return None

    def call(self, module: Module, node: ast.Call, scope: dict[str, Params], cls: ast.ClassDef | None,
             depth: int) -> Params | None:
        func = node.func
        name = _dotted(func) or ""
        short = name.rpartition(".")[2]
        if short in ("deepcopy", "copy", "dict") and node.args:
            return self.expr(module, node.args[0], scope, cls, depth)
        if short == "dict" and node.keywords:
            return {kw.arg: self.param(module, kw.value) for kw in node.keywords if kw.arg and _is_param_call(kw.value)}
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) and _dotted(func.value.func) == "super":
            base = self.base_class(module, cls) if cls is not None else None
            if base is not None:
                method = _method(base[1], func.attr)
                if method is not None:
                    return self.function(base[0], method, base[1], depth + 1)
                return self.pass_config(*base, depth + 1) if func.attr == "_default_config" else None
            return None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = func.value.id
            if owner == "cls" and cls is not None:
                found_cls: tuple[Module, ast.ClassDef] | None = (module, cls)
            else:
                found_cls = self.source.resolve(module, owner, "class")
            while found_cls is not None:
                method = _method(found_cls[1], func.attr)
                if method is not None:
                    return self.function(found_cls[0], method, found_cls[1], depth + 1)
                found_cls = self.base_class(*found_cls)
            return None
        if isinstance(func, ast.Name):
            found = self.source.resolve(module, func.id, "function")
            if found is not None:
                return self.function(found[0], found[1], None, depth + 1)
            self.unresolved.append(f"{module.name}: {func.id}()")
        return None

    def param(self, module: Module, call: ast.Call) -> dict[str, Any]:
        kwargs = {kw.arg: kw.value for kw in call.keywords if kw.arg}
        type_node = kwargs.get("type_", call.args[0] if call.args else None)
        if isinstance(type_node, ast.Name) and type_node.id in self.locals:
            type_node = self.locals[type_node.id]
        default, computed = self.convert.value(module, kwargs.get("default_value"))
        required = kwargs.get("required")
        param: dict[str, Any] = {
            "type": ast.unparse(type_node) if type_node is not None else "Any",
            "schema": self.convert.type_schema(module, type_node),
            "default": default,
            "required": bool(isinstance(required, ast.Constant) and required.value),
        }
        if computed is not None:
            param["default_expr"] = computed
        search = kwargs.get("search_defaults")
        if search is not None and not (isinstance(search, ast.Constant) and search.value is None):
            param["searchable"] = True
            if isinstance(search, ast.Call) and (_dotted(search.func) or "").endswith("Categorical") and search.args:
                values, text = self.convert.value(module, search.args[0])
                if text is None:
                    param["search_values"] = values
        category = kwargs.get("category")
        if isinstance(category, ast.Attribute):
            param["category"] = category.attr.lower()
        return param


def _is_param_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and (_dotted(node.func) or "").endswith("PassConfigParam")


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == name), None)


def _sub_blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    blocks = [getattr(stmt, "body", []), getattr(stmt, "orelse", []), getattr(stmt, "finalbody", [])]
    blocks += [handler.body for handler in getattr(stmt, "handlers", [])]
    return [block for block in blocks if block]


def accepted_kinds(reader: ConfigReader, module: Module, cls: ast.ClassDef) -> list[str]:
    found: tuple[Module, ast.ClassDef] | None = (module, cls)
    while found is not None:
        method = _method(found[1], "_run_for_config")
        if method is not None:
            args = method.args.args
            annotation = args[1].annotation if len(args) > 1 else None
            names = _annotation_names(annotation)
            kinds = sorted({HANDLER_KINDS[n] for n in names if n in HANDLER_KINDS})
            return ["any"] if "any" in kinds or not kinds else kinds
        found = reader.base_class(*found)
    return ["any"]


def _annotation_names(node: ast.expr | None) -> set[str]:
    if node is None:
        return set()
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _annotation_names(ast.parse(node.value, mode="eval").body)
    return {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute))}


# ------------------------------------------------------------------ catalogue


def build(root: Path, version: str) -> dict[str, Any]:
    olive_config = json.loads((root / "olive" / "olive_config.json").read_text(encoding="utf-8"))
    source = Source(root)
    reader = ConfigReader(source)
    passes: dict[str, Any] = {}
    for name, info in olive_config["passes"].items():
        module_name, _, class_name = info["module_path"].rpartition(".")
        module = source.module(module_name)
        found = source.resolve(module, class_name, "class") if module else None
        if found is None:
            print(f"warning: {info['module_path']} not found", file=sys.stderr)
            params: Params = {}
            kinds = ["any"]
        else:
            params = reader.pass_config(*found)
            kinds = accepted_kinds(reader, *found)
        extras = info.get("extra_dependencies", [])
        packages = sorted({req for extra in extras for req in olive_config["extra_dependencies"].get(extra, [extra])}
                          | set(info.get("module_dependencies", [])))
        passes[name] = {
            "description": DESCRIPTIONS.get(name, ""),
            "module": info["module_path"],
            "accepts": kinds,
            "providers": info.get("supported_providers", []),
            "accelerators": info.get("supported_accelerators", []),
            "precisions": info.get("supported_precisions", []),
            "algorithms": info.get("supported_algorithms", []),
            "quantization_encodings": info.get("supported_quantization_encodings", []),
            "extras": extras,
            "packages": packages,
            "run_on_target": bool(info.get("run_on_target", False)),
            "dataset": info.get("dataset", "dataset_not_required"),
            "params": dict(sorted(params.items())),
        }
    for line in sorted(set(reader.unresolved)):
        print(f"note: not followed: {line}", file=sys.stderr)
    return {
        "olive_version": version,
        "generated_by": "scripts/gen_olive_catalog.py",
        "name_rules": "case-insensitive; a dotted name resolves by its last component (Olive's get_pass_module_config)",
        "passes": passes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("olive", type=Path, help="an Olive source checkout (the folder that holds olive/)")
    parser.add_argument("--version", default="0.13.0", help="the Olive version the checkout is (recorded)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    catalogue = build(args.olive.resolve(), args.version)
    args.output.write_text(json.dumps(catalogue, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    counts = sum(len(p["params"]) for p in catalogue["passes"].values())
    print(f"wrote {args.output}: {len(catalogue['passes'])} passes, {counts} parameters", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
