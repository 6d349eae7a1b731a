"""tune-session-params: time ONNX Runtime session settings on an ONNX model and write the fastest as JSON."""

from __future__ import annotations

import argparse

from modelmill.commands.common import (PROVIDERS, add_azure_flags, add_memory_flag, add_run_flags,
                                       add_telemetry_flag)

PASS_KEYS = ("cpu_cores", "io_bind", "enable_cuda_graph", "execution_mode_list", "opt_level_list", "trt_fp16_enable",
             "intra_thread_num_list", "inter_thread_num_list", "extra_session_config", "enable_profiling",
             "predict_with_kv_cache")


def _json_object(text: str) -> dict:
    import json

    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object such as '{\"key\": \"value\"}'")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model_name_or_path", dest="model", required=True, help="ONNX model (folder or file)")
    add_run_flags(parser, "tuned-inference-settings")
    tune = parser.add_argument_group("tuning")
    tune.add_argument("--cpu_cores", type=int, default=None, help="most threads any trial may use")
    tune.add_argument("--io_bind", action="store_true", help="time runs with I/O binding")
    tune.add_argument("--enable_cuda_graph", action="store_true", help="CUDA graphs (needs --io_bind)")
    tune.add_argument("--execution_mode_list", type=int, nargs="*", default=None,
                      help="execution modes to try: 0 sequential, 1 parallel")
    tune.add_argument("--opt_level_list", type=int, nargs="*", default=None,
                      help="graph optimization levels to try: 0, 1, 2, 99")
    tune.add_argument("--trt_fp16_enable", action="store_true", help="fp16 in TensorRT's options")
    tune.add_argument("--intra_thread_num_list", type=int, nargs="*", default=None, help="intra-op thread counts")
    tune.add_argument("--inter_thread_num_list", type=int, nargs="*", default=None, help="inter-op thread counts")
    tune.add_argument("--extra_session_config", type=_json_object, default=None, metavar="JSON",
                      help="session config entries for every trial, as a JSON object")
    tune.add_argument("--disable_force_evaluate_other_eps", action="store_true",
                      help="try only the listed providers, not every other provider onnxruntime has")
    tune.add_argument("--enable_profiling", action="store_true", help="save an ORT profile of the best setting")
    tune.add_argument("--predict_with_kv_cache", action="store_true",
                      help="time one decode step (1 token over a 64-token past KV cache) of a model with "
                           "past_key_values inputs; Olive 0.13 parses this flag and ignores it")
    parser.add_argument("--device", default="cpu", choices=["gpu", "cpu", "npu"])
    parser.add_argument("--providers_list", nargs="*", default=None, choices=PROVIDERS, metavar="PROVIDER",
                        help="execution providers to try (default: the device's usual one)")
    add_memory_flag(parser)
    add_azure_flags(parser)
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.commands.common import base_config, check_common, input_model_for, refuse
    from modelmill.commands.driver import run_generated
    from modelmill.engine.autoopt import DEFAULT_EP

    check_common(args)
    input_model, kind = input_model_for(args.model)
    if kind != "onnx":
        refuse("-m", "tune-session-params takes an ONNX model",
               "export it first (`modelmill capture-onnx-graph` or `modelmill auto-opt`), then pass its folder")
    providers = args.providers_list or [DEFAULT_EP(args.device)]
    params = {"type": "OrtSessionParamsTuning", "device": "gpu" if args.device == "gpu" else "cpu",
              "providers_list": providers, "force_evaluate_other_eps": False}
    params.update({key: getattr(args, key) for key in PASS_KEYS if getattr(args, key) not in (None, False)})
    config = base_config(input_model, {"session_params_tuning": params}, args.output_path, args.log_level,
                         args.device, providers[0], args.memory)
    code = run_generated(config, args)
    if code == 0 and not args.dry_run:
        _write_olive_settings_file(args.output_path, args.device)
    return code


def _write_olive_settings_file(output_path: str, device: str) -> None:
    """Olive names the tuned settings <device>-<provider>.json (cpu-cpu.json), after the provider that won."""
    import json
    import shutil
    import sys
    from pathlib import Path

    from modelmill.passes.session_params_tuning import SETTINGS_FILE

    settings = Path(output_path) / SETTINGS_FILE
    if settings.exists():
        provider = str((json.loads(settings.read_text()).get("execution_provider") or ["CPUExecutionProvider"])[0])
        olive_name = Path(output_path) / f"{device}-{provider.removesuffix('ExecutionProvider').lower()}.json"
        shutil.copyfile(settings, olive_name)
        print(f"tuned session settings: {olive_name}", file=sys.stderr)
