"""finetune: LoRA fine-tuning of a Hugging Face LLM on local data (modelmill/finetune/ builds the config)."""

from __future__ import annotations

import argparse

from modelmill.commands import olive_compat
from modelmill.commands.common import add_model_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # finetune/command.py imports only the standard library at the top, like the modules here
    from modelmill.finetune.command import add_arguments as add_finetune_arguments

    add_model_flags(parser)
    add_finetune_arguments(parser)
    olive_compat.add_finetune(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.commands import common
    from modelmill.commands.driver import local_model, run_generated
    from modelmill.finetune.command import build_config

    common.check_common(args)
    local_model(args.model)  # fetch a sample / refuse a hub id before anything else
    common.resolve_test_model(args)
    config = build_config(args)
    olive_compat.apply_finetune(args, config)
    return run_generated(config, args)
