#!/usr/bin/env python
"""Benchmark: what a user feels of the language server, seen by a raw JSON-RPC client independent of the server
(``modelmill.testing.jsonrpc``: standard library only, no pygls, no lsprotocol, none of the server's code),
talking to ``python -m modelmill lsp`` over pipes with the server's default settings (the client declares no
``workspace/configuration`` and passes no settings).

Measures, in milliseconds (median and p95 of ``--samples`` samples):

* cold start: process spawn → ``initialize`` reply; spawn → first ``publishDiagnostics`` of an opened ~900-line
  config, and the CPU time the server had used by then (a figure a load on the machine disturbs less); then the
  first ``completion`` or the first ``hover`` (alternately) sent right after those diagnostics: request → reply,
  and spawn → reply (``--cold-only`` measures these only); ``--pause-ms 250`` also measures them sent 250 ms after
  those diagnostics (an editor's user reads them first), in more cold starts;
* keystroke → ``publishDiagnostics`` of that version on the ~900-line JSON config (typing in a value near its end,
  and in one on its fourth line: the JSON stays valid), on half-typed JSON (a new key being typed: broken JSON)
  and on the same config in YAML; keystrokes come at typing pace (the next one ~40 ms after the previous one's
  diagnostics); with the server's CPU time per keystroke (mean; what the work costs, whatever else the machine
  runs);
* a burst: 10 changes sent back to back; time to the diagnostics of the last version and how many versions
  were validated.

Several servers can be compared in one run, interleaved sample by sample (so that a load on the machine hits
them alike): ``--server NAME=PYTHONPATH`` puts that folder first on the server's path (e.g. a ``git worktree``
of an older commit's ``server/`` folder). The load average is printed before and after. A benchmark measures;
it never fails on times.

    .venv/bin/python bench/lsp_raw_latency.py --samples 30
    git worktree add /tmp/before <commit>
    .venv/bin/python bench/lsp_raw_latency.py --server before=/tmp/before/server --server after=server
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The client is modelmill.testing.jsonrpc: standard library only and none of the server's code (not its framing,
# modelmill.lsp.framing / launch), so that a framing bug on the server's side shows up here instead of being shared.
from modelmill.testing.jsonrpc import JsonRpcClient

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"initialize reply after spawn": None, "first diagnostics after spawn": 600,
         "server CPU until first diagnostics": None, "first completion": 100, "first hover": 100,
         "first completion answered after spawn": None, "first hover answered after spawn": None,
         "keystroke → diagnostics (JSON)": 30, "keystroke → diagnostics (JSON, edit near the top)": 30,
         "keystroke → diagnostics (half-typed JSON)": 20, "keystroke → diagnostics (YAML)": 20,
         "burst of 10 → last diagnostics": None}


# ------------------------------------------------------------------ documents


def big_config(lines: int = 916) -> dict[str, Any]:
    """A realistic workflow config of about ``lines`` lines when printed with indent 2."""
    config: dict[str, Any] = {
        "input_model": {"type": "HfModel", "model_path": "model", "task": "text-generation"},
        "systems": {"local_system": {"type": "LocalSystem", "accelerators": [
            {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}},
        "data_configs": [], "evaluators": {},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": 32},
                   "peephole": {"type": "OnnxPeepholeOptimizer"}},
        "evaluator": "eval_0", "target": "local_system", "output_dir": "out", "cache_dir": "cache"}
    index = 0
    while json.dumps(config, indent=2).count("\n") < lines - 20:
        config["evaluators"][f"eval_{index}"] = {"metrics": [
            {"name": "latency", "type": "latency", "data_config": f"data_{index}",
             "sub_types": [{"name": "avg", "priority": 1, "goal": {"type": "max-degradation", "value": 0.1}},
                           {"name": "p90"}]},
            {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]}]}
        config["data_configs"].append({"name": f"data_{index}", "type": "HuggingfaceContainer",
                                       "load_dataset_config": {"data_name": "glue", "split": "validation"}})
        index += 1
    return config


def to_yaml(value: Any, indent: int = 0) -> str:
    """A small YAML writer (block style) so that the bench needs nothing but the standard library."""
    pad = "  " * indent
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{key}:\n{to_yaml(item, indent + 1)}")
            else:
                out.append(f"{pad}{key}: {json.dumps(item)}")
        return "\n".join(out)
    out = []
    for item in value:
        if isinstance(item, (dict, list)) and item:
            body = to_yaml(item, indent + 1).lstrip()
            out.append(f"{pad}- {body}")
        else:
            out.append(f"{pad}- {json.dumps(item)}")
    return "\n".join(out)


def position_of(text: str, needle: str, offset: int = 0) -> dict[str, int]:
    index = text.index(needle) + offset
    return {"line": text.count("\n", 0, index), "character": index - (text.rfind("\n", 0, index) + 1)}


# ------------------------------------------------------------------ the raw client


def start_client(pythonpath: str | None, workspace: Path) -> tuple[JsonRpcClient, float]:
    """A server on pipes (``pythonpath`` first on its path), initialized with the server's default settings;
    the milliseconds from spawn to the ``initialize`` reply."""
    env = {}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    client = JsonRpcClient(workspace, env=env, capture_stderr=False, answer_server_requests=True)
    reply = client.initialize(workspace, settings=None, processId=os.getpid(), clientInfo={"name": "raw bench"},
                              capabilities={"textDocument": {"publishDiagnostics": {"versionSupport": True}}})
    return client, (client.answered_at[reply["id"]] - client.started) * 1000


# ------------------------------------------------------------------ measurements


class Documents:
    def __init__(self, workspace: Path) -> None:
        config = big_config()
        self.json = json.dumps(config, indent=2)
        self.yaml = to_yaml(config) + "\n"
        self.json_uri = (workspace / "big.olive.json").as_uri()
        self.yaml_uri = (workspace / "big.olive.yaml").as_uri()

    def typed_value(self, step: int) -> str:
        """Typing in a value: the JSON stays valid."""
        return self.json.replace('"output_dir": "out"', f'"output_dir": "out{"x" * (step % 7 + 1)}"', 1)

    def typed_near_top(self, step: int) -> str:
        """Typing in a value on the config's fourth line (nothing above the edit for a parser to reuse)."""
        return self.json.replace('"model_path": "model"', f'"model_path": "model{"x" * (step % 7 + 1)}"', 1)

    def half_typed_key(self, step: int) -> str:
        """Typing a new key after "output_dir": the JSON is broken (no comma, an unterminated string)."""
        word = "evaluate_input_model"[: step % 12 + 1]
        return self.json.replace('"output_dir": "out",', f'"output_dir": "out",\n  "{word}', 1)

    def typed_yaml(self, step: int) -> str:
        return self.yaml.replace('output_dir: "out"', f'output_dir: "out{"x" * (step % 7 + 1)}"', 1)


def prepare(pythonpath: str | None) -> None:
    """Write the server's bytecode caches as an installed package has them (``.pyc``, and the attrs code cache of
    modelmill/lsp/codecache.py where the tree has one), even where PYTHONDONTWRITEBYTECODE is set: each tree is
    measured with its caches in place, as a user's installation runs."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(pythonpath) / "modelmill")],
                       env=env, stdout=subprocess.DEVNULL, check=False)
    subprocess.run([sys.executable, "-c", "from modelmill.lsp import launch; launch._import_server()"], env=env,
                   check=False)


def first_key(first: str, pause_ms: int) -> str:
    return f"first {first}" + (f" after a {pause_ms} ms pause" if pause_ms else "")


def cold(pythonpath: str | None, workspace: Path, docs: Documents, first: str, pause_ms: int = 0) -> dict[str, float]:
    """One cold start; the first ``first`` request is sent ``pause_ms`` after the first diagnostics arrive."""
    client, initialized = start_client(pythonpath, workspace)
    try:
        result = {"initialize reply after spawn": initialized}
        client.open(docs.json_uri, "json", docs.json)
        arrived, _ = client.diagnostics(docs.json_uri)
        result["first diagnostics after spawn"] = (arrived - client.started) * 1000
        result["server CPU until first diagnostics"] = cpu_ms(client.process.pid)
        if pause_ms:
            time.sleep(pause_ms / 1000)  # an editor's user reads the squiggles, moves the cursor
        if first == "completion":
            sent, message_id = client.send_request("textDocument/completion", {
                "textDocument": {"uri": docs.json_uri}, "position": position_of(docs.json, '"ModelBuilder"', 1)})
        else:
            sent, message_id = client.send_request("textDocument/hover", {
                "textDocument": {"uri": docs.json_uri}, "position": position_of(docs.json, '"precision"', 2)})
        reply = client.reply(message_id, 60)
        arrived = client.answered_at[message_id]
        assert reply.get("result"), reply
        result[first_key(first, pause_ms)] = (arrived - sent) * 1000
        if not pause_ms:
            result[f"first {first} answered after spawn"] = (arrived - client.started) * 1000
        return result
    finally:
        client.close()


def cpu_ms(pid: int) -> float:
    """The CPU time (user + system, ms) a process has used so far: less sensitive than wall time to a load on the
    machine (Linux /proc; 10 ms resolution; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class Warm:
    """One running server with the JSON and YAML documents open, for the keystroke samples."""

    def __init__(self, pythonpath: str | None, workspace: Path, docs: Documents) -> None:
        self.client, _ = start_client(pythonpath, workspace)
        self.docs = docs
        self.version = {docs.json_uri: 1, docs.yaml_uri: 1}
        self.client.open(docs.json_uri, "json", docs.json)
        self.client.open(docs.yaml_uri, "yaml", docs.yaml)
        self.client.diagnostics(docs.json_uri)
        self.client.diagnostics(docs.yaml_uri)
        time.sleep(1.0)  # let the background warm-up finish

    def keystroke(self, uri: str, text: str, cpu: list[float] | None = None) -> float:
        """Wall time from the change to its diagnostics; ``cpu`` receives the server's CPU time over the same span."""
        self.version[uri] += 1
        version = self.version[uri]
        used = cpu_ms(self.client.process.pid)
        sent = self.client.change(uri, version, text)
        arrived, _ = self.client.diagnostics(uri, version)
        if cpu is not None:
            cpu.append(cpu_ms(self.client.process.pid) - used)
        time.sleep(0.04)
        return (arrived - sent) * 1000

    def burst(self, step: int) -> tuple[float, int]:
        uri = self.docs.json_uri
        first = self.version[uri] + 1
        sent = 0.0
        for offset in range(10):
            self.version[uri] += 1
            sent = self.client.change(uri, self.version[uri], self.docs.typed_value(step + offset))
        last = self.version[uri]
        validated = 0
        while True:  # count the versions of the burst that were validated (published) on the way
            arrived, message = self.client.diagnostics(uri)
            version = message["params"].get("version") or 0
            validated += first <= version <= last
            if version == last:
                break
        time.sleep(0.3)
        return (arrived - sent) * 1000, validated


def summary(values: list[float]) -> tuple[float, float, int]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered), p95, len(ordered)


def names_of(servers: list[Any]) -> list[str]:
    return [name for name, _ in servers]


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", action="append", default=[], metavar="NAME=PYTHONPATH",
                        help="a server to measure (PYTHONPATH first on its path); default: this checkout")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--cold-samples", type=int, default=None, help="cold starts per server (default --samples)")
    parser.add_argument("--json", type=Path, default=None, help="write every sample here")
    parser.add_argument("--cold-only", action="store_true", help="measure the cold starts only")
    parser.add_argument("--pause-ms", type=int, action="append", default=None,
                        help="also send the first completion/hover this long after the first diagnostics (repeatable; "
                             "each is another set of cold starts)")
    args = parser.parse_args()
    servers = [tuple(item.split("=", 1)) for item in args.server] or [("this checkout", str(ROOT / "server"))]
    workspace = Path(tempfile.mkdtemp(prefix="mm-raw-bench-"))
    docs = Documents(workspace)
    samples: dict[str, dict[str, list[float]]] = {name: {} for name, _ in servers}
    bursts: dict[str, list[int]] = {name: [] for name, _ in servers}
    timings: dict[str, Any] = {}
    cpu_samples: dict[str, dict[str, list[float]]] = {}  # server CPU ms per keystroke, by server and document
    loads = [load()]
    print(f"config: {docs.json.count(chr(10)) + 1} lines of JSON, {docs.yaml.count(chr(10))} of YAML; "
          f"{os.cpu_count()} CPUs; load average at start {loads[0]}", file=sys.stderr)

    for _, path in servers:
        prepare(path)
    cold_samples = args.samples if args.cold_samples is None else args.cold_samples
    pauses = [0, *(args.pause_ms or [])]
    for pause in pauses[1:]:
        for first in ("completion", "hover"):
            GOALS[first_key(first, pause)] = 100
    for index in range(cold_samples):
        for pause in pauses:
            for name, path in servers:
                first = "completion" if index % 2 == 0 else "hover"
                for key, value in cold(path, workspace, docs, first, pause).items():
                    samples[name].setdefault(key, []).append(value)
    loads.append(load())
    warm = {} if args.cold_only else {name: Warm(path, workspace, docs) for name, path in servers}
    try:
        for step in range(args.samples if warm else 0):
            for name, _ in servers:
                server = warm[name]
                cpu = cpu_samples.setdefault(name, {})
                samples[name].setdefault("keystroke → diagnostics (JSON)", []).append(
                    server.keystroke(docs.json_uri, docs.typed_value(step), cpu.setdefault("JSON", [])))
                samples[name].setdefault("keystroke → diagnostics (JSON, edit near the top)", []).append(
                    server.keystroke(docs.json_uri, docs.typed_near_top(step), cpu.setdefault("JSON near the top", [])))
                samples[name].setdefault("keystroke → diagnostics (half-typed JSON)", []).append(
                    server.keystroke(docs.json_uri, docs.half_typed_key(step), cpu.setdefault("half-typed JSON", [])))
                samples[name].setdefault("keystroke → diagnostics (YAML)", []).append(
                    server.keystroke(docs.yaml_uri, docs.typed_yaml(step), cpu.setdefault("YAML", [])))
        for step in range(max(5, args.samples // 3) if warm else 0):
            for name, _ in servers:
                took, validated = warm[name].burst(step)
                samples[name].setdefault("burst of 10 → last diagnostics", []).append(took)
                bursts[name].append(validated)
        for name in names_of(servers) if warm else []:  # the server's own view: validation and publish times (debugInfo)
            reply = warm[name].client.request("workspace/executeCommand",
                                              {"command": "modelmill.debugInfo", "arguments": [{}]}, wait=60)
            timings[name] = (reply.get("result") or {}).get("timings", {})
    finally:
        for server in warm.values():
            server.client.close()
    loads.append(load())

    names = [name for name, _ in servers]
    print(f"\nload average (1/5/15 min): start {loads[0]}, after cold starts {loads[1]}, end {loads[2]}; "
          f"{os.cpu_count()} CPUs\n")
    print("| measurement (ms) | goal | " + " | ".join(f"{n} median | {n} p95" for n in names) + " | n |")
    print("|---|---|" + "---|---|" * len(names) + "---|")
    for key, goal in GOALS.items():
        cells = []
        count = 0
        for name in names:
            values = samples[name].get(key, [])
            if values:
                median, p95, count = summary(values)
                cells += [f"{median:.0f}", f"{p95:.0f}"]
            else:
                cells += ["–", "–"]
        goal_text = "" if goal is None else (f"p95 < {goal}" if "keystroke" in key else f"≤ {goal}")
        print(f"| {key} | {goal_text} | " + " | ".join(cells) + f" | {count} |")
    for name, by_kind in cpu_samples.items():  # CPU ticks are 10 ms: the mean of many samples is what tells
        print(f"\n{name}: server CPU per keystroke, mean ms (/proc, 10 ms ticks): "
              + ", ".join(f"{kind} {statistics.mean(values):.1f}" for kind, values in by_kind.items()))
    for name in names:
        if bursts[name]:
            print(f"\n{name}: a burst of 10 changes validated {statistics.mean(bursts[name]):.1f} versions on average; "
                  f"the server's own timings (ms): {json.dumps(timings.get(name))}")
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "bursts": bursts, "load": loads, "timings": timings,
                                         "server_cpu_per_keystroke": cpu_samples},
                                        indent=1))


if __name__ == "__main__":
    main()
