"""Protocol robustness: framing errors are reported and the stream resynchronises, an absurd Content-Length
allocates nothing, every request gets an answer (a result or a JSON-RPC error: -32602 for params of the wrong
type), and a config that is a symlink to /dev/zero or an alias bomb is answered at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from modelmill.lsp.framing import MAX_MESSAGE_BYTES, FrameReader, _is_json
from modelmill.testing.jsonrpc import BROKEN, JsonRpcClient, frame

MESSAGE = {"jsonrpc": "2.0", "id": 7, "method": "workspace/executeCommand",
           "params": {"command": "modelmill.runs", "arguments": [{}]}}
NEXT = {**MESSAGE, "id": 8}
BODY, NEXT_BODY = json.dumps(MESSAGE).encode(), json.dumps(NEXT).encode()
def _reader(data: bytes, chunk: int) -> FrameReader:
    parts = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    return FrameReader(lambda size: parts.pop(0) if parts else b"")


def _frames(reader: FrameReader) -> Iterator[Any]:
    for _ in range(20):
        found = reader.next()
        if found is None:
            return
        yield found
    raise AssertionError("the reader does not end")


@pytest.mark.parametrize("chunk", [1, 7, 65536])
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_reader_resynchronises_after_each_framing_error(case: str, chunk: int) -> None:
    broken = BROKEN[case](MESSAGE)
    frames = list(_frames(_reader(broken + frame(NEXT), chunk)))
    bodies = [f.body for f in frames if f.body is not None]
    assert bodies[-1] == NEXT_BODY  # the message after the broken one is read intact
    if case == "lower-case name":
        assert bodies == [BODY, NEXT_BODY] and not any(f.problem for f in frames)  # header names ignore case
    elif case == "not json":
        assert frames[0].body == BODY[:50]  # handed on, answered with -32700
    else:  # reported, or handed on as a body that is not JSON (answered with -32700)
        assert frames[0].problem or not _is_json(frames[0].body), frames
        if case != "junk first" and chunk > len(broken):
            assert bodies[0] == BODY


def test_a_huge_content_length_allocates_nothing() -> None:
    reads: list[int] = []
    parts = [frame(MESSAGE, MAX_MESSAGE_BYTES + 1)[:40]]

    def read(size: int) -> bytes:
        reads.append(size)
        return parts.pop(0) if parts else b""

    reader = FrameReader(read)
    first = reader.next()
    assert first is not None and first.body is None and "limit" in (first.problem or "")
    assert max(reads) <= 65536 and len(reader.buffer) < 100


def test_a_message_split_anywhere_is_read_whole() -> None:
    data = frame(MESSAGE) + frame({**NEXT, "params": {"text": "Content-Length: 5\r\n\r\n}" * 50}})
    for chunk in (1, 3, 50):
        bodies = [f.body for f in _frames(_reader(data, chunk))]
        assert [json.loads(b)["id"] for b in bodies] == [7, 8] and all(not f.problem for f in _frames(
            _reader(data, chunk)))


# ------------------------------------------------------------------ through the server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonRpcClient]:
    root = tmp_path_factory.mktemp("lsp_protocol")
    (root / "zero.yaml").symlink_to("/dev/zero")
    (root / "bomb.yaml").write_text("\n".join(
        ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        + [f"{n}: &{n} [{','.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]) + "\n")
    raw = JsonRpcClient(str(root))
    raw.root = root  # type: ignore[attr-defined]
    raw.initialize(root.as_uri())
    yield raw
    assert raw.close() == 0


def _alive(server: JsonRpcClient) -> None:
    reply = server.request("workspace/executeCommand", {"command": "modelmill.runs", "arguments": [{}]}, wait=10)
    assert "result" in reply


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_server_answers_after_each_framing_error(server: JsonRpcClient, case: str) -> None:
    message_id = f"broken-{case}"
    server.send(BROKEN[case]({**MESSAGE, "id": message_id}))
    _alive(server)
    if case == "not json":
        assert server.responses[message_id]["error"]["code"] == -32700  # the id was read from the broken body
    else:  # salvaged (a result) or dropped with its id read (an error): either way answered
        assert message_id in server.responses


@pytest.mark.parametrize("method", ["textDocument/hover", "textDocument/completion"])
@pytest.mark.parametrize("params", [
    {"textDocument": {"uri": 5}, "position": {"line": "x", "character": 0}},
    {"textDocument": {"uri": "file:///a.json"}, "position": None},
    [1, 2, 3],
    "text",
])
def test_wrong_parameter_types_get_invalid_params(server: JsonRpcClient, method: str, params: Any) -> None:
    reply = server.request(method, params, wait=10)
    assert reply["error"]["code"] == -32602, reply


@pytest.mark.parametrize("arguments", [[{"uri": 42}], [{"uri": ["a"]}], [{"uri": True}]])
@pytest.mark.parametrize("command", ["modelmill.optimize", "modelmill.validate", "modelmill.plan"])
def test_commands_with_a_wrong_argument_type_get_invalid_params(server: JsonRpcClient, command: str,
                                                                arguments: list[Any]) -> None:
    reply = server.request("workspace/executeCommand", {"command": command, "arguments": arguments}, wait=10)
    assert reply["error"]["code"] == -32602 and "uri" in reply["error"]["message"]


@pytest.mark.parametrize("command", ["modelmill.validate", "modelmill.plan"])
def test_a_config_that_is_dev_zero_fails_at_once(server: JsonRpcClient, command: str) -> None:
    path: Path = server.root / "zero.yaml"  # type: ignore[attr-defined]
    # Refused before any read ("not a regular file"): reading it would never end, and the request wait ends the test.
    reply = server.request("workspace/executeCommand", {"command": command, "arguments": [{"uri": path.as_uri()}]})
    message = reply["error"]["message"]
    assert "\n" not in message and str(path) in message and "not a regular file" in message and "fix:" in message


def test_an_alias_bomb_is_a_diagnostic_and_other_files_keep_being_answered(server: JsonRpcClient) -> None:
    path: Path = server.root / "bomb.yaml"  # type: ignore[attr-defined]
    # One alias diagnostic: the alias limit stopped the expansion (9^9 nodes would not end in the request's wait).
    reply = server.request("workspace/executeCommand",
                           {"command": "modelmill.validate", "arguments": [{"uri": path.as_uri()}]})
    diagnostics = reply["result"]["diagnostics"]
    assert len(diagnostics) == 1 and "alias" in diagnostics[0]["message"]
    plan = server.request("workspace/executeCommand", {"command": "modelmill.plan",
                                                       "arguments": [{"uri": path.as_uri()}]})
    assert "alias" in plan["error"]["message"]
    _alive(server)


def test_the_framing_errors_were_logged(server: JsonRpcClient) -> None:
    logged = [m["params"]["message"] for m in server.notifications if m.get("method") == "window/logMessage"]
    assert any("malformed message" in m and "Content-Length" in m for m in logged)


@pytest.mark.parametrize("case", ["over the limit", "too large", "no length"])
def test_a_broken_first_message_does_not_stop_the_fast_initialize(case: str, tmp_path: Path) -> None:
    """launch.py reads the first message itself (to answer initialize early): with the same framing rules."""
    raw = JsonRpcClient(str(tmp_path))
    try:
        raw.send(BROKEN[case]({**MESSAGE, "id": "first"}))
        raw.initialize(tmp_path.as_uri())
        _alive(raw)
        assert "first" in raw.responses or case == "no length"  # salvaged or dropped: either way, no hang
    finally:
        assert raw.close() == 0
