"""Olive 0.13 flags of the first five commands (run, auto-opt, capture-onnx-graph, finetune, quantize).

cli.py defines those commands; `add_*` here adds the flags they lacked and `apply_*` maps them onto the
generated config (or refuses them with the reason), so cli.py stays small.
"""

from __future__ import annotations

import argparse
from typing import Any

from modelmill.commands.common import (OLIVE_PRECISIONS, add_azure_flags, add_bool_flag, add_memory_flag,
                                       add_model_source_flags, add_telemetry_flag, refuse)


def _data_flags(parser: argparse.ArgumentParser, subset_split: bool = True) -> None:
    group = parser.add_argument_group("calibration data")
    group.add_argument("-d", "--data_name", default=None, help="local data file or folder for calibration")
    if subset_split:
        group.add_argument("--subset", default=None, help="dataset subset")
        group.add_argument("--split", default=None, help="dataset split")
    group.add_argument("--input_cols", nargs="*", default=None, help="columns fed to the model")
    group.add_argument("--batch_size", type=int, default=1, help="calibration batch size")


# --- run ---------------------------------------------------------------------------------------------------

def add_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list_required_packages", action="store_true",
                        help="print the packages the workflow's passes need, then stop")
    parser.add_argument("--tempdir", default=None, help="root folder for temporary files of the run")
    parser.add_argument("--package-config", dest="package_config", default=None,
                        help="Olive's custom pass-package config (Olive-only; refused here)")
    add_model_source_flags(parser)
    add_telemetry_flag(parser)


def apply_run(args: argparse.Namespace, overrides: dict[str, Any]) -> None:
    import os
    import tempfile
    from pathlib import Path

    if args.package_config:
        refuse("--package-config", "--package-config loads Olive pass implementations from Python packages; "
               "ModelMill runs its own passes and cannot load Olive's", "drop --package-config")
    if args.adapter_path:
        overrides["input_model.adapter_path"] = args.adapter_path
    from modelmill.commands.common import refuse_script_model

    refuse_script_model(args)
    if args.tempdir:
        folder = Path(args.tempdir).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(folder)  # the run's worker process inherits it
        tempfile.tempdir = str(folder)


def required_packages(document: Any) -> list[str]:
    """Packages each pass of ``document`` needs: ModelMill's passes' imports, the catalogue's for Olive passes."""
    import json

    from modelmill.config.olive_catalog import find_olive_pass as olive_pass
    from modelmill.passes.registry import find_pass

    data = json.loads(document.text) if document.name.endswith(".json") else _yaml(document.text)
    passes = data.get("passes") or (data.get("pass_flows") and {}) or {}
    if isinstance(passes, list):
        passes = {str(i): p for i, p in enumerate(passes)}
    needed = {"onnxruntime", "onnx"}
    for entry in passes.values():
        name = str((entry or {}).get("type", ""))
        cls = find_pass(name)
        if cls is not None:
            if "hf" in cls.accepts or "pytorch" in cls.accepts:
                needed |= {"torch", "transformers"}
            needed |= {"ModelBuilder": {"onnxruntime-genai"}, "LoRA": {"peft", "datasets"}}.get(cls.name, set())
        elif (info := olive_pass(name)) is not None:
            needed |= set(info.info.get("packages") or [])
    return sorted(needed)


def _yaml(text: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(text) or {}


# --- auto-opt ----------------------------------------------------------------------------------------------

def add_auto_opt(parser: argparse.ArgumentParser) -> None:
    add_model_source_flags(parser, adapter=False)
    add_memory_flag(parser)
    _data_flags(parser)
    parser.add_argument("--use_dynamo_exporter", action="store_true", help="export with torch.onnx's dynamo exporter")
    parser.add_argument("--use_qdq_encoding", action="store_true", help="quantize in QDQ form (Q/DQ node pairs)")
    parser.add_argument("--dynamic-to-fixed-shape-dim-param", dest="dim_param", nargs="*", default=None,
                        help="dynamic dimension names to fix (Olive's DynamicToFixedShape)")
    parser.add_argument("--dynamic-to-fixed-shape-dim-value", dest="dim_value", type=int, nargs="*", default=None,
                        help="their fixed values")
    parser.add_argument("--num-splits", dest="num_splits", type=int, default=None, help="split into this many parts")
    parser.add_argument("--cost-model", dest="cost_model", default=None,
                        help="cost CSV from generate-cost-model, to split by memory")
    parser.add_argument("--mixed-precision-overrides-config", dest="mixed_precision_overrides", nargs="*",
                        default=None, metavar="TENSOR QUANT_TYPE",
                        help="tensor / quant type pairs (e.g. /attn/Softmax_output_0 QUInt16) for Olive's "
                             "MixedPrecisionOverrides, with QNNExecutionProvider only (left out otherwise, as in "
                             "Olive)")
    add_azure_flags(parser)
    add_telemetry_flag(parser)


def apply_auto_opt(args: argparse.Namespace, config: dict[str, Any]) -> None:
    """Olive's auto-opt flags on the generated config; Olive-only passes go in as Olive would add them."""
    passes = config["passes"]
    if args.memory is not None:
        config["systems"]["local_system"]["accelerators"][0]["memory"] = args.memory
    for entry in passes.values():
        if entry["type"] == "OnnxConversion" and args.use_dynamo_exporter:
            entry["use_dynamo_exporter"] = True
        if entry["type"] in ("OnnxStaticQuantization", "OnnxDynamicQuantization") and args.use_qdq_encoding:
            entry["quant_format"] = "QDQ"
    if args.use_dynamo_exporter and not any(e["type"] == "OnnxConversion" for e in passes.values()):
        refuse("--use_dynamo_exporter", "this model is built with the ORT GenAI builder, not exported with torch.onnx",
               "add --use_model_builder false by dropping it and use capture-onnx-graph --use_dynamo_exporter, or "
               "drop --use_dynamo_exporter")
    if args.use_qdq_encoding and any(e["type"] in ("ModelBuilder", "OnnxBlockWiseRtnQuantization")
                                     and e.get("precision", "int4") == "int4" for e in passes.values()):
        passes["matmul_nbits_to_qdq"] = {"type": "MatMulNBitsToQDQ"}
    if args.data_name:
        config["data_configs"] = [hf_data_config(args)]
        for entry in passes.values():
            if entry["type"] in ("OnnxStaticQuantization", "OrtSessionParamsTuning"):
                entry["data_config"] = "default_data_config"
    if (args.dim_param is None) != (args.dim_value is None) or (
            args.dim_param is not None and len(args.dim_param) != len(args.dim_value)):
        refuse("--dynamic-to-fixed-shape-dim-param", "--dynamic-to-fixed-shape-dim-param and -dim-value pair up "
               "one value per name", "give as many values as names, e.g. ...-dim-param batch ...-dim-value 1")
    if args.dim_param:
        passes["dynamic_to_fixed_shape"] = {"type": "DynamicToFixedShape", "dim_param": args.dim_param,
                                            "dim_value": args.dim_value}
    if args.mixed_precision_overrides:
        _mixed_precision_overrides(args.mixed_precision_overrides, config)
    if args.num_splits is not None and args.cost_model:
        refuse("--cost-model", "--num-splits and --cost-model are mutually exclusive (as in Olive)",
               "split by a count (--num-splits N) or by memory (--cost-model CSV --memory SIZE), not both")
    if args.cost_model and args.memory is None:
        refuse("--cost-model", "memory is required if cost_model is provided",
               "add --memory with the device's memory, e.g. --memory 2GB")
    # Olive drops the split passes for an ONNX input model (they need the PyTorch module tree)
    if (args.num_splits is not None or args.cost_model) and str(config["input_model"]["type"]).lower() != "onnxmodel":
        split: dict[str, Any] = {"type": "CaptureSplitInfo"}
        split.update({k: v for k, v in (("num_splits", args.num_splits), ("cost_model", args.cost_model)) if v})
        config["passes"] = {"capture_split_info": split, **passes, "split_model": {"type": "SplitModel"}}


def _mixed_precision_overrides(items: list[str], config: dict[str, Any]) -> None:
    """Olive's --mixed-precision-overrides-config: TENSOR QUANT_TYPE pairs (or TENSOR=QUANT_TYPE) for its
    MixedPrecisionOverrides pass, which Olive's auto-opt keeps only for QNNExecutionProvider and drops otherwise."""
    import sys

    from onnxruntime.quantization import QuantType

    flag = "--mixed-precision-overrides-config"
    if all("=" in item for item in items):
        pairs = [tuple(item.split("=", 1)) for item in items]
    elif len(items) % 2:
        refuse(flag, f"{flag} takes tensor / quant type pairs, an even number of entries (as in Olive); got "
               f"{len(items)}", f"write e.g. {flag} /attn/Softmax_output_0 QUInt16 /mlp/Add_output_0 QUInt16")
    else:
        pairs = list(zip(items[::2], items[1::2]))
    provider = config["systems"]["local_system"]["accelerators"][0]["execution_providers"][0]
    if provider != "QNNExecutionProvider":
        print(f"note: {flag} is for QNNExecutionProvider (Olive's MixedPrecisionOverrides pass); with {provider} "
              "Olive's auto-opt leaves the pass out, and so does ModelMill", file=sys.stderr)
        return
    names = [t.name for t in QuantType]
    for tensor, quant_type in pairs:
        if quant_type not in names:
            refuse(flag, f"{tensor}: unknown quant type {quant_type!r} (Olive reads it with onnxruntime's "
                   "QuantType.from_string)", f"use one of {', '.join(names)}")
    entry = {"type": "MixedPrecisionOverrides", "overrides_config": dict(pairs)}
    passes = config["passes"]
    quant = ("OnnxStaticQuantization", "OnnxDynamicQuantization", "OnnxBlockWiseRtnQuantization")
    at = next((i for i, e in enumerate(passes.values()) if e["type"] in quant), len(passes))
    items_ = list(passes.items())
    config["passes"] = dict([*items_[:at], ("mixed_precision_overrides", entry), *items_[at:]])


def hf_data_config(args: argparse.Namespace) -> dict[str, Any]:
    """Olive's dataset flags → its HuggingfaceContainer data config (cli/base.py update_dataset_options)."""
    load: dict[str, Any] = {"data_name": args.data_name}
    for key in ("subset", "split"):
        if getattr(args, key, None):
            load[key] = getattr(args, key)
    if getattr(args, "data_files", None):
        load["data_files"] = args.data_files.split(",")
    pre: dict[str, Any] = {}
    for flag, key in (("input_cols", "input_cols"), ("text_field", "text_cols"), ("text_template", "text_template"),
                      ("max_samples", "max_samples"), ("max_seq_len", "max_seq_len")):
        if getattr(args, flag, None) not in (None, False):
            pre[key] = getattr(args, flag)
    if getattr(args, "use_chat_template", False):
        pre["chat_template"] = True
    if getattr(args, "add_special_tokens", False):
        pre["add_special_tokens"] = True
    return {"name": "default_data_config", "type": "HuggingfaceContainer", "load_dataset_config": load,
            "pre_process_data_config": pre, "dataloader_config": {"batch_size": getattr(args, "batch_size", 1)}}


# --- capture-onnx-graph ------------------------------------------------------------------------------------

def add_capture(parser: argparse.ArgumentParser) -> None:
    add_model_source_flags(parser)
    parser.add_argument("--model_variant", default="auto", choices=["auto", "sd", "sdxl", "sd3", "flux", "sana"],
                        help="diffusers pipeline family (diffusion export is Olive-only; refused here)")
    parser.add_argument("--conversion_device", default="cpu", choices=["cpu", "gpu"],
                        help="device the model sits on while it is exported")
    parser.add_argument("--use_mobius_builder", action="store_true", help="Olive's mobius builder (refused here)")
    parser.add_argument("--fixed_param_dict", default=None, metavar="NAME=VALUE,...",
                        help="fix dynamic dimensions after export, e.g. batch_size=1,max_length=128")
    parser.add_argument("--past_key_value_name", default="past_key_values", help="name prefix of KV-cache inputs")
    parser.add_argument("--torch_dtype", default=None, help="dtype the model is loaded in: float32, float16, bfloat16")
    add_bool_flag(parser, "--enable_cuda_graph", "builder: CUDA graph for the decoder (needs a GPU)", default=None)
    parser.add_argument("--extra_mb_options", default=None, metavar="K=V,...", help="extra builder options")
    add_azure_flags(parser)
    add_telemetry_flag(parser)


def apply_capture(args: argparse.Namespace, config: dict[str, Any]) -> None:
    from modelmill.commands.optimize import _key_values

    if args.model_variant != "auto":
        refuse("--model_variant", "exporting diffusers pipelines needs Olive's diffusers export, which ModelMill does "
               "not provide", "drop --model_variant (Hugging Face transformers models export here)")
    if args.use_mobius_builder:
        refuse("--use_mobius_builder", "the mobius builder needs Olive's mobius package, which ModelMill does not "
               "provide", "use --use_model_builder (onnxruntime-genai's builder) or the default torch.onnx export")
    if args.adapter_path:
        config["input_model"]["adapter_path"] = args.adapter_path
    if args.trust_remote_code:
        config["input_model"]["load_kwargs"] = {"trust_remote_code": True}
    if args.task:
        config["input_model"]["task"] = args.task
    for entry in config["passes"].values():
        if entry["type"] == "OnnxConversion":
            entry["device"] = "cuda" if args.conversion_device == "gpu" else "cpu"
            entry["past_key_value_name"] = args.past_key_value_name
            if args.torch_dtype:
                entry["torch_dtype"] = args.torch_dtype
        if entry["type"] == "ModelBuilder":
            extra = _key_values(args.extra_mb_options) if args.extra_mb_options else {}
            if args.enable_cuda_graph is not None:
                extra["enable_cuda_graph"] = "1" if args.enable_cuda_graph else "0"
            if extra:
                entry["extra_options"] = extra
    if args.fixed_param_dict:
        pairs = _key_values(args.fixed_param_dict)
        config["passes"]["dynamic_to_fixed_shape"] = {"type": "DynamicToFixedShape", "dim_param": list(pairs),
                                                      "dim_value": [int(v) for v in pairs.values()]}


# --- finetune ----------------------------------------------------------------------------------------------

def add_finetune(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--test", nargs="?", const=True, default=None, metavar="DIR",
                        help="train a random 2-layer copy of the architecture (a quick trial)")
    parser.add_argument("--train_subset", default=None, help="dataset subset for training")
    parser.add_argument("--eval_subset", default=None, help="dataset subset for evaluation")
    parser.add_argument("--data_files", default=None, help="data files inside --data_name's folder, comma-separated")
    add_bool_flag(parser, "--add_special_tokens", "add the tokenizer's special tokens to each sample")
    parser.add_argument("--max_samples", type=int, default=256, help="most training samples to use")
    parser.add_argument("--input_cols", nargs="+", default=None, help="columns that make up a sample")
    add_azure_flags(parser)
    add_telemetry_flag(parser)


def apply_finetune(args: argparse.Namespace, config: dict[str, Any]) -> None:
    for data in config.get("data_configs", []):
        subset = args.train_subset if data["name"] == "train_data" else args.eval_subset
        if subset:
            data["load_dataset_config"]["subset"] = subset
        if args.data_files:
            data["load_dataset_config"]["data_files"] = args.data_files
        pre = data.setdefault("pre_process_data_config", {})
        pre["max_samples"] = args.max_samples
        if args.add_special_tokens:
            pre["add_special_tokens"] = True
        if args.input_cols:
            pre["input_cols"] = args.input_cols


# --- quantize ----------------------------------------------------------------------------------------------

def add_quantize(parser: argparse.ArgumentParser) -> None:
    add_model_source_flags(parser)
    parser.add_argument("--act_precision", default="int8", choices=OLIVE_PRECISIONS,
                        help="activation precision of static quantization (with calibration data)")
    parser.add_argument("--use_qdq_encoding", action="store_true", help="quantize in QDQ form (Q/DQ node pairs)")
    _data_flags(parser)
    parser.add_argument("--data_files", default=None, help="data files inside --data_name's folder")
    parser.add_argument("--text_field", default=None, help="column holding the text")
    parser.add_argument("--text_template", default=None, help="record fields in braces, e.g. \"{question}\"")
    parser.add_argument("--use_chat_template", action="store_true", help="format samples with the chat template")
    parser.add_argument("--max_seq_len", type=int, default=1024, help="truncate samples to this many tokens")
    add_bool_flag(parser, "--add_special_tokens", "add the tokenizer's special tokens to each sample")
    parser.add_argument("--max_samples", type=int, default=256, help="most calibration samples")
    add_azure_flags(parser)
    add_telemetry_flag(parser)


def check_quantize(args: argparse.Namespace) -> None:
    """Refusals before the config is built: precisions no quantizer here writes. Algorithms and implementations
    depend on the model's kind: quantize.check_algorithm."""
    if args.precision in ("fp4", "nf4"):
        refuse("--precision", f"{args.precision} is Olive's OnnxBnb4Quantization (--implementation bnb, "
               "onnxruntime's MatMulBnb4), which ModelMill cannot run here", "use --precision int4 or uint4")
    if args.precision == "fp8":
        refuse("--precision", "fp8 is Olive's NVModelOptQuantization (--implementation nvmo, NVIDIA modelopt and a "
               "CUDA GPU), which ModelMill cannot run here", "use --precision int8 or int4")
    if args.precision not in ("int4", "uint4", "int8", "uint8", "int16", "uint16"):
        refuse("--precision", f"ModelMill quantizes to int4, uint4, int8, uint8, int16 or uint16, not "
               f"{args.precision} (no Olive 0.13 quantizer writes it either)", "pick one of those precisions")


def apply_quantize(args: argparse.Namespace, config: dict[str, Any]) -> None:
    """Calibration data (or int16/uint16, or --act_precision other than int8) → static quantization."""
    passes = config["passes"]
    static = bool(args.data_name) or args.precision in ("int16", "uint16")
    for key, entry in list(passes.items()):
        if entry["type"] == "OnnxDynamicQuantization" and static:
            if args.act_precision not in ("int8", "uint8", "int16", "uint16"):
                refuse("--act_precision", f"static quantization here has int8/uint8/int16/uint16 activations, "
                       f"not {args.act_precision}", "use --act_precision int8, uint8, int16 or uint16")
            passes[key] = {"type": "OnnxStaticQuantization", "precision": args.precision,
                           "activation_type": args.act_precision,
                           "quant_format": "QDQ" if args.use_qdq_encoding else "QOperator"}
            if args.data_name:
                passes[key]["data_config"] = "default_data_config"
                passes[key]["max_calibration_samples"] = args.max_samples
        elif entry["type"] == "OnnxDynamicQuantization" and args.use_qdq_encoding:
            entry["quant_format"] = "QDQ"
    if static and not any(e["type"] in ("OnnxStaticQuantization", "Gptq") for e in passes.values()):
        refuse("--data_name" if args.data_name else "--precision", "static (calibrated) quantization applies to "
               "int8/16 quantization of an ONNX model here", "quantize with --precision int8 (or int16), or pass "
               "an ONNX model with -m")
    if args.data_name:
        config["data_configs"] = [hf_data_config(args)]
    if args.use_qdq_encoding and any(e["type"] in ("ModelBuilder", "OnnxBlockWiseRtnQuantization", "OnnxHqqQuantization",
                                                   "OnnxKQuantQuantization") for e in passes.values()) \
            and args.precision == "int4":
        passes["matmul_nbits_to_qdq"] = {"type": "MatMulNBitsToQDQ"}
    if args.adapter_path:
        config["input_model"]["adapter_path"] = args.adapter_path
