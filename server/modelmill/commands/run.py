"""run: run a workflow config (Olive JSON/YAML, old or new form), with -m/-o and Olive's overrides applied."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from modelmill.commands import olive_compat
from modelmill.commands.common import add_model_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "--run-config", dest="config", required=True, help="workflow config file")
    add_model_flags(parser, required=False)
    parser.add_argument("--ray-address", dest="ray_address", default=None, metavar="ADDRESS",
                        help="run the search's candidates on this Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
                             "(overrides the address of a Ray host system; see docs/scale-out.md)")
    olive_compat.add_run(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modelmill.commands import common
    from modelmill.commands.driver import execute
    from modelmill.config import load_document

    common.refuse_azure(args)  # a script model is fine here: run's input_model takes model_script
    document = load_document(Path(args.config))
    if args.list_required_packages:
        print("\n".join(olive_compat.required_packages(document)))
        return 0
    overrides: dict[str, Any] = {}
    olive_compat.apply_run(args, overrides)
    if args.test not in (None, False):
        if not args.model:
            common.refuse("--test", "run --test needs the model to shrink", "add -m HF_FOLDER with --test")
        common.resolve_test_model(args)
    if args.model:
        overrides["input_model.model_path"] = args.model
        print(f"--model: {replaced_model(document.data)} replaced by {args.model}", file=sys.stderr)
    if args.output_path:
        overrides["output_dir"] = args.output_path
    return execute(document, args, overrides)


def replaced_model(data: Any) -> str:
    """What the config names as its input model (new or old Olive form), for the --model message."""
    model = data.get("input_model") if isinstance(data, dict) else None
    if not isinstance(model, dict):
        return "the config's input model (none given)"
    config = model.get("config") if isinstance(model.get("config"), dict) else {}
    hf_config = config.get("hf_config") if isinstance(config.get("hf_config"), dict) else {}
    for key, value in (("input_model.model_path", model.get("model_path")),
                       ("input_model.config.model_path", config.get("model_path")),
                       ("input_model.config.hf_config.model_name", hf_config.get("model_name"))):
        if value:
            return f"{model.get('type', 'the input model')} path {value!r} ({key})"
    return f"{model.get('type', 'the input model')} with no model path"
