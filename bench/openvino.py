#!/usr/bin/env python
"""Benchmark: the encoder half of issue 15, OpenVINO vs ONNX Runtime vs PyTorch eager on sample:minilm.

Needs ``modelmill[openvino]`` in the interpreter that runs it (a separate environment: see docs/openvino.md).
One run:

1. builds five outputs from the same Hugging Face folder with ``modelmill run`` (each a fresh cache and work folder,
   timed from the outside, so every build really converts):

   - ``ORT fp32``: the passes of ``modelmill auto-opt -m MODEL --precision fp32 --dry_run``
     (OnnxConversion → OrtTransformersOptimization);
   - ``ORT INT8``: the passes of ``auto-opt --precision int8 --dry_run`` (the same, then OnnxDynamicQuantization);
   - ``OpenVINO FP32 IR``: OnnxConversion → OpenVINOConversion (dynamic shapes, ``compress_to_fp16: false``);
   - ``OpenVINO FP16 IR``: the same with OpenVINOConversion's default FP16 weight storage;
   - ``OpenVINO INT8``: the FP16 IR → OpenVINOQuantization (NNCF, ``model_type: TRANSFORMER``, target cpu), which
     calibrates on the built-in local text (windows of Python's pydoc topics; no ``data_config``, nothing
     downloaded);

2. cosine similarity of attention-masked mean-pooled ``last_hidden_state`` embeddings, each output vs PyTorch eager
   fp32, over ``--sentences`` (64) local sentences (bench/encoder.py's: the first paragraph of each pydoc topic,
   padded per batch of 8);
3. throughput at batch 8 x sequence 128 (real pydoc tokens) with 2 threads everywhere: PyTorch eager fp32
   (transformers ``AutoModel``, ``torch.set_num_threads(2)``), the ORT outputs (``intra_op_num_threads=2``,
   ``inter_op_num_threads=1``) and the OpenVINO IRs (compiled by ModelMill's evaluator session,
   ``INFERENCE_NUM_THREADS=2``, CPU plugin defaults otherwise; the compiled streams and inference precision are
   recorded). All six in one process, interleaved in rotating order, ``--repeats`` repetitions of a warm-up batch
   and ``--iters`` timed batches each, a short pause between blocks so that one runtime's idle spinning threads do
   not eat into the next. Reported: median samples/s over the repetitions, and the median of the per-repetition
   paired ratios to PyTorch and to ORT INT8;
4. output size on disk (ONNX file + external data; IR .xml + .bin) and build wall time.

It prints a Markdown table and writes bench/results/openvino.json. A benchmark measures; it exits 1 only when a
build failed.

    /tmp/ovenv/bin/python bench/openvino.py
    /tmp/ovenv/bin/python bench/openvino.py --keep; /tmp/ovenv/bin/python bench/openvino.py --reuse WORK
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file's name shadows the openvino package while its folder leads sys.path: move the folder to the end, where
# ``import encoder`` still finds bench/encoder.py and ``import openvino`` finds the package.
BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]
from encoder import (  # the same inputs, runners and cosine as the INT8 encoder bench
    BATCH,
    MODELMILL,
    SEQUENCE,
    THREADS,
    build,
    cosine,
    ort_runner,
    pydoc_sentences,
    throughput_batch,
    tokenizer_for,
    torch_runner,
    write_results,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "bench" / "results" / "openvino.json"

LABELS = {"pytorch": "PyTorch eager fp32", "ort_fp32": "ORT fp32", "ort_int8": "ORT INT8",
          "ov_fp32": "OpenVINO FP32 IR", "ov_fp16": "OpenVINO FP16 IR", "ov_int8": "OpenVINO INT8"}


# --- build ---------------------------------------------------------------------------------------

def auto_opt_passes(model: str, precision: str) -> dict[str, Any]:
    """The passes ``modelmill auto-opt --dry_run`` plans for ``model`` at ``precision``."""
    proc = subprocess.run([str(MODELMILL), "auto-opt", "-m", model, "--precision", precision, "--dry_run"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"modelmill auto-opt --dry_run failed (exit {proc.returncode})")
    text = proc.stdout
    return json.loads(text[text.index("{"):])["passes"]


def configs(model: str) -> dict[str, dict[str, Any]]:
    conversion = {"type": "OnnxConversion", "target_opset": 17}
    ov_fp16 = {"type": "OpenVINOConversion", "static": False}
    return {
        "ort_fp32": auto_opt_passes(model, "fp32"),
        "ort_int8": auto_opt_passes(model, "int8"),
        "ov_fp32": {"conversion": conversion,
                    "ov_convert": {"type": "OpenVINOConversion", "static": False, "compress_to_fp16": False}},
        "ov_fp16": {"conversion": conversion, "ov_convert": ov_fp16},
        "ov_int8": {"conversion": conversion, "ov_convert": ov_fp16,
                    "ov_quant": {"type": "OpenVINOQuantization", "model_type": "TRANSFORMER",
                                 "target_device": "cpu"}},
    }


def build_all(model: str, work: Path) -> dict[str, Any]:
    built = {}
    for name, passes in configs(model).items():
        folder = work / name
        folder.mkdir(parents=True)
        config_path = folder / "workflow.json"
        config_path.write_text(json.dumps({
            "input_model": {"type": "HfModel", "model_path": model, "task": "feature-extraction"},
            "passes": passes, "output_dir": str(folder / "out")}, indent=2))
        print(f"building {LABELS[name]} ({' -> '.join(p['type'] for p in passes.values())}) ...", file=sys.stderr,
              flush=True)
        built[name] = build(config_path, folder, [])
        print(f"  {built[name]['wall_s']} s", file=sys.stderr, flush=True)
    return built


def output_files(name: str, out: Path) -> list[Path]:
    if name.startswith("ov_"):
        from modelmill.passes.openvino_common import ir_files

        irs = ir_files(out)
        return [f for ir in irs for f in (ir, ir.with_suffix(".bin"))]
    return sorted(out.glob("model.onnx*"))


# --- runners -------------------------------------------------------------------------------------

def ov_runner(out: Path) -> tuple[Any, dict[str, Any]]:
    """The IR compiled by ModelMill's evaluator session (OpenVINO runtime, CPU, INFERENCE_NUM_THREADS=2)."""
    import numpy as np
    from modelmill.evaluate.openvino_runtime import ov_session
    from modelmill.passes.openvino_common import openvino_ref

    session = ov_session(openvino_ref(out), num_threads=THREADS)
    names = [meta.name for meta in session.get_inputs()]
    outputs = [meta.name for meta in session.get_outputs()]
    at = outputs.index("last_hidden_state") if "last_hidden_state" in outputs else 0
    properties = {}
    for key in ("INFERENCE_NUM_THREADS", "NUM_STREAMS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT",
                "EXECUTION_MODE_HINT"):
        try:
            properties[key] = str(session.compiled.get_property(key))
        except Exception as exc:  # noqa: BLE001 - a property this version lacks
            properties[key] = f"unavailable: {exc}"[:80]

    def run(ids: Any, mask: Any) -> Any:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return session.run([outputs[at]], {name: feeds[name] for name in names})[0]

    return run, properties


def runners(source: Path, built: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    runs: dict[str, Any] = {"pytorch": torch_runner(source)}
    ov_properties = {}
    for name, info in built.items():
        out = Path(info["output"])
        if name.startswith("ov_"):
            runs[name], ov_properties[name] = ov_runner(out)
        else:
            runs[name] = ort_runner(out / "model.onnx")
    return runs, ov_properties


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (/proc/stat: everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def measure(runs: dict[str, Any], ids: Any, mask: Any, repeats: int, iters: int, pause: float) -> dict[str, Any]:
    """Rotating-order interleaved timing; per repetition and runner: samples/s over ``iters`` batches."""
    names = list(runs)
    per_rep: dict[str, list[float]] = {name: [] for name in names}
    batch_ms: dict[str, list[float]] = {name: [] for name in names}
    cpu_ms: dict[str, list[float]] = {name: [] for name in names}
    loads, others = [], []
    for rep in range(repeats):
        order = names[rep % len(names):] + names[:rep % len(names)]
        loads.append(round(os.getloadavg()[0], 2))
        busy, own, start_rep = busy_cpu_s(), own_cpu_s(), time.perf_counter()
        for name in order:
            time.sleep(pause)
            runs[name](ids, mask)  # warm-up
            total = 0.0
            for _ in range(iters):
                cpu_start, start = time.process_time(), time.perf_counter()
                runs[name](ids, mask)
                elapsed = time.perf_counter() - start
                batch_ms[name].append(round(1000 * elapsed, 1))
                cpu_ms[name].append(round(1000 * (time.process_time() - cpu_start), 1))
                total += elapsed
            per_rep[name].append(round(BATCH * iters / total, 3))
        other = (busy_cpu_s() - busy) - (own_cpu_s() - own)
        others.append({"wall_s": round(time.perf_counter() - start_rep, 2), "other_cpu_s": round(other, 2)})
    loads.append(round(os.getloadavg()[0], 2))
    summary = {}
    for name in names:
        summary[name] = {
            "samples_per_s": round(statistics.median(per_rep[name]), 2),
            "per_rep_samples_per_s": per_rep[name],
            "vs_pytorch": round(statistics.median(a / b for a, b in zip(per_rep[name], per_rep["pytorch"])), 3),
            "vs_ort_int8": round(statistics.median(a / b for a, b in zip(per_rep[name], per_rep["ort_int8"])), 3),
            "cpu_ms_per_batch": round(statistics.median(cpu_ms[name]), 1),
            "batch_ms": batch_ms[name],
        }
    return {"summary": summary, "loadavg_1min_per_rep": loads, "other_processes_per_rep": others}


# --- main ----------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sample:minilm")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved repetitions (default 9)")
    parser.add_argument("--iters", type=int, default=5, help="timed batches per repetition (default 5)")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds of rest before each block (default 0.3)")
    parser.add_argument("--sentences", type=int, default=64, help="sentences for the cosine (default 64)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (outputs, caches, events)")
    parser.add_argument("--reuse", type=Path, metavar="WORK",
                        help="skip the builds: measure the outputs of an earlier --keep run's work folder "
                             "(its build times are reported again)")
    args = parser.parse_args()

    load_start = os.getloadavg()
    if args.reuse:
        work = args.reuse
        built = json.loads((work / "built.json").read_text())
        args.keep = True
    else:
        work = Path(tempfile.mkdtemp(prefix="mm-openvino-"))
        print(f"work folder {work}; load average {load_start}", file=sys.stderr, flush=True)
        built = build_all(args.model, work)
        (work / "built.json").write_text(json.dumps(built, indent=2, default=str))
    source = Path(json.loads((Path(built["ort_int8"]["output"]) / "modelmill_run.json").read_text())
                  ["input_model"]["path"])
    load_after_builds = os.getloadavg()

    print("loading runners; cosine ...", file=sys.stderr, flush=True)
    runs, ov_properties = runners(source, built)
    tokenizer = tokenizer_for(source)
    sentences = pydoc_sentences(args.sentences)
    similarity = {name: cosine(runs[name], runs["pytorch"], tokenizer, sentences) for name in runs if name != "pytorch"}

    print(f"timing: {args.repeats} interleaved repetitions x {args.iters} batches ...", file=sys.stderr, flush=True)
    ids, mask = throughput_batch(tokenizer)
    timing = measure(runs, ids, mask, args.repeats, args.iters, args.pause)
    load_end = os.getloadavg()

    sizes = {"pytorch": sum(p.stat().st_size for p in source.glob("*.safetensors")) / 1e6}
    for name, info in built.items():
        sizes[name] = sum(p.stat().st_size for p in output_files(name, Path(info["output"]))) / 1e6

    summary = timing["summary"]
    print(f"\n### {source.name}: batch {BATCH} x seq {SEQUENCE}, {THREADS} threads for every engine, "
          f"{args.repeats} interleaved reps x {args.iters} batches; load average (1/5/15 min) at start "
          f"{tuple(round(x, 2) for x in load_start)}, during timing {min(timing['loadavg_1min_per_rep'])}-"
          f"{max(timing['loadavg_1min_per_rep'])}, end {tuple(round(x, 2) for x in load_end)}\n")
    print("| engine | passes | build s | size MB | samples/s | vs PyTorch | vs ORT INT8 | CPU ms/batch | "
          "cosine mean | cosine min |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in runs:
        data = summary[name]
        passes = ("—" if name == "pytorch" else
                  " → ".join(p["type"] for p in built[name]["config"]["passes"].values()))
        build_s = "—" if name == "pytorch" else f"{built[name]['wall_s']:.1f}"
        cos = similarity.get(name, {"cosine_mean": 1.0, "cosine_min": 1.0})
        print(f"| {LABELS[name]} | {passes} | {build_s} | {sizes[name]:.1f} | {data['samples_per_s']:.2f} | "
              f"{data['vs_pytorch']:.2f}x | {data['vs_ort_int8']:.2f}x | {data['cpu_ms_per_batch']:.0f} | "
              f"{cos['cosine_mean']:.5f} | {cos['cosine_min']:.5f} |")
    print("\nsamples/s per repetition: " + "; ".join(f"{LABELS[n]} {summary[n]['per_rep_samples_per_s']}"
                                                       for n in runs))
    print("1-min load average before each repetition: " + str(timing["loadavg_1min_per_rep"]))
    others = timing["other_processes_per_rep"]
    print("other processes' CPU during the timing, per repetition (cores used on average): "
          + ", ".join(f"{o['other_cpu_s'] / o['wall_s']:.2f}" for o in others)
          + f" (machine: {os.cpu_count()} CPUs; this benchmark uses {THREADS} threads)")
    print("OpenVINO compiled-model properties: " + "; ".join(f"{LABELS[n]} {p}" for n, p in ov_properties.items()))
    for name, info in built.items():
        print(f"build {LABELS[name]}: {info['wall_s']} s wall; passes: "
              + ", ".join(f"{p['name']} {p['duration_s']} s" for p in info["passes"]))

    import onnxruntime
    import openvino
    import torch
    import transformers

    try:
        import nncf
        nncf_version = nncf.__version__
    except ImportError:
        nncf_version = None
    flags = ""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    result = {
        "benchmark": "openvino",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": str(source),
        "command": [sys.executable, *sys.argv],
        "setup": {"batch": BATCH, "sequence": SEQUENCE, "threads": THREADS, "repeats": args.repeats,
                  "iters": args.iters, "pause_s": args.pause, "sentences": args.sentences,
                  "embedding": "attention-masked mean of last_hidden_state"},
        "host": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                 "cpu_isa": sorted({f for f in flags.split() if f.startswith(("avx", "amx", "fma", "f16c"))}),
                 "loadavg_start": load_start, "loadavg_after_builds": load_after_builds, "loadavg_end": load_end},
        "versions": {"onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__, "nncf": nncf_version,
                     "torch": torch.__version__, "transformers": transformers.__version__},
        "size_mb": {k: round(v, 2) for k, v in sizes.items()},
        "cosine": similarity,
        "throughput": timing,
        "ov_properties": ov_properties,
        "builds": built,
    }
    write_results(args.results, result, work, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
