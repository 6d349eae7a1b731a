"""LoRA: fine-tune a Hugging Face causal LM with low-rank adapters (peft + transformers' Trainer)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from modelmill.engine.cancel import graceful_cancel
from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.base import Pass, PassParams
from modelmill.remote_code import is_trusted, require_trust


# load_dataset builder names that Olive configs pass as data_name, with the files in data_files.
OLIVE_LOADERS = ("json", "csv", "parquet", "arrow")


class TrainingArgs(PassParams):
    """The subset of Hugging Face TrainingArguments that Olive's LoRA pass and `finetune` pass through."""

    max_steps: int = Field(-1, description="Optimizer steps to run; -1 = run num_train_epochs epochs.")
    num_train_epochs: float = Field(1.0, description="Epochs over the train split when max_steps is -1.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate (AdamW).")
    per_device_train_batch_size: int = Field(1, ge=1, description="Samples per step and device.")
    per_device_eval_batch_size: int = Field(1, ge=1, description="Samples per evaluation batch.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Steps whose gradients add up before an update.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory (slower).")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    lr_scheduler_type: str = Field("linear", description="linear, cosine, constant, constant_with_warmup, ...")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, description="Gradient clipping norm.")
    seed: int = Field(42, description="Random seed of data order, dropout and LoRA initialisation.")
    save_steps: int = Field(50, ge=1, description="Checkpoint every this many steps (a cancelled or crashed "
                                                  "run resumes from the last one).")
    eval_steps: int | None = Field(None, ge=1, description="Evaluate every this many steps (default: save_steps).")
    logging_steps: int = Field(1, ge=1, description="Report loss and learning rate every this many steps.")

    def trainer_kwargs(self) -> dict[str, Any]:
        values = self.model_dump()
        values["eval_steps"] = values["eval_steps"] or values["save_steps"]
        return values


class LoRAParams(PassParams):
    r: int = Field(64, ge=1, description="LoRA rank (R dimension of the low-rank matrices).")
    alpha: int = Field(16, ge=1, description="LoRA alpha: the update is scaled by alpha / r.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input during training.")
    target_modules: list[str] | None = Field(None, description="Module names to adapt, e.g. [\"q_proj\", "
                                             "\"v_proj\"]; default: peft's choice for the architecture.")
    modules_to_save: list[str] | None = Field(None, description="Modules trained in full and saved with the "
                                              "adapter, e.g. [\"lm_head\"].")
    torch_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Dtype the base model is loaded in: auto = bfloat16 on GPUs that support it, "
                            "float32 on CPU (Olive's default is bfloat16, which CPUs without AMX emulate slowly).")
    device_map: Literal["auto", "current_device"] = Field("auto", description="Olive compatibility: the model "
                                                          "trains on the first GPU when there is one, else the CPU.")
    train_data_config: str | dict[str, Any] = Field(description="Training data: the name of a data_configs entry. "
                                                    "load_dataset_config takes data_name (local file, folder or "
                                                    "sample:instructions) and split; pre_process_data_config takes "
                                                    "text_template / text_field / use_chat_template and "
                                                    "max_seq_len.")
    eval_data_config: str | dict[str, Any] | None = Field(None, description="Evaluation data (same form); its "
                                                          "loss is reported every eval_steps.")
    training_args: TrainingArgs = Field(default_factory=TrainingArgs, description="Training settings (a subset of "
                                        "Hugging Face TrainingArguments).")
    merge_adapter: bool = Field(False, description="Also write the base model with the adapter merged in, at the "
                                "top of the output (a plain Hugging Face folder that auto-opt takes directly).")
    trust_remote_code: bool = Field(False, description="Allow custom model code from the model folder.")

    @model_validator(mode="before")
    @classmethod
    def _olive_names(cls, data: Any) -> Any:
        # Olive's finetune and older LoRA configs write lora_r / lora_alpha.
        if isinstance(data, dict):
            data = dict(data)
            for old, new in (("lora_r", "r"), ("lora_alpha", "alpha")):
                if old in data and new not in data:
                    data[new] = data.pop(old)
        return data


class LoRA(Pass):
    name = "LoRA"
    description = ("Fine-tunes a Hugging Face causal language model with LoRA adapters (peft) on local data. "
                   "Writes adapter/ (adapter_model.safetensors + adapter_config.json) and training_log.json, "
                   "and with merge_adapter the merged model; progress (step, loss, learning rate, eta) streams as "
                   "run events and cancel stops at the next step, keeping a checkpoint to resume from.")
    Params = LoRAParams
    accepts = frozenset({"hf"})
    produces = "hf"
    cancel_grace_s: ClassVar[float] = 120.0  # a training step on a large model can take this long

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, LoRAParams)
        from modelmill.finetune import dataset as data

        if model.attributes.get("adapter_path"):
            raise PassError("the input model already has an adapter", fix="merge it first (merge_adapter) or start "
                            "from the base model", where="input_model.adapter_path")
        train_spec = _data_spec(params.train_data_config, ctx, "train_data_config")
        eval_spec = _data_spec(params.eval_data_config, ctx, "eval_data_config") if params.eval_data_config else None
        ctx.progress(0.0, f"reading {train_spec['data_name']}")
        datasets_cache = ctx.cache_dir / "datasets"
        train_rows = data.load_split(train_spec["data_name"], train_spec["split"], datasets_cache)
        data.check_fields(train_rows, train_spec["text"], train_spec["data_name"])
        eval_rows = None
        if eval_spec:
            eval_rows = data.load_split(eval_spec["data_name"], eval_spec["split"], datasets_cache)
            data.check_fields(eval_rows, eval_spec["text"], eval_spec["data_name"])
        if len(train_rows) == 0:
            raise PassError(f"the train split of {train_spec['data_name']} is empty", fix="check the data and split",
                            where="train_data_config")
        return _train(model, params, ctx, train_spec, train_rows, eval_spec, eval_rows)


def _train(model: ModelRef, params: LoRAParams, ctx: PassContext, train_spec: dict[str, Any], train_rows: Any,
           eval_spec: dict[str, Any] | None, eval_rows: Any) -> ModelRef:
    import torch

    from modelmill.errors import RunCancelled
    from modelmill.finetune import dataset as data
    from modelmill.finetune import training

    on_gpu = ctx.accelerator.device == "gpu"
    if on_gpu and not torch.cuda.is_available():
        raise PassError(f"training on the GPU was asked for, but this torch ({torch.__version__}) sees no CUDA device",
                        fix="install a CUDA build of torch on a machine with an NVIDIA GPU, or use --device cpu",
                        where="systems.accelerators.device")
    # The pass's own trust_remote_code (Olive's key) or the input model's consent lets the folder's code run.
    trusted = params.trust_remote_code or is_trusted(model)
    if not trusted:
        require_trust(model, "LoRA", model.path)
    ctx.progress(0.0, "loading the model")
    lora = training.LoraSettings(params.r, params.alpha, params.lora_dropout, params.target_modules,
                                 params.modules_to_save)
    peft_model, tokenizer = training.load_peft_model(model.path, lora, training.resolve_dtype(params.torch_dtype,
                                                     on_gpu), trusted)
    train_tokens = data.tokenize(train_rows, train_spec["text"], tokenizer, train_spec["max_seq_len"])
    eval_tokens = data.tokenize(eval_rows, eval_spec["text"], tokenizer, eval_spec["max_seq_len"]) \
        if eval_spec else None
    trainable, total = peft_model.get_nb_trainable_parameters()
    ctx.log(f"LoRA r={params.r} alpha={params.alpha}: {trainable:,} of {total:,} parameters train "
            f"({100 * trainable / total:.2f}%); {len(train_tokens)} training samples")
    checkpoints = ctx.cache_dir / "lora-checkpoints" / _checkpoint_key(model, params, train_spec, eval_spec)
    resume = training.last_checkpoint(checkpoints)
    if resume:
        ctx.log(f"resuming from {resume.name} (kept by an earlier run that stopped)")
    arguments = params.training_args.trainer_kwargs()
    if not on_gpu:
        arguments["use_cpu"] = True
    events = training.EventCallback(lambda type, **fields: ctx.bus.emit(type, pass_name=ctx.pass_name, **fields),
                                    ctx.progress, ctx.cancel)
    with graceful_cancel():
        outcome = training.train(peft_model, tokenizer, train_tokens, eval_tokens, arguments, checkpoints, events)
    if outcome.cancelled:
        ctx.warn(f"training stopped at step {outcome.steps} of {outcome.max_steps}; the adapter of that step is kept "
                 f"in {outcome.checkpoint}; run the same command again to resume from it")
        raise RunCancelled()
    summary = {"base_model": str(model.path), "train_data": _describe(train_spec), "eval_data":
               _describe(eval_spec) if eval_spec else None, "lora": {"r": params.r, "alpha": params.alpha,
               "dropout": params.lora_dropout, "target_modules": sorted(peft_model.peft_config["default"].target_modules)},
               "training_args": params.training_args.model_dump(), "trainable_parameters": trainable,
               "resumed_from": resume.name if resume else None}
    ctx.progress(1.0, "saving the adapter" + (" and the merged model" if params.merge_adapter else ""))
    training.save_outputs(peft_model, tokenizer, model.path, ctx.output_dir, params.merge_adapter, outcome, summary)
    shutil.rmtree(checkpoints, ignore_errors=True)  # finished: the result is in the cache now
    if params.merge_adapter:
        return ModelRef(kind="hf", path=ctx.output_dir, attributes={**model.attributes, "adapter_path": None})
    return ModelRef(kind="hf", path=ctx.output_dir,
                    attributes={**model.attributes, "base_model_path": str(model.path), "adapter_path": "adapter"})


def _data_spec(config: str | dict[str, Any] | None, ctx: PassContext, key: str) -> dict[str, Any]:
    """data_name, split, TextSpec and max_seq_len from an Olive data config (by name or inline)."""
    from modelmill.engine.data import _params, resolve_data_config
    from modelmill.finetune.dataset import TextSpec, unescape_template

    resolved = resolve_data_config(config, ctx.data_configs) or {}
    load = _params(resolved.get("load_dataset_config"))
    pre = _params(resolved.get("pre_process_data_config"))
    data_name = load.get("data_name")
    if data_name in OLIVE_LOADERS or not data_name:  # Olive's {"data_name": "json", "data_files": ...} form
        data_name = load.get("data_files") or load.get("data_dir")
        if isinstance(data_name, list):
            if len(data_name) != 1:
                raise PassError(f"{key}: data_files lists {len(data_name)} files", fix="put the files in one folder "
                                "(named after their split: train.jsonl, test.jsonl) and give the folder as data_name",
                                where=f"{key}.load_dataset_config.data_files")
            data_name = data_name[0]
    if not data_name:
        raise PassError(f"{key}: load_dataset_config has no data_name", fix="set data_name to a local file or folder, "
                        "or sample:instructions", where=f"{key}.load_dataset_config.data_name")
    template = pre.get("text_template")
    text_field = pre.get("text_field")
    columns = pre.get("text_cols")
    if not template and not text_field and columns:  # Olive's text_cols: columns joined by newlines
        columns = [columns] if isinstance(columns, str) else list(columns)
        template = "\n".join(f"{{{column}}}" for column in columns)
    spec = TextSpec(unescape_template(template) if template else None, text_field if not template else None,
                    bool(pre.get("use_chat_template")) and not template and not text_field)
    return {"data_name": str(data_name), "split": load.get("split") or "train", "text": spec,
            "max_seq_len": int(pre.get("max_seq_len") or 1024)}


def _describe(spec: dict[str, Any]) -> dict[str, Any]:
    text: Any = spec["text"]
    return {"data_name": spec["data_name"], "split": spec["split"], "max_seq_len": spec["max_seq_len"],
            "text_template": text.text_template, "text_field": text.text_field,
            "use_chat_template": text.use_chat_template}


def _checkpoint_key(model: ModelRef, params: LoRAParams, train_spec: dict[str, Any],
                    eval_spec: dict[str, Any] | None) -> str:
    """Everything that shapes the training: a checkpoint is resumed only by the same training."""
    from modelmill.finetune.dataset import resolve_data_path

    def stamp(path: Path) -> list[Any]:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        return [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]

    material = {"model": stamp(model.path), "params": params.model_dump(mode="json", exclude={"merge_adapter"}),
                "train": _describe(train_spec), "train_files": stamp(resolve_data_path(train_spec["data_name"])),
                "eval": _describe(eval_spec) if eval_spec else None}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:24]
