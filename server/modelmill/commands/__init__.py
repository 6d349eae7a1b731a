"""Olive's commands, one module per command.

Each module has ``add_arguments(parser)`` and ``run(args) -> int`` and imports only the standard library (and
other modules here, which do the same) at the top: cli.py imports every module here to build its parser, and
start-up must stay light. The run machinery they share is in driver.py, the shared flags in common.py.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any, NamedTuple


class Command(NamedTuple):
    name: str  # as typed: `modelmill <name>`
    module: str  # under modelmill.commands
    help: str  # the one line `modelmill --help` shows
    # The first commands (auto-opt ... generate) show no description under their usage line; the later ones
    # repeat the help line there.
    describe: bool = True


# In the order `modelmill --help` lists them.
COMMANDS: tuple[Command, ...] = (
    Command("auto-opt", "auto_opt", "pick and run the best passes for a model, device and precision", False),
    Command("run", "run", "run a workflow config (Olive JSON/YAML, old or new form)", False),
    Command("quantize", "quantize", "quantize a model (int4 weight-only or int8)", False),
    Command("finetune", "finetune", "fine-tune a Hugging Face LLM with LoRA adapters on local data", False),
    Command("capture-onnx-graph", "capture_onnx_graph", "export a Hugging Face or PyTorch model to ONNX", False),
    Command("evaluate", "evaluate", "measure a model (latency, tokens/s, size, memory, quality)", False),
    Command("cache", "cache", "list or clean the pass cache", False),
    Command("validate", "validate", "check a workflow config; every problem as file:line:col", False),
    Command("migrate", "migrate", "rewrite an old nested Olive config in the current flat form", False),
    Command("schema", "schema", "print the workflow config JSON Schema", False),
    Command("lsp", "lsp", "language server for editors (LSP over stdio; --tcp PORT to debug)", False),
    Command("samples", "samples", "sample models shipped through PyPI packages", False),
    Command("chat", "chat", "chat with an ORT GenAI output folder", False),
    Command("generate", "generate", "generate text from a prompt (no chat template unless --chat)", False),
    Command("init", "init", "write a workflow config step by step (interactive, or from flags)"),
    Command("run-pass", "run_pass", "run one pass on a model (--pass-name, --pass-config JSON)"),
    Command("optimize", "optimize", "Olive's all-in-one optimization: export, shapes, surgeries, quantization"),
    Command("extract-adapters", "extract_adapters", "save a Hugging Face model's LoRA adapter weights to a file"),
    Command("generate-adapter", "generate_adapter", "turn an ONNX model's LoRA weights into run-time adapter inputs"),
    Command("convert-adapters", "convert_adapters",
            "convert a PEFT LoRA adapter to onnx_adapter / safetensors / npz / pt"),
    Command("tune-session-params", "tune_session_params", "time ONNX Runtime session settings and keep the fastest"),
    Command("generate-cost-model", "generate_cost_model", "write the per-module cost CSV that CaptureSplitInfo reads"),
    Command("generate-model-package", "generate_model_package",
            "merge several output folders into one model package"),
    Command("benchmark", "benchmark", "score a model on lm-eval tasks (offline: local task data)"),
    Command("diffusion-lora", "diffusion_lora", "train a LoRA adapter for a diffusion pipeline (SD 1.5, SDXL, Flux)"),
    Command("shared-cache", "unavailable", "Olive's Azure Blob shared cache (not provided by ModelMill)"),
    Command("configure-qualcomm-sdk", "unavailable", "set up Qualcomm's SDK for Olive (not provided by ModelMill)"),
)


def register(sub: Any) -> None:
    """Add every command in COMMANDS to the `modelmill` subparsers ``sub``."""
    for command in COMMANDS:
        module = importlib.import_module(f"modelmill.commands.{command.module}")
        parser: argparse.ArgumentParser = sub.add_parser(
            command.name, help=command.help, description=command.help if command.describe else None)
        if command.module == "unavailable":  # one module for two commands: it needs to know which
            module.add_arguments(parser, command.name)
        else:
            module.add_arguments(parser)
        parser.set_defaults(func=module.run)
