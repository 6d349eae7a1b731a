"""benchmark: Olive's lm-eval scoring flags; runs only where lm-eval is installed, and it is not in this build."""

from __future__ import annotations

import argparse

from modelmill.commands.common import add_azure_flags, add_model_source_flags, add_telemetry_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model_name_or_path", dest="model", default=None,
                        help="output folder, ONNX model or Hugging Face folder to score")
    parser.add_argument("-t", "--task", default=None, help="model task (default: inferred)")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow custom model code from the folder")
    add_model_source_flags(parser)
    parser.add_argument("-o", "--output_path", default="onnx-model", help="folder for the scores")
    parser.add_argument("--tasks", nargs="*", required=True, help="lm-eval task names, e.g. arc_easy hellaswag")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--max_length", type=int, default=1024, help="longest sequence, in tokens")
    parser.add_argument("--limit", type=float, default=1,
                        help="samples per task: a count, or a fraction of the task when below 1")
    parser.add_argument("--backend", default="auto", choices=["auto", "ort", "ortgenai"],
                        help="how an ONNX model is run: onnxruntime or onnxruntime-genai (auto: by folder)")
    parser.add_argument("--log_level", type=int, default=3, choices=range(5))
    parser.add_argument("--save_config_file", action="store_true")
    parser.add_argument("--dry_run", action="store_true")
    add_azure_flags(parser)
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from modelmill.commands.common import check_common
    from modelmill.errors import ModelMillError

    check_common(args)
    if importlib.util.find_spec("lm_eval") is None:
        raise ModelMillError("benchmark is not available in this build: it needs lm-eval (the lm-evaluation-"
                             "harness), which is not installed, and ModelMill has no lm-eval bridge yet",
                             fix="use `modelmill evaluate MODEL --metrics perplexity,llm` for ModelMill's own "
                                 "quality and speed metrics, or `olive benchmark` with olive-ai and lm-eval")
    raise ModelMillError("benchmark is not available in this build: ModelMill has no lm-eval bridge yet",
                         fix="use `modelmill evaluate MODEL --metrics perplexity,llm`, or `olive benchmark`")
