"""auto-opt: pick and run the best passes for a model, device and precision (engine/autoopt.py builds the config)."""

from __future__ import annotations

import argparse

from modelmill.commands import olive_compat
from modelmill.commands.common import OLIVE_PRECISIONS, add_model_flags

PRECISIONS = ["int4", "int8", "fp16", "fp32"]  # the precisions auto-opt runs here; Olive's others are refused


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_flags(parser)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu", "npu"])
    parser.add_argument("--provider", default=None, help="execution provider, e.g. CUDAExecutionProvider")
    parser.add_argument("--precision", default="int4", choices=OLIVE_PRECISIONS,
                        help="int4 (default), int8, fp16 or fp32 run here; Olive's other precisions are refused")
    parser.add_argument("--use_ort_genai", action="store_true", help="produce an ORT GenAI model (default for LLMs)")
    parser.add_argument("--use_model_builder", action="store_true", default=None,
                        help="force onnxruntime-genai's model builder")
    parser.add_argument("-a", "--adapter_path", default=None,
                        help="LoRA adapter folder (e.g. a finetune output's adapter/) applied to the model")
    parser.add_argument("--adapter_format", default="embedded", choices=["embedded", "onnx_adapter"],
                        help="with an adapter: build it into the model (embedded), or keep the base model and write "
                             "the adapter to a separate .onnx_adapter file that chat activates at run time")
    parser.add_argument("--no_tune", action="store_true",
                        help="skip session tuning (LLMs on CPU: after the build, a few seconds of probes pick the "
                             "fastest ONNX Runtime thread settings for this machine and write them into "
                             "genai_config.json)")
    olive_compat.add_auto_opt(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.commands import common
    from modelmill.commands.driver import local_model, run_generated
    from modelmill.engine.autoopt import AutoOptRequest, build_config, plan_notes

    common.check_common(args)
    if args.precision not in PRECISIONS:
        common.refuse("--precision", f"auto-opt runs int4, int8, fp16 or fp32 here, not {args.precision}",
                      "pick one of those, or `modelmill quantize` for uint8/int16")
    common.resolve_test_model(args)

    request = AutoOptRequest(model=args.model, output_path=args.output_path or "models/auto-opt", device=args.device,
                             provider=args.provider, precision=args.precision,
                             use_model_builder=args.use_model_builder, task=args.task,
                             trust_remote_code=args.trust_remote_code, log_level=args.log_level,
                             adapter_path=args.adapter_path, adapter_format=args.adapter_format,
                             tune_session=not args.no_tune)
    model_dir = local_model(args.model)
    config = build_config(request, model_dir)
    olive_compat.apply_auto_opt(args, config)
    return run_generated(config, args, plan_notes(request, model_dir))
