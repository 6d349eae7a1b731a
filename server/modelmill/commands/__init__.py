"""Olive 0.13 commands that ModelMill added after its first five, one module per command.

Each module has ``add_arguments(parser)`` and ``run(args) -> int`` and imports only the standard library at
the top: cli.py imports every module here to build its parser, and start-up must stay light.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

# (command, module under modelmill.commands, one-line help), in the order `--help` lists them.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("init", "init", "write a workflow config step by step (interactive, or from flags)"),
    ("run-pass", "run_pass", "run one pass on a model (--pass-name, --pass-config JSON)"),
    ("optimize", "optimize", "Olive's all-in-one optimization: export, shapes, surgeries, quantization"),
    ("extract-adapters", "extract_adapters", "save a Hugging Face model's LoRA adapter weights to a file"),
    ("generate-adapter", "generate_adapter", "turn an ONNX model's LoRA weights into run-time adapter inputs"),
    ("convert-adapters", "convert_adapters", "convert a PEFT LoRA adapter to onnx_adapter / safetensors / npz / pt"),
    ("tune-session-params", "tune_session_params", "time ONNX Runtime session settings and keep the fastest"),
    ("generate-cost-model", "generate_cost_model", "write the per-module cost CSV that CaptureSplitInfo reads"),
    ("generate-model-package", "generate_model_package", "merge several output folders into one model package"),
    ("benchmark", "benchmark", "score a model on lm-eval tasks (needs lm-eval)"),
    ("diffusion-lora", "diffusion_lora", "LoRA training for diffusion models (needs diffusers and peft)"),
    ("shared-cache", "unavailable", "Olive's Azure Blob shared cache (not provided by ModelMill)"),
    ("configure-qualcomm-sdk", "unavailable", "set up Qualcomm's SDK for Olive (not provided by ModelMill)"),
)


def register(sub: Any) -> None:
    """Add every command in COMMANDS to the `modelmill` subparsers ``sub``."""
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(f"modelmill.commands.{module_name}")
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        if module_name == "unavailable":
            module.add_arguments(parser, name)
        else:
            module.add_arguments(parser)
        parser.set_defaults(func=module.run)
