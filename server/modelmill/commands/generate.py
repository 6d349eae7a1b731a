"""generate: generate text from a prompt with an ORT GenAI or OpenVINO LLM folder (no chat template unless --chat)."""

from __future__ import annotations

import argparse
import sys

from modelmill.commands.chat import add_generation_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_generation_flags(parser)
    parser.add_argument("--chat", action="store_true", help="apply the chat template")


def run(args: argparse.Namespace) -> int:
    from modelmill.commands.chat import load_model, print_stats, write
    from modelmill.genai import GenerationStats

    if not args.prompt:
        print("error: generate needs a prompt", file=sys.stderr)
        return 2
    model = load_model(args)
    prompt = model.prompt_for(args.prompt) if args.chat else args.prompt
    stats = GenerationStats()
    for piece in model.stream(prompt, args.max_new_tokens, stats):
        write(piece)
    print()
    if args.stats:
        print_stats(stats)
    return 0
