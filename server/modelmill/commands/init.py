"""init: write a workflow config, asking in a terminal for what the flags leave open.

Non-interactive (scripts, CI): give -m and --yes; every other answer has a default. The config is validated
before it is written, so `modelmill validate` and `modelmill run --config` take it as it is.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output_path", default="./olive-output",
                        help="folder for config.json; the model goes to its model/ subfolder (default ./olive-output)")
    parser.add_argument("-m", "--model_name_or_path", dest="model", default=None,
                        help="local Hugging Face folder or ONNX model (asked when omitted)")
    parser.add_argument("--device", default=None, choices=["cpu", "gpu", "npu"], help="target device (asked)")
    parser.add_argument("--precision", default=None, choices=["int4", "int8", "fp16", "fp32"],
                        help="weight precision (asked)")
    parser.add_argument("-y", "--yes", action="store_true",
                        help="ask nothing: take the defaults for every question the flags leave open")
    parser.add_argument("--disable_telemetry", action="store_true",
                        help="accepted for Olive compatibility; ModelMill sends no telemetry")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from modelmill.commands.common import refuse
    from modelmill.config import format_report, parse_document, validate_document
    from modelmill.engine.autoopt import AutoOptRequest, build_config

    interactive = not args.yes and sys.stdin.isatty()
    ask = _asker(interactive)
    model = args.model or ask("Model (local Hugging Face folder or .onnx)", None)
    if not model:
        refuse("-m", "init needs a model", "pass -m MODEL, or run init in a terminal to be asked")
    model_dir = _model_dir(model)
    device = args.device or ask("Device (cpu, gpu, npu)", "cpu")
    precision = args.precision or ask("Precision (int4, int8, fp16, fp32)", "int4" if device == "cpu" else "fp16")
    if device not in ("cpu", "gpu", "npu"):
        refuse("--device", f"unknown device '{device}'", "answer cpu, gpu or npu")
    if precision not in ("int4", "int8", "fp16", "fp32"):
        refuse("--precision", f"unknown precision '{precision}'", "answer int4, int8, fp16 or fp32")
    folder = Path(args.output_path)
    if (folder / "config.json").exists():  # never replace a config the user has
        refuse("-o", f"{folder / 'config.json'} already exists", "choose another --output_path, or move that file")
    request = AutoOptRequest(model=str(Path(model).resolve()) if model_dir else model,
                             output_path=str((folder / "model").resolve()), device=device, precision=precision)
    config = build_config(request, model_dir)
    text = json.dumps(config, indent=2) + "\n"
    diagnostics = [d for d in validate_document(parse_document(text, "config.json"))
                   if d.severity in ("error", "warning")]
    if diagnostics:
        print(format_report(diagnostics, "config.json"), file=sys.stderr)
        refuse("-m", "the config init would write does not validate clean",
               "fix the problems above (usually the model path), then run init again")
    from modelmill.engine.output import write_file_output

    target = folder / "config.json"
    write_file_output(target, lambda tmp: tmp.write_text(text), flag="-o")
    print(f"wrote {target}\n  check it: modelmill validate {target}\n  run it:   modelmill run --config {target}",
          file=sys.stderr)
    return 0


def _asker(interactive: bool) -> Callable[[str, Any], Any]:
    def ask(question: str, default: Any) -> Any:
        if not interactive:
            return default
        suffix = f" [{default}]" if default else ""
        try:
            answer = input(f"{question}{suffix}: ").strip()
        except EOFError:
            return default
        return answer or default

    return ask


def _model_dir(model: str) -> Any:
    from modelmill.commands.driver import local_model

    return local_model(model)
