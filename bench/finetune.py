#!/usr/bin/env python
"""Benchmark: `modelmill finetune` against a plain transformers + peft script (bench/finetune_plain.py).

Both fine-tune the same model (default sample:smollm2) on the same data (sample:instructions, train
split) with the tutorial's template, the same LoRA settings (r 64, alpha 16, dropout 0.05, peft's
default target modules), batch size, learning rate, sequence length and number of steps. Runs are
interleaved (A B, B A, ...), each from a fresh working folder. Per run:

* training steps/s: optimizer steps / seconds inside ``Trainer.train`` (each side reports its own);
* wall time of the whole command (start-up, data, model load, training, saving);
* peak RSS of the whole process tree (psutil, every ~50 ms; ModelMill's parent and worker both count)
  and the max single-process RSS (exact, ``os.wait4``);
* the loss of every step (same seed and data order: the curves should match to rounding).

It prints a Markdown table of medians and writes everything to bench/results/finetune.json. It measures;
it never fails on a time.

    .venv/bin/python bench/finetune.py                     # SmolLM2, 20 steps, 2 repetitions each
    .venv/bin/python bench/finetune.py --steps 30 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from auto_opt import measure_build  # noqa: E402 - the same process-tree measurement as the auto-opt bench

ROOT = BENCH.parent
RESULTS = BENCH / "results" / "finetune.json"
A, B = "modelmill", "plain"
TEMPLATE_FLAG = "### Question: {instruction}\\n### Answer: {response}"


def modelmill_command(model: Path, out: Path, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "modelmill", "finetune", "-m", str(model), "-d", "sample:instructions",
            "--text_template", TEMPLATE_FLAG, "--max_steps", str(args.steps), "--max_seq_len", str(args.seq),
            "--learning_rate", str(args.lr), "--batch_size", str(args.batch), "-o", str(out)]


def plain_command(model: Path, data: Path, out: Path, args: argparse.Namespace) -> list[str]:
    return [sys.executable, str(BENCH / "finetune_plain.py"), str(model), str(data), str(out), "--max_steps",
            str(args.steps), "--max_seq_len", str(args.seq), "--learning_rate", str(args.lr), "--batch_size",
            str(args.batch)]


def run_once(side: str, model: Path, data: Path, work: Path, env: dict[str, str],
             args: argparse.Namespace, index: int) -> dict[str, Any]:
    out = work / f"{side}-{index}-out"
    cwd = work / f"{side}-{index}-cwd"
    run_env = {**env, "MODELMILL_HOME": str(cwd / "home")}
    command = modelmill_command(model, out, args) if side == A else plain_command(model, data, out, args)
    result = measure_build(command, out, work / f"{side}-{index}.log", run_env, cwd)
    if result["rc"] != 0:
        print(result.get("log_tail", ""), file=sys.stderr)
        return result
    if side == A:
        log = json.loads((out / "training_log.json").read_text())
        result["train_seconds"] = log["train_seconds"]
        result["steps"] = log["steps"]
        result["losses"] = [h["loss"] for h in log["log_history"] if "loss" in h]
    else:
        report = json.loads(Path(result["log"]).read_text().strip().splitlines()[-1])
        result.update({key: report[key] for key in ("train_seconds", "steps", "losses")})
    result["steps_per_s"] = round(result["steps"] / result["train_seconds"], 3)
    return result


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs if key in run)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sample:smollm2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from modelmill.finetune.instructions import sample_dir
    from modelmill.samples import resolve_model_path

    model = resolve_model_path(args.model, lambda message: print(f"sample: {message}", file=sys.stderr))
    data = sample_dir() / "train.jsonl"
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    runs: dict[str, list[dict[str, Any]]] = {A: [], B: []}
    with tempfile.TemporaryDirectory(prefix="mm-bench-finetune-") as tmp:
        work = Path(tmp)
        for index in range(args.repeats):
            for side in ((A, B) if index % 2 == 0 else (B, A)):
                result = run_once(side, model, data, work, env, args, index)
                runs[side].append(result)
                print(f"{side:9s} run {index + 1}: rc {result['rc']}, wall {result['wall_s']:.1f}s, "
                      f"{result.get('steps_per_s', 0):.3f} steps/s, peak tree RSS {result['peak_tree_rss_mib']:.0f} MiB",
                      file=sys.stderr)
    ok = all(r["rc"] == 0 for side in runs.values() for r in side)
    table = None
    if ok:
        rows = [("training steps/s", "steps_per_s", "{:.3f}"), ("train seconds", "train_seconds", "{:.1f}"),
                ("wall, whole command (s)", "wall_s", "{:.1f}"), ("CPU, whole tree (s)", "cpu_s", "{:.1f}"),
                ("peak RSS, process tree (MiB)", "peak_tree_rss_mib", "{:.0f}"),
                ("max single-process RSS (MiB)", "max_single_rss_mib", "{:.0f}")]
        lines = ["| metric | modelmill finetune | plain transformers+peft | ratio |", "|---|---:|---:|---:|"]
        for label, key, fmt in rows:
            a, b = median(runs[A], key), median(runs[B], key)
            lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {a / b:.2f}x |")
        # Same seed and data order; multi-threaded CPU reductions differ in the last bits, so compare closely.
        gap = max(abs(x - y) for ra, rb in zip(runs[A], runs[B]) for x, y in zip(ra["losses"], rb["losses"]))
        lines.append(f"\nloss curves: largest step-for-step difference {gap:.4f}; final loss modelmill "
                     f"{runs[A][0]['losses'][-1]:.4f}, plain {runs[B][0]['losses'][-1]:.4f}")
        table = "\n".join(lines)
        print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"args": vars(args), "model": str(model), "machine": platform.platform(),
                                   "cpus": os.cpu_count(), "runs": runs, "table": table}, indent=2))
    print(f"results: {RESULTS}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
