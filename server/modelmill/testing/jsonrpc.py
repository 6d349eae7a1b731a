"""A raw JSON-RPC client for the language server over a process's pipes: writes any bytes (broken framing
included), reads every message the server sends on a thread, with its arrival time.

This client is deliberately independent of the server: standard library only, nothing from ``modelmill``,
pygls or lsprotocol, and in particular not the server's framing code (``modelmill.lsp.framing``,
``modelmill.lsp.launch``). A framing bug on the server's side must show up here, not be shared by both ends
(bench/lsp_raw_latency.py relies on that; tests/test_testing_package.py checks the imports).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

SERVER_COMMAND = [sys.executable, "-m", "modelmill", "lsp"]
FAST_DIAGNOSTICS: Mapping[str, Any] = {"diagnosticsDelayMs": 0}


def frame(message: dict[str, Any] | bytes, length: Any = None, name: bytes = b"Content-Length") -> bytes:
    """A message with its header; ``length`` overrides the Content-Length value (any bytes or number)."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    value = str(len(body) if length is None else length).encode()
    return name + b": " + value + b"\r\n\r\n" + body


# framing error → the bytes of a broken frame of a message
BROKEN: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "too small": lambda m: frame(m, 10),
    "too large": lambda m: frame(m, len(json.dumps(m)) + 40),
    "non-numeric": lambda m: frame(m, "abc"),
    "negative": lambda m: frame(m, -5),
    "lower-case name": lambda m: frame(m, name=b"content-length"),
    "over the limit": lambda m: frame(m, 10 ** 11),
    "no length": lambda m: b"Content-Type: x\r\n\r\n" + json.dumps(m).encode(),
    "junk first": lambda m: b"\x00garbage\r\nmore junk\r\n\r\n" + frame(m),
    "not json": lambda m: frame(json.dumps(m).encode()[:50]),
}


def read_message(stream: IO[bytes], skipped: list[bytes] | None = None) -> dict[str, Any] | None:
    """The next message on ``stream`` (None at its end). Lines before a header that are not part of it (e.g.
    ``-X importtime`` output on a merged stderr) are skipped, and appended to ``skipped`` when given."""
    length = 0
    while True:
        line = stream.readline()
        if not line:
            return None
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        elif line == b"\r\n":
            return json.loads(stream.read(length))
        elif skipped is not None:
            skipped.append(line)


class NoReply(AssertionError):
    """A request was not answered: the server exited or the wait ran out."""


class JsonRpcClient:
    """``command`` (default: ``python -m modelmill lsp``) on pipes.

    ``responses`` maps id → reply and ``answered_at`` id → its arrival (``time.perf_counter()``); ``messages``
    keeps every message with its arrival, ``notifications`` every one that is not a reply; ``stderr`` the
    server's stderr lines (when ``capture_stderr``). With ``answer_server_requests`` a request from the server
    (e.g. ``workspace/configuration``) is answered with a null result.
    """

    def __init__(self, cwd: str | Path | None = None, env: dict[str, str] | None = None,
                 command: list[str] | None = None, capture_stderr: bool = True,
                 answer_server_requests: bool = False) -> None:
        self.started = time.perf_counter()
        self.process = subprocess.Popen(command or SERVER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE if capture_stderr else subprocess.DEVNULL,
                                        cwd=cwd, env={**os.environ, **(env or {})})
        self.answer_server_requests = answer_server_requests
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.responses: dict[Any, dict[str, Any]] = {}
        self.answered_at: dict[Any, float] = {}
        self.notifications: list[dict[str, Any]] = []
        self.stderr: list[bytes] = []
        self.ended = False  # the server's stdout reached its end
        self.next_id = 1000
        self._arrived = threading.Condition()
        self._send_lock = threading.Lock()
        self._cursor = 0  # next_message() looks at messages from here on
        threading.Thread(target=self._read, name="jsonrpc-read", daemon=True).start()
        if capture_stderr:
            threading.Thread(target=self._read_stderr, name="jsonrpc-stderr", daemon=True).start()

    # -------------------------------------------------------------- reading

    def _read(self) -> None:
        assert self.process.stdout is not None
        while True:
            try:
                message = read_message(self.process.stdout)
            except (OSError, ValueError):  # the pipe was closed under us
                message = None
            arrived = time.perf_counter()
            with self._arrived:
                if message is None:
                    self.ended = True
                    self._arrived.notify_all()
                    return
                self.messages.append((arrived, message))
                if "id" in message and "method" not in message:
                    self.responses[message["id"]] = message
                    self.answered_at[message["id"]] = arrived
                else:
                    self.notifications.append(message)
                self._arrived.notify_all()
            if self.answer_server_requests and "id" in message and "method" in message:
                self.send_message({"jsonrpc": "2.0", "id": message["id"], "result": None})

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        try:
            self.stderr.extend(iter(self.process.stderr.readline, b""))
        except (OSError, ValueError):
            pass

    def _gone(self) -> str:
        tail = b"".join(self.stderr[-20:]).decode(errors="replace")
        return f"the server exited ({self.process.poll()}){': ' + tail if tail else ''}"

    def reply(self, message_id: Any, wait: float = 20) -> dict[str, Any]:
        """The reply to request ``message_id``; NoReply when the server ends or ``wait`` seconds pass first."""
        deadline = time.monotonic() + wait
        with self._arrived:
            while message_id not in self.responses:
                if self.ended:
                    raise NoReply(f"no answer to request {message_id!r}: {self._gone()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NoReply(f"no answer to request {message_id!r} in {wait} s")
                self._arrived.wait(left)
            return self.responses[message_id]

    def next_message(self, match: Callable[[dict[str, Any]], bool],
                     wait: float = 60) -> tuple[float, dict[str, Any]]:
        """The first message after the last one this returned that ``match``es, with its arrival time (the
        messages in between are passed over, as when reading a queue)."""
        deadline = time.monotonic() + wait
        with self._arrived:
            while True:
                while self._cursor < len(self.messages):
                    arrived, message = self.messages[self._cursor]
                    self._cursor += 1
                    if match(message):
                        return arrived, message
                if self.ended:
                    raise NoReply(f"no matching message: {self._gone()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NoReply(f"no matching message in {wait} s")
                self._arrived.wait(left)

    def diagnostics(self, uri: str, version: int | None = None, wait: float = 60) -> tuple[float, dict[str, Any]]:
        """The next ``publishDiagnostics`` of ``uri`` (of ``version``, when given)."""
        return self.next_message(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                                 and m["params"]["uri"] == uri
                                 and (version is None or m["params"].get("version") == version), wait)

    def logged(self) -> list[dict[str, Any]]:
        """The params of every ``window/logMessage`` so far."""
        with self._arrived:
            return [m["params"] for m in self.notifications if m.get("method") == "window/logMessage"]

    # -------------------------------------------------------------- writing

    def send(self, data: bytes) -> float:
        """Write raw bytes; returns when they were written (``time.perf_counter()``)."""
        assert self.process.stdin is not None
        with self._send_lock:
            self.process.stdin.write(data)
            self.process.stdin.flush()
            return time.perf_counter()

    def send_message(self, message: dict[str, Any]) -> float:
        return self.send(frame(message))

    def send_request(self, method: str, params: Any = None) -> tuple[float, int]:
        """Send a request without waiting: (when it was written, its id)."""
        with self._send_lock:
            self.next_id += 1
            message_id = self.next_id
        return self.send_message({"jsonrpc": "2.0", "id": message_id, "method": method, "params": params}), message_id

    def request(self, method: str, params: Any = None, wait: float = 20) -> dict[str, Any]:
        return self.reply(self.send_request(method, params)[1], wait)

    def notify(self, method: str, params: Any = None) -> float:
        return self.send_message({"jsonrpc": "2.0", "method": method, "params": params})

    def initialize(self, root: Path | str, settings: Mapping[str, Any] | None = FAST_DIAGNOSTICS,
                   capabilities: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        """``initialize`` then ``initialized``; returns the reply. ``settings`` go in initializationOptions
        (None: no initializationOptions, the server's defaults); ``params`` add to or replace the others."""
        root_uri = root.as_uri() if isinstance(root, Path) else root
        message: dict[str, Any] = {"processId": None, "rootUri": root_uri, "capabilities": capabilities or {}}
        if settings is not None:
            message["initializationOptions"] = {"settings": dict(settings)}
        reply = self.request("initialize", {**message, **params}, wait=60)
        self.notify("initialized", {})
        return reply

    def open(self, uri: str, language: str, text: str, version: int = 1) -> float:
        return self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language,
                                                                     "version": version, "text": text}})

    def change(self, uri: str, version: int, text: str) -> float:
        return self.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                      "contentChanges": [{"text": text}]})

    # -------------------------------------------------------------- the process

    def rss_mb(self) -> float:
        """The server's resident memory (Linux), NaN where unknown."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def close(self, wait: float = 10) -> int | None:
        """``shutdown`` and ``exit``; the exit code, or None when the server had to be killed."""
        try:
            if self.process.poll() is None:
                self.request("shutdown", None, wait=wait)
                self.notify("exit", None)
            return self.process.wait(wait)
        except Exception:  # noqa: BLE001 - a test or bench has failed already: just end the process
            self.process.kill()
            self.process.wait(wait)
            return None
        finally:
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
