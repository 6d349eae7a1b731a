"""quantize: int4 weight-only (rtn, hqq, k_quant) or int8 quantization, through the auto-opt config builder."""

from __future__ import annotations

import argparse
from typing import Any

from modelmill.commands import olive_compat
from modelmill.commands.common import OLIVE_PRECISIONS, add_model_flags

ALGORITHMS = ["rtn", "hqq", "kquant", "k_quant", "default", "awq", "gptq", "spinquant", "quarot", "lpbq", "seqmse",
              "adaround"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_flags(parser)
    parser.add_argument("--algorithm", default="rtn", choices=ALGORITHMS,
                        help="rtn, hqq, kquant run here; awq, gptq, spinquant, quarot, lpbq, seqmse, adaround need "
                             "Olive")
    parser.add_argument("--precision", default="int4", choices=OLIVE_PRECISIONS,
                        help="int4 (default), int8, uint8; int16/uint16 with calibration (static quantization)")
    parser.add_argument("--implementation", default="ort", help="ort or olive (both use onnxruntime's quantizers)")
    parser.add_argument("--block_size", type=int, default=32)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--provider", default=None)
    olive_compat.add_quantize(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.commands import common
    from modelmill.commands.driver import run_generated

    common.check_common(args)
    olive_compat.check_quantize(args)
    common.resolve_test_model(args)
    config = build_config(args)
    olive_compat.apply_quantize(args, config)
    return run_generated(config, args)


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    """auto-opt's config for the model, its quantization passes set to --algorithm, --precision and --block_size."""
    from modelmill.commands.driver import local_model
    from modelmill.engine import autoopt

    model_dir = local_model(args.model)
    precision = "int8" if args.precision in ("uint8", "int16", "uint16") else args.precision
    request = autoopt.AutoOptRequest(model=args.model, output_path=args.output_path or "models/quantized",
                                     device=args.device, provider=args.provider, precision=precision,
                                     log_level=args.log_level)
    config = autoopt.build_config(request, model_dir)
    algorithm = {"kquant": "k_quant"}.get(args.algorithm, args.algorithm)
    for entry in config["passes"].values():
        if entry["type"] == "ModelBuilder" and args.precision == "int4":
            if algorithm == "hqq":
                from modelmill.errors import ConfigError

                raise ConfigError("the ORT GenAI builder has no hqq algorithm for Hugging Face models",
                                  fix="use --algorithm rtn or kquant, or quantize an ONNX model with --algorithm hqq")
            entry["int4_algo_config"] = "default" if algorithm == "default" else algorithm
            entry["int4_block_size"] = args.block_size
        if entry["type"] == "OnnxBlockWiseRtnQuantization":
            entry["type"] = {"hqq": "OnnxHqqQuantization", "k_quant": "OnnxKQuantQuantization"}.get(
                algorithm, "OnnxBlockWiseRtnQuantization")
            entry["block_size"] = args.block_size
        if entry["type"] == "OnnxDynamicQuantization":
            entry["precision"] = "int8" if args.precision in ("int16", "uint16") else args.precision
    return config
