"""`modelmill finetune`: Olive's flags → a workflow config with one LoRA pass, run like any other."""

from __future__ import annotations

import argparse
from typing import Any

from modelmill.errors import ConfigError

TRAINING_FLAGS = ("max_steps", "num_train_epochs", "learning_rate", "per_device_train_batch_size",
                  "gradient_accumulation_steps", "seed", "save_steps", "eval_steps", "warmup_steps",
                  "lr_scheduler_type", "weight_decay", "logging_steps", "gradient_checkpointing")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("-d", "--data_name", required=True,
                      help="local JSONL / JSON / CSV / Parquet file, a folder of them, a datasets.save_to_disk "
                           "folder, or sample:instructions")
    data.add_argument("--train_split", default="train", help="split to train on, e.g. train or train[:90%%]")
    data.add_argument("--eval_split", default=None, help="split whose loss is reported while training")
    data.add_argument("--text_template", default=None,
                      help="record fields in braces, e.g. \"### Question: {instruction}\\n### Answer: {response}\"")
    data.add_argument("--text_field", default=None, help="a column that already holds the training text")
    data.add_argument("--use_chat_template", action="store_true",
                      help="format question/answer pairs (or a messages column) with the tokenizer's chat template")
    data.add_argument("--max_seq_len", type=int, default=1024, help="truncate samples to this many tokens")

    lora = parser.add_argument_group("LoRA")
    lora.add_argument("--method", default="lora", choices=["lora", "qlora"])
    lora.add_argument("--lora_r", type=int, default=64, help="rank of the adapter matrices")
    lora.add_argument("--lora_alpha", type=int, default=16, help="scale: the update is multiplied by alpha / r")
    lora.add_argument("--lora_dropout", type=float, default=0.05)
    lora.add_argument("--target_modules", default=None,
                      help="comma-separated module names, e.g. q_proj,v_proj (default: peft's choice)")
    lora.add_argument("--torch_dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    lora.add_argument("--merge_adapter", action="store_true",
                      help="also write the merged model at the top of the output folder")

    train = parser.add_argument_group("training")
    train.add_argument("--max_steps", type=int, default=-1, help="optimizer steps (-1: run --num_train_epochs)")
    train.add_argument("--num_train_epochs", type=float, default=1.0)
    train.add_argument("--learning_rate", type=float, default=2e-4)
    train.add_argument("--per_device_train_batch_size", "--batch_size", dest="per_device_train_batch_size",
                       type=int, default=1)
    train.add_argument("--gradient_accumulation_steps", type=int, default=1)
    train.add_argument("--gradient_checkpointing", action="store_true")
    train.add_argument("--warmup_steps", type=int, default=0)
    train.add_argument("--lr_scheduler_type", default="linear")
    train.add_argument("--weight_decay", type=float, default=0.0)
    train.add_argument("--save_steps", type=int, default=50, help="checkpoint interval (resume after cancel)")
    train.add_argument("--eval_steps", type=int, default=None)
    train.add_argument("--logging_steps", type=int, default=1)
    train.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    """The workflow config `finetune` runs (what --save_config_file writes)."""
    from modelmill.paths import default_cache_dir

    if args.method == "qlora":
        _refuse_qlora()
    if sum(bool(x) for x in (args.text_template, args.text_field, args.use_chat_template)) > 1:
        raise ConfigError("--text_template, --text_field and --use_chat_template each say how a record becomes "
                          "text: give only one", fix="keep one of them", where="--text_template")
    pre: dict[str, Any] = {"max_seq_len": args.max_seq_len}
    if args.text_template:
        pre["text_template"] = args.text_template
    elif args.text_field:
        pre["text_field"] = args.text_field
    elif args.use_chat_template:
        pre["use_chat_template"] = True

    def data_config(name: str, split: str) -> dict[str, Any]:
        return {"name": name, "type": "HuggingfaceContainer",
                "load_dataset_config": {"data_name": args.data_name, "split": split},
                "pre_process_data_config": dict(pre)}

    data_configs = [data_config("train_data", args.train_split)]
    lora: dict[str, Any] = {"type": "LoRA", "r": args.lora_r, "alpha": args.lora_alpha,
                            "lora_dropout": args.lora_dropout, "torch_dtype": args.torch_dtype,
                            "train_data_config": "train_data", "merge_adapter": args.merge_adapter,
                            "training_args": {flag: getattr(args, flag) for flag in TRAINING_FLAGS
                                              if getattr(args, flag) is not None}}
    if args.target_modules:
        lora["target_modules"] = [name.strip() for name in args.target_modules.split(",") if name.strip()]
    if args.eval_split:
        data_configs.append(data_config("eval_data", args.eval_split))
        lora["eval_data_config"] = "eval_data"
    if args.trust_remote_code:
        lora["trust_remote_code"] = True
    provider = "CUDAExecutionProvider" if args.device == "gpu" else "CPUExecutionProvider"
    return {
        "input_model": {"type": "HfModel", "model_path": args.model},
        "systems": {"local_system": {"type": "LocalSystem",
                                     "accelerators": [{"device": args.device, "execution_providers": [provider]}]}},
        "data_configs": data_configs,
        "passes": {"lora": lora},
        "target": "local_system",
        "output_dir": args.output_path or "models/finetuned",
        "cache_dir": str(default_cache_dir()),
        "log_severity_level": args.log_level,
    }


def _refuse_qlora() -> None:
    """QLoRA needs bitsandbytes' 4-bit kernels, which need a CUDA GPU."""
    import importlib.util

    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    has_gpu = False
    if has_bnb:
        import torch

        has_gpu = torch.cuda.is_available()
    missing = [name for name, present in (("bitsandbytes", has_bnb), ("a CUDA GPU", has_gpu)) if not present]
    raise ConfigError(f"--method qlora needs {' and '.join(missing) if missing else 'QLoRA support'}, which "
                      f"{'is' if len(missing) == 1 else 'are'} not available here; ModelMill trains QLoRA only "
                      "where bitsandbytes runs" if missing else "--method qlora is not supported by ModelMill yet",
                      fix="use --method lora (full-precision base with LoRA adapters; works on CPU)",
                      where="--method")
