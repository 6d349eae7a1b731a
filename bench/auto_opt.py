#!/usr/bin/env python
"""Benchmark: `modelmill auto-opt --precision int4` against onnxruntime-genai's builder called directly.

One run measures, side by side and interleaved (A B, B A, A B, ...):

* the build: wall time, peak RSS of the whole process tree (psutil, sampled every ~50 ms, max of the
  summed RSS) and the max single-process RSS (``os.wait4`` ru_maxrss, exact), output folder size;
* each output model: prefill ms (a ~100-token prompt) and greedy decode tokens/s (128 new tokens) with
  the onnxruntime-genai 0.18 loop, each measurement in a fresh subprocess.

It prints a Markdown table (medians, with the targets: wall <= 1.1x builder, peak RSS <= builder,
decode >= builder) plus every sample, and writes everything as JSON to bench/results/auto_opt.json.
A benchmark measures; it never fails on times (exit status 1 only when a build or a generation failed).

    .venv/bin/python bench/auto_opt.py                       # sample:smollm2, 3 repetitions
    .venv/bin/python bench/auto_opt.py --repeats 5 --keep    # keep the output folders
    .venv/bin/python bench/auto_opt.py --model /path/to/hf_folder
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
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "bench" / "results" / "auto_opt.json"
MIB = 2**20

A, B = "modelmill", "builder"
LABELS = {A: "modelmill auto-opt", B: "builder direct"}

# ~100 tokens of plain English for the prefill measurement (cut to --prompt-tokens exactly).
PROMPT_TEXT = (
    "The history of computing is a story of people trying to make machines do arithmetic faster and more "
    "reliably than a person with pencil and paper. Early mechanical calculators added and subtracted with "
    "gears; later, punched cards fed looms and census tabulators. In the twentieth century, vacuum tubes and "
    "then transistors replaced the gears, and stored programs let one machine do many different jobs. Today a "
    "phone in a pocket performs billions of operations every second, and software written by millions of "
    "people runs on it. Explain, in simple words, why this change happened so quickly and what it means for "
    "the next generation of engineers who will build tomorrow's computers."
)
CHAT_QUESTION = "What is machine learning?"


# --- build measurement ----------------------------------------------------------------------------


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        import psutil

        self.psutil = psutil
        self.root = psutil.Process(pid)
        self.interval = interval
        self.stopped = threading.Event()
        self.peak = 0
        self.peak_processes = 0
        self.samples = 0

    def run(self) -> None:
        psutil = self.psutil
        while not self.stopped.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for process in processes:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.samples += 1
            if total > self.peak:
                self.peak, self.peak_processes = total, len(processes)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def measure_build(cmd: list[str], out_dir: Path, log_path: Path, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run one build from a fresh, empty working folder ``cwd`` (removed afterwards)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.rmtree(cwd, ignore_errors=True)
    cwd.mkdir(parents=True)
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        sampler = TreeSampler(process.pid)
        sampler.start()
        # wait4 instead of Popen.wait: its rusage holds ru_maxrss, the largest RSS any single process of
        # the tree reached (Linux folds waited-for descendants' maxima into the child's).
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
    maxrss_kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024
    result = {
        "rc": process.returncode,
        "wall_s": round(wall, 3),
        # user+sys CPU of the whole tree (waited-for descendants included): less sensitive than wall time
        # to other load on the machine.
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_tree_rss_mib": round(sampler.peak / MIB, 1),
        "peak_tree_processes": sampler.peak_processes,
        "max_single_rss_mib": round(maxrss_kib / 1024, 1),
        "rss_samples": sampler.samples,
        "output_bytes": folder_size(out_dir),
        "log": str(log_path),
    }
    if process.returncode != 0:
        result["log_tail"] = log_path.read_text(errors="replace")[-3000:]
    manifest = out_dir / "modelmill_run.json"
    if manifest.exists():  # a pass served from modelmill's cache did not build anything: flag it
        try:
            result["cached_passes"] = [p.get("name") for p in json.loads(manifest.read_text()).get("passes", [])
                                       if p.get("cached")]
        except (OSError, ValueError):
            pass
    shutil.rmtree(cwd, ignore_errors=True)  # the run's own MODELMILL_HOME / .modelmill-cache
    return result


# --- generation measurement (runs in a fresh subprocess: `--_gen FOLDER`) ----------------------------


def generation_child(folder: str, prompt_tokens: int, new_tokens: int, answer: bool) -> dict[str, Any]:
    import onnxruntime_genai as og

    model = og.Model(folder)
    tokenizer = og.Tokenizer(model)
    ids = tokenizer.encode(PROMPT_TEXT)
    while len(ids) < prompt_tokens:
        ids = list(ids) + list(tokenizer.encode(" " + PROMPT_TEXT))
    import numpy as np

    ids = np.asarray(ids[:prompt_tokens], dtype=np.int32)

    def run(n_new: int) -> tuple[float, float, int]:
        params = og.GeneratorParams(model)
        total = len(ids) + n_new
        try:  # min_length keeps greedy decoding from stopping at an early EOS, so every run decodes n_new
            params.set_search_options(max_length=total, min_length=total, do_sample=False)
        except Exception:  # noqa: BLE001 - older/newer og without min_length: plain greedy
            params.set_search_options(max_length=total, do_sample=False)
        generator = og.Generator(model, params)
        start = time.perf_counter()
        generator.append_tokens(ids)
        decode_start, produced = None, 0
        while not generator.is_done():
            generator.generate_next_token()
            generator.get_next_tokens()
            produced += 1
            if decode_start is None:
                decode_start = time.perf_counter()
        end = time.perf_counter()
        prefill_ms = ((decode_start or end) - start) * 1000
        # The first new token comes out of prefill; decode speed counts the ones after it.
        tokens_per_s = (produced - 1) / (end - decode_start) if decode_start and produced > 1 else 0.0
        return prefill_ms, tokens_per_s, produced

    run(4)  # warm-up: session/kernel initialisation is not what we measure
    prefill_ms, tokens_per_s, produced = run(new_tokens)
    result: dict[str, Any] = {"prompt_tokens": int(len(ids)), "new_tokens": produced,
                              "prefill_ms": round(prefill_ms, 2), "decode_tokens_per_s": round(tokens_per_s, 2)}
    if answer:
        result["answer"] = chat_answer(og, model, tokenizer, folder)
    return result


def chat_answer(og: Any, model: Any, tokenizer: Any, folder: str, max_new: int = 48) -> str:
    """Greedy answer to CHAT_QUESTION with the folder's chat template (a sanity check of the output)."""
    template = None
    jinja = Path(folder) / "chat_template.jinja"
    if jinja.exists():
        template = jinja.read_text()
    else:
        config = Path(folder) / "tokenizer_config.json"
        if config.exists():
            template = json.loads(config.read_text()).get("chat_template")
    messages = json.dumps([{"role": "user", "content": CHAT_QUESTION}])
    if template:
        prompt = tokenizer.apply_chat_template(messages, template_str=template, add_generation_prompt=True)
    else:
        prompt = CHAT_QUESTION
    ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + max_new, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    out = []
    while not generator.is_done():
        generator.generate_next_token()
        out.append(int(generator.get_next_tokens()[0]))
    return tokenizer.decode(out).strip()


def measure_generation(folder: Path, args: argparse.Namespace, answer: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_gen", str(folder),
           "--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens)]
    if answer:
        cmd.append("--_answer")
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return {"error": (done.stdout + done.stderr)[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- output description ----------------------------------------------------------------------------


def describe_output(folder: Path) -> dict[str, Any]:
    """Op counts and quantization attributes of the output graph (weights are not loaded)."""
    info: dict[str, Any] = {"files": {f.name: f.stat().st_size for f in sorted(folder.iterdir()) if f.is_file()}}
    try:
        import onnx

        model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        info["error"] = f"cannot read model.onnx: {exc}"
        return info
    ops: dict[str, int] = {}
    nbits: set[tuple] = set()
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
        if node.op_type in ("MatMulNBits", "GatherBlockQuantized"):
            attrs = {a.name: a.i for a in node.attribute if a.type == onnx.AttributeProto.INT}
            nbits.add((node.op_type, tuple(sorted(attrs.items()))))
    info["ops"] = dict(sorted(ops.items()))
    info["quantized_op_attrs"] = sorted(f"{op} {dict(attrs)}" for op, attrs in nbits)
    return info


# --- orchestration ---------------------------------------------------------------------------------


def resolve_model(value: str) -> Path:
    if value.startswith("sample:"):
        done = subprocess.run(modelmill_cmd() + ["samples", "path", value.split(":", 1)[1]],
                              capture_output=True, text=True, cwd=ROOT)
        lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0 or not lines:
            sys.exit(f"cannot resolve {value}: `modelmill samples path` failed:\n{done.stdout}{done.stderr}")
        return Path(lines[-1])
    return Path(value).expanduser().resolve()


def modelmill_cmd() -> list[str]:
    script = Path(sys.executable).parent / "modelmill"
    return [str(script)] if script.exists() else [sys.executable, "-m", "modelmill"]


def build_commands(model_dir: Path, work: Path, driver: str) -> dict[str, tuple[list[str], Path]]:
    out_a, out_b = work / "out_modelmill", work / "out_builder"
    if driver == "cli":
        cmd_a = modelmill_cmd() + ["auto-opt", "-m", str(model_dir), "-o", str(out_a), "--precision", "int4"]
    else:  # engine: the same ModelBuilder step auto-opt plans, run through the engine API without the CLI
        cmd_a = [sys.executable, str(Path(__file__).resolve()), "--_engine", str(model_dir), str(out_a),
                 ".modelmill-cache"]
    cmd_b = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(model_dir), "-o", str(out_b),
             "-p", "int4", "-e", "cpu", "-c", str(work / "builder_cache")]
    return {A: (cmd_a, out_a), B: (cmd_b, out_b)}


def engine_child(model_dir: str, out_dir: str, cache_dir: str) -> None:
    """`--driver engine`: run auto-opt's int4 CPU ModelBuilder step through modelmill's engine."""
    sys.path.insert(0, str(ROOT / "server"))
    from modelmill.engine.events import EventBus
    from modelmill.engine.model import ModelRef
    from modelmill.engine.plan import Plan, PlanStep
    from modelmill.engine.workflow import new_run_id, run_plan
    from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams

    params = ModelBuilderParams(precision="int4", int4_block_size=32, int4_accuracy_level=4,
                                int4_op_types_to_quantize=["MatMul", "Gather"])
    plan = Plan(ModelRef("hf", Path(model_dir)), [PlanStep("model_builder", ModelBuilder, params)],
                Path(out_dir), Path(cache_dir).resolve())
    plan.check()
    run_plan(plan, EventBus(new_run_id(), []))


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def summarize(builds: dict[str, list[dict]], gens: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for key in (A, B):
        ok = [b for b in builds[key] if b["rc"] == 0 and not b.get("cached_passes")]  # cache hits built nothing
        good_gens = [g for g in gens[key] if "error" not in g]
        summary[key] = {
            "wall_s": median([b["wall_s"] for b in ok]),
            "cpu_s": median([b["cpu_s"] for b in ok]),
            "peak_tree_rss_mib": median([b["peak_tree_rss_mib"] for b in ok]),
            "max_single_rss_mib": median([b["max_single_rss_mib"] for b in ok]),
            "output_mb": median([b["output_bytes"] / 1e6 for b in ok]),
            "prefill_ms": median([g["prefill_ms"] for g in good_gens]),
            "decode_tokens_per_s": median([g["decode_tokens_per_s"] for g in good_gens]),
        }
    return summary


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def markdown(summary: dict, builds: dict, gens: dict) -> str:
    rows = [
        ("wall time (s)", "wall_s", "<= 1.1x builder", lambda r: r <= 1.1),
        ("build CPU time, user+sys (s)", "cpu_s", "", None),
        ("peak RSS, process tree (MiB)", "peak_tree_rss_mib", "<= builder", lambda r: r <= 1.0),
        ("max single-process RSS (MiB)", "max_single_rss_mib", "(<= builder)", lambda r: r <= 1.0),
        ("output folder (MB)", "output_mb", "similar", None),
        ("prefill, 100-token prompt (ms)", "prefill_ms", "", None),
        ("decode, 128 new tokens (tokens/s)", "decode_tokens_per_s", ">= builder", lambda r: r >= 1.0),
    ]
    lines = [f"| metric (median) | {LABELS[A]} | {LABELS[B]} | ratio | target | met |",
             "|---|---:|---:|---:|---|---|"]
    for title, key, target, check in rows:
        a, b = summary[A][key], summary[B][key]
        r = ratio(a, b)
        met = "" if check is None or r is None else ("yes" if check(r) else "**no**")
        fmt = (lambda v: "n/a" if v is None else f"{v:,.1f}")
        lines.append(f"| {title} | {fmt(a)} | {fmt(b)} | {'n/a' if r is None else f'{r:.2f}x'} | {target} | {met} |")
    lines.append("")
    lines.append("samples (in run order within each column):")
    for key in (A, B):
        lines.append(f"- {LABELS[key]}: wall s {[b['wall_s'] for b in builds[key]]}, "
                     f"cpu s {[b['cpu_s'] for b in builds[key]]}, "
                     f"tree RSS MiB {[b['peak_tree_rss_mib'] for b in builds[key]]}, "
                     f"single RSS MiB {[b['max_single_rss_mib'] for b in builds[key]]}, "
                     f"prefill ms {[g.get('prefill_ms') for g in gens[key]]}, "
                     f"decode tok/s {[g.get('decode_tokens_per_s') for g in gens[key]]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sample:smollm2",
                        help="HF model folder, or sample:NAME resolved with `modelmill samples path` "
                             "(default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="build repetitions per side (default %(default)s)")
    parser.add_argument("--gen-repeats", type=int, default=None,
                        help="generation measurements per output (default: --repeats)")
    parser.add_argument("--prompt-tokens", type=int, default=100)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--keep", action="store_true", help="keep the work folder with both outputs and build logs")
    parser.add_argument("--workdir", type=Path, default=None, help="where outputs go (default: a temp folder)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON results file")
    parser.add_argument("--driver", choices=("cli", "engine"), default="cli",
                        help="cli: `modelmill auto-opt` (default); engine: the same ModelBuilder step run through "
                             "modelmill's engine API without the CLI/config layer")
    parser.add_argument("--_gen", help=argparse.SUPPRESS)
    parser.add_argument("--_answer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_engine", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._gen:
        print(json.dumps(generation_child(args._gen, args.prompt_tokens, args.new_tokens, args._answer)))
        return 0
    if args._engine:
        engine_child(*args._engine)
        return 0

    model_dir = resolve_model(args.model)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mm-bench-auto-opt-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ}
    commands = build_commands(model_dir, work, args.driver)
    print(f"model: {model_dir}\nwork: {work}", file=sys.stderr)
    for key, (cmd, _) in commands.items():
        print(f"{LABELS[key]}: {' '.join(cmd)}", file=sys.stderr)

    builds: dict[str, list[dict]] = {A: [], B: []}
    gens: dict[str, list[dict]] = {A: [], B: []}
    failed = False
    for rep in range(args.repeats):
        for key in ((A, B) if rep % 2 == 0 else (B, A)):
            cmd, out = commands[key]
            # Each build starts in a fresh, empty folder that is also modelmill's MODELMILL_HOME (its pass
            # cache lives there; the engine driver's cache is relative to it): no run is served from an
            # earlier run's cache, every run fingerprints its input and builds.
            cwd = work / f"cwd-{key}"
            run_env = {**env, "MODELMILL_HOME": str(cwd)} if key == A else env
            result = measure_build(cmd, out, work / f"{key}-build-{rep}.log", run_env, cwd)
            builds[key].append(result)
            print(f"build {rep + 1}/{args.repeats} {LABELS[key]}: rc {result['rc']}, {result['wall_s']:.2f} s, "
                  f"tree peak {result['peak_tree_rss_mib']:.0f} MiB, single max {result['max_single_rss_mib']:.0f} MiB",
                  file=sys.stderr)
            if result["rc"] != 0:
                failed = True
                print(result.get("log_tail", ""), file=sys.stderr)
            if result.get("cached_passes"):
                print(f"  warning: served from modelmill's cache: {result['cached_passes']}", file=sys.stderr)

    outputs = {key: commands[key][1] for key in (A, B)}
    usable = {key: builds[key] and builds[key][-1]["rc"] == 0 for key in (A, B)}
    gen_repeats = args.gen_repeats if args.gen_repeats is not None else args.repeats
    for rep in range(gen_repeats):
        for key in ((A, B) if rep % 2 == 0 else (B, A)):
            if not usable[key]:
                continue
            result = measure_generation(outputs[key], args, answer=rep == 0)
            gens[key].append(result)
            if "error" in result:
                failed = True
                print(f"generation {LABELS[key]} failed:\n{result['error']}", file=sys.stderr)
            else:
                print(f"generation {rep + 1}/{gen_repeats} {LABELS[key]}: prefill {result['prefill_ms']:.1f} ms, "
                      f"decode {result['decode_tokens_per_s']:.1f} tokens/s ({result['new_tokens']} new)",
                      file=sys.stderr)

    summary = summarize(builds, gens)
    answers = {key: next((g["answer"] for g in gens[key] if "answer" in g), None) for key in (A, B)}
    described = {key: describe_output(outputs[key]) if usable[key] else None for key in (A, B)}
    table = markdown(summary, builds, gens)
    print(table)
    for key in (A, B):
        if answers[key] is not None:
            print(f"\n{LABELS[key]} answers {CHAT_QUESTION!r}: {answers[key]!r}")

    record = {
        "benchmark": "auto_opt",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": str(model_dir),
        "driver": args.driver,
        "repeats": args.repeats,
        "gen_repeats": gen_repeats,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "host": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "commands": {key: commands[key][0] for key in (A, B)},
        "summary": summary,
        "ratios": {key: ratio(summary[A][key], summary[B][key]) for key in summary[A]},
        "targets": {"wall_s": "<= 1.1x builder", "peak_tree_rss_mib": "<= builder",
                    "decode_tokens_per_s": ">= builder"},
        "builds": builds,
        "generation": gens,
        "answers": answers,
        "outputs": described,
        "table_markdown": table,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=2))
    print(f"\nresults: {args.results}", file=sys.stderr)
    if args.keep:
        print(f"kept: {work}", file=sys.stderr)
    elif args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        for _, out in commands.values():
            shutil.rmtree(out, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
