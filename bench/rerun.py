#!/usr/bin/env python
"""Benchmark: `modelmill auto-opt -m sample:smollm2 --precision int4`, first run vs unchanged cached rerun.

Command-line runs keep their pass cache in ``$MODELMILL_HOME/cache`` (server/modelmill/paths.py), so each
repetition gets a fresh temporary ``MODELMILL_HOME`` whose ``samples`` folder links to the real one (no new
download) and a fresh working folder: one first run (empty cache: the input is fingerprinted and the model
built), then ``--reruns`` identical commands (the build comes from the cache). Every command is timed from the
outside (wall clock, Python start-up included) and writes ``--events``; the event timestamps split each run
into phases (see ``search.phases``: start-up before ``run.started``, the cached pass = verified cache look-up,
writing the output, exit).

Then, on the last repetition's cache, a probe process re-does the rerun's steps one by one and times each:
interpreter start, imports, building and validating the config, planning (sample resolution), the input
fingerprint (memoized by size/mtime/inode), the plan-time ``contains`` check, the verified cache look-up
(sha256 of every file of the entry) against an unverified one, copying the entry into an output folder and
writing the manifest. ``python -X importtime`` gives the heaviest imports of the CLI.

It prints Markdown tables, the ratio rerun / first run (issue target: <= 3%), and writes
bench/results/rerun.json.

``--server NAME=PYTHONPATH`` (repeatable) compares trees side by side on the last repetition's cache: ``--compare``
rounds, each one cached rerun per tree in turn (interleaved, so that a load on the machine hits them alike), each
timed from the outside (wall) and by the CPU time the process used; e.g. a ``git worktree`` of the base commit:

    git worktree add --detach /tmp/before <commit>
    .venv/bin/python bench/rerun.py --repeats 1 --server before=/tmp/before/server --server after=server

    MODELMILL_HOME=/tmp/mmhome .venv/bin/python bench/rerun.py
    .venv/bin/python bench/rerun.py --repeats 3 --reruns 3 --keep
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search import timed_run  # noqa: E402  (bench/search.py: outside timing + event phases)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "bench" / "results" / "rerun.json"
MODELMILL = Path(sys.executable).parent / "modelmill"
TARGET_RATIO = 0.03

# Runs in a child process in the working folder of a finished auto-opt: each step of a cached rerun, timed.
PROBE = r'''
import json, sys, time, shutil, tempfile
from pathlib import Path
t = {}
def lap(name, start):
    t[name] = round(time.perf_counter() - start, 4)
    return time.perf_counter()
s = time.perf_counter()
import modelmill.cli  # what the console script imports first
s = lap("import_cli", s)
from modelmill.config import load_workflow, parse_document, validate_document
from modelmill.engine.autoopt import AutoOptRequest, build_config
from modelmill.engine.plan import plan_from_config
from modelmill.engine.chain import step_keys  # noqa: F401 (the run's own imports)
from modelmill.engine.workflow import run_plan  # noqa: F401
from modelmill.engine.runner import start_run  # noqa: F401
from modelmill.render import ProgressRenderer  # noqa: F401
s = lap("import_run_modules", s)
model, out = sys.argv[1], sys.argv[2]
from modelmill.samples import resolve_model_path
request = AutoOptRequest(model=model, output_path=out, precision=sys.argv[3])
config = build_config(request, resolve_model_path(model))
document = parse_document(json.dumps(config, indent=2), "<auto-opt>.json")
s = lap("build_config", s)
validate_document(document)
s = lap("validate", s)
plan = plan_from_config(load_workflow(document))
s = lap("plan", s)
from modelmill.engine.cache import Cache, fingerprint
cache = Cache(plan.cache_dir)
fingerprint(plan.input_model.path, cache.root / "fingerprints.json")
s = lap("input_fingerprint_memoized", s)
keys = step_keys(plan, cache)
s = lap("step_keys", s)
all(cache.contains(k) for k in keys)
s = lap("contains_check", s)
entry = cache.get(keys[-1])
s = lap("cache_get_verified_sha256", s)
cache.get(keys[-1], verify=False)
s = lap("cache_get_unverified", s)
files = entry.meta["files"]
t["entry_mb"] = round(sum(f["bytes"] for f in files.values()) / 1e6, 1)
t["entry_files"] = len(files)
from modelmill.engine.output import copy_contents
tmp = Path(tempfile.mkdtemp(dir="."))
s = time.perf_counter()
copy_contents(entry.folder, tmp / "o", skip={"entry.json"})
s = lap("copy_output", s)
(tmp / "o" / "modelmill_run.json").write_text(json.dumps({"files": files, "config": plan.source_config}, indent=2))
s = lap("write_manifest", s)
shutil.rmtree(tmp)
from modelmill.engine.versions import library_versions
library_versions.cache_clear()
library_versions()
s = lap("library_versions", s)
print(json.dumps(t))
'''


def fresh_home(root: Path) -> dict[str, str]:
    """An environment whose MODELMILL_HOME is new (empty cache) but shares the fetched samples."""
    current = os.environ.get("MODELMILL_HOME")
    samples = (Path(current).expanduser() if current else Path.home() / ".cache" / "modelmill") / "samples"
    home = root / "home"
    home.mkdir()
    samples.mkdir(parents=True, exist_ok=True)
    (home / "samples").symlink_to(samples.resolve(), target_is_directory=True)
    return {**os.environ, "MODELMILL_HOME": str(home)}


def probe(cwd: Path, env: dict[str, str], model: str, precision: str) -> dict[str, Any]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import modelmill.cli"], check=True, cwd=cwd, env=env)
    cli_import = time.perf_counter() - start
    proc = subprocess.run([sys.executable, "-c", PROBE, model, str(cwd / "probe-out"), precision],
                          capture_output=True, text=True, cwd=cwd, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit("probe failed")
    steps = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"python_start_s": round(bare, 3), "python_plus_cli_import_s": round(cli_import, 3), **steps}


def import_profile(cwd: Path, env: dict[str, str], model: str, out: Path, precision: str,
                   top: int = 12) -> list[tuple[str, float]]:
    """The heaviest imports (cumulative ms) of an actual cached auto-opt rerun, from ``python -X importtime``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", str(MODELMILL), "auto-opt", "-m", model, "-o",
                           str(out), "--precision", precision], capture_output=True, text=True, cwd=cwd, env=env)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, raw = line.removeprefix("import time:").split("|")
        if len(raw) - len(raw.lstrip()) == 1:  # top-level imports only (nested ones are indented further)
            rows.append((raw.strip(), int(cumulative) / 1000))
    total = sum(ms for _, ms in rows)
    rows.sort(key=lambda r: -r[1])
    return [("(all top-level imports)", round(total, 1))] + [(n, round(ms, 1)) for n, ms in rows[:top]]


def compare(servers: list[tuple[str, str]], rounds: int, cwd: Path, env: dict[str, str], model: str,
            precision: str) -> dict[str, list[tuple[float, float]]]:
    """Cached reruns of each tree in turn, ``rounds`` times: {name: [(wall s, CPU s)]}. Each tree's bytecode is
    written first (as an installed package has it), PYTHONDONTWRITEBYTECODE or not."""
    found: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in servers}
    envs = {}
    for name, path in servers:
        envs[name] = {**env, "PYTHONPATH": os.pathsep.join([str(Path(path).resolve()), env.get("PYTHONPATH", "")])
                      .rstrip(os.pathsep)}
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(path) / "modelmill")],
                       stdout=subprocess.DEVNULL, check=False)
    for index in range(rounds):
        for name, _ in servers:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            run = timed_run([str(MODELMILL), "auto-opt", "-m", model, "-o", "out", "--precision", precision,
                             "--events", f"compare-{name}.jsonl"], cwd / f"compare-{name}.jsonl", cwd=cwd,
                            env=envs[name])
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if run["cached_passes"] != run["passes"]:
                print(f"  warning: {name}'s rerun {index + 1} was not served from the cache", file=sys.stderr)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            found[name].append((run["wall_s"], round(cpu, 3)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sample:smollm2")
    parser.add_argument("--precision", default="int4")
    parser.add_argument("--repeats", type=int, default=2, help="fresh-cache first runs (default 2)")
    parser.add_argument("--reruns", type=int, default=3, help="cached reruns after each first run (default 3)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--server", action="append", default=[], metavar="NAME=PYTHONPATH",
                        help="compare this tree's cached reruns side by side (repeatable)")
    parser.add_argument("--compare", type=int, default=30, help="cached reruns per tree when comparing (default 30)")
    args = parser.parse_args()

    firsts: list[dict[str, Any]] = []
    reruns: list[dict[str, Any]] = []
    folders = []
    env: dict[str, str] = {}
    for repeat in range(args.repeats):
        cwd = Path(tempfile.mkdtemp(prefix="mm-rerun-"))
        folders.append(cwd)
        env = fresh_home(cwd)

        def command(events: str) -> list[str]:
            return [str(MODELMILL), "auto-opt", "-m", args.model, "-o", "out", "--precision", args.precision,
                    "--events", events]

        print(f"repeat {repeat + 1}/{args.repeats}: first run in {cwd} ...", file=sys.stderr, flush=True)
        firsts.append(timed_run(command("first.jsonl"), cwd / "first.jsonl", cwd=cwd, env=env))
        print(f"  {firsts[-1]['wall_s']} s", file=sys.stderr, flush=True)
        if firsts[-1]["cached_passes"]:
            print("  warning: the first run took passes from a cache; it is not a fresh build", file=sys.stderr)
        for index in range(args.reruns):
            reruns.append(timed_run(command(f"rerun{index}.jsonl"), cwd / f"rerun{index}.jsonl", cwd=cwd, env=env))
            print(f"  rerun {index + 1}: {reruns[-1]['wall_s']} s", file=sys.stderr, flush=True)

    servers = [tuple(item.split("=", 1)) for item in args.server]
    compared = {}
    if servers:
        print(f"comparing {len(servers)} trees, {args.compare} cached reruns each ...", file=sys.stderr, flush=True)
        load_before = os.getloadavg()
        compared = compare(servers, args.compare, folders[-1], env, args.model, args.precision)
        load_after = os.getloadavg()
    print("probing the rerun's steps ...", file=sys.stderr, flush=True)
    probes = [probe(folders[-1], env, args.model, args.precision) for _ in range(3)]
    imports = import_profile(folders[-1], env, args.model, folders[-1] / "out", args.precision)

    first_wall = statistics.median(r["wall_s"] for r in firsts)
    rerun_wall = statistics.median(r["wall_s"] for r in reruns)
    ratio = rerun_wall / first_wall
    met = ratio <= TARGET_RATIO
    print(f"\n### auto-opt -m {args.model} --precision {args.precision}: first run vs cached rerun\n")
    print("| run | wall s (median) | samples | passes cached | target | status |")
    print("|---|---|---|---|---|---|")
    print(f"| first (fresh cache) | {first_wall:.2f} | {[r['wall_s'] for r in firsts]} | "
          f"{firsts[0]['cached_passes']}/{firsts[0]['passes']} | | |")
    print(f"| cached rerun | {rerun_wall:.2f} | {[r['wall_s'] for r in reruns]} | "
          f"{reruns[0]['cached_passes']}/{reruns[0]['passes']} | | |")
    print(f"| rerun / first | {100 * ratio:.2f}% | | | <= {100 * TARGET_RATIO:.0f}% | {'met' if met else 'MISSED'} |")

    if compared:
        print(f"\n### cached reruns side by side ({args.compare} each, interleaved; load average "
              f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; {os.cpu_count()} CPUs)\n")
        print("| tree | wall s median | wall s p95 | CPU s median | CPU s p95 | rerun / first run (median wall) |")
        print("|---|---|---|---|---|---|")
        for name, values in compared.items():
            walls = sorted(v[0] for v in values)
            cpus = sorted(v[1] for v in values)
            p95 = min(len(walls) - 1, round(0.95 * (len(walls) - 1)))
            print(f"| {name} | {statistics.median(walls):.3f} | {walls[p95]:.3f} | {statistics.median(cpus):.3f} | "
                  f"{cpus[p95]:.3f} | {100 * statistics.median(walls) / first_wall:.2f}% |")

    names = list(reruns[0]["phases"])
    print("\nwhere the time goes (seconds, from --events timestamps; medians)\n")
    print("| phase | first run | cached rerun | rerun samples |")
    print("|---|---|---|---|")
    for name in names:
        f = statistics.median(r["phases"][name] for r in firsts)
        values = [r["phases"][name] for r in reruns]
        print(f"| {name.removesuffix('_s')} | {f:.3f} | {statistics.median(values):.3f} | {values} |")

    keys = [k for k in probes[0] if k not in ("entry_mb", "entry_files")]
    print(f"\nthe rerun's steps, timed one by one (probe process; median of {len(probes)}; cache entry "
          f"{probes[0]['entry_mb']} MB in {probes[0]['entry_files']} files)\n")
    print("| step | seconds (median) | samples |")
    print("|---|---|---|")
    for key in keys:
        values = [p[key] for p in probes]
        print(f"| {key} | {statistics.median(values):.3f} | {values} |")
    print("\nheaviest imports of a cached `modelmill auto-opt` (python -X importtime, cumulative ms)\n")
    print("| module | ms |")
    print("|---|---|")
    for name, ms in imports:
        print(f"| {name} | {ms} |")

    result = {
        "benchmark": "rerun",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": f"modelmill auto-opt -m {args.model} -o out --precision {args.precision}",
        "host": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                 "loadavg_end": os.getloadavg()},
        "summary": {"first_wall_s": first_wall, "rerun_wall_s": rerun_wall, "ratio": round(ratio, 4),
                    "target_ratio": TARGET_RATIO, "met": met},
        "firsts": firsts,
        "reruns": reruns,
        "probes": probes,
        "imports_ms": imports,
        "compared": compared,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {args.results}")
    if args.keep:
        print("kept " + ", ".join(str(f) for f in folders))
    else:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
