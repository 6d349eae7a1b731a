"""Reading JSON-RPC messages from the client robustly: bounded, resynchronising, every request answered.

pygls's own loop (``pygls.io_.run_async``) trusts the stream: a ``Content-Length`` of 10^11 is read
at once (MemoryError ends the server); a header it does not match exactly (lower case, non-numeric,
negative) or a length that is too small or too large leaves it reading the next messages as garbage
for good; and a request whose params do not fit the method's types is logged and never answered.
``serve`` replaces that loop (``ModelMillServer._start_io_async``) and keeps pygls's protocol object
for everything else:

- ``FrameReader`` splits the byte stream into message bodies. Header names are case-insensitive (as
  in HTTP). A bad frame is reported as a ``Frame`` with a ``problem`` and the reader resynchronises
  on the next ``Content-Length`` header; where it can, it salvages the message (the JSON body that
  sits between two headers) so that the request is still answered.
- ``dispatch`` answers a request that cannot be handled: -32700 for a body that is not JSON, -32600
  for JSON that is not a JSON-RPC message, -32602 for params of the wrong type.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pygls is imported late: launch reads the first message before it has loaded
    from pygls.exceptions import JsonRpcException

logger = logging.getLogger("modelmill.lsp")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest message read. A didOpen carries a whole file (a tokenizer.json can be 20 MB); a larger
Content-Length is a framing error, not an allocation."""

MAX_HEADER_BYTES = 8 * 1024
"""A header block is two short lines; more without the blank line that ends it is garbage."""

CHUNK = 64 * 1024

_HEADER_START = re.compile(rb"content-(?:length|type)[ \t]*:", re.I)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LENGTH = re.compile(rb"(?:^|\n)content-length[ \t]*:[ \t]*([^\r\n]*)", re.I)
_ID = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\\r\n]|\\.){0,200}")')
_KEEP = 64
"""Bytes kept from skipped junk, so that a header split across two reads is still found."""


@dataclass
class Frame:
    """One message body, or a dropped one (``body`` None); ``problem`` says what was wrong with the framing."""

    body: bytes | None
    problem: str | None = None
    request_id: int | str | None = None
    """The id of a dropped request, read from its first bytes, so that it can still be answered."""


def _is_json(data: bytes | bytearray) -> bool:
    try:
        return isinstance(json.loads(data), (dict, list))
    except (ValueError, RecursionError):
        return False


def _last_byte(data: bytearray) -> bytes:
    """The last byte that is not white space (without copying the buffer)."""
    index = len(data) - 1
    while index >= 0 and data[index] in b" \t\r\n":
        index -= 1
    return bytes(data[index:index + 1])


def guess_id(data: bytes | bytearray) -> int | str | None:
    """A request id found near the start of a (broken) message, or None."""
    match = _ID.search(data[:4096])
    if match is None:
        return None
    try:
        return json.loads(match.group(1))
    except ValueError:
        return None


class FrameReader:
    """Message bodies from ``read(n)``, which returns up to n bytes (at least one unless at EOF), like ``read1``."""

    def __init__(self, read: Callable[[int], bytes], max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._read = read
        self.max_bytes = max_bytes
        self.buffer = bytearray()
        self.eof = False
        self._skipping = False  # after a dropped frame: its rest is skipped without another report

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self._read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def next(self) -> Frame | None:
        """The next frame; None at the end of the stream."""
        problems: list[str] = []
        while True:
            start = _HEADER_START.search(self.buffer)
            if start is None:
                self._skip(max(len(self.buffer) - _KEEP, 0), problems)
                if not self._fill():
                    self._skip(len(self.buffer), problems)
                    return Frame(None, "; ".join(problems)) if problems else None
                continue
            self._skip(start.start(), problems)
            end = _HEADER_END.search(self.buffer)
            if end is None:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    problems.append(f"a message header longer than {MAX_HEADER_BYTES} bytes")
                    del self.buffer[:1]  # resynchronise on the next header
                    continue
                if not self._fill():
                    return Frame(None, "; ".join(problems + ["the stream ended inside a message header"]))
                continue
            header, after = bytes(self.buffer[:end.start()]), end.end()
            self._skipping = False
            length, problem = self._length(header)
            if problem is not None:
                return self._dropped(after, problems + [problem])
            frame = self._body(after, length, problems)
            if frame is not None or self.eof:
                return frame

    def _skip(self, count: int, problems: list[str]) -> None:
        if count <= 0:
            return
        if self.buffer[:count].strip() and not self._skipping:
            problems.append("skipped bytes that were not part of a message")
            self._skipping = True
        del self.buffer[:count]

    def _length(self, header: bytes) -> tuple[int, str | None]:
        match = _LENGTH.search(header)
        if match is None:
            return 0, "a message header without Content-Length"
        value = match.group(1).strip()
        if not value.isdigit():
            return 0, f"invalid Content-Length {value.decode('latin-1')[:40]!r} (expected a byte count)"
        length = int(value)
        if length > self.max_bytes:
            return 0, f"Content-Length {length:,} is larger than the {self.max_bytes:,}-byte limit"
        if length == 0:
            return 0, "Content-Length 0 (an empty message)"
        return length, None

    def _dropped(self, after: int, problems: list[str]) -> Frame:
        """After a header with no usable length: salvage the JSON body up to the next header, else drop it."""
        del self.buffer[:after]
        following = _HEADER_START.search(self.buffer)
        candidate = self.buffer[:following.start() if following else len(self.buffer)]
        if _is_json(candidate):
            body = bytes(candidate)
            del self.buffer[:len(candidate)]
            return Frame(body, "; ".join(problems + ["the message was read up to the next header"]))
        self._skipping = True
        return Frame(None, "; ".join(problems), guess_id(self.buffer))

    def _body(self, after: int, length: int, problems: list[str]) -> Frame | None:
        scanned = after
        while len(self.buffer) < after + length:
            # A declared length larger than the message: a new header inside the "body", after a whole
            # JSON message, or a whole JSON message with nothing more to read (safe: no proper prefix of
            # a JSON-RPC body is itself complete JSON).
            found = _HEADER_START.search(self.buffer, max(scanned - _KEEP, after))
            scanned = len(self.buffer)
            cut = found.start() if found is not None else None
            if cut is None and _last_byte(self.buffer) in (b"}", b"]"):
                cut = len(self.buffer)
            if cut is not None and _is_json(self.buffer[after:cut]):
                body = bytes(self.buffer[after:cut])
                del self.buffer[:cut]
                return Frame(body, "; ".join(problems + [f"Content-Length {length:,} is larger than the message "
                                                        f"({len(body):,} bytes)"]))
            if not self._fill():
                return Frame(None, "; ".join(problems + ["the stream ended inside a message"]))
        body = bytes(self.buffer[after:after + length])
        del self.buffer[:after + length]
        inner = _HEADER_START.search(body)
        if inner is not None and _is_json(body[:inner.start()]):
            # A declared length larger than the message, with the next message already read: put it back.
            self.buffer[:0] = body[inner.start():]
            body = body[:inner.start()]
            problems.append(f"Content-Length {length:,} is larger than the message ({len(body):,} bytes)")
            return Frame(body, "; ".join(problems))
        rest = self.buffer[:256].lstrip()
        if rest and not _HEADER_START.match(rest) and not _is_json(body):
            # A declared length smaller than the message: its rest is in front of the next header.
            following = _HEADER_START.search(self.buffer)
            cut = following.start() if following else len(self.buffer)
            if _is_json(body + self.buffer[:cut]):
                body += bytes(self.buffer[:cut])
                del self.buffer[:cut]
                problems.append(f"Content-Length {length:,} is smaller than the message ({len(body):,} bytes)")
        return Frame(body, "; ".join(problems) or None)


# --------------------------------------------------------------------------------------- dispatch


def dispatch(protocol: Any, body: bytes) -> None:
    """Hand one body to pygls's protocol; answer a request it would drop without a reply."""
    from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest, JsonRpcParseError

    try:
        message = json.loads(body, object_hook=protocol.structure_message)
    except JsonRpcException as exc:  # params that do not fit the method's types (-32602), from structure_message
        answer_error(protocol, body, _explained(exc))
        return
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deeply
        answer_error(protocol, body, JsonRpcParseError(f"the message is not valid JSON: {exc}"[:300]))
        return
    if not hasattr(message, "jsonrpc"):
        answer_error(protocol, body, JsonRpcInvalidRequest("not a JSON-RPC 2.0 message (an object with "
                                                           "\"jsonrpc\": \"2.0\" and \"method\")"))
        return
    method = getattr(message, "method", None)
    if getattr(protocol, "_shutdown", False) and hasattr(message, "id") and method not in (None, "exit"):
        answer_error(protocol, body, JsonRpcInvalidRequest("the server is shutting down"))
        return
    try:
        protocol.handle_message(message)
    except Exception:  # noqa: BLE001 - one bad message never ends the loop
        logger.exception("cannot handle a message")
        if hasattr(message, "id") and method is not None:
            answer_error(protocol, body, JsonRpcInvalidRequest("the server could not handle this message"))


def _explained(exc: JsonRpcException) -> JsonRpcException:
    """InvalidParams with what cattrs found wrong (e.g. "expected int @ $.params.position.line")."""
    from cattrs import transform_error

    cause = exc.__cause__
    if exc.code != -32602 or cause is None:
        return exc
    try:
        details = "; ".join(transform_error(cause, path="$"))  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - the plain error is still an answer
        return exc
    return type(exc)(f"invalid params: {details}"[:500])


def answer_error(protocol: Any, body: bytes, error: JsonRpcException, request_id: Any = None) -> None:
    """Send ``error`` as the answer to the request in ``body`` (found by its id); notifications are only logged."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        is_request = "method" in data and data.get("id") is not None
        request_id = data.get("id") if is_request else None
        if not is_request:
            logger.error("dropped a message: %s (%s)", error.message, data.get("method", "a response"))
            return
    else:
        request_id = request_id if request_id is not None else guess_id(body)
    if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
        request_id = None  # JSON-RPC: the id is null when it cannot be read
    logger.error("answered request %r with an error: %s", request_id, error.message)
    protocol._send_response(request_id, error=error.to_response_error())


# --------------------------------------------------------------------------------------- the loop


def _answered_before(body: bytes, answered: set[Any]) -> bool:
    """Is ``body`` a request whose id is in ``answered``? (It is then taken out: ids are skipped once.)"""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(message, dict) or "method" not in message:
        return False
    request_id = message.get("id")
    if isinstance(request_id, (int, str)) and not isinstance(request_id, bool) and request_id in answered:
        answered.discard(request_id)
        return True
    return False


READ_AHEAD = 16
"""Frames read from the client and not yet dispatched, at most (the reader waits beyond that)."""


async def serve(protocol: Any, read: Callable[[int], bytes], stop: threading.Event,
                report: Callable[[str], None], answered: set[Any] | None = None) -> None:
    """Read frames on a daemon thread (a blocked read never holds up exit) and dispatch them on the loop.

    ``answered``: ids of requests answered before pygls loaded (the launcher's early session, whose bytes are
    replayed here): each is skipped once, so that the client gets one answer.

    The reader reads ahead (up to ``READ_AHEAD`` frames not yet dispatched) without waiting for the loop, so
    that changes that arrive while the loop is busy (validating) are all dispatched together afterwards, and
    the validation they schedule is coalesced to the newest version."""
    from pygls.exceptions import JsonRpcInvalidRequest

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Frame | None] = asyncio.Queue()
    room = threading.BoundedSemaphore(READ_AHEAD)
    reader = FrameReader(read)

    def hand_over(frame: Frame | None) -> bool:
        room.acquire()
        try:
            loop.call_soon_threadsafe(queue.put_nowait, frame)
        except RuntimeError:  # the loop is closed
            return False
        return True

    def read_frames() -> None:
        while True:
            try:
                frame = reader.next()
            except Exception as exc:  # noqa: BLE001 - e.g. the descriptor was closed
                logger.exception("reading from the client failed")
                frame = Frame(None, f"reading from the client failed: {exc}")
                reader.eof = True
            if not hand_over(frame):
                return
            if frame is None or (reader.eof and frame.body is None):
                if frame is not None:
                    hand_over(None)
                return

    threading.Thread(target=read_frames, name="modelmill-lsp-read", daemon=True).start()
    while not stop.is_set():
        frame = await queue.get()
        room.release()
        if frame is None:
            break
        if frame.problem:
            report(frame.problem)
        if frame.body is not None:
            if answered and _answered_before(frame.body, answered):
                continue
            dispatch(protocol, frame.body)
        elif frame.request_id is not None:
            answer_error(protocol, b"", JsonRpcInvalidRequest(f"the message could not be read: {frame.problem}"),
                         frame.request_id)
