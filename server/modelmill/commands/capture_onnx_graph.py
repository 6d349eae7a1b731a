"""capture-onnx-graph: export a Hugging Face or PyTorch model to ONNX (OnnxConversion, or the ORT GenAI builder)."""

from __future__ import annotations

import argparse
from typing import Any

from modelmill.commands import olive_compat
from modelmill.commands.common import add_bool_flag, add_model_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_flags(parser)
    parser.add_argument("--use_model_builder", action="store_true", help="export with onnxruntime-genai's builder")
    parser.add_argument("--use_ort_genai", action="store_true", help="same as --use_model_builder")
    parser.add_argument("--use_dynamo_exporter", action="store_true")
    parser.add_argument("--target_opset", type=int, default=17)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int4", "int8", "bf16"])
    parser.add_argument("--int4_block_size", type=int, default=32, choices=[16, 32, 64, 128, 256])
    parser.add_argument("--int4_accuracy_level", type=int, default=None, choices=range(5))
    add_bool_flag(parser, "--exclude_embeds", "builder: leave out the embedding layer")
    add_bool_flag(parser, "--exclude_lm_head", "builder: leave out the language-model head")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--provider", default=None)
    olive_compat.add_capture(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.commands import common
    from modelmill.commands.driver import run_generated

    common.check_common(args)
    common.resolve_test_model(args)
    config = build_config(args)
    olive_compat.apply_capture(args, config)
    return run_generated(config, args)


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    """One export pass (the builder with --use_model_builder/--use_ort_genai, else OnnxConversion [+ fp16])."""
    from modelmill.engine.autoopt import DEFAULT_EP
    from modelmill.paths import default_cache_dir

    ep = args.provider or DEFAULT_EP(args.device)
    model: dict[str, Any] = {"type": "HfModel", "model_path": args.model}
    passes: dict[str, Any]
    if args.use_model_builder or args.use_ort_genai:
        params: dict[str, Any] = {"type": "ModelBuilder", "precision": args.precision,
                                  "int4_block_size": args.int4_block_size,
                                  "exclude_embeds": args.exclude_embeds, "exclude_lm_head": args.exclude_lm_head}
        if args.int4_accuracy_level is not None:
            params["int4_accuracy_level"] = args.int4_accuracy_level
        passes = {"model_builder": params}
    else:
        passes = {"conversion": {"type": "OnnxConversion", "target_opset": args.target_opset,
                                 "use_dynamo_exporter": args.use_dynamo_exporter}}
        if args.precision == "fp16":
            passes["fp16_conversion"] = {"type": "OnnxFloatToFloat16", "keep_io_types": True}
    return {"input_model": model,
            "systems": {"local_system": {"type": "LocalSystem",
                                         "accelerators": [{"device": args.device, "execution_providers": [ep]}]}},
            "passes": passes, "target": "local_system", "output_dir": args.output_path or "models/onnx",
            "cache_dir": str(default_cache_dir()), "log_severity_level": args.log_level}
