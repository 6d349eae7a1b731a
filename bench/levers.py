#!/usr/bin/env python
"""Benchmark: output-side levers of the ModelBuilder int4 output on sample:smollm2, measured side by side.

Build-time levers (one ModelBuilder build each, from auto-opt's int4 parameters with one change): block size,
accuracy level, float embeddings (Gather not quantized), float LM head. Run-time levers (genai_config.json
overlays on the default build, no rebuild): past_present_share_buffer off, prompt chunking (search.chunk_size).
Every variant runs with the same session options (the tuned ones auto-opt writes on this machine: --threads
intra-op threads, spinning off unless --spinning), interleaved round by round: a P-token prompt then N greedy
tokens (prefill and decode tok/s, medians), plus perplexity on local text (bench/vs_llamacpp.py's llama.cpp-style
scoring) and the output size.

    .venv/bin/python bench/levers.py --repeats 5
    .venv/bin/python bench/levers.py --only default,block_64   # a subset

Measures only, never fails on a time. Results: bench/results/levers.json. Built variants are kept in
bench/results/levers/ and reused (delete the folder to rebuild).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_llamacpp import RESULTS, GenAIModel, fp32_perplexity, load_average, perplexity_text, text_chunks  # noqa: E402

# auto-opt's ModelBuilder parameters for int4 on CPU (server/modelmill/engine/autoopt.py), untuned.
DEFAULT = {"precision": "int4", "int4_block_size": 32, "int4_accuracy_level": 4,
           "int4_op_types_to_quantize": ["MatMul", "Gather"]}
BUILDS: dict[str, dict[str, Any]] = {
    "default": {},
    "block_64": {"int4_block_size": 64},
    "block_128": {"int4_block_size": 128},
    "accuracy_level_1 (fp32 compute)": {"int4_accuracy_level": 1},
    "float embeddings": {"int4_op_types_to_quantize": ["MatMul"]},
    "float lm_head": {"int4_nodes_to_exclude": ["/lm_head/MatMul"]},
    "k_quant_mixed": {"int4_algo_config": "k_quant_mixed"},
    "rtn_last (int8 LM head)": {"int4_algo_config": "rtn_last"},
    "block_16": {"int4_block_size": 16},
    "int8 (auto-opt --precision int8)": {"precision": "int8"},
}
OVERLAYS: dict[str, dict[str, Any]] = {
    "past_present_share_buffer off": {"search": {"past_present_share_buffer": False}},
    "chunk_size 32": {"search": {"chunk_size": 32}},
    "chunk_size 64": {"search": {"chunk_size": 64}},
}


def build(name: str, changes: dict[str, Any], out: Path) -> Path:
    from modelmill.engine.context import PassContext
    from modelmill.engine.events import EventBus
    from modelmill.engine.model import ModelRef
    from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams
    from modelmill.samples import fetch

    folder = out / re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if (folder / "output" / "genai_config.json").exists():
        return folder / "output"
    for sub in ("output", "work", "cache"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    print(f"building {name}", flush=True)
    ctx = PassContext(name, folder / "output", folder / "work", folder / "cache", EventBus("levers"))
    ModelBuilder().run(ModelRef("hf", fetch("smollm2")), ModelBuilderParams(**{**DEFAULT, **changes}), ctx)
    return folder / "output"


def size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.glob("model.onnx*")) / 2**20, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--spinning", action="store_true", help="leave ORT's intra-op spinning on")
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--ppl-context", type=int, default=256)
    parser.add_argument("--ppl-chunks", type=int, default=8)
    parser.add_argument("--no-fp32", action="store_true", help="skip the fp32 input's perplexity (loads torch)")
    parser.add_argument("--only", default="", help="comma-separated variant names (prefixes)")
    args = parser.parse_args()

    out = RESULTS / "levers"
    out.mkdir(parents=True, exist_ok=True)
    wanted = [w for w in args.only.split(",") if w]
    pick = (lambda name: not wanted or any(name.startswith(w) for w in wanted))
    session = {"intra_op_num_threads": args.threads}
    if not args.spinning:
        session["session.intra_op.allow_spinning"] = "0"
    variants: dict[str, tuple[Path, dict[str, Any]]] = {}
    for name, changes in BUILDS.items():
        if pick(name) or (name == "default" and any(pick(o) for o in OVERLAYS)):
            variants[name] = (build(name, changes, out), {})
    for name, overlay in OVERLAYS.items():
        if pick(name):
            variants[name] = (variants["default"][0], overlay)
    models = {name: GenAIModel(folder, {"model": {"decoder": {"session_options": session}}, **overlay})
              for name, (folder, overlay) in variants.items()}
    prompt = next(iter(models.values())).prompt(args.prompt)
    for model in models.values():
        model.run(prompt, 8)
    samples: dict[str, dict[str, list[float]]] = {name: {"prefill": [], "decode": []} for name in models}
    report: dict[str, Any] = {"session_options": session, "samples": samples, "perplexity": {}, "size_mb": {}}
    load_before = load_average()
    for rep in range(args.repeats):
        for name, model in models.items():
            speed = model.run(prompt, args.new)
            samples[name]["prefill"].append(round(speed["prefill"], 1))
            samples[name]["decode"].append(round(speed["decode"], 1))
        print(f"round {rep + 1}/{args.repeats} done", flush=True)
    from modelmill.samples import fetch

    text = perplexity_text(out / "perplexity.txt", chars=args.ppl_context * args.ppl_chunks * 6)
    chunks = text_chunks(fetch("smollm2"), text, args.ppl_context, args.ppl_chunks)
    base = samples["default"] if "default" in samples else next(iter(samples.values()))
    fp32_ppl = None if args.no_fp32 else fp32_perplexity(fetch("smollm2"), chunks)
    report["fp32_perplexity"] = fp32_ppl
    heading = (f"session options {session}; {args.prompt}-token prompt, {args.new} new tokens, medians of "
               f"{args.repeats} interleaved rounds; load average {load_before} → {load_average()}; perplexity: "
               f"{len(chunks)} x {args.ppl_context} tokens (second half scored); fp32 input: "
               f"{'not measured' if fp32_ppl is None else f'{fp32_ppl:.3f}'}")
    columns = ("| variant | size MB | prefill tok/s | decode tok/s | prefill vs default | decode vs default "
               "| perplexity | vs fp32 |")
    lines = [heading, "", columns, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    (RESULTS / "levers.json").write_text(json.dumps(report | {"speed_only": True}, indent=2, default=str))
    ppl_by_folder: dict[Path, float] = {}
    for name, model in models.items():
        # Run-time overlays keep the weights (and chunked prefill returns the last chunk's logits only):
        # their perplexity is their build's.
        folder = variants[name][0]
        if folder not in ppl_by_folder:
            ppl_by_folder[folder] = model.perplexity(chunks)
        ppl = ppl_by_folder[folder]
        p, d = statistics.median(samples[name]["prefill"]), statistics.median(samples[name]["decode"])
        size = size_mb(variants[name][0])
        report["perplexity"][name], report["size_mb"][name] = ppl, size
        lines.append(f"| {name} | {size} | {p:.1f} | {d:.1f} | {p / statistics.median(base['prefill']):.2f}x | "
                     f"{d / statistics.median(base['decode']):.2f}x | {ppl:.3f} | "
                     f"{'' if fp32_ppl is None else f'{ppl / fp32_ppl - 1:+.1%}'} |")
    table = "\n".join(lines)
    print(table)
    report["table"] = table
    (RESULTS / "levers.json").write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
