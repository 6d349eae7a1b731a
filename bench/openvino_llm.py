#!/usr/bin/env python
"""Benchmark: the LLM half of issue 15, OpenVINO INT4 vs ModelMill's ORT GenAI INT4 vs llama.cpp on sample:smollm2.

Runs in an environment with ``modelmill[openvino]`` and optimum-intel (a separate one: docs/openvino.md; the
project venv cannot hold optimum-intel). One run:

1. builds, each ``modelmill run`` of its config with a fresh cache, timed from the outside (wall seconds):

   - ``ORT GenAI INT4``: the config ``modelmill auto-opt -m sample:smollm2 --precision int4 --dry_run`` plans
     (ModelBuilder, block 32, int8 compute, embeddings quantized, session tuning), run by ``--auto-opt`` (default:
     the project venv's ``modelmill``, so the ORT side is built with ModelMill's own stack);
   - ``OpenVINO INT4 g128``: ``OpenVINOOptimumConversion`` with ``ov_quant_config`` weight_format int4, group size
     128, ratio 1.0 (optimum-intel + NNCF data-free weight compression, asymmetric). SmolLM2's hidden size is 576,
     which 128 does not divide: NNCF refuses (``InvalidGroupSizeError``) unless ``group_size_fallback`` is set, so
     this build sets ``adjust``, which gives the 576-wide projections groups of 64 (the largest power of two below
     128 that divides 576) and keeps 128 for ``down_proj`` (1536 wide);
   - ``OpenVINO INT4 g32``: the same with group size 32 (divides every width);

2. speed, interleaved in ``--repeats`` rotating repetitions, the same ``--threads`` everywhere: a ``--prompt``-token
   prompt (real pydoc text tokens) then ``--new`` greedy tokens. ORT GenAI: onnxruntime-genai's loop with
   ``intra_op_num_threads`` overlaid to ``--threads`` (prefill = prompt / time to the first token, decode = the
   other new tokens / the rest). OpenVINO: openvino-genai's ``LLMPipeline`` on CPU (``INFERENCE_NUM_THREADS``; its
   default paged-attention scheduler with prefix caching off, which would serve the repeated prompt from cache), ``min_new_tokens = max_new_tokens``, prefill = prompt / TTFT and decode = 1 / TPOT from
   its perf metrics. llama.cpp: ``llama-bench -t THREADS -p PROMPT -n NEW -r 1`` on the sample's Q4_1 GGUF (when a
   build is given or can be made; bench/vs_llamacpp.py builds it);

3. perplexity on the same held-out text and chunks as bench/vs_llamacpp.py (Python's pydoc topics; consecutive
   ``--ppl-context``-token chunks, the second half of each scored, llama.cpp's way): the fp32 input (transformers),
   the ORT output (onnxruntime-genai logits), the OpenVINO IRs (the stateful IR run by the OpenVINO runtime, state
   reset per chunk, all logits of one forward pass) and llama.cpp's ``llama-perplexity`` on the GGUF;

4. output size: the model weights (ONNX + external data; the LLM IR .xml + .bin) and the whole output folder.

It prints Markdown tables and writes bench/results/openvino_llm.json. A benchmark measures; it exits 1 only when a
build failed.

    nice /tmp/ovllm-venv/bin/python bench/openvino_llm.py --llama-build DIR   # DIR/bin/llama-bench exists
    nice /tmp/ovllm-venv/bin/python bench/openvino_llm.py --keep; ... --reuse WORK    # re-time kept outputs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]  # see openvino.py
from encoder import write_results
from vs_llamacpp import (  # the same prompt, ORT loop, scoring and llama.cpp runners as the llama.cpp bench
    GenAIModel,
    fp32_perplexity,
    gguf_file,
    llama_bench,
    llama_binaries,
    llama_perplexity,
    perplexity_text,
    second_half_nll,
    text_chunks,
)

ROOT = BENCH.parent
DEFAULT_RESULTS = ROOT / "bench" / "results" / "openvino_llm.json"
PROJECT_MODELMILL = ROOT / ".venv" / "bin" / "modelmill"
HERE_MODELMILL = Path(sys.executable).parent / "modelmill"
OV_BUILDS = {
    "ov_int4_g128": {"weight_format": "int4", "group_size": 128, "ratio": 1.0, "group_size_fallback": "adjust"},
    "ov_int4_g32": {"weight_format": "int4", "group_size": 32, "ratio": 1.0},
}
LABELS = {"llama.cpp": "llama.cpp Q4_1 GGUF", "ort_int4": "ORT GenAI INT4 (auto-opt)",
          "ov_int4_g128": "OpenVINO INT4 g128 (adjust: 64 on 576-wide)", "ov_int4_g32": "OpenVINO INT4 g32",
          "fp32": "fp32 input (transformers)"}


# --- build ---------------------------------------------------------------------------------------

def timed(command: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(log.read_text()[-3000:])
        raise SystemExit(f"build failed (exit {done.returncode}): {' '.join(command)}; log {log}")
    return round(elapsed, 1)


def auto_opt_config(auto_opt: Path, out: Path) -> dict[str, Any]:
    """The config ``auto-opt -m sample:smollm2 --precision int4`` runs (its --dry_run), for a fresh cache."""
    proc = subprocess.run([str(auto_opt), "auto-opt", "-m", "sample:smollm2", "--precision", "int4", "-o", str(out),
                           "--dry_run"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{auto_opt} auto-opt --dry_run failed (exit {proc.returncode})")
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def build_all(work: Path, auto_opt: Path) -> dict[str, Any]:
    """Every build as ``modelmill run`` of its config with its own fresh cache, timed from the outside."""
    configs: dict[str, tuple[Path, dict[str, Any]]] = {}
    folder = work / "ort_int4"
    configs["ort_int4"] = (auto_opt, auto_opt_config(auto_opt, folder / "out"))
    for name, quant in OV_BUILDS.items():
        folder = work / name
        configs[name] = (HERE_MODELMILL, {
            "input_model": {"type": "HfModel", "model_path": "sample:smollm2"},
            "passes": {"ov": {"type": "OpenVINOOptimumConversion", "ov_quant_config": quant}},
            "output_dir": str(folder / "out")})
    built: dict[str, Any] = {}
    for name, (modelmill, config) in configs.items():
        folder = work / name
        folder.mkdir(parents=True)
        config["cache_dir"] = str(folder / "cache")
        (folder / "workflow.json").write_text(json.dumps(config, indent=2))
        print(f"building {LABELS[name]} with {modelmill} ...", file=sys.stderr, flush=True)
        wall = timed([str(modelmill), "run", "--config", str(folder / "workflow.json")], folder / "build.log")
        built[name] = {"output": config["output_dir"], "wall_s": wall, "modelmill": str(modelmill),
                       "passes": config["passes"]}
        print(f"  {wall} s", file=sys.stderr, flush=True)
        shutil.rmtree(folder / "cache", ignore_errors=True)
    return built


def sizes(name: str, out: Path) -> dict[str, float]:
    if name.startswith("ov_"):
        weights = [out / "openvino_model.xml", out / "openvino_model.bin"]
    else:
        weights = sorted(out.glob("*.onnx")) + sorted(out.glob("*.onnx.data"))
    whole = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"weights_mb": round(sum(p.stat().st_size for p in weights) / 1e6, 1), "folder_mb": round(whole / 1e6, 1)}


# --- OpenVINO side -------------------------------------------------------------------------------

class OVModel:
    """An optimum-intel export in openvino-genai's LLMPipeline (speed) and the OpenVINO runtime (perplexity)."""

    def __init__(self, folder: Path, threads: int) -> None:
        import openvino_genai

        self.folder, self.threads = folder, threads
        self.genai = openvino_genai
        # openvino-genai's CPU default is its paged-attention pipeline with prefix caching on: a repeated prompt
        # would be served from the cache and "prefill" in a few ms. The same scheduler, with the cache off.
        scheduler = openvino_genai.SchedulerConfig()
        scheduler.enable_prefix_caching = False
        scheduler.max_num_batched_tokens = 1 << 20  # the whole prompt in one step, as the default does
        self.pipe = openvino_genai.LLMPipeline(str(folder), "CPU", scheduler_config=scheduler,
                                               INFERENCE_NUM_THREADS=threads)

    def run(self, prompt: Any, new: int) -> dict[str, float]:
        import numpy as np
        import openvino as ov

        ids = np.asarray(prompt, dtype=np.int64)[None, :]
        inputs = self.genai.TokenizedInputs(ov.Tensor(ids), ov.Tensor(np.ones_like(ids)))
        config = self.genai.GenerationConfig()
        config.max_new_tokens = config.min_new_tokens = new
        config.do_sample = False
        config.ignore_eos = True
        metrics = self.pipe.generate(inputs, config).perf_metrics
        if int(metrics.get_num_generated_tokens()) != new:
            raise RuntimeError(f"{self.folder}: {metrics.get_num_generated_tokens()} tokens generated, not {new}")
        return {"prefill": len(prompt) / (metrics.get_ttft().mean / 1000.0),
                "decode": 1000.0 / metrics.get_tpot().mean}

    def perplexity(self, chunks: list[list[int]]) -> tuple[float, dict[str, str]]:
        import numpy as np
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(str(self.folder / "openvino_model.xml"), "CPU",
                                      {"INFERENCE_NUM_THREADS": self.threads})
        properties = {}
        for key in ("INFERENCE_PRECISION_HINT", "KV_CACHE_PRECISION", "DYNAMIC_QUANTIZATION_GROUP_SIZE",
                    "NUM_STREAMS"):
            try:
                properties[key] = str(compiled.get_property(key))
            except Exception as exc:  # noqa: BLE001 - a property this version lacks
                properties[key] = f"unavailable: {exc}"[:60]
        request = compiled.create_infer_request()
        names = {port.get_any_name() for port in compiled.inputs}
        total, count = 0.0, 0
        for chunk in chunks:
            request.reset_state()
            ids = np.asarray([chunk], dtype=np.int64)
            feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            if "position_ids" in names:
                feeds["position_ids"] = np.arange(len(chunk), dtype=np.int64)[None, :]
            if "beam_idx" in names:
                feeds["beam_idx"] = np.zeros(1, dtype=np.int32)
            logits = request.infer(feeds)[compiled.output("logits")][0]
            if logits.shape[0] != len(chunk):
                raise RuntimeError(f"{self.folder}: logits for {logits.shape[0]} of {len(chunk)} positions")
            nll, n = second_half_nll(logits, chunk)
            total, count = total + nll, count + n
        return float(np.exp(total / count)), properties


# --- main ----------------------------------------------------------------------------------------

def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every engine (default 2)")
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--ppl-context", type=int, default=256)
    parser.add_argument("--ppl-chunks", type=int, default=8)
    parser.add_argument("--auto-opt", type=Path, default=PROJECT_MODELMILL if PROJECT_MODELMILL.exists()
                        else HERE_MODELMILL, help="the modelmill that builds the ORT output (default: the project "
                        "venv's)")
    parser.add_argument("--llama-build", type=Path, metavar="DIR",
                        help="a llama.cpp build folder with bin/llama-bench and bin/llama-perplexity (default: "
                             "bench/vs_llamacpp.py's, built on first use)")
    parser.add_argument("--no-llama", action="store_true", help="leave llama.cpp out")
    parser.add_argument("--no-perplexity", action="store_true", help="speed only (e.g. a rerun at another --threads)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (outputs, logs)")
    parser.add_argument("--reuse", type=Path, metavar="WORK", help="measure an earlier --keep run's outputs")
    args = parser.parse_args()

    load_start = load_average()
    if args.reuse:
        work, args.keep = args.reuse, True
        built = json.loads((work / "built.json").read_text())
    else:
        work = Path(tempfile.mkdtemp(prefix="mm-openvino-llm-"))
        print(f"work folder {work}; load average {load_start}", file=sys.stderr, flush=True)
        built = build_all(work, args.auto_opt)
        (work / "built.json").write_text(json.dumps(built, indent=2))
    load_after_builds = load_average()

    binaries: dict[str, Path] = {}
    gguf = None
    if not args.no_llama:
        if args.llama_build:
            binaries = {name: args.llama_build / "bin" / name for name in ("llama-bench", "llama-perplexity")}
        else:
            binaries = llama_binaries()
        gguf = gguf_file()

    print("loading models ...", file=sys.stderr, flush=True)
    ort = GenAIModel(Path(built["ort_int4"]["output"]),
                     overlay={"model": {"decoder": {"session_options": {"intra_op_num_threads": args.threads}}}})
    models: dict[str, Any] = {"ort_int4": ort}
    for name in OV_BUILDS:
        models[name] = OVModel(Path(built[name]["output"]), args.threads)
    prompt = ort.prompt(args.prompt)
    for model in models.values():
        model.run(prompt, 8)  # warm-up
    names = (["llama.cpp"] if gguf else []) + list(models)
    samples: dict[str, dict[str, list[float]]] = {name: {"prefill": [], "decode": []} for name in names}
    loads = []
    for rep in range(args.repeats):
        order = names[rep % len(names):] + names[:rep % len(names)]
        loads.append(load_average()[0])
        for name in order:
            time.sleep(0.5)  # let the previous runtime's spinning threads settle
            if name == "llama.cpp":
                speed = llama_bench(binaries["llama-bench"], gguf, args.threads, args.prompt, args.new)
            else:
                speed = models[name].run(prompt, args.new)
            for key in ("prefill", "decode"):
                samples[name][key].append(round(speed[key], 1))
        print(f"repetition {rep + 1}/{args.repeats}: " + ", ".join(
            f"{n} {samples[n]['prefill'][-1]:.0f}/{samples[n]['decode'][-1]:.0f}" for n in names), file=sys.stderr,
            flush=True)
    load_after_speed = load_average()

    ppl: dict[str, float] = {}
    ov_properties: dict[str, Any] = {}
    chunks: list[list[int]] = []
    if not args.no_perplexity:
        print("perplexity ...", file=sys.stderr, flush=True)
        from modelmill.samples import fetch

        hf_dir = fetch("smollm2")
        text_file = work / "perplexity.txt"
        text = perplexity_text(text_file, chars=args.ppl_context * args.ppl_chunks * 6)
        chunks = text_chunks(hf_dir, text, args.ppl_context, args.ppl_chunks)
        ppl.update({"fp32": fp32_perplexity(hf_dir, chunks), "ort_int4": ort.perplexity(chunks)})
        for name in OV_BUILDS:
            ppl[name], ov_properties[name] = models[name].perplexity(chunks)
        if gguf:
            ppl["llama.cpp"] = llama_perplexity(binaries["llama-perplexity"], gguf, text_file, args.ppl_context,
                                                len(chunks), args.threads)["ppl"]

    size = {name: sizes(name, Path(info["output"])) for name, info in built.items()}
    if gguf:
        size["llama.cpp"] = {"weights_mb": round(gguf.stat().st_size / 1e6, 1),
                             "folder_mb": round(gguf.stat().st_size / 1e6, 1)}
    med = {n: {k: round(statistics.median(v), 1) for k, v in s.items()} for n, s in samples.items()}
    ratio = {n: {k: round(statistics.median(a / b for a, b in zip(samples[n][k], samples["ort_int4"][k])), 2)
                 for k in ("prefill", "decode")} for n in names}
    print(f"\n### sample:smollm2: {args.prompt}-token prompt + {args.new} new tokens, {args.threads} threads for every "
          f"engine, {args.repeats} interleaved repetitions (medians); perplexity: "
          f"{f'{len(chunks)} chunks of {args.ppl_context} tokens, second half scored' if chunks else 'not run'}; "
          f"1-min load average at start {load_start[0]}, after "
          f"builds {load_after_builds[0]}, per repetition {loads}, after {load_after_speed[0]}\n")
    print("| engine | build s | weights MB | folder MB | prefill tok/s | decode tok/s | prefill vs ORT | "
          "decode vs ORT | perplexity | vs fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in [*names, "fp32"]:
        build = f"{built[name]['wall_s']:.1f}" if name in built else "—"
        sz = size.get(name, {"weights_mb": float("nan"), "folder_mb": float("nan")})
        speed = med.get(name)
        cells = (f"{speed['prefill']} | {speed['decode']} | {ratio[name]['prefill']:.2f}x | "
                 f"{ratio[name]['decode']:.2f}x" if speed else "— | — | — | —")
        size_cells = f"{sz['weights_mb']} | {sz['folder_mb']}" if name != "fp32" else "538 | —"
        quality = f"{ppl[name]:.3f} | {ppl[name] / ppl['fp32'] - 1:+.1%}" if ppl else "— | —"
        print(f"| {LABELS[name]} | {build} | {size_cells} | {cells} | {quality} |")
    print("\nper repetition (prefill/decode tok/s): " + "; ".join(
        f"{LABELS[n]} {samples[n]['prefill']} / {samples[n]['decode']}" for n in names))
    print("OpenVINO compiled IR properties (perplexity run): " + json.dumps(ov_properties))

    import onnxruntime
    import onnxruntime_genai
    import openvino
    import openvino_genai
    import optimum.intel.version as optimum_intel_version
    import transformers

    try:
        import nncf
        nncf_version = nncf.__version__
    except ImportError:
        nncf_version = None
    result = {
        "benchmark": "openvino_llm", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": [sys.executable, *sys.argv],
        "setup": {"threads": args.threads, "prompt": args.prompt, "new": args.new, "repeats": args.repeats,
                  "ppl_context": args.ppl_context, "ppl_chunks": len(chunks)},
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_start": load_start,
                 "loadavg_after_builds": load_after_builds, "loadavg_per_rep": loads,
                 "loadavg_after_speed": load_after_speed, "loadavg_end": load_average()},
        "versions": {"onnxruntime": onnxruntime.__version__, "onnxruntime_genai": onnxruntime_genai.__version__,
                     "openvino": openvino.__version__, "openvino_genai": openvino_genai.__version__,
                     "optimum_intel": optimum_intel_version.__version__, "nncf": nncf_version,
                     "transformers": transformers.__version__},
        "builds": built, "size": size, "speed_samples": samples, "speed_median": med, "vs_ort": ratio,
        "perplexity": ppl, "ov_properties": ov_properties, "ort_threads": ort.threads,
    }
    write_results(args.results, result, work, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
