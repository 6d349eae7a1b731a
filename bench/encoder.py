#!/usr/bin/env python
"""Benchmark: the ModelMill INT8 encoder (examples/minilm_int8.json) against PyTorch eager fp32.

One run:

1. builds the model with ``modelmill run --config examples/minilm_int8.json`` (a temporary copy of the
   config with its own cache_dir, output under a temporary folder), timing it from the outside;
2. cosine similarity of attention-masked mean-pooled embeddings, INT8 vs PyTorch, over ``--sentences`` (64)
   local sentences (first paragraph of each ``pydoc_data.topics`` topic), tokenized without padding to the
   longest in a batch of 8 (the fixed padding to 128 that the sample's tokenizer.json declares is switched off);
3. throughput at batch 8, sequence 128 (real pydoc tokens), 2 intra-op threads: PyTorch eager fp32 (the HF
   folder via transformers ``AutoModel``, ``torch.inference_mode``, ``torch.set_num_threads(2)``) and the INT8
   output in onnxruntime (``intra_op_num_threads=2``, ``inter_op_num_threads=1``; also once more with ORT's
   thread spinning off), interleaved in rotating order, ``--iters`` batches per repetition after a warm-up
   batch. Timing runs in child processes, ``--rounds`` with the default environment (as specified) and as many
   with ``OMP_WAIT_POLICY=PASSIVE`` (a control: on a shared, oversubscribed machine PyTorch's OpenMP threads
   spin at every barrier and lose most of their time to other processes). Per batch it records wall time and
   process CPU time (all threads). Reported: median samples/s, the median of the per-repetition paired ratios
   (the figure judged against the target), the best-batch ratio and the CPU-time ratio;
4. op counts of the output graph and of the graph onnxruntime actually runs (after its own fusions:
   MatMulInteger → DynamicQuantizeMatMul).

Target (issue): >= 2.5x PyTorch throughput at cosine >= 0.99. It prints a Markdown table and writes
bench/results/encoder.json. A benchmark measures; it exits 1 only when the build failed.

    .venv/bin/python bench/encoder.py
    .venv/bin/python bench/encoder.py --rounds 3 --repeats 6
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
    key, equals, value = text.partition("=")
    pass_name, _, param = key.partition(".")
    if not pass_name or not param or not equals:
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


def ort_runner(model_file: Path, spinning: bool = True) -> Any:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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


def op_counts(model_file: Path) -> dict[str, int]:
    import onnx

    proto = onnx.load(str(model_file), load_external_data=False)
    return dict(collections.Counter(node.op_type for node in proto.graph.node).most_common())


def runtime_op_counts(model_file: Path, dump: Path) -> dict[str, int]:
    """Op counts of the graph onnxruntime runs after its own optimizations (a separate session saves it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(dump)
    options.log_severity_level = 3  # the "hardware specific optimizations" warning of saving at level 99
    ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    return op_counts(dump)


# --- timing (in child processes, so that the OpenMP wait policy can differ) --------------------------

RUNNERS = ("pytorch", "int8", "int8_nospin")
POLICIES = ("default", "PASSIVE")


def measure_child(model_file: Path, source: Path, repeats: int, iters: int) -> dict[str, Any]:
    """Interleaved timing of PyTorch, the INT8 model, and the INT8 model with ORT's thread spinning off.

    Per batch: wall seconds and process CPU seconds (all threads). Per repetition: the paired ratio of each
    runner's samples/s to PyTorch's. The order rotates every repetition.
    """
    tokenizer = tokenizer_for(source)
    runs = {"pytorch": torch_runner(source), "int8": ort_runner(model_file),
            "int8_nospin": ort_runner(model_file, spinning=False)}
    ids, mask = throughput_batch(tokenizer)
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    ratios: dict[str, list[float]] = {name: [] for name in runs if name != "pytorch"}
    names = list(runs)
    for rep in range(repeats):
        order = names[rep % len(names):] + names[:rep % len(names)]
        block = {}
        for name in order:
            runs[name](ids, mask)  # warm-up
            total = 0.0
            for _ in range(iters):
                cpu_start, start = time.process_time(), time.perf_counter()
                runs[name](ids, mask)
                elapsed = time.perf_counter() - start
                wall[name].append(round(elapsed, 4))
                cpu[name].append(round(time.process_time() - cpu_start, 4))
                total += elapsed
            block[name] = total
        for name in ratios:
            ratios[name].append(round(block["pytorch"] / block[name], 3))
    return {"policy": os.environ.get("OMP_WAIT_POLICY") or "default", "wall": wall, "cpu": cpu, "ratios": ratios,
            "loadavg": os.getloadavg()}


def run_child(policy: str, model_file: Path, source: Path, repeats: int, iters: int) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    command = [sys.executable, str(Path(__file__).resolve()), "--_measure", str(model_file), str(source),
               str(repeats), str(iters)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"timing child ({policy}) failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(children: list[dict[str, Any]]) -> dict[str, Any]:
    """Per policy: median samples/s (per-repetition blocks), median paired ratio, best batch, median CPU ms."""
    summary: dict[str, Any] = {}
    for policy in POLICIES:
        runs = [c for c in children if c["policy"] == policy]
        if not runs:
            continue
        entry: dict[str, Any] = {}
        for name in RUNNERS:
            wall = [t for c in runs for t in c["wall"][name]]
            cpu = [t for c in runs for t in c["cpu"][name]]
            entry[name] = {"samples_per_s": round(BATCH / statistics.median(wall), 2),
                           "best_samples_per_s": round(BATCH / min(wall), 2),
                           "cpu_ms_per_batch": round(1000 * statistics.median(cpu), 1),
                           "wall_ms_per_batch": round(1000 * statistics.median(wall), 1)}
            if name != "pytorch":
                ratios = [r for c in runs for r in c["ratios"][name]]
                entry[name]["speedup"] = round(statistics.median(ratios), 3)
                entry[name]["best_speedup"] = round(min(t for c in runs for t in c["wall"]["pytorch"])
                                                    / min(wall), 3)
                entry[name]["cpu_speedup"] = round(entry["pytorch"]["cpu_ms_per_batch"]
                                                   / entry[name]["cpu_ms_per_batch"], 3)
                entry[name]["ratios"] = ratios
        summary[policy] = entry
    return summary


# --- main ----------------------------------------------------------------------------------------

def write_results(path: Path, result: dict[str, Any], work: Path, keep: bool) -> None:
    """Write the results JSON; remove this run's temporary work folder unless ``keep``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {path}")
    if keep:
        print(f"kept {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--_measure":
        result = measure_child(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--rounds", type=int, default=2,
                        help="timing processes per OpenMP wait policy, alternating (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions per process (default 5)")
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
    model_file = out / "model.onnx"
    source = Path(json.loads((out / "modelmill_run.json").read_text())["input_model"]["path"])
    print(f"built in {built['wall_s']} s; cosine ...", file=sys.stderr, flush=True)

    tokenizer = tokenizer_for(source)
    similarity = cosine(ort_runner(model_file), torch_runner(source), tokenizer, pydoc_sentences(args.sentences))
    output_ops = op_counts(model_file)
    runtime_ops = runtime_op_counts(model_file, work / "ort_optimized.onnx")

    children = []
    for round_index in range(args.rounds):
        order = POLICIES if round_index % 2 == 0 else tuple(reversed(POLICIES))
        for policy in order:
            print(f"timing round {round_index + 1}/{args.rounds}, OMP_WAIT_POLICY={policy} ...", file=sys.stderr,
                  flush=True)
            children.append(run_child(policy, model_file, source, args.repeats, args.iters))
    summary = summarize(children)

    spec = summary["default"]
    control = summary.get("PASSIVE")
    speedup = spec["int8"]["speedup"]
    met_speed, met_cosine = speedup >= TARGET_SPEEDUP, similarity["cosine_mean"] >= TARGET_COSINE
    robust = control is not None and control["int8"]["speedup"] >= TARGET_SPEEDUP
    output_mb = sum(p.stat().st_size for p in out.glob("model.onnx*")) / 1e6
    source_mb = sum(p.stat().st_size for p in source.glob("*.safetensors")) / 1e6

    def row(label: str, policy: str, name: str, target: str = "", judge: bool | None = None) -> str:
        data = summary[policy]
        status = "" if judge is None else ("met" if judge else "MISSED")
        return (f"| {label} | {data['pytorch']['samples_per_s']:.2f} | {data[name]['samples_per_s']:.2f} | "
                f"{data[name]['speedup']:.2f}x | {data[name]['best_speedup']:.2f}x | "
                f"{data['pytorch']['cpu_ms_per_batch']:.0f} / {data[name]['cpu_ms_per_batch']:.0f} "
                f"({data[name]['cpu_speedup']:.2f}x) | {target} | {status} |")

    print(f"\n### Encoder: {source.name}, batch {BATCH} x seq {SEQUENCE}, {THREADS} intra-op threads, "
          f"{args.rounds} processes per policy x {args.repeats} interleaved reps x {args.iters} batches\n")
    print("| throughput | PyTorch eager fp32 samples/s | INT8 ORT samples/s | speedup (median of paired reps) | "
          "speedup (best batch) | CPU ms/batch PyTorch / INT8 | target | status |")
    print("|---|---|---|---|---|---|---|---|")
    print(row("as specified (default OpenMP wait policy)", "default", "int8", f">= {TARGET_SPEEDUP}x", met_speed))
    print(row("ORT without thread spinning (default OpenMP)", "default", "int8_nospin"))
    if control is not None:
        print(row("control: PyTorch with OMP_WAIT_POLICY=PASSIVE", "PASSIVE", "int8", f">= {TARGET_SPEEDUP}x",
                  robust))
        print(row("control: PASSIVE, ORT without thread spinning", "PASSIVE", "int8_nospin"))
    print("\n| quality / size | PyTorch eager fp32 | ModelMill INT8 (ORT) | target | status |")
    print("|---|---|---|---|---|")
    print(f"| cosine mean vs PyTorch ({similarity['sentences']} sentences) | 1 | {similarity['cosine_mean']:.4f} | "
          f">= {TARGET_COSINE} | {'met' if met_cosine else 'MISSED'} |")
    print(f"| cosine min vs PyTorch | 1 | {similarity['cosine_min']:.4f} | | |")
    print(f"| weights (MB) | {source_mb:.1f} | {output_mb:.1f} | | |")
    for policy, data in summary.items():
        print(f"\npaired ratios ({policy}): int8 {data['int8']['ratios']}; int8 no spinning "
              f"{data['int8_nospin']['ratios']}")
    for child in children:
        print(f"batch ms ({child['policy']}, loadavg {tuple(round(x, 1) for x in child['loadavg'])}): "
              + "; ".join(f"{name} {[round(1000 * t) for t in child['wall'][name]]}" for name in RUNNERS))
    mm = built["modelmill_metrics"]
    print("ModelMill's own evaluation of the output: "
          + ", ".join(f"{k} {v:.4g}" for k, v in mm.items() if v is not None) + f" (accepted: {built['accepted']})")
    print(f"build: {built['wall_s']} s wall; passes: "
          + ", ".join(f"{p['name']} {p['duration_s']} s" for p in built["passes"]))
    interesting = ("MatMulInteger", "DynamicQuantizeLinear", "QAttention", "Attention", "QEmbedLayerNormalization",
                   "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu", "MatMul",
                   "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "FusedMatMul")
    print("output graph ops: " + ", ".join(f"{op} {output_ops[op]}" for op in interesting if op in output_ops))
    print("ORT runtime graph ops: " + ", ".join(f"{op} {runtime_ops[op]}" for op in interesting if op in runtime_ops))
    print(f"target (>= {TARGET_SPEEDUP}x at cosine >= {TARGET_COSINE}): "
          f"{'MET' if met_speed and met_cosine else 'MISSED'} as specified"
          + ("" if control is None else f"; {'met' if robust and met_cosine else 'MISSED'} in the PASSIVE control"))

    import onnxruntime
    import torch
    import transformers

    result = {
        "benchmark": "encoder",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": str(source),
        "config": str(args.config),
        "param_overrides": args.param,
        "setup": {"batch": BATCH, "sequence": SEQUENCE, "threads": THREADS, "rounds": args.rounds,
                  "repeats": args.repeats, "iters": args.iters, "sentences": similarity["sentences"]},
        "host": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                 "loadavg_end": os.getloadavg()},
        "versions": {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__},
        "summary": {"speedup": speedup, "speedup_passive_control": control["int8"]["speedup"] if control else None,
                    **similarity, "output_mb": round(output_mb, 2), "source_mb": round(source_mb, 2),
                    "throughput": summary},
        "targets": {"speedup": f">= {TARGET_SPEEDUP}", "cosine_mean": f">= {TARGET_COSINE}",
                    "speedup_met": met_speed, "cosine_met": met_cosine, "met": met_speed and met_cosine,
                    "met_in_passive_control": robust and met_cosine},
        "children": children,
        "build": built,
        "output_ops": output_ops,
        "runtime_ops": runtime_ops,
    }
    write_results(args.results, result, work, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
