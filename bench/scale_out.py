#!/usr/bin/env python
"""Benchmark: one search on a Ray cluster of 1 worker and of 2 workers (one CPU each), same config.

The search: sample:smollm2 through ModelBuilder int4 with ``int4_block_size`` [32, 64, 128] x
``int4_accuracy_level`` [1, 4] (6 candidates, sequential sampler), each candidate evaluated for size (priority 1)
and perplexity on local text (priority 2), decode tokens/s reported but not ranked. For each cluster size:

1. start a real Ray cluster on loopback: ``ray start --head --num-cpus 1`` (+ ``ray start --address`` for a
   second one-CPU node), with its own auth token and usage stats off; the start-up is timed on its own;
2. run ``modelmill run --config CONFIG --events EVENTS`` with the cluster as the workflow's host, in a fresh
   cache (neither run reuses the other's results), timed from the outside (wall clock, interpreter start-up
   included); every candidate reserves one CPU and runs PyTorch and ONNX Runtime with one thread;
3. stop the cluster (SIGTERM to the ``ray start --block`` processes it started).

It prints a Markdown table (wall time, the run's own time from run.started to run.finished, the candidates'
busy time, nodes used, best candidate), the speed-up of 2 workers over 1 (issue target: >= 1.7x) and whether
both runs chose the same best candidate with the same parameters and metrics, and writes everything to
bench/results/scale_out.json.

    MODELMILL_HOME=/tmp/mmhome .venv/bin/python bench/scale_out.py
    .venv/bin/python bench/scale_out.py --keep          # keep configs, events and outputs (path printed)
    .venv/bin/python bench/scale_out.py --repeats 3     # 3 pairs, alternating the order; medians

On a shared machine other processes' CPU time during each run is sampled and reported: 2 workers need both
cores, so anyone else's work lands in their time.

A benchmark measures; it exits 1 only when a run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from modelmill.testing.ray_cluster import start_cluster

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "bench" / "results" / "scale_out.json"
BIN = Path(sys.executable).parent
TARGET_SPEEDUP = 1.7
RANKED = ("size-bytes", "quality-perplexity")
PASSES = {"builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": [32, 64, 128],
                      "int4_accuracy_level": [1, 4]}}
METRICS = [
    {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes", "priority": 1}]},
    {"name": "quality", "type": "llm", "sub_types": [
        {"name": "perplexity", "priority": 2, "metric_config": {"max_samples": 2, "max_length": 128}}]},
    # Speed is measured and reported, but does not rank (priority -1): timings of candidates that share a
    # machine with another candidate differ from run to run, and the best candidate must not.
    {"name": "speed", "type": "llm", "sub_types": [
        {"name": "decode_tokens_per_s", "priority": -1,
         "metric_config": {"prompt_length": 64, "new_tokens": 64, "warmup_num": 1, "repeat_test_num": 2}}]},
]


# --- other load on the machine ------------------------------------------------------------------------

class OtherLoad(threading.Thread):
    """CPU seconds used by processes outside this benchmark's tree while a run goes (sampled every second):
    on a shared machine, 2 workers need both cores, so anyone else's work shows up in their time."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.first: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], float] = {}
        self.ours: set[tuple[int, float]] = set()
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.done.is_set():
            ours = {me.pid, *(child.pid for child in me.children(recursive=True))}
            for proc in psutil.process_iter():
                try:
                    times = proc.cpu_times()
                    key = (proc.pid, proc.create_time())
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                self.first.setdefault(key, times.user + times.system)
                self.last[key] = times.user + times.system
                if proc.pid in ours:
                    self.ours.add(key)
            self.done.wait(1.0)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return round(sum(self.last[k] - self.first[k] for k in self.last if k not in self.ours), 1)


# --- one run -----------------------------------------------------------------------------------------

def config_for(model: Path, address: str, root: Path, tag: str) -> dict[str, Any]:
    return {
        "input_model": {"type": "HfModel", "model_path": str(model), "task": "text-generation"},
        "systems": {"cluster": {"type": "Ray", "address": address, "num_cpus": 1, "max_retries": 1}},
        "host": "cluster",
        "evaluators": {"main": {"metrics": METRICS}},
        "evaluator": "main",
        "evaluate_input_model": False,
        "passes": PASSES,
        "search_strategy": {"execution_order": "joint", "sampler": "sequential", "seed": 0},
        "output_dir": str(root / f"out-{tag}"),
        "cache_dir": str(root / f"cache-{tag}"),  # fresh: nothing reused from another run
    }


def run_once(model: Path, workers: int, root: Path, env: dict[str, str], repetition: int) -> dict[str, Any]:
    tag = f"{workers}w-{repetition}"
    cluster = start_cluster(workers, env, object_store_bytes=200 << 20, log_dir=root)
    load = os.getloadavg()[0]  # other work on the machine skews the comparison: recorded with the result
    try:
        config = root / f"config-{tag}.json"
        config.write_text(json.dumps(config_for(model, cluster.address, root, tag), indent=2))
        events_file = root / f"events-{tag}.jsonl"
        other = OtherLoad()
        other.start()
        start = time.perf_counter()
        proc = subprocess.run([str(BIN / "modelmill"), "run", "--config", str(config), "--events", str(events_file)],
                              capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        other_cpu = other.stop()
    finally:
        cluster.stop()
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"the {workers}-worker run failed (exit {proc.returncode})")
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    manifest = json.loads((root / f"out-{tag}" / "modelmill_run.json").read_text())
    shutil.rmtree(root / f"cache-{tag}", ignore_errors=True)  # 500+ MB each; every run starts cold anyway
    return {**summarize(workers, wall, cluster.startup_s, events, manifest), "load_before": round(load, 2),
            "other_cpu_s": other_cpu}


def summarize(workers: int, wall: float, startup: float, events: list[dict[str, Any]],
              manifest: dict[str, Any]) -> dict[str, Any]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)
    evaluated = [e for e in by_type.get("candidate.evaluated", []) if not e.get("is_input")]
    search = manifest["search"]
    best = next(c for c in search["candidates"] if c["id"] == search["best"])
    return {
        "workers": workers,
        "cluster_startup_s": startup,
        "wall_s": round(wall, 3),
        "run_s": round(by_type["run.finished"][-1]["ts"] - by_type["run.started"][0]["ts"], 3),
        "candidates": len(evaluated),
        "candidate_busy_s": round(sum(e["duration_s"] for e in evaluated), 3),
        "candidate_median_s": round(statistics.median(e["duration_s"] for e in evaluated), 3),
        "nodes_used": len({e.get("node") for e in evaluated}),
        "retried": len(by_type.get("candidate.retried", [])),
        "max_concurrent": by_type["cluster.connected"][0]["max_concurrent"],
        # The best one is compared by id, parameters and the metrics that rank it (timings differ run to run).
        "best": {"id": best["id"], "params": best["params"],
                 "ranked_metrics": {k: v for k, v in best["metrics"].items() if k in RANKED}},
        "candidate_table": [{"id": c["id"], "params": c["params"], "metrics": c["metrics"],
                             "duration_s": c["duration_s"]} for c in search["candidates"]],
    }


# --- reference without Ray ---------------------------------------------------------------------------

def reference(model: Path, root: Path, env: dict[str, str]) -> dict[str, Any]:
    """What this machine gives two side-by-side candidates without Ray: the 6 candidates as one local run,
    then as two local runs of 3 (accuracy level 1 / 4) at the same time; one thread per process either way."""
    threads = {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MODELMILL_INTRA_OP_THREADS": "1"}

    def start(tag: str, levels: list[int]) -> subprocess.Popen:
        config = config_for(model, "unused:1", root, tag)
        del config["systems"], config["host"]
        config["passes"] = {"builder": {**PASSES["builder"], "int4_accuracy_level": levels}}
        path = root / f"config-{tag}.json"
        path.write_text(json.dumps(config, indent=2))
        return subprocess.Popen([str(BIN / "modelmill"), "run", "--config", str(path)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=threads)

    timings = {}
    for label, groups in (("one process, 6 candidates", [[1, 4]]),
                          ("two processes at once, 3 candidates each", [[1], [4]])):
        start_time = time.perf_counter()
        processes = [start(f"ref-{len(timings)}-{i}", levels) for i, levels in enumerate(groups)]
        if any(process.wait() != 0 for process in processes):
            raise SystemExit(f"the reference run '{label}' failed")
        timings[label] = round(time.perf_counter() - start_time, 3)
        for i in range(len(groups)):
            shutil.rmtree(root / f"cache-ref-{len(timings) - 1}-{i}", ignore_errors=True)
    values = list(timings.values())
    return {"wall_s": timings, "speedup": round(values[0] / values[1], 3)}


# --- report ------------------------------------------------------------------------------------------

def print_report(runs: list[dict[str, Any]], medians: dict[int, float], speedup: float, same_best: bool) -> None:
    print("\n| workers | wall s | run s | candidates | candidate busy s | median candidate s | nodes used | "
          "retries | load before | other processes' CPU s | best |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        best = f"{r['best']['id']} {json.dumps(r['best']['params'])}"
        print(f"| {r['workers']} | {r['wall_s']:.1f} | {r['run_s']:.1f} | {r['candidates']} | "
              f"{r['candidate_busy_s']:.1f} | {r['candidate_median_s']:.1f} | {r['nodes_used']} | {r['retried']} | "
              f"{r['load_before']:.2f} | {r['other_cpu_s']:.1f} | {best} |")
    print(f"\nmedian wall: 1 worker {medians[1]:.1f}s, 2 workers {medians[2]:.1f}s; speed-up {speedup:.2f}x "
          f"(target >= {TARGET_SPEEDUP}x)")
    print(f"same best candidate (id, params, size and perplexity): {'yes' if same_best else 'NO'}")
    startups = ", ".join(f"{r['cluster_startup_s']:.1f}s" for r in runs)
    print(f"cluster start-up (not in the times above): {startups}")
    one = next(r for r in runs if r["workers"] == 1)
    two_run = next(r for r in runs if r["workers"] == 2)
    print("\ncandidates (first run of each):\n")
    print("| id | block size | accuracy level | size MB | perplexity | decode tok/s (1 w / 2 w) | time s (1 worker) | "
          "time s (2 workers) |")
    print("|---|---|---|---|---|---|---|---|")
    two = {c["id"]: c for c in two_run["candidate_table"]}
    for c in one["candidate_table"]:
        m = c["metrics"]
        print(f"| {c['id']} | {c['params'].get('builder.int4_block_size')} | "
              f"{c['params'].get('builder.int4_accuracy_level')} | {m.get('size-bytes', 0) / 1e6:.1f} | "
              f"{m.get('quality-perplexity') or float('nan'):.3f} | "
              f"{m.get('speed-decode_tokens_per_s') or float('nan'):.0f} / "
              f"{two.get(c['id'], {}).get('metrics', {}).get('speed-decode_tokens_per_s') or float('nan'):.0f} | "
              f"{c['duration_s']:.1f} | "
              f"{two.get(c['id'], {}).get('duration_s', float('nan')):.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sample:smollm2", help="HF folder or sample:NAME")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the configs, events, outputs and node logs")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs, alternating 1,2 / 2,1 (medians)")
    parser.add_argument("--reference", action="store_true",
                        help="also time the candidates without Ray: 1 local run vs 2 local runs side by side")
    args = parser.parse_args()

    from modelmill.samples import resolve_model_path

    model = resolve_model_path(args.model, lambda message: print(f"sample: {message}", file=sys.stderr))
    root = Path(tempfile.mkdtemp(prefix="mm-scale-out-"))
    # One token for this benchmark's clusters and drivers (Ray enables token auth by default).
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        runs = []
        for repetition in range(args.repeats):
            for workers in ((1, 2) if repetition % 2 == 0 else (2, 1)):
                print(f"running the search on {workers} worker(s)...", file=sys.stderr, flush=True)
                runs.append(run_once(model, workers, root, env, repetition))
        medians = {w: statistics.median(r["wall_s"] for r in runs if r["workers"] == w) for w in (1, 2)}
        speedup = medians[1] / medians[2]
        same_best = all(r["best"] == runs[0]["best"] for r in runs)
        same_candidates = all([(c["id"], c["params"]) for c in r["candidate_table"]] ==
                              [(c["id"], c["params"]) for c in runs[0]["candidate_table"]] for r in runs)
        print_report(runs, medians, speedup, same_best)
        ref = None
        if args.reference:
            print("reference without Ray...", file=sys.stderr, flush=True)
            ref = reference(model, root, env)
            print("\nwithout Ray (this machine's ceiling for two candidates side by side): " + ", ".join(
                f"{label} {value:.1f}s" for label, value in ref["wall_s"].items()) + f"; speed-up {ref['speedup']:.2f}x")
        result = {"model": str(model), "passes": PASSES, "metrics": METRICS, "runs": runs,
                  "median_wall_s": {str(w): m for w, m in medians.items()}, "speedup_wall": round(speedup, 3),
                  "target_speedup": TARGET_SPEEDUP, "reference_without_ray": ref, "same_best": same_best,
                  "same_candidates": same_candidates,
                  "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                              "python": platform.python_version()},
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.results}")
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
