#!/usr/bin/env python
"""Benchmark: the language server's latencies, seen by a real LSP client over stdio (pytest-lsp's client,
which is pygls's), with the server started as `python -m modelmill lsp`.

Measures (p50 / p95 / max, milliseconds):

* ``initialize``: process start → the ``initialize`` reply (a raw client writing the request at once;
  the server answers before pygls has loaded), and process start → first diagnostics of an opened config
  (everything loaded);
* diagnostics after a ``didChange`` of a 1,000-line JSON config (and a 1,000-line YAML one):
  end to end with a 200 ms debounce (the default before issue 17), and from the moment validation starts (debounce 0:
  parse + checks + conversion + transport), for edits that keep the JSON valid (typing in a value) and
  edits that break it (typing a new key: the tolerant parser's path); the server's own timings too;
* completion and hover on that document (a key inside a pass, a value, a top-level key);
* the same completion and hover while runs go (ModelBuilder int4 runs of a tiny Llama, restarted with
  new parameters so that they are not cached);
* engine event → client notification: the event's ``ts`` (stamped by the run's worker) to its arrival.

A benchmark measures; it never fails on times. It prints a Markdown table and, with ``--json PATH``,
writes every number.

    .venv/bin/python bench/lsp_latency.py
    .venv/bin/python bench/lsp_latency.py --samples 200 --json /tmp/lsp_latency.json
    .venv/bin/python bench/lsp_latency.py --no-runs      # skip the runs part (no torch needed)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from modelmill.testing.jsonrpc import frame, read_message

SERVER = [sys.executable, "-m", "modelmill", "lsp"]


# ------------------------------------------------------------------ helpers


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 2),
            "p95": round(ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))], 2),
            "max": round(ordered[-1], 2)}


def big_config(lines: int = 1000) -> dict[str, Any]:
    """A realistic workflow config of about ``lines`` lines when pretty-printed."""
    config: dict[str, Any] = {
        "input_model": {"type": "HfModel", "model_path": "model", "task": "text-generation"},
        "systems": {"local_system": {"type": "LocalSystem", "accelerators": [
            {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}},
        "data_configs": [], "evaluators": {},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": 32},
                   "peephole": {"type": "OnnxPeepholeOptimizer"}},
        "evaluator": "eval_0", "target": "local_system", "output_dir": "out", "cache_dir": "cache"}
    index = 0
    while json.dumps(config, indent=2).count("\n") < lines:
        config["evaluators"][f"eval_{index}"] = {"metrics": [
            {"name": "latency", "type": "latency", "data_config": f"data_{index}",
             "sub_types": [{"name": "avg", "priority": 1, "goal": {"type": "max-degradation", "value": 0.1}},
                           {"name": "p90"}]},
            {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]}]}
        config["data_configs"].append({"name": f"data_{index}", "type": "HuggingfaceContainer",
                                       "load_dataset_config": {"data_name": "glue", "split": "validation"}})
        index += 1
    return config


def position_of(text: str, needle: str, offset: int = 0) -> tuple[int, int]:
    index = text.index(needle) + offset
    return text.count("\n", 0, index), index - (text.rfind("\n", 0, index) + 1)


def make_tiny_llama(folder: Path) -> Path:
    """The tests' tiny Llama (2 layers, hidden 64) with a BPE tokenizer, built locally."""
    from modelmill.testing.tiny_models import build_tiny_llama

    return build_tiny_llama(folder)


# ------------------------------------------------------------------ initialize


def _read(stream: Any) -> dict[str, Any]:
    message = read_message(stream)
    if message is None:
        raise RuntimeError("server closed the stream")
    return message


def measure_initialize(repeats: int, workspace: Path, text: str) -> dict[str, list[float]]:
    """Process start → initialize reply, and → first diagnostics of an opened document."""
    init, ready = [], []
    uri = (workspace / "big.json").as_uri()
    for _ in range(repeats):
        started = time.perf_counter()
        process = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        process.stdin.write(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "processId": os.getpid(), "rootUri": workspace.as_uri(), "capabilities": {},
            "initializationOptions": {"settings": {"diagnosticsDelayMs": 0}}}}))
        process.stdin.flush()
        _read(process.stdout)
        init.append((time.perf_counter() - started) * 1000)
        process.stdin.write(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        process.stdin.write(frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
            "textDocument": {"uri": uri, "languageId": "json", "version": 1, "text": text}}}))
        process.stdin.flush()
        while True:
            message = _read(process.stdout)
            if message.get("method") == "textDocument/publishDiagnostics":
                break
        ready.append((time.perf_counter() - started) * 1000)
        process.stdin.write(frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
        process.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
        process.stdin.flush()
        process.wait(30)
    return {"initialize reply": init, "first diagnostics (server loaded)": ready}


# ------------------------------------------------------------------ a session


class Session:
    def __init__(self, workspace: Path, delay_ms: int) -> None:
        self.workspace = workspace
        self.delay_ms = delay_ms
        self.published: dict[tuple[str, int | None], float] = {}
        self.event_lags: list[float] = []
        self.finished: set[str] = set()

    async def start(self) -> None:
        from lsprotocol import types
        from pygls.protocol import default_converter
        from pytest_lsp import LanguageClient, client_capabilities
        from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

        client = LanguageClient(converter_factory=default_converter)
        features = dict(DEFAULT_CLIENT_FEATURES)

        def publish(ls: Any, params: types.PublishDiagnosticsParams) -> None:
            self.published[(params.uri, params.version)] = time.perf_counter()

        def run_event(ls: Any, params: Any) -> None:
            event = params._asdict() if hasattr(params, "_asdict") else dict(params)
            self.event_lags.append((time.time() - float(event["ts"])) * 1000)
            if event.get("type") == "run.finished":
                self.finished.add(event["run_id"])

        features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish
        features["modelmill/runEvent"] = run_event
        register_lsp_features(client, features)
        client.set_configuration({"diagnosticsDelayMs": self.delay_ms}, section="modelmill")
        await client.start_io(*SERVER)
        await client.initialize_session(types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"), root_uri=self.workspace.as_uri(),
            client_info=types.ClientInfo(name="Visual Studio Code"),
            initialization_options={"trusted": True, "settings": {"diagnosticsDelayMs": self.delay_ms}}))
        self.client = client
        self.types = types

    async def stop(self) -> None:
        await self.client.shutdown_session()
        await self.client.stop()

    def open(self, uri: str, text: str, language: str) -> None:
        types = self.types
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)))

    async def change(self, uri: str, text: str, version: int) -> float:
        """didChange → diagnostics for that version, in ms."""
        types = self.types
        started = time.perf_counter()
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
        while (uri, version) not in self.published:
            await asyncio.sleep(0.0005)
        return (self.published[(uri, version)] - started) * 1000

    async def wait_published(self, uri: str, version: int) -> None:
        while (uri, version) not in self.published:
            await asyncio.sleep(0.005)

    async def timed(self, request: Callable[[], Any]) -> float:
        started = time.perf_counter()
        await request()
        return (time.perf_counter() - started) * 1000

    async def completion(self, uri: str, line: int, character: int) -> float:
        types = self.types
        return await self.timed(lambda: self.client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=character))))

    async def hover(self, uri: str, line: int, character: int) -> float:
        types = self.types
        return await self.timed(lambda: self.client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=character))))

    async def command(self, name: str, **argument: Any) -> Any:
        types = self.types
        return await self.client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=name, arguments=[argument]))


async def measure_diagnostics(workspace: Path, json_text: str, yaml_text: str, samples: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for delay, label in ((200, "debounce 200 ms, end to end"), (0, "from validation start (debounce 0)")):
        session = Session(workspace, delay)
        await session.start()
        for fmt, text in (("json", json_text), ("yaml", yaml_text)):
            uri = (workspace / f"big_{delay}.{fmt}").as_uri()
            session.open(uri, text, fmt)
            await session.wait_published(uri, 1)
            typing, breaking = [], []
            version = 1
            needle = '"model_path": "model"' if fmt == "json" else "model_path: model"
            for index in range(samples):
                version += 1
                # typing in a value: the document stays valid
                typing.append(await session.change(uri, text.replace(needle, needle[:-1] + f"{index % 10}\"" if fmt == "json"
                                                   else needle + str(index % 10), 1), version))
                if fmt == "json" and index % 2 == 0:
                    version += 1  # typing a new key: the document is broken until it is complete
                    broken = text.replace('"output_dir": "out",', f'"output_dir": "out",\n  "ou{index % 10}', 1)
                    breaking.append(await session.change(uri, broken, version))
            results[f"diagnostics, {fmt} 1,000 lines, valid edit — {label}"] = typing
            if breaking:
                results[f"diagnostics, json 1,000 lines, broken edit — {label}"] = breaking
        info = await session.command("modelmill.debugInfo")
        results[f"server: validate_document ms ({label})"] = info["timings"]["validate_ms"]
        results[f"server: validation start → published ms ({label})"] = info["timings"]["publish_ms"]
        await session.stop()
    return results


async def measure_requests(session: Session, uri: str, text: str, samples: int, label: str) -> dict[str, list[float]]:
    spots = {
        "completion: key inside a pass": position_of(text, '"int4_block_size"', 1),
        "completion: value (pass type)": position_of(text, '"ModelBuilder"', 1),
        "completion: top-level key": (1, 2),
        "hover: pass type": position_of(text, '"ModelBuilder"', 3),
        "hover: parameter": position_of(text, '"int4_block_size"', 3),
    }
    results: dict[str, list[float]] = {f"{name}{label}": [] for name in spots}
    for _ in range(samples):
        for name, (line, character) in spots.items():
            call = session.completion if name.startswith("completion") else session.hover
            results[f"{name}{label}"].append(await call(uri, line, character))
    return results


async def measure_while_running(workspace: Path, text: str, samples: int, model: Path) -> dict[str, Any]:
    session = Session(workspace, 200)
    await session.start()
    uri = (workspace / "requests.json").as_uri()
    session.open(uri, text, "json")
    await session.wait_published(uri, 1)
    idle = await measure_requests(session, uri, text, samples, "")
    run_ids: list[str] = []
    block_sizes = iter([16, 32, 64, 128, 256, 16, 32, 64, 128, 256])
    accuracy = 0

    async def start_run() -> None:
        nonlocal accuracy
        block = next(block_sizes, 32)
        accuracy = (accuracy + 1) % 5
        config = {"input_model": {"type": "HfModel", "model_path": str(model)},
                  "passes": {"builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": block,
                                         "int4_accuracy_level": accuracy}},
                  "output_dir": f"run-out-{len(run_ids)}", "cache_dir": str(workspace / f"run-cache-{len(run_ids)}")}
        path = workspace / f"run_{len(run_ids)}.json"
        path.write_text(json.dumps(config, indent=2))
        run_ids.append((await session.command("modelmill.optimize", uri=path.as_uri()))["runId"])

    await start_run()
    busy: dict[str, list[float]] = {}
    for _ in range(samples):
        if run_ids[-1] in session.finished:
            await start_run()
        for name, values in (await measure_requests(session, uri, text, 1, " — while a run goes")).items():
            busy.setdefault(name, []).extend(values)
    while run_ids[-1] not in session.finished or len(run_ids) < 3:  # at least 3 runs' events for the lag
        if run_ids[-1] in session.finished:
            await start_run()
        await asyncio.sleep(0.1)
    runs = len(run_ids)
    lags = list(session.event_lags)
    await session.stop()
    return {**idle, **busy, "engine event → client notification": lags, "_runs": runs}


# ------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100, help="samples per measurement (default 100)")
    parser.add_argument("--starts", type=int, default=5, help="process starts for the initialize numbers")
    parser.add_argument("--no-runs", action="store_true", help="skip the measurements while runs go")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write every number as JSON")
    args = parser.parse_args()

    import yaml

    workspace = Path(tempfile.mkdtemp(prefix="lsp_bench_"))
    (workspace / "model").mkdir()
    (workspace / "model" / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"],
                                                                 "model_type": "llama"}))
    config = big_config()
    json_text = json.dumps(config, indent=2) + "\n"
    yaml_text = yaml.safe_dump(config, sort_keys=False)
    yaml_lines = yaml_text.count("\n")
    while yaml_lines < 1000:  # YAML is more compact: grow it to 1,000 lines as well
        config = big_config(int(1000 * 1000 / max(yaml_lines, 1)) + 50)
        yaml_text = yaml.safe_dump(config, sort_keys=False)
        yaml_lines = yaml_text.count("\n")
    load_before = os.getloadavg()
    raw: dict[str, Any] = {}
    note("initialize")
    raw.update(measure_initialize(args.starts, workspace, json_text))
    note("diagnostics")
    raw.update(asyncio.run(measure_diagnostics(workspace, json_text, yaml_text, args.samples)))
    note("requests")
    if args.no_runs:
        async def idle_only() -> dict[str, Any]:
            session = Session(workspace, 200)
            await session.start()
            uri = (workspace / "requests.json").as_uri()
            session.open(uri, json_text, "json")
            await session.wait_published(uri, 1)
            result = await measure_requests(session, uri, json_text, args.samples, "")
            await session.stop()
            return result
        raw.update(asyncio.run(idle_only()))
    else:
        model = make_tiny_llama(workspace / "tiny_llama")
        raw.update(asyncio.run(measure_while_running(workspace, json_text, args.samples, model)))
    runs = raw.pop("_runs", 0)
    load_after = os.getloadavg()

    print(f"# ModelMill language server latency ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} → {load_after[0]:.1f}; "
          f"JSON config {json_text.count(chr(10))} lines, YAML {yaml_text.count(chr(10))} lines"
          + (f"; {runs} runs during the 'while a run goes' rows" if runs else "") + ")\n")
    print("| measurement | n | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    table = {}
    for name, values in raw.items():
        stats = values if isinstance(values, dict) else summary(values)
        table[name] = stats
        if stats.get("n", stats.get("count", 0)):
            n = stats.get("n", stats.get("count"))
            print(f"| {name} | {n} | {stats['p50']} | {stats['p95']} | {stats['max']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": table, "samples": {k: v for k, v in raw.items()
                                                                              if isinstance(v, list)},
                                               "load": [load_before, load_after]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
