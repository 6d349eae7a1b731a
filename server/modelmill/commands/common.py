"""Flags Olive shares between commands, and the clear refusals for those that cannot work here."""

from __future__ import annotations

import argparse
from typing import Any

PROVIDERS = ["CPUExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider", "JsExecutionProvider",
             "MIGraphXExecutionProvider", "NvTensorRTRTXExecutionProvider", "OpenVINOExecutionProvider",
             "QNNExecutionProvider", "ROCMExecutionProvider", "TensorrtExecutionProvider", "VitisAIExecutionProvider",
             "WebGpuExecutionProvider"]
OLIVE_PRECISIONS = ["int4", "int8", "int16", "int32", "uint4", "uint8", "uint16", "uint32", "fp4", "fp8", "fp16",
                    "fp32", "nf4", "bf16"]


def str2bool(value: str) -> bool:
    """Olive's `type=bool` flags take a value (`--exclude_embeds True`); read it as people mean it."""
    lowered = str(value).strip().lower()
    if lowered in {"1", "true", "yes", "y", "on"}:
        return True
    if lowered in {"0", "false", "no", "n", "off", ""}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{value}'")


def add_bool_flag(parser: Any, flag: str, help_text: str, default: bool | None = False) -> None:
    """A flag that works both as Olive's `--flag True` and as a bare switch `--flag`."""
    parser.add_argument(flag, type=str2bool, nargs="?", const=True, default=default, metavar="BOOL", help=help_text)


def add_telemetry_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--disable_telemetry", action="store_true",
                        help="accepted for Olive compatibility; ModelMill sends no telemetry")


def add_azure_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Olive shared cache (Azure; not provided by ModelMill)")
    group.add_argument("--account_name", default=None,
                       help="Azure storage account of Olive's shared cache; ModelMill refuses it (local cache only)")
    group.add_argument("--container_name", default=None,
                       help="Azure blob container of Olive's shared cache; ModelMill refuses it (local cache only)")


def add_model_flags(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The model, output and run flags of auto-opt, run, quantize, finetune and capture-onnx-graph."""
    parser.add_argument("-m", "--model_name_or_path", "--model", dest="model", required=required,
                        help="local Hugging Face folder, .onnx file/folder, or sample:smollm2 / sample:minilm")
    parser.add_argument("-o", "--output_path", dest="output_path", default=None, help="output folder")
    parser.add_argument("-t", "--task", default=None, help="model task (default: inferred)")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow custom model code from the folder")
    parser.add_argument("--log_level", type=int, default=3, choices=range(5),
                        help="0 debug, 1 info, 2 warning, 3 error (default), 4 critical")
    parser.add_argument("--dry_run", action="store_true", help="print the plan and the config, then stop")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output folder even if ModelMill did not write it (its files are "
                             "lost); without it such a folder is refused")
    parser.add_argument("--save_config_file", action="store_true",
                        help="write the generated config.json to the output folder's parent")
    parser.add_argument("--events", default=None, metavar="FILE", help="write every run event as JSON lines to FILE")


def add_model_source_flags(parser: argparse.ArgumentParser, adapter: bool = True, script: bool = True) -> None:
    """Olive's model flags that add_model_flags does not have: --test, -a, --model_script, --script_dir."""
    parser.add_argument("--test", nargs="?", const=True, default=None, metavar="DIR",
                        help="replace the model with a randomly initialized copy of its architecture with 2 layers "
                             "(a quick trial); DIR keeps that test model for reuse")
    if adapter:
        parser.add_argument("-a", "--adapter_path", default=None,
                            help="LoRA adapter folder (PEFT) applied on top of the Hugging Face model")
    if script:
        parser.add_argument("--model_script", default=None,
                            help="Python file with the PyTorch model's loader (_model_loader) and input functions")
        parser.add_argument("--script_dir", default=None, help="folder added to sys.path for --model_script")


def add_memory_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--memory", default=None, metavar="SIZE",
                        help="device memory in bytes or as text such as 16GB (used to split a model to fit)")


def refuse(flag: str, message: str, fix: str) -> None:
    from modelmill.errors import ConfigError

    raise ConfigError(message, fix=fix, where=flag)


def refuse_azure(args: argparse.Namespace) -> None:
    """Olive's shared cache lives in Azure Blob storage; ModelMill's cache is local only."""
    for flag in ("account_name", "container_name"):
        if getattr(args, flag, None):
            refuse(f"--{flag}", "Olive's shared cache needs an Azure storage account and blob container (and the "
                   "azure-storage-blob and azure-identity packages); ModelMill does not provide a shared cache",
                   "drop --account_name/--container_name: ModelMill caches pass outputs locally "
                   "(`modelmill cache ls`)")


def refuse_script_model(args: argparse.Namespace) -> None:
    """Olive's PyTorch model from a script (model_script's loader): ModelMill's engine does not load those."""
    if getattr(args, "model_script", None) or getattr(args, "script_dir", None):
        flag = "--model_script" if getattr(args, "model_script", None) else "--script_dir"
        refuse(flag, "ModelMill does not load PyTorch models from a Python script (Olive's model_script/"
               "model_loader); it runs Hugging Face folders and ONNX models",
               "save the model as a Hugging Face folder (save_pretrained) or export it yourself with "
               "torch.onnx.export, then pass that with -m")


def check_common(args: argparse.Namespace) -> None:
    """The refusals every Olive-style command shares; call before any work."""
    refuse_azure(args)
    refuse_script_model(args)


TEST_MODEL_MARKER = "olive_test_model.json"  # Olive's marker: a folder --test made, safe to reuse
WEIGHT_FILES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".data", ".onnx_data", ".gguf"}


def resolve_test_model(args: argparse.Namespace) -> None:
    """--test: replace args.model with a random 2-layer copy of its architecture (made once, then reused).

    As Olive: `--test DIR` keeps it in DIR (an empty or new folder, or one --test made before); a bare `--test` keeps
    it under ModelMill's cache, keyed by the source model's folder and config."""
    test = getattr(args, "test", None)
    if test in (None, False):
        return
    import hashlib
    from pathlib import Path

    from modelmill.commands.driver import local_model
    from modelmill.paths import default_cache_dir

    source = local_model(args.model)
    if source.is_file() or any(source.glob("*.onnx")) or not (source / "config.json").exists():
        refuse("--test", f"--test needs a Hugging Face model folder (with config.json); {args.model} is not one",
               "pass -m HF_FOLDER, or drop --test")
    if isinstance(test, str):
        target = Path(test)
        if target.exists() and (not target.is_dir() or any(target.iterdir())) \
                and not (target / TEST_MODEL_MARKER).exists():
            refuse("--test", f"{target} exists and is not a test model folder (no {TEST_MODEL_MARKER})",
                   "give --test an empty or new folder, or one an earlier --test run made")
    else:
        key = hashlib.sha256(f"{source.resolve()}\n{(source / 'config.json').read_text()}".encode()).hexdigest()[:12]
        target = default_cache_dir() / "test-models" / f"{source.name}-{key}"
    if not (target / TEST_MODEL_MARKER).exists():
        make_test_model(source, target)
    args.model = str(target)


def make_test_model(source: Any, target: Any, layers: int = 2) -> None:
    """A randomly initialized (seeded) copy of ``source``'s architecture with ``layers`` layers, plus its tokenizer
    and generation files, written to ``target`` in one step (a crash leaves no half model to reuse)."""
    import json
    import shutil

    import torch
    import transformers

    from modelmill.errors import ConfigError

    config = transformers.AutoConfig.from_pretrained(source)
    text = getattr(config, "text_config", None) or config
    keys = [key for key in ("num_hidden_layers", "num_layers", "n_layer", "n_layers") if hasattr(text, key)]
    if not keys:
        raise ConfigError(f"{source}'s config has no layer count (num_hidden_layers, n_layer, ...) to shrink",
                          fix="drop --test", where="--test")
    for key in keys:
        setattr(text, key, layers)
    if isinstance(getattr(text, "layer_types", None), (list, tuple)):
        text.layer_types = list(text.layer_types)[:layers]
    causal = any(a.endswith("ForCausalLM") for a in (config.architectures or []))
    auto = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = auto.from_config(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-test-model")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    for item in source.iterdir():  # tokenizer and generation files: not weights, their index, or the config
        if item.is_file() and item.suffix not in WEIGHT_FILES and not item.name.endswith(".index.json") \
                and item.name not in ("config.json", TEST_MODEL_MARKER) and not (tmp / item.name).exists():
            shutil.copy2(item, tmp / item.name)
    (tmp / TEST_MODEL_MARKER).write_text(json.dumps({"type": "olive_hf_test_model",
                                                     "test_model_config": {"hidden_layers": layers},
                                                     "source": str(source.resolve())}, indent=2))
    if target.exists():
        shutil.rmtree(target)  # empty, or a test model without its marker (an interrupted older version)
    tmp.replace(target)


def local_system(device: str, provider: str, memory: Any = None) -> dict[str, Any]:
    accelerator: dict[str, Any] = {"device": device, "execution_providers": [provider]}
    if memory is not None:
        accelerator["memory"] = memory
    return {"local_system": {"type": "LocalSystem", "accelerators": [accelerator]}}


def base_config(input_model: dict[str, Any], passes: dict[str, Any], output_dir: str, log_level: int,
                device: str = "cpu", provider: str = "CPUExecutionProvider", memory: Any = None) -> dict[str, Any]:
    from modelmill.paths import default_cache_dir

    return {"input_model": input_model, "systems": local_system(device, provider, memory), "passes": passes,
            "target": "local_system", "host": "local_system", "output_dir": output_dir,
            "cache_dir": str(default_cache_dir()), "log_severity_level": log_level}


def add_run_flags(parser: argparse.ArgumentParser, output_default: str) -> None:
    """Output, logging and the run controls every workflow-running command shares."""
    parser.add_argument("-o", "--output_path", default=output_default, help=f"output folder (default {output_default})")
    parser.add_argument("--log_level", type=int, default=3, choices=range(5),
                        help="0 debug, 1 info, 2 warning, 3 error (default), 4 critical")
    parser.add_argument("--save_config_file", action="store_true",
                        help="write the generated config to the output folder's parent")
    parser.add_argument("--dry_run", action="store_true", help="print the plan and the config, then stop")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output folder even if ModelMill did not write it")
    parser.add_argument("--events", default=None, metavar="FILE", help="write every run event as JSON lines to FILE")


def input_model_for(model: str, task: str | None = None, trust_remote_code: bool = False,
                    adapter_path: str | None = None) -> tuple[dict[str, Any], str]:
    """The input_model entry for a local model, and its kind (hf or onnx)."""
    from modelmill.commands.driver import local_model
    from modelmill.engine.autoopt import _inspect

    kind, _ = _inspect(local_model(model))
    if kind == "onnx":
        return {"type": "ONNXModel", "model_path": model}, kind
    entry: dict[str, Any] = {"type": "HfModel", "model_path": model}
    if task:
        entry["task"] = task
    if trust_remote_code:
        entry["load_kwargs"] = {"trust_remote_code": True}
    if adapter_path:
        entry["adapter_path"] = adapter_path
    return entry, kind
