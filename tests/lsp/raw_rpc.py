"""A raw JSON-RPC client for the language server: writes any bytes (broken framing included) and collects
every message the server sends, so that tests can check that each request got an answer."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from typing import Any, Callable

from lsp_helpers import SERVER_COMMAND


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


class RawServer:
    """``python -m modelmill lsp`` on pipes; ``responses`` maps id → reply, ``notifications`` keeps the rest."""

    def __init__(self, root: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(SERVER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, cwd=root, env={**os.environ, **(env or {})})
        self.responses: dict[Any, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.arrived: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(iter(self.process.stderr.readline, b"")),
                         daemon=True).start()
        self.next_id = 1000

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = 0
            while True:
                line = stream.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                if line == b"\r\n":
                    break
            message = json.loads(stream.read(length))
            if "id" in message and "method" not in message:
                self.responses[message["id"]] = message
            else:
                self.notifications.append(message)
            self.arrived.put(message)

    def send(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def request(self, method: str, params: Any = None, wait: float = 20) -> dict[str, Any]:
        self.next_id += 1
        message_id = self.next_id
        self.send(frame({"jsonrpc": "2.0", "id": message_id, "method": method, "params": params}))
        return self.reply(message_id, wait)

    def notify(self, method: str, params: Any) -> None:
        self.send(frame({"jsonrpc": "2.0", "method": method, "params": params}))

    def reply(self, message_id: Any, wait: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + wait
        while message_id not in self.responses:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited ({self.process.returncode}): "
                                     f"{b''.join(self.stderr[-20:]).decode(errors='replace')}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer to request {message_id!r} in {wait} s")
            try:
                self.arrived.get(timeout=0.05)
            except queue.Empty:
                pass
        return self.responses[message_id]

    def initialize(self, root_uri: str) -> None:
        self.request("initialize", {"processId": None, "rootUri": root_uri, "capabilities": {},
                                    "initializationOptions": {"settings": {"diagnosticsDelayMs": 0}}})
        self.notify("initialized", {})

    def close(self) -> int | None:
        try:
            self.request("shutdown", None, wait=10)
            self.notify("exit", None)
            return self.process.wait(10)
        except Exception:  # noqa: BLE001 - the test has failed already; just end the process
            self.process.kill()
            self.process.wait(10)
            return None
        finally:
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                stream.close()
