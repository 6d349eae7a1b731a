"""``modelmill lsp`` / ``python -m modelmill.lsp``: start the server, answering ``initialize`` and sending the first
diagnostics before pygls has loaded.

Importing pygls and lsprotocol takes about half a second of CPU (lsprotocol builds ~570 attrs classes), the
config layer about a third. So over stdio a thread reads stdin (``_Feed``) and the launcher serves the first
messages itself (``early.EarlySession``): ``initialize`` is answered at once from the precomputed capabilities
(``modelmill.lsp.capabilities``, checked against pygls's own answer by a test) and the ``didOpen`` of a config is
validated and its diagnostics sent, while one loader thread imports what validation needs and then, once those
diagnostics are out, the server; meanwhile completions and hovers on that document are answered early too. The
first message the early session does not serve (or the server having loaded) ends it: every byte read is replayed
into pygls (so it sets up the session as usual), pygls's duplicate ``initialize`` reply is dropped, the requests
answered early are skipped, and the server adopts what was validated. Nothing heavy (torch, onnxruntime,
transformers) is imported on this path at all.

The protocol runs on private copies of the stdin/stdout descriptors; descriptors 0 and 1 become
/dev/null and stderr, so a child process or a C library printing to stdout can never corrupt the
stream. ``--tcp PORT`` serves one client over TCP instead (for debugging; no fast path).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import queue
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


GO_AFTER_S = 0.25
"""How long the loader waits for a first ``didOpen`` to validate before it imports pygls anyway."""


def _import_server() -> None:
    try:
        from modelmill.lsp.codecache import attrs_code_cache

        with attrs_code_cache():  # lsprotocol's ~570 attrs classes: their generated methods come from a cache
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


class _Loader(threading.Thread):
    """Imports what the first validation needs, then (after the first diagnostics, ``go``) what the first completion
    and hover need, then pygls and the server.

    One thread, in that order: two importing threads would share one interpreter lock and slow each other."""

    def __init__(self, early: bool) -> None:
        super().__init__(name="modelmill-lsp-import", daemon=True)
        self.early = early
        self.validation_ready = threading.Event()
        self.go = threading.Event()
        self.server_ready = threading.Event()

    def run(self) -> None:
        if self.early:
            try:
                from modelmill.lsp.early import prepare_validation

                prepare_validation()
            except BaseException:  # noqa: BLE001, S110 - the server meets (and reports) the same error later
                pass
            finally:
                self.validation_ready.set()
            self.go.wait(GO_AFTER_S)
            try:  # what the first completion and hover need, which the early session answers while pygls loads
                from modelmill.lsp.early import prepare_requests

                prepare_requests()
            except BaseException:  # noqa: BLE001, S110 - the request meets (and reports) the same error later
                pass
        _import_server()
        self.server_ready.set()


def run_stdio(fast: bool = True) -> None:
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin: BinaryIO = os.fdopen(in_fd, "rb")
    stdout: BinaryIO = os.fdopen(out_fd, "wb")
    # Start-up creates ~1,000 classes and validators and little garbage: the cyclic collector would walk them again
    # and again (about a tenth of the CPU time to a loaded server). It is off until the server is loaded; what exists
    # then is frozen (as the warm-up does later), so that no first collection walks it all during the first request.
    collecting = gc.isenabled()
    gc.disable()
    try:
        loader = _Loader(early=fast)
        loader.start()
        feed = _Feed(stdin)
        prefix, init_id, adopted = b"", None, None
        if fast:
            from modelmill.lsp.early import EarlySession

            session = EarlySession(stdout, loader.validation_ready)
            prefix = serve_early(session, feed, loader)
            init_id, adopted = session.init_id, session.adopted
        loader.go.set()
        loader.join()
        server = _load()
        if adopted is not None:
            server.adopt(adopted)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    server.start_io(_Replay(prefix, feed), _DropReply(stdout, init_id))


class _HandOver(Exception):
    """The server has loaded while the early session waited for a message."""


def serve_early(session: Any, feed: _Feed, loader: _Loader) -> bytes:
    """Serve the first messages with ``session`` (``early.EarlySession``) until one it does not serve, the end of
    the stream, or the server having loaded; returns every byte read, for the replay into pygls.

    Frames are read with the server's framing rules (``framing.FrameReader``: bounded, resynchronising); a frame
    with a problem ends the early session, so it is reported and recovered from as a later one would be."""
    from modelmill.lsp.framing import MAX_MESSAGE_BYTES, FrameReader

    raw = bytearray()

    def read(size: int) -> bytes:
        while True:
            # with requests left to pygls, look at the loader more often: they are answered once it is ready
            chunk = feed.get(timeout=0.01 if getattr(session, "deferred", 0) else 0.05)
            if chunk is not None:
                raw.extend(chunk)
                return chunk
            if loader.server_ready.is_set():
                raise _HandOver

    reader = FrameReader(read)
    first = True
    try:
        while True:
            frame = reader.next()
            if frame is None or frame.body is None or frame.problem:
                break
            try:
                message = json.loads(frame.body)
            except (ValueError, RecursionError):
                break
            served = session.initialize(message) if first else session.handle(message)
            first = False
            if not served:
                break
            if isinstance(message, dict) and message.get("method") == "textDocument/didOpen":
                loader.go.set()  # the first diagnostics are out: load the rest now
            # Every byte read waits here for the replay: hand over once pygls is ready or the bytes reach one
            # message's limit, even while a client keeps sending notifications the early session serves.
            if loader.server_ready.is_set() or len(raw) > MAX_MESSAGE_BYTES:
                break
    except _HandOver:
        pass
    return bytes(raw)


class _Feed:
    """stdin, read on a thread into a short queue: the early session, then pygls (``read1``), read from it.

    A blocked read of stdin cannot be interrupted, so one thread owns it for the whole session."""

    def __init__(self, stream: BinaryIO) -> None:
        self.chunks: queue.Queue[bytes] = queue.Queue(maxsize=16)  # bounded: a fast client waits, as on a pipe
        self.pending = b""
        self.eof = False
        self.stream = stream
        threading.Thread(target=self._run, name="modelmill-lsp-stdin", daemon=True).start()

    def _run(self) -> None:
        read = getattr(self.stream, "read1", None) or self.stream.read
        while True:
            try:
                chunk = read(64 * 1024)
            except (OSError, ValueError):  # closed
                chunk = b""
            self.chunks.put(chunk)
            if not chunk:
                return

    def get(self, timeout: float) -> bytes | None:
        """The next chunk (b"" at the end), or None when none came within ``timeout`` seconds."""
        if self.eof:
            return b""
        try:
            chunk = self.chunks.get(timeout=timeout)
        except queue.Empty:
            return None
        self.eof = not chunk  # the end is handed out once: read1 must not wait for more after it
        return chunk

    def read1(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes, at least one unless at the end of the stream (blocks)."""
        if not self.pending:
            if self.eof:
                return b""
            self.pending = self.chunks.get()
            if not self.pending:
                self.eof = True
                return b""
        size = len(self.pending) if size < 0 else size
        chunk, self.pending = self.pending[:size], self.pending[size:]
        return chunk


class _Replay:
    """The input with the bytes the early session read put back in front."""

    def __init__(self, prefix: bytes, stream: _Feed) -> None:
        self.prefix = prefix
        self.stream = stream

    def read1(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes: the replayed ones first, then what the stream has."""
        if self.prefix:
            size = len(self.prefix) if size < 0 else size
            chunk, self.prefix = self.prefix[:size], self.prefix[size:]
            return chunk
        return self.stream.read1(size)


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
