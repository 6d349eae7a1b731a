"""run-pass: run one pass, named as in Olive, with its parameters as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from modelmill.commands.common import (PROVIDERS, add_memory_flag, add_model_source_flags, add_run_flags,
                                       add_telemetry_flag)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pass-name", dest="pass_name", default=None,
                        help="the pass to run, e.g. OnnxDynamicQuantization (any case; Olive's names)")
    parser.add_argument("--pass-config", dest="pass_config", default=None, metavar="JSON",
                        help="the pass's parameters as a JSON object, e.g. '{\"precision\": \"uint8\"}'")
    parser.add_argument("--list-passes", dest="list_passes", action="store_true",
                        help="list every pass name and whether ModelMill runs it here")
    parser.add_argument("-m", "--model_name_or_path", dest="model", default=None,
                        help="local Hugging Face folder, .onnx file/folder, or sample:NAME")
    parser.add_argument("-t", "--task", default=None, help="model task (default: inferred)")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow custom model code from the folder")
    add_model_source_flags(parser)
    add_run_flags(parser, "run-pass-output")
    parser.add_argument("--device", default="cpu", choices=["gpu", "cpu", "npu"])
    parser.add_argument("--provider", default=None, choices=PROVIDERS,
                        help="execution provider (default: the device's usual one)")
    add_memory_flag(parser)
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.commands.common import base_config, check_common, input_model_for, refuse, resolve_test_model
    from modelmill.engine.autoopt import DEFAULT_EP

    if args.list_passes:
        return list_passes()
    check_common(args)
    if not args.pass_name:
        refuse("--pass-name", "run-pass needs the pass to run", "add --pass-name NAME (see --list-passes)")
    if not args.model:
        refuse("-m", "run-pass needs a model", "add -m MODEL (a local Hugging Face folder or an .onnx model)")
    pass_type = canonical_pass_name(args.pass_name)
    params = parse_pass_config(args.pass_config)
    resolve_test_model(args)
    input_model, _ = input_model_for(args.model, args.task, args.trust_remote_code, args.adapter_path)
    provider = args.provider or DEFAULT_EP(args.device)
    config = base_config(input_model, {pass_type.lower(): {"type": pass_type, **params}}, args.output_path,
                         args.log_level, args.device, provider, args.memory)
    from modelmill.commands.driver import run_generated

    return run_generated(config, args)


def canonical_pass_name(name: str) -> str:
    """ModelMill's or Olive's spelling of ``name``; an unknown name is refused with a suggestion."""
    from modelmill.config.olive_catalog import all_olive_passes
    from modelmill.passes.registry import all_passes, find_pass

    cls = find_pass(name)
    if cls is not None:
        return cls.name
    olive = {n.lower(): n for n in all_olive_passes()}
    if name.lower() in olive:
        return olive[name.lower()]  # the run stops before it starts, with pass-not-runnable and what it needs
    import difflib

    names = {n.lower(): n for n in [*all_olive_passes(), *all_passes()]}
    close = difflib.get_close_matches(name.lower(), list(names), n=1, cutoff=0.6)
    hint = f"did you mean {names[close[0]]}? " if close else ""
    from modelmill.commands.common import refuse

    refuse("--pass-name", f"unknown pass '{name}': neither ModelMill nor Olive 0.13 has it",
           f"{hint}see `modelmill run-pass --list-passes`")
    raise AssertionError  # refuse raised


def parse_pass_config(text: str | None) -> dict[str, Any]:
    from modelmill.commands.common import refuse

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        refuse("--pass-config", f"--pass-config is not valid JSON ({exc.msg} at character {exc.pos})",
               "pass a JSON object in single quotes, e.g. --pass-config '{\"precision\": \"uint8\"}'")
    if not isinstance(value, dict):
        refuse("--pass-config", f"--pass-config must be a JSON object, got {type(value).__name__}",
               "wrap the parameters in braces: '{\"name\": value}'")
    if "type" in value and str(value["type"]).lower() != "":
        value = {k: v for k, v in value.items() if k != "type"}  # the type comes from --pass-name
    return value


def list_passes() -> int:
    from modelmill.config.olive_catalog import all_olive_passes
    from modelmill.passes.registry import all_passes

    ours = all_passes()
    names = sorted({*ours, *all_olive_passes()}, key=str.lower)
    for name in names:
        status = "runs here" if name in ours else "Olive only (pass-not-runnable here)"
        sys.stdout.write(f"{name:40} {status}\n")
    return 0
