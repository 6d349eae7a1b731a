"""chat: talk to an ORT GenAI or OpenVINO LLM output folder (one prompt, or interactive); shared helpers for
generate."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_generation_flags(parser)


def add_generation_flags(parser: argparse.ArgumentParser) -> None:
    """The flags chat and generate share."""
    parser.add_argument("model", help="output folder of auto-opt / ModelBuilder, or an OpenVINO LLM export "
                        "(OpenVINOOptimumConversion; runs in openvino-genai)")
    parser.add_argument("prompt", nargs="?", default=None, help="prompt (chat: interactive when omitted)")
    parser.add_argument("--max_new_tokens", "--max_length", dest="max_new_tokens", type=int, default=128)
    parser.add_argument("--stats", action="store_true", help="print prefill ms and decode tokens/s")
    parser.add_argument("--adapter", default=None, metavar="FILE",
                        help="activate this .onnx_adapter (default: the folder's adapter_weights.onnx_adapter, if any)")
    parser.add_argument("--no_adapter", action="store_true",
                        help="run the base model even if the folder has an adapter")


def run(args: argparse.Namespace) -> int:
    from modelmill.genai import GenerationStats

    model = load_model(args)
    prompts = [args.prompt] if args.prompt else None
    if prompts is None:
        print("chat with the model; an empty line or Ctrl-D ends", file=sys.stderr)
    while True:
        if prompts is not None:
            if not prompts:
                return 0
            prompt = prompts.pop()
        else:
            try:
                prompt = input("> ")
            except EOFError:
                return 0
            if not prompt.strip():
                return 0
        stats = GenerationStats()
        model.chat(prompt, args.max_new_tokens, on_text=write, stats=stats)
        print()
        if args.stats:
            print_stats(stats)


def load_model(args: argparse.Namespace) -> Any:
    """The ChatModel for args.model, with --adapter / --no_adapter applied (says which adapter is active); an
    OpenVINO LLM folder runs in openvino-genai (checked first: an OpenVINOEncapsulation output also has a
    genai_config.json, for onnxruntime-genai with onnxruntime-openvino, which ModelMill never installs)."""
    from pathlib import Path

    from modelmill.genai import ChatModel
    from modelmill.openvino_genai import OpenVINOChatModel, is_openvino_llm

    if is_openvino_llm(Path(args.model)):
        if args.adapter:
            from modelmill.errors import ModelMillError

            raise ModelMillError(f"{args.model} is an OpenVINO LLM: --adapter activates ORT GenAI .onnx_adapter files",
                                 fix="drop --adapter (an OpenVINO export has its adapter merged into the weights)")
        return OpenVINOChatModel(args.model)
    model = ChatModel(args.model, adapter=False if args.no_adapter else args.adapter)
    if model.adapter_file is not None:
        print(f"[adapter {model.adapter_file.name} active; --no_adapter runs the base model]", file=sys.stderr)
    return model


def write(text: str) -> None:
    """Stream text to stdout as it comes."""
    sys.stdout.write(text)
    sys.stdout.flush()


def print_stats(stats: Any) -> None:
    print(f"[{stats.prompt_tokens} prompt tokens, prefill {stats.prefill_ms:.0f} ms, {stats.new_tokens} new tokens, "
          f"{stats.tokens_per_s:.1f} tokens/s]", file=sys.stderr)
