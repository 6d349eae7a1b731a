"""evaluate: measure a model (latency, tokens/s, size, memory, quality); modelmill/evaluate/compare.py runs it
(an ``EvaluateRun`` in the run engine's worker process, as the editor's Evaluate)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="output folder, ONNX model, Hugging Face folder, or sample:NAME")
    parser.add_argument("--metrics", default=None,
                        help="comma list of: latency, throughput, size, llm, perplexity, memory, similarity "
                             "(default: by model kind)")
    parser.add_argument("--compare", default=None, metavar="OTHER",
                        help="also measure OTHER and show both side by side")
    parser.add_argument("--reference", default=None, metavar="HF_DIR",
                        help="PyTorch reference for similarity (default: the source recorded in the manifest)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with every value on stdout")
    parser.add_argument("--report", default=None, metavar="DIR", help="write metrics.json, metrics.md and report.html")
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="allow the model folder's own Python code (auto_map in config.json) to run")


def run(args: argparse.Namespace) -> int:
    from modelmill.evaluate.compare import run_evaluate

    return run_evaluate(args)
