"""generate-adapter: an ONNX model with LoRA branches → the model with adapter inputs + the adapter weights file."""

from __future__ import annotations

import argparse

from modelmill.commands.adapter_files import FORMATS
from modelmill.commands.common import add_azure_flags, add_run_flags, add_telemetry_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model_name_or_path", dest="model", required=True,
                        help="ONNX model (folder or .onnx) built from a base model plus a LoRA adapter")
    add_run_flags(parser, "optimized-model")
    parser.add_argument("--adapter_type", default="lora", choices=["lora", "dora", "loha"],
                        help="adapter kind (ModelMill extracts lora)")
    parser.add_argument("--adapter_format", default="onnx_adapter", choices=FORMATS,
                        help="weights file format: onnx_adapter (what onnxruntime-genai activates), numpy (.npz), pt "
                             "or safetensors")
    add_azure_flags(parser)
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.commands.common import base_config, check_common, input_model_for, refuse
    from modelmill.commands.driver import run_generated

    check_common(args)
    if args.adapter_type != "lora":
        refuse("--adapter_type", f"ModelMill's ExtractAdapters pass extracts LoRA adapters, not {args.adapter_type}",
               "use --adapter_type lora, or Olive for DoRA/LoHa")
    input_model, kind = input_model_for(args.model)
    if kind != "onnx":
        refuse("-m", "generate-adapter takes an ONNX model (as in Olive)",
               "build it first: `modelmill auto-opt -m BASE --adapter_path ADAPTER --adapter_format onnx_adapter` "
               "does both steps")
    passes = {"e": {"type": "ExtractAdapters", "adapter_type": "lora", "save_format": args.adapter_format}}
    return run_generated(base_config(input_model, passes, args.output_path, args.log_level), args)
