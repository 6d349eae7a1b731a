#!/usr/bin/env python
"""Fuzz benchmark: one language-server process, 10,000 random edits and 2,000 requests over a raw stdio
connection, with hostile input mixed in (alias bombs, deep nesting, a config that is /dev/zero, broken frames,
parameters of the wrong type).

Reports: crashes (the process ended, or a feature raised: an "Error in ..." log message or a -32603
answer), requests without an answer, request latency (p50/p95/p99/max, ms: request written → answer read),
and the server's RSS before and after. Targets: 0 crashes, 0 unanswered, p99 < 100 ms, max < 1 s, RSS growth
< 50 MB. A benchmark measures and never fails: it prints the figures and whether the targets were met.

    .venv/bin/python bench/lsp_fuzz.py
    .venv/bin/python bench/lsp_fuzz.py --edits 2000 --requests 400 --json /tmp/lsp_fuzz.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from modelmill.testing.jsonrpc import BROKEN, JsonRpcClient, NoReply, frame

ROOT = Path(__file__).resolve().parent.parent
ALPHABET = '{}[]:,"\' \n\t-#abcTy01.é😀\\&*'
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
HOSTILE = {"json": ['{"passes": ' + "[" * 10_000 + "]" * 10_000 + "}", '{"passes": ' + "[{" * 3_000],
           "yaml": [BOMB + "passes: {}\n", "passes: " + "[" * 5_000]}


def answered(client: JsonRpcClient, message_id: Any, timeout: float) -> bool:
    try:
        client.reply(message_id, timeout)
    except NoReply:
        return False
    return True


def mutate(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text) + 1)
    if rng.random() < 0.5:
        return text[:at] + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 4))) + text[at:]
    if rng.random() < 0.05:
        return text[:at]
    return text[:at] + text[at + rng.randint(1, 8):]


def percentile(ordered: list[float], share: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))], 2) if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as unanswered")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    data = ROOT / "tests" / "config" / "data"
    bases = {"json": (data / "tutorial_config.json").read_text(), "yaml": (data / "tutorial_config.yaml").read_text()}
    workspace = Path(tempfile.mkdtemp(prefix="lsp_fuzz_"))
    (workspace / "zero.json").symlink_to("/dev/zero")
    (workspace / "bomb.yaml").write_text(BOMB)
    client = JsonRpcClient(workspace, capture_stderr=False)

    def request(method: str, params: Any) -> int:
        return client.send_request(method, params)[1]

    first = request("initialize", {"processId": os.getpid(), "rootUri": workspace.as_uri(), "capabilities": {},
                                   "initializationOptions": {"settings": {"diagnosticsDelayMs": 50}}})
    answered(client, first, 30)
    client.send(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    docs = {}
    for fmt, text in bases.items():
        uri = (workspace / f"olive_config.{fmt}").as_uri()
        docs[uri] = [fmt, text, 1]
        client.send(frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": fmt, "version": 1, "text": text}}}))
    for uri in docs:  # warm up (schema index, checks) before measuring
        answered(client, request("textDocument/hover", {"textDocument": {"uri": uri},
                                                        "position": {"line": 1, "character": 3}}), 30)
    time.sleep(1.0)
    rss_before = client.rss_mb()

    latencies: list[float] = []
    unanswered: list[tuple[int, str]] = []
    internal_errors = 0
    kinds: dict[str, int] = {}
    slowest: list[tuple[float, str, str]] = []
    every = max(args.edits // max(args.requests, 1), 1)
    started = time.perf_counter()
    sent_requests = 0
    for step in range(args.edits):
        uri = rng.choice(list(docs))
        fmt, text, version = docs[uri]
        roll = rng.random()
        text = (bases[fmt] if roll < 0.08 else rng.choice(HOSTILE[fmt]) if roll < 0.1 else mutate(rng, text))
        docs[uri] = [fmt, text, version + 1]
        client.send(frame({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": version + 1}, "contentChanges": [{"text": text}]}}))
        if step % every or sent_requests >= args.requests:
            continue
        sent_requests += 1
        lines = text.split("\n")
        line = rng.randrange(len(lines))
        position = {"line": line, "character": rng.randint(0, len(lines[line]))}
        document = {"uri": uri}
        roll = rng.random()
        if roll < 0.03:  # a broken frame, then an ordinary request that must still be answered
            client.send(rng.choice(list(BROKEN.values()))({"jsonrpc": "2.0", "id": f"broken{step}",
                                                           "method": "textDocument/hover", "params": {}}))
            kind, method, params = "after broken frame", "textDocument/hover", {"textDocument": document,
                                                                                  "position": position}
        elif roll < 0.06:
            kind, method, params = "wrong params", rng.choice(["textDocument/hover", "textDocument/completion"]), \
                rng.choice([{"textDocument": {"uri": 5}, "position": {"line": "x"}}, [1, 2], "text", None])
        elif roll < 0.08:
            kind, method = "command on hostile file", "workspace/executeCommand"
            params = {"command": rng.choice(["modelmill.validate", "modelmill.plan"]),
                      "arguments": [{"uri": (workspace / rng.choice(["zero.json", "bomb.yaml"])).as_uri()}]}
        else:
            kind, method = rng.choice([("completion", "textDocument/completion"), ("hover", "textDocument/hover"),
                                       ("completion", "textDocument/completion"),
                                       ("symbols", "textDocument/documentSymbol")])
            params = {"textDocument": document, "position": position} if kind != "symbols" else {
                "textDocument": document}
        kinds[kind] = kinds.get(kind, 0) + 1
        sent = time.perf_counter()
        message_id = request(method, params)
        if not answered(client, message_id, args.timeout):
            unanswered.append((message_id, kind))
            if client.process.poll() is not None:
                break
            continue
        answered_at, answer = client.answered_at[message_id], client.responses[message_id]
        latencies.append((answered_at - sent) * 1000)
        slowest.append(((answered_at - sent) * 1000, kind, method))
        if answer.get("error", {}).get("code") == -32603:
            internal_errors += 1
    elapsed = time.perf_counter() - started
    time.sleep(1.0)
    alive = client.process.poll() is None
    rss_after = client.rss_mb() if alive else float("nan")
    logs = client.logged()
    feature_errors = [log["message"] for log in logs if log.get("type") == 1 and "Error in" in log["message"]]
    framing_reports = sum(1 for log in logs if "malformed message" in log.get("message", ""))
    if alive:
        shutdown = request("shutdown", None)
        answered(client, shutdown, 10)
        client.send(frame({"jsonrpc": "2.0", "method": "exit"}))
        exit_code = client.process.wait(10)
    else:
        exit_code = client.process.returncode
    ordered = sorted(latencies)
    result = {
        "edits": step + 1, "requests": sent_requests, "request_kinds": kinds, "seconds": round(elapsed, 1),
        "crashes": (0 if alive and exit_code == 0 else 1) + len(feature_errors) + internal_errors,
        "server_alive": alive, "exit_code": exit_code, "feature_errors": feature_errors[:5],
        "internal_errors": internal_errors, "unanswered": len(unanswered), "framing_reports": framing_reports,
        "latency_ms": {"p50": percentile(ordered, 0.5), "p95": percentile(ordered, 0.95),
                       "p99": percentile(ordered, 0.99), "max": round(ordered[-1], 2) if ordered else 0.0},
        "slowest": [f"{ms:.0f} ms {kind} ({method})" for ms, kind, method in sorted(slowest, reverse=True)[:5]],
        "rss_mb": {"before": round(rss_before, 1), "after": round(rss_after, 1),
                   "growth": round(rss_after - rss_before, 1)},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = (result["crashes"] == 0 and result["unanswered"] == 0 and result["latency_ms"]["p99"] < 100
          and result["latency_ms"]["max"] < 1000 and result["rss_mb"]["growth"] < 50)
    print("targets met" if ok else "TARGETS MISSED", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
