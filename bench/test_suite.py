#!/usr/bin/env python
"""Benchmark: the default test suite (what `make test-fast` runs) at this tree vs a baseline revision, side by side.

Each round runs the suite once per tree, in turn (so a load on the machine hits both alike), timed from the outside:
wall clock, and the CPU time of the processes it started and reaped (pytest, its xdist workers, run workers,
language servers, Ray's nodes; ``RUSAGE_CHILDREN``). The baseline is a
``git worktree`` of the revision, imported through ``PYTHONPATH`` ahead of the venv's editable install of this tree,
with its own ``make bytecode`` step done the same way as here. Prints medians and the ratios this / baseline, and
writes bench/results/test_suite.json. A benchmark measures; it does not assert a time.

    .venv/bin/python bench/test_suite.py --baseline e925b29 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = ["-m", "pytest", "-q", "-m", "not slow", "-n", "auto", "--dist", "loadfile", "-p", "no:cacheprovider"]


def _compile(tree: Path) -> None:
    """`make bytecode` for one tree (the Makefile's recipe, with this interpreter)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "server", "tests", "bench"], cwd=tree,
                   stdout=subprocess.DEVNULL, check=False)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_suite(tree: Path) -> dict[str, object]:
    """One run of the default suite in ``tree``: wall seconds, CPU seconds of everything it started (reaped)."""
    env = {**os.environ, "PYTHONPATH": str(tree / "server")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as `make test` runs it
    cpu_before, started = _children_cpu_s(), time.perf_counter()
    done = subprocess.run([sys.executable, *PYTEST], cwd=tree, env=env, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - started, _children_cpu_s() - cpu_before
    summary = next((line for line in reversed(done.stdout.splitlines()) if " in " in line and "passed" in line), "")
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "returncode": done.returncode,
            "summary": summary.strip("= "), "load_before": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="a revision of this repository (commit, tag, branch)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "test_suite.json")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mm-suite-base-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=ROOT, check=True,
                   capture_output=True)
    trees = {"this": ROOT, "baseline": base}
    results: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
    try:
        for tree in trees.values():
            _compile(tree)
        for round_no in range(args.rounds):
            for name, tree in trees.items():
                result = run_suite(tree)
                results[name].append(result)
                print(f"round {round_no + 1} {name}: {result}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False,
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    medians = {name: {key: statistics.median(float(r[key]) for r in runs) for key in ("wall_s", "cpu_s")}
               for name, runs in results.items()}
    print("\n| tree | wall (median) | CPU (median) |\n|---|---:|---:|")
    for name, values in medians.items():
        print(f"| {name} | {values['wall_s']:.0f} s | {values['cpu_s']:.0f} s |")
    ratios = {key: round(medians["this"][key] / medians["baseline"][key], 3) for key in ("wall_s", "cpu_s")}
    print(f"\nthis / baseline: wall {ratios['wall_s']}x, CPU {ratios['cpu_s']}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"baseline": args.baseline, "rounds": results, "medians": medians,
                                    "ratios": ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
