"""CaptureSplitInfo: decide which split each module of a PyTorch/HF model goes to (Olive's capture_split_info).

The decision travels as ``attributes["split_assignments"]`` (module name → split index); OnnxConversion and
ModelBuilder write it into the ONNX model's ``metadata_props["split_assignments"]`` (``name=0;name=1``), where
SplitModel reads it. The model is built on the meta device: the module tree is all it takes, not the weights.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.base import Pass, PassParams

if TYPE_CHECKING:
    import torch


class CaptureSplitInfoParams(PassParams):
    num_splits: int | None = Field(None, description="Number of splits to divide the model layers into. One of "
                                   "num_splits or cost_model is required.")
    block_to_split: str | list[str] | None = Field(
        None, description="Names of the model blocks whose children are divided into the splits. For transformers "
                          "models the default is the decoder layers block (e.g. model.layers); \"\" is the model "
                          "itself.")
    cost_model: str | None = Field(
        None, description="Path to a cost model CSV (module,num_params,num_bytes,num_flops; `modelmill "
                          "generate-cost-model` writes one). Splits so that each fits the target accelerator's "
                          "memory (systems.<target>.accelerators[0].memory). One of num_splits or cost_model is "
                          "required.")
    unique_embeds_lm_head_splits: bool = Field(False, description="Assign embeddings and lm_head layers to their "
                                               "own splits.")

    @field_validator("cost_model")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        """Olive resolves a path parameter against the folder it runs from; passes run in a scratch folder."""
        return str(Path(value).expanduser().resolve()) if value else value

    @model_validator(mode="after")
    def _positive(self) -> CaptureSplitInfoParams:
        if self.num_splits is not None and self.num_splits < 1:
            raise ValueError("num_splits must be at least 1")
        return self


class CaptureSplitInfo(Pass):
    name = "CaptureSplitInfo"
    description = ("Records how to split a large model into parts: num_splits divides the transformer layers "
                   "evenly; a cost_model CSV and the target accelerator's memory split by bytes. The assignments "
                   "go into the ONNX model's metadata at conversion, for SplitModel.")
    Params = CaptureSplitInfoParams
    accepts = frozenset({"hf", "pytorch"})
    produces = "hf"

    @classmethod
    def output_kind(cls, input_kind: Any) -> Any:
        return input_kind  # the same model, with split_assignments attached

    @classmethod
    def cache_context(cls, params: PassParams) -> dict[str, Any] | None:
        """The cost model's content: an edited CSV gives other splits."""
        path = Path(getattr(params, "cost_model", None) or "")
        if not getattr(params, "cost_model", None) or not path.is_file():
            return None
        import hashlib

        return {"cost_model_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, CaptureSplitInfoParams)
        if params.num_splits is None and params.cost_model is None:
            raise PassError(f"{self.name}: one of num_splits or cost_model is required",
                            fix=f"set passes.{ctx.pass_name}.num_splits (e.g. 2), or cost_model with the target "
                                "accelerator's memory", where=f"passes.{ctx.pass_name}")
        if params.num_splits is None and ctx.accelerator.memory is None:
            raise PassError(f"{self.name}: accelerator memory is required to split using cost model",
                            fix="set memory on the target system's accelerator, e.g. \"memory\": \"2GB\" "
                                "(auto-opt: --memory 2GB)", where=f"passes.{ctx.pass_name}.cost_model")
        ctx.progress(0.1, "building the module tree (no weights)")
        module = load_structure(model, self.name)
        if params.num_splits:
            assignments = split_by_count(module, params.num_splits, params.block_to_split,
                                         params.unique_embeds_lm_head_splits, is_hf=model.kind == "hf")
        else:
            costs = read_cost_model(Path(params.cost_model or ""), self.name)
            assignments = split_by_cost(module, costs, int(ctx.accelerator.memory or 0),
                                        params.unique_embeds_lm_head_splits, is_hf=model.kind == "hf")
        count = len(set(assignments.values()))
        ctx.log(f"split the model into {count} splits")
        ctx.report("num_splits", count)
        ctx.progress(1.0, f"{count} splits")
        return _output(model, assignments, ctx)


def _output(model: ModelRef, assignments: dict[str, int], ctx: PassContext) -> ModelRef:
    """The same model with the assignments attached. Its output folder holds only split_assignments.json: an HF
    model's weights stay where they are (``base_model_path``, as for an adapter); a saved module is copied."""
    import json
    import shutil

    (ctx.output_dir / "split_assignments.json").write_text(json.dumps(assignments, indent=2) + "\n")
    attributes = {**model.attributes, "split_assignments": assignments}
    if model.kind == "pytorch":
        target = ctx.output_dir / model.path.name
        (shutil.copytree if model.path.is_dir() else shutil.copy2)(model.path, target)
        return ModelRef(kind="pytorch", path=target, attributes=attributes)
    attributes["base_model_path"] = str(model.base_model_path)
    if model.adapter_dir is not None:
        attributes["adapter_path"] = str(model.adapter_dir)  # absolute: it no longer lies under ``path``
    return ModelRef(kind=model.kind, path=ctx.output_dir, attributes=attributes)


# ------------------------------------------------------------------ the module tree


def load_structure(model: ModelRef, pass_name: str) -> "torch.nn.Module":
    """The model's modules: an HF model built from its config on the meta device; a saved module loaded."""
    import torch

    if model.kind == "pytorch":
        from modelmill.passes.onnx_conversion import _load_module

        return _load_module(model, "cpu")
    import transformers

    from modelmill.remote_code import is_trusted, require_trust

    require_trust(model, pass_name)
    trust = is_trusted(model)
    try:
        config = transformers.AutoConfig.from_pretrained(str(model.base_model_path), local_files_only=True,
                                                         trust_remote_code=trust)
        causal = any(str(arch).endswith("ForCausalLM") for arch in getattr(config, "architectures", None) or [])
        auto = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
        with torch.device("meta"):
            return auto.from_config(config, trust_remote_code=trust)
    except Exception as exc:  # noqa: BLE001 - config and model classes fail in many ways
        raise PassError(f"{pass_name} could not build the model in {model.base_model_path}: "
                        f"{type(exc).__name__}: {exc}",
                        fix="check that the folder holds a Hugging Face model (config.json)") from exc


def _layers_block(module: "torch.nn.Module") -> str:
    """The name of the transformer layers block: the longest ModuleList (the decoder/encoder layers)."""
    import torch

    lists = [(len(child), name) for name, child in module.named_modules() if isinstance(child, torch.nn.ModuleList)]
    if not lists:
        raise PassError("CaptureSplitInfo could not find the model's layers block",
                        fix="set block_to_split to the module whose children are the layers, e.g. model.layers")
    return max(lists, key=lambda item: item[0])[1]


def _submodule(module: "torch.nn.Module", name: str) -> "torch.nn.Module":
    if name == "":
        return module
    try:
        return module.get_submodule(name)
    except AttributeError as exc:
        raise PassError(f"CaptureSplitInfo: block_to_split {name!r} is not a module of the model",
                        fix="use a module name from the model, e.g. model.layers") from exc


def _embedding_names(module: "torch.nn.Module", is_hf: bool) -> list[str]:
    if not is_hf or not hasattr(module, "get_input_embeddings"):
        return ["model.embed_tokens"]
    embeddings = module.get_input_embeddings()
    return [name for name, child in module.named_modules() if child is embeddings][:1] or ["model.embed_tokens"]


def _initial(module: "torch.nn.Module", unique: bool, is_hf: bool) -> tuple[dict[str, int], int, set[str]]:
    """Assignments so far, the next split index and the modules the layer splits skip (Olive's order: the
    embeddings take split 0 and lm_head the last one when ``unique``)."""
    if not unique:
        return {}, 0, set()
    embeds = _embedding_names(module, is_hf)
    return dict.fromkeys(embeds, 0), 1, {*embeds, "lm_head"}


def split_by_count(module: "torch.nn.Module", num_splits: int, block_to_split: str | list[str] | None,
                   unique: bool, is_hf: bool = True) -> dict[str, int]:
    """The children of the layer blocks divided into ``num_splits`` consecutive groups (numpy's array_split:
    the first groups take one more where they do not divide evenly)."""
    if block_to_split is None:
        if not is_hf:
            raise PassError("CaptureSplitInfo: block_to_split is not set and could not be inferred",
                            fix="set block_to_split to the module whose children to split, e.g. layers")
        blocks = [_layers_block(module)]
    else:
        blocks = block_to_split if isinstance(block_to_split, list) else [block_to_split]
    members = [f"{block}.{child}".lstrip(".") for block in blocks
               for child, _ in _submodule(module, block).named_children()]
    assignments, used, exclude = _initial(module, unique, is_hf)
    base, extra = divmod(len(members), num_splits)
    start = 0
    for index in range(num_splits):
        size = base + (1 if index < extra else 0)
        for member in members[start:start + size]:
            if member not in exclude:
                assignments[member] = index + used
        start += size
    if unique:
        assignments["lm_head"] = num_splits + used
    return assignments


def read_cost_model(path: Path, pass_name: str = "CaptureSplitInfo") -> dict[str, tuple[int, int, int]]:
    """module → (num_params, num_bytes, num_flops) from a cost model CSV."""
    where = "cost_model"
    if not path.is_file():
        raise PassError(f"{pass_name}: cost model {path} does not exist",
                        fix="write one with `modelmill generate-cost-model -m MODEL -o cost.csv`", where=where)
    costs: dict[str, tuple[int, int, int]] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"module", "num_params", "num_bytes", "num_flops"} - set(reader.fieldnames or [])
        if missing:
            raise PassError(f"{pass_name}: cost model {path} has no column {', '.join(sorted(missing))}",
                            fix="the header must be module,num_params,num_bytes,num_flops "
                                "(`modelmill generate-cost-model` writes it)", where=where)
        for line, row in enumerate(reader, start=2):
            try:
                costs[row["module"]] = (int(row["num_params"]), int(float(row["num_bytes"])), int(row["num_flops"]))
            except (TypeError, ValueError) as exc:
                raise PassError(f"{pass_name}: cost model {path} line {line}: {exc}",
                                fix="num_params, num_bytes and num_flops must be numbers", where=where) from exc
    return costs


def split_by_cost(module: "torch.nn.Module", costs: dict[str, tuple[int, int, int]], memory: int, unique: bool,
                  is_hf: bool = True) -> dict[str, int]:
    """Walk the modules in order, starting a new split when the bytes would pass ``memory`` or when the kind of
    module changes between memory-bound (more parameters than FLOPs, e.g. embeddings) and compute-bound."""
    assignments, split, exclude = _initial(module, unique, is_hf)
    split_bytes = 0
    first = True
    memory_bound = False
    for name, _ in module.named_modules():
        if name not in costs or name in exclude or name.lower().endswith("dropout"):
            continue
        num_params, num_bytes, num_flops = costs[name]
        current = num_params > num_flops > 0
        if not first and (memory_bound != current or split_bytes + num_bytes > memory):
            split += 1
            split_bytes = 0
        assignments[name] = split
        split_bytes += num_bytes
        first = False
        memory_bound = current
    if unique:
        split += 1
        assignments["lm_head"] = split
    return assignments
