#!/usr/bin/env python
"""Benchmark: the ModelMill INT8 encoder (examples/minilm_int8.json) against PyTorch eager fp32.

One run:

1. builds the model with ``modelmill run --config examples/minilm_int8.json`` (a temporary copy of the
   config with its own cache_dir, output under a temporary folder), timing it from the outside;
2. measures throughput at batch 8, sequence 128, 2 intra-op threads: PyTorch eager fp32 (the HF folder via
   transformers ``AutoModel``, ``torch.inference_mode``, ``torch.set_num_threads(2)``) and the INT8 output
   in onnxruntime (``intra_op_num_threads=2``, ``inter_op_num_threads=1``), interleaved (A B, B A, ...);
   each repetition times ``--iters`` batches after one warm-up batch; reports median samples/s of each and the
   median of the per-repetition ratios (paired, so load from other processes cancels out better);
3. cosine similarity of attention-masked mean-pooled embeddings, INT8 vs PyTorch, over ``--sentences`` (64)
   local sentences (first paragraph of each ``pydoc_data.topics`` topic), tokenized without padding to the
   longest in a batch of 8 (the padding that tokenizer.json declares is switched off);
4. op counts of the output graph and of the graph onnxruntime actually runs (after its own fusions:
   MatMulInteger → DynamicQuantizeMatMul / MatMulIntegerToFloat).

Target (issue): >= 2.5x PyTorch throughput at cosine >= 0.99. It prints a Markdown table and writes
bench/results/encoder.json. A benchmark measures; it exits 1 only when the build failed.

    .venv/bin/python bench/encoder.py
    .venv/bin/python bench/encoder.py --repeats 9 --iters 5
    .venv/bin/python bench/encoder.py --param quantization.per_channel=false --param quantization.reduce_range=false
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "examples" / "minilm_int8.json"
DEFAULT_RESULTS = ROOT / "bench" / "results" / "encoder.json"
MODELMILL = Path(sys.executable).parent / "modelmill"

BATCH, SEQUENCE, THREADS = 8, 128, 2
TARGET_SPEEDUP, TARGET_COSINE = 2.5, 0.99


# --- build ---------------------------------------------------------------------------------------

def _parse_param(text: str) -> tuple[str, str, Any]:
    key, _, value = text.partition("=")
    pass_name, _, param = key.partition(".")
    if not pass_name or not param or not _:
        raise SystemExit(f"--param wants PASS.PARAM=JSON, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return pass_name, param, parsed


def build(config_path: Path, work: Path, params: list[str]) -> dict[str, Any]:
    """Run the workflow on a fresh cache; returns the output folder, wall time and ModelMill's own metrics."""
    config = json.loads(config_path.read_text())
    config["cache_dir"] = str(work / "cache")
    for text in params:
        pass_name, param, value = _parse_param(text)
        config["passes"][pass_name][param] = value
    run_config = work / "config.json"
    run_config.write_text(json.dumps(config, indent=2))
    out = work / "out"
    events = work / "events.jsonl"
    command = [str(MODELMILL), "run", "--config", str(run_config), "-o", str(out), "--events", str(events)]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"modelmill run failed (exit {proc.returncode})")
    manifest = json.loads((out / "modelmill_run.json").read_text())
    search = manifest.get("search") or {}
    best = next((c for c in search.get("candidates", []) if c["id"] == search.get("best")), {})
    passes = [{"name": p["name"], "type": p["type"], "duration_s": p["duration_s"], "cached": p["cached"]}
              for p in manifest["passes"]]
    return {"command": command, "config": config, "wall_s": round(wall, 2), "output": str(out),
            "passes": passes, "modelmill_metrics": best.get("metrics", {}), "accepted": best.get("accepted")}


# --- inputs --------------------------------------------------------------------------------------

def pydoc_sentences(count: int) -> list[str]:
    """The first prose paragraph (>= 5 words, at most 60) of each pydoc topic, sorted keys."""
    from pydoc_data.topics import topics

    sentences = []
    for key in sorted(topics):
        for paragraph in re.split(r"\n\s*\n", topics[key]):
            words = paragraph.split()
            if len(words) >= 5 and not paragraph.startswith((" ", "\t")):
                sentences.append(" ".join(words[:60]))
                break
        if len(sentences) >= count:
            break
    if len(sentences) < count:
        raise SystemExit(f"only {len(sentences)} pydoc sentences available, asked for {count}")
    return sentences


def tokenizer_for(folder: Path) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()  # tokenizer.json may pad every row to a fixed 128; pad per batch instead
    tokenizer.enable_truncation(max_length=SEQUENCE)
    return tokenizer


def pad(rows: list[list[int]], width: int | None = None) -> tuple[Any, Any]:
    import numpy as np

    width = width or max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for index, row in enumerate(rows):
        ids[index, :len(row)] = row
        mask[index, :len(row)] = 1
    return ids, mask


def throughput_batch(tokenizer: Any) -> tuple[Any, Any]:
    """BATCH rows of exactly SEQUENCE real tokens ([CLS] text [SEP]) from the pydoc topics."""
    from pydoc_data.topics import topics

    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    stream: list[int] = []
    for key in sorted(topics):
        stream.extend(tokenizer.encode(topics[key], add_special_tokens=False).ids)
        if len(stream) >= BATCH * (SEQUENCE - 2):
            break
    body = SEQUENCE - 2
    rows = [[cls, *stream[i * body:(i + 1) * body], sep] for i in range(BATCH)]
    return pad(rows, SEQUENCE)


# --- models --------------------------------------------------------------------------------------

def torch_runner(folder: Path) -> Any:
    import torch
    from transformers import AutoModel

    torch.set_num_threads(THREADS)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()  # float32

    def run(ids: Any, mask: Any) -> Any:
        with torch.inference_mode():
            tensor_ids = torch.from_numpy(ids)
            return model(input_ids=tensor_ids, attention_mask=torch.from_numpy(mask),
                         token_type_ids=torch.zeros_like(tensor_ids)).last_hidden_state.numpy()

    return run


def ort_runner(model_file: Path, optimized_copy: Path | None = None) -> Any:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if optimized_copy is not None:
        options.optimized_model_filepath = str(optimized_copy)
    session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    names = [meta.name for meta in session.get_inputs()]
    outputs = [meta.name for meta in session.get_outputs()]
    at = outputs.index("last_hidden_state") if "last_hidden_state" in outputs else 0

    def run(ids: Any, mask: Any) -> Any:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return session.run([outputs[at]], {name: feeds[name] for name in names})[0]

    return run


def mean_pool(hidden: Any, mask: Any) -> Any:
    import numpy as np

    weights = mask[..., None].astype(np.float64)
    return (hidden.astype(np.float64) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def cosine(run_a: Any, run_b: Any, tokenizer: Any, sentences: list[str]) -> dict[str, Any]:
    import numpy as np

    values: list[float] = []
    for start in range(0, len(sentences), BATCH):
        ids, mask = pad([e.ids for e in tokenizer.encode_batch(sentences[start:start + BATCH])])
        a, b = mean_pool(run_a(ids, mask), mask), mean_pool(run_b(ids, mask), mask)
        values.extend(((a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                                   1e-12)).tolist())
    return {"cosine_mean": round(float(np.mean(values)), 5), "cosine_min": round(float(np.min(values)), 5),
            "sentences": len(values)}


def time_block(run: Any, ids: Any, mask: Any, iters: int) -> list[float]:
    """Seconds of each of ``iters`` timed batches, after one warm-up batch."""
    run(ids, mask)
    latencies = []
    for _ in range(iters):
        start = time.perf_counter()
        run(ids, mask)
        latencies.append(time.perf_counter() - start)
    return latencies


def op_counts(model_file: Path) -> dict[str, int]:
    import onnx

    proto = onnx.load(str(model_file), load_external_data=False)
    return dict(collections.Counter(node.op_type for node in proto.graph.node).most_common())


# --- main ----------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--repeats", type=int, default=9, help="interleaved repetitions (default 9)")
    parser.add_argument("--iters", type=int, default=3, help="timed batches per repetition (default 3)")
    parser.add_argument("--sentences", type=int, default=64, help="sentences for the cosine (default 64)")
    parser.add_argument("--param", action="append", default=[], metavar="PASS.PARAM=JSON",
                        help="override a pass parameter in the config copy, e.g. quantization.per_channel=false")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (output, cache, events)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mm-encoder-"))
    print(f"building with {args.config} (work folder {work}) ...", file=sys.stderr, flush=True)
    built = build(args.config, work, args.param)
    out = Path(built["output"])
    source = Path(json.loads((out / "modelmill_run.json").read_text())["input_model"]["path"])
    print(f"built in {built['wall_s']} s; measuring ...", file=sys.stderr, flush=True)

    tokenizer = tokenizer_for(source)
    run_torch = torch_runner(source)
    run_ort = ort_runner(out / "model.onnx", work / "ort_optimized.onnx")
    sentences = pydoc_sentences(args.sentences)
    similarity = cosine(run_ort, run_torch, tokenizer, sentences)

    ids, mask = throughput_batch(tokenizer)
    samples: dict[str, list[float]] = {"pytorch": [], "int8": []}
    batch_ms: dict[str, list[float]] = {"pytorch": [], "int8": []}
    ratios: list[float] = []
    for rep in range(args.repeats):
        order = ("pytorch", "int8") if rep % 2 == 0 else ("int8", "pytorch")
        block = {}
        for name in order:
            latencies = time_block(run_torch if name == "pytorch" else run_ort, ids, mask, args.iters)
            block[name] = BATCH * len(latencies) / sum(latencies)
            samples[name].append(round(block[name], 3))
            batch_ms[name].extend(round(1000 * t, 1) for t in latencies)
        ratios.append(round(block["int8"] / block["pytorch"], 3))
        print(f"  rep {rep + 1}/{args.repeats}: pytorch {block['pytorch']:.2f}, int8 {block['int8']:.2f} samples/s "
              f"({ratios[-1]:.2f}x)", file=sys.stderr, flush=True)

    median = {name: round(statistics.median(values), 2) for name, values in samples.items()}
    speedup = round(statistics.median(ratios), 3)
    # Best case (fastest single batch of each): less sensitive to other processes on a shared machine.
    best = {name: round(BATCH * 1000 / min(values), 2) for name, values in batch_ms.items()}
    best_speedup = round(best["int8"] / best["pytorch"], 3)
    output_ops = op_counts(out / "model.onnx")
    runtime_ops = op_counts(work / "ort_optimized.onnx") if (work / "ort_optimized.onnx").exists() else {}
    met_speed, met_cosine = speedup >= TARGET_SPEEDUP, similarity["cosine_mean"] >= TARGET_COSINE
    output_mb = sum(p.stat().st_size for p in out.glob("model.onnx*")) / 1e6
    source_mb = sum(p.stat().st_size for p in source.glob("*.safetensors")) / 1e6

    rows = [
        ("throughput (samples/s, median)", f"{median['pytorch']:.2f}", f"{median['int8']:.2f}", "", ""),
        ("speedup (median of paired ratios)", "1.00x", f"{speedup:.2f}x", f">= {TARGET_SPEEDUP}x",
         "met" if met_speed else "MISSED"),
        ("best batch (samples/s; fastest of all batches)", f"{best['pytorch']:.2f}", f"{best['int8']:.2f}",
         "", f"{best_speedup:.2f}x"),
        ("cosine mean vs PyTorch", "1", f"{similarity['cosine_mean']:.4f}", f">= {TARGET_COSINE}",
         "met" if met_cosine else "MISSED"),
        ("cosine min vs PyTorch", "1", f"{similarity['cosine_min']:.4f}", "", ""),
        ("weights (MB)", f"{source_mb:.1f}", f"{output_mb:.1f}", "", ""),
    ]
    print(f"\n### Encoder: {source.name}, batch {BATCH} x seq {SEQUENCE}, {THREADS} intra-op threads, "
          f"{args.repeats} interleaved reps x {args.iters} batches\n")
    print("| metric | PyTorch eager fp32 | ModelMill INT8 (ORT) | target | status |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nsamples/s pytorch: {samples['pytorch']}\nsamples/s int8:    {samples['int8']}\nratios: {ratios}")
    print(f"batch ms pytorch: {batch_ms['pytorch']}\nbatch ms int8:    {batch_ms['int8']}")
    print(f"cosine over {similarity['sentences']} pydoc sentences (unpadded, mean-pooled)")
    mm = built["modelmill_metrics"]
    print(f"ModelMill's own evaluation of the output: " + ", ".join(f"{k} {v:.4g}" for k, v in mm.items() if v is not None)
          + f" (accepted: {built['accepted']})")
    print(f"build: {built['wall_s']} s wall; passes: "
          + ", ".join(f"{p['name']} {p['duration_s']} s" for p in built["passes"]))
    interesting = ("MatMulInteger", "DynamicQuantizeLinear", "QAttention", "Attention", "QEmbedLayerNormalization",
                   "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu", "MatMul",
                   "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "FusedMatMul")
    print("output graph ops: " + ", ".join(f"{op} {output_ops[op]}" for op in interesting if op in output_ops))
    print("ORT runtime graph ops: " + ", ".join(f"{op} {runtime_ops[op]}" for op in interesting if op in runtime_ops))
    print(f"target (>= {TARGET_SPEEDUP}x at cosine >= {TARGET_COSINE}): "
          f"{'MET' if met_speed and met_cosine else 'MISSED'}")

    import onnxruntime
    import torch
    import transformers

    result = {
        "benchmark": "encoder",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": str(source),
        "config": str(args.config),
        "param_overrides": args.param,
        "setup": {"batch": BATCH, "sequence": SEQUENCE, "threads": THREADS, "repeats": args.repeats,
                  "iters": args.iters, "sentences": similarity["sentences"]},
        "host": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                 "loadavg_end": os.getloadavg()},
        "versions": {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__},
        "summary": {"pytorch_samples_per_s": median["pytorch"], "int8_samples_per_s": median["int8"],
                    "speedup": speedup, "best_pytorch_samples_per_s": best["pytorch"],
                    "best_int8_samples_per_s": best["int8"], "best_speedup": best_speedup, **similarity,
                    "output_mb": round(output_mb, 2), "source_mb": round(source_mb, 2)},
        "targets": {"speedup": f">= {TARGET_SPEEDUP}", "cosine_mean": f">= {TARGET_COSINE}",
                    "speedup_met": met_speed, "cosine_met": met_cosine, "met": met_speed and met_cosine},
        "samples": {**samples, "ratios": ratios, "batch_ms": batch_ms},
        "build": built,
        "output_ops": output_ops,
        "runtime_ops": runtime_ops,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {args.results}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
