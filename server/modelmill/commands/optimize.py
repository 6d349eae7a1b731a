"""optimize: Olive 0.13's all-in-one command, its flags mapped onto the passes ModelMill runs.

Each flag puts the pass Olive would use into the config. Where ModelMill cannot run that pass (OptimumConversion,
EPContextBinaryGenerator), `--dry_run` and `--save_config_file` still show the full
config, and the run stops before it starts, naming the pass and what it needs.
"""

from __future__ import annotations

import argparse
from typing import Any

from modelmill.commands.common import add_model_source_flags, add_run_flags, add_telemetry_flag

PROVIDERS = ["CPUExecutionProvider", "CUDAExecutionProvider", "QNNExecutionProvider", "VitisAIExecutionProvider",
             "OpenVINOExecutionProvider", "WebGpuExecutionProvider", "NvTensorRTRTXExecutionProvider"]
PRECISIONS = ["int4", "int8", "int16", "int32", "uint4", "uint8", "uint16", "uint32", "fp16", "fp32", "bf16"]
PROVIDER_DEVICE = {"CPUExecutionProvider": "cpu", "OpenVINOExecutionProvider": "cpu", "QNNExecutionProvider": "npu",
                   "VitisAIExecutionProvider": "npu"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model_name_or_path", dest="model", default=None,
                        help="local Hugging Face folder or ONNX model")
    parser.add_argument("-t", "--task", default=None, help="model task (default: inferred)")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow custom model code from the folder")
    add_model_source_flags(parser)
    add_run_flags(parser, "optimized-model")
    parser.add_argument("--provider", default="CPUExecutionProvider", choices=PROVIDERS, help="target provider")
    parser.add_argument("--device", default=None, choices=["cpu", "gpu", "npu"],
                        help="target device (default: the provider's)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="weight precision")
    parser.add_argument("--act_precision", default=None, choices=["int8", "uint8", "int16", "uint16"],
                        help="activation precision: quantize activations too (static, with calibration)")
    parser.add_argument("--num_split", type=int, default=None, help="split the model into this many parts")
    parser.add_argument("--memory", type=int, default=None, help="device memory in bytes; split to fit it")
    parser.add_argument("--exporter", default=None,
                        choices=["model_builder", "dynamo_exporter", "torchscript_exporter", "optimum_exporter"],
                        help="how a Hugging Face model becomes ONNX (default for text: model_builder)")
    parser.add_argument("--dim_param", default=None, help="dynamic dimension names to fix, comma-separated")
    parser.add_argument("--dim_value", default=None, help="their fixed values, comma-separated")
    parser.add_argument("--use_qdq_format", action="store_true", help="quantize in QDQ form (Q/DQ node pairs)")
    parser.add_argument("--surgeries", nargs="*", default=None, help="graph surgeries to apply, by name")
    parser.add_argument("--block_size", type=int, default=None, help="int4 block size (-1: per channel)")
    parser.add_argument("--modality", default="text", choices=["text"], help="model modality")
    parser.add_argument("--enable_aot", action="store_true", help="compile ahead of time into EP context models")
    parser.add_argument("--qnn_env_path", default=None, help="Python environment with QNN's SDK (for --enable_aot)")
    parser.add_argument("--extra_mb_options", default=None, metavar="K=V,...",
                        help="extra onnxruntime-genai builder options, e.g. int4_is_symmetric=false")
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.commands.common import check_common, refuse, resolve_test_model
    from modelmill.commands.driver import run_generated

    check_common(args)
    if not args.model:
        refuse("-m", "optimize needs a model", "add -m MODEL (a local Hugging Face folder or an ONNX model)")
    resolve_test_model(args)
    return run_generated(build_config(args), args)


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    from modelmill.commands.common import base_config, input_model_for, refuse

    input_model, kind = input_model_for(args.model, args.task, args.trust_remote_code, args.adapter_path)
    hf = kind == "hf"
    exporter = args.exporter or ("model_builder" if hf else None)
    if (args.dim_param is None) != (args.dim_value is None):
        refuse("--dim_param" if args.dim_value is None else "--dim_value",
               "--dim_param and --dim_value go together", "give both, e.g. --dim_param batch,seq --dim_value 1,128")
    if args.qnn_env_path and not args.enable_aot:
        refuse("--qnn_env_path", "--qnn_env_path is used by --enable_aot", "add --enable_aot or drop --qnn_env_path")
    precision = args.precision
    device = args.device or PROVIDER_DEVICE.get(args.provider, "gpu")
    if hf and args.provider == "OpenVINOExecutionProvider":
        return base_config(input_model, _openvino_passes(args, device), args.output_path, args.log_level, device,
                           args.provider)
    passes: dict[str, Any] = {}
    if hf and (args.num_split is not None or args.memory is not None):
        split: dict[str, Any] = {"type": "CaptureSplitInfo", "unique_embeds_lm_head_splits": True}
        split.update({k: v for k, v in (("num_splits", args.num_split), ("memory", args.memory)) if v is not None})
        passes["capture_split_info"] = split
    builder = hf and exporter == "model_builder"
    if builder:
        passes["model_builder"] = _model_builder(args, precision)
    elif hf and exporter in ("dynamo_exporter", "torchscript_exporter"):
        passes["onnx_conversion"] = {"type": "OnnxConversion", "use_dynamo_exporter": exporter == "dynamo_exporter"}
    elif hf and exporter == "optimum_exporter":
        passes["optimum_conversion"] = {"type": "OptimumConversion"}
    if args.dim_param is not None:
        passes["dynamic_to_fixed_shape"] = {"type": "DynamicToFixedShape",
                                            "dim_param": args.dim_param.split(","),
                                            "dim_value": [int(v) for v in args.dim_value.split(",")]}
    if not builder:
        passes["onnx_peephole_optimizer"] = {"type": "OnnxPeepholeOptimizer"}
    if args.surgeries:
        passes["graph_surgeries"] = {"type": "GraphSurgeries", "surgeries": [{"surgeon": s} for s in args.surgeries]}
    if not builder:
        passes.update(_onnx_precision_passes(args, precision))
    if hf and (args.num_split is not None or args.memory is not None):
        passes["split_model"] = {"type": "SplitModel"}
    if args.enable_aot:
        entry: dict[str, Any] = {"type": "EPContextBinaryGenerator"}
        if args.qnn_env_path:
            entry["qnn_env_path"] = args.qnn_env_path
        passes["ep_context_binary_generator"] = entry
    # Olive puts --memory on the accelerator too (bytes), where CaptureSplitInfo's cost model reads it
    return base_config(input_model, passes, args.output_path, args.log_level, device, args.provider, args.memory)


def _openvino_passes(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Olive's OpenVINO chain for a Hugging Face model (the same as auto-opt's: engine/autoopt.openvino_passes)."""
    from modelmill.commands.common import refuse
    from modelmill.engine.autoopt import AutoOptRequest, openvino_passes

    if args.precision not in ("int4", "int8", "fp16", "fp32"):
        refuse("--precision", f"optimum-intel has no {args.precision} weight format",
               "use int4, int8, fp16 or fp32 with OpenVINOExecutionProvider")
    if args.exporter not in (None, "model_builder"):
        refuse("--exporter", "OpenVINOExecutionProvider exports with optimum-intel (OpenVINOOptimumConversion)",
               "drop --exporter")
    return openvino_passes(AutoOptRequest(model=args.model, output_path=args.output_path, device=device,
                                          provider=args.provider, precision=args.precision,
                                          adapter_path=args.adapter_path))


def _model_builder(args: argparse.Namespace, precision: str) -> dict[str, Any]:
    from modelmill.commands.common import refuse

    mapped = {"int4": "int4", "uint4": "int4", "int8": "int8", "fp16": "fp16", "bf16": "bf16"}.get(precision, "fp32")
    if precision not in {"int4", "uint4", "int8", "fp16", "bf16", "fp32"}:
        refuse("--precision", f"the onnxruntime-genai builder has no {precision} weights",
               "use int4, int8, fp16, bf16 or fp32, or --exporter dynamo_exporter and quantize the ONNX model")
    entry: dict[str, Any] = {"type": "ModelBuilder", "precision": mapped}
    if mapped == "int4" and args.block_size not in (None, -1):
        entry["int4_block_size"] = args.block_size
    if args.extra_mb_options:
        entry["extra_options"] = _key_values(args.extra_mb_options)
    return entry


def _onnx_precision_passes(args: argparse.Namespace, precision: str) -> dict[str, Any]:
    from modelmill.commands.common import refuse

    if precision in ("int4", "uint4"):
        entry: dict[str, Any] = {"type": "OnnxBlockWiseRtnQuantization"}
        if args.block_size not in (None, -1):
            entry["block_size"] = args.block_size
        return {"onnx_blockwise_rtn_quantization": entry}
    if precision == "fp16":
        return {"onnx_float_to_float16": {"type": "OnnxFloatToFloat16", "keep_io_types": True}}
    if precision in ("int8", "uint8", "int16", "uint16"):
        if args.act_precision:
            return {"onnx_static_quantization": {"type": "OnnxStaticQuantization", "precision": precision,
                                                 "activation_type": args.act_precision,
                                                 "quant_format": "QDQ" if args.use_qdq_format else "QOperator"}}
        if precision not in ("int8", "uint8"):
            refuse("--precision", f"{precision} weights need activation quantization here",
                   "add --act_precision int16/uint16 (static quantization), or use --precision int8")
        return {"onnx_dynamic_quantization": {"type": "OnnxDynamicQuantization", "precision": precision}}
    if precision in ("int32", "uint32", "bf16"):
        refuse("--precision", f"ModelMill has no pass that converts an ONNX model to {precision}",
               "use fp32, fp16, int8, uint8 or int4")
    return {}


def _key_values(text: str) -> dict[str, str]:
    from modelmill.commands.common import refuse

    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            refuse("--extra_mb_options", f"'{item}' is not KEY=VALUE", "write e.g. int4_is_symmetric=false,k=v")
        pairs[key.strip()] = value.strip()
    return pairs
