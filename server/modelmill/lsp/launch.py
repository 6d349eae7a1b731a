"""``modelmill lsp`` / ``python -m modelmill.lsp``: start the server, answering ``initialize`` fast.

Importing pygls and lsprotocol takes most of a second (lsprotocol builds ~600 attrs classes), and
the config layer more. So over stdio the process reads the client's first message itself while a
thread imports the server: when it is ``initialize``, it is answered at once from the precomputed
capabilities (``modelmill.lsp.capabilities``, checked against pygls's own answer by a test). When
the server is loaded, the same message is replayed into pygls (so it sets up the session as usual)
and pygls's duplicate reply is dropped. Nothing heavy (torch, onnxruntime, transformers) is imported
on this path at all.

The protocol runs on private copies of the stdin/stdout descriptors; descriptors 0 and 1 become
/dev/null and stderr, so a child process or a C library printing to stdout can never corrupt the
stream. ``--tcp PORT`` serves one client over TCP instead (for debugging; no fast path).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any, BinaryIO

_loaded: dict[str, Any] = {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``modelmill lsp`` (modelmill/commands/lsp.py) and ``python -m modelmill.lsp``."""
    parser.add_argument("--tcp", type=int, default=None, metavar="PORT", help="serve one client over TCP on PORT")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
    parser.add_argument("--no-fast-init", action="store_true", help="let pygls answer initialize (slower start)")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="modelmill lsp", description="ModelMill's language server")
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None, args: argparse.Namespace | None = None) -> int:
    args = args or build_parser().parse_args(argv)
    if args.tcp is not None:
        server = _load()
        server.start_tcp(args.host, args.tcp)
        return 0
    fast = not getattr(args, "no_fast_init", False) and os.environ.get("MODELMILL_LSP_FAST_INIT", "1") != "0"
    run_stdio(fast)
    return 0


def _import_server() -> None:
    try:
        from modelmill.lsp import server

        _loaded["module"] = server
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        _loaded["error"] = exc


def _load() -> Any:
    if "module" not in _loaded:
        _import_server()
    if "error" in _loaded:
        raise _loaded["error"]
    return _loaded["module"].create_server()


def run_stdio(fast: bool = True) -> None:
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin: BinaryIO = os.fdopen(in_fd, "rb")
    stdout: BinaryIO = os.fdopen(out_fd, "wb")
    loader = threading.Thread(target=_import_server, name="modelmill-lsp-import", daemon=True)
    loader.start()
    prefix, init_id = b"", None
    if fast:
        prefix, init_id = answer_initialize(stdin, stdout)
    loader.join()
    server = _load()
    server.start_io(_Replay(prefix, stdin), _DropReply(stdout, init_id))


def read_message(stream: BinaryIO) -> tuple[bytes, Any]:
    """One JSON-RPC message, read with the server's framing rules (``framing.FrameReader``: bounded,
    resynchronising): (every byte read so far, the parsed body or None).

    All the bytes read are replayed into the server, which frames them again, so a malformed first
    message is reported and recovered from exactly as a later one would be.
    """
    from modelmill.lsp.framing import FrameReader

    read_some = getattr(stream, "read1", None) or stream.read
    raw = bytearray()

    def read(size: int) -> bytes:
        chunk = read_some(size)
        raw.extend(chunk)
        return chunk

    frame = FrameReader(read).next()
    try:
        message = json.loads(frame.body) if frame is not None and frame.body is not None else None
    except (ValueError, RecursionError):
        message = None
    return bytes(raw), message


def answer_initialize(stdin: BinaryIO, stdout: BinaryIO) -> tuple[bytes, Any]:
    """Read the first message; answer it when it is ``initialize``. Returns (raw bytes, its id or None)."""
    raw, message = read_message(stdin)
    if not isinstance(message, dict) or message.get("method") != "initialize" or "id" not in message:
        return raw, None
    from modelmill.lsp.capabilities import initialize_result

    try:
        result = initialize_result(message.get("params") or {})
    except Exception:  # noqa: BLE001 - let pygls answer instead
        return raw, None
    body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
    stdout.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    stdout.flush()
    return raw, message["id"]


class _Replay:
    """stdin with the already-read first message put back in front."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self.prefix = prefix
        self.stream = stream

    def read1(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes: the replayed ones first, then what the stream has."""
        if self.prefix:
            size = len(self.prefix) if size < 0 else size
            chunk, self.prefix = self.prefix[:size], self.prefix[size:]
            return chunk
        return self.stream.read1(size)  # type: ignore[attr-defined]


class _DropReply:
    """stdout that swallows pygls's reply to the ``initialize`` request already answered."""

    def __init__(self, stream: BinaryIO, init_id: Any) -> None:
        self.stream = stream
        self.init_id = init_id
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        if self.init_id is not None:
            body = data.split(b"\r\n\r\n", 1)[-1]
            try:
                message = json.loads(body)
            except ValueError:
                message = None
            if isinstance(message, dict) and message.get("id") == self.init_id and "method" not in message:
                if "error" in message:  # pygls failed where the fast answer succeeded: say so
                    print(f"modelmill lsp: initialize failed after the fast answer: {message['error']}",
                          file=sys.stderr)
                self.init_id = None
                return
        with self.lock:
            self.stream.write(data)
            self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
