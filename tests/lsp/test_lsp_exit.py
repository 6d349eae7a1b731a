"""``exit`` ends the server even when ``shutdown``'s completion cancels every other handler in the same turn."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from lsprotocol import types
from pygls.protocol import JsonRPCNotification

from modelmill.lsp import exit as lsp_exit
from modelmill.lsp.server import create_server
from modelmill.testing.jsonrpc import SERVER_COMMAND, frame, read_message


def test_exit_survives_shutdown_cancelling_the_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The race: ``exit`` is dispatched, then ``shutdown`` completes and cancels every registered handler future
    before the loop ran ``exit``'s first step. pygls's own exit handler was one of them: it never ran."""
    codes: list[int] = []
    monkeypatch.setattr(lsp_exit.os, "_exit", codes.append)
    server = create_server()
    protocol = server.protocol

    async def race() -> None:
        protocol._shutdown = True  # shutdown's reply went out
        protocol.handle_message(JsonRPCNotification(jsonrpc="2.0", method=types.EXIT, params=None))
        for future in list(protocol._request_futures.values()):  # what pygls's lsp_shutdown does on completion
            future.cancel()
        for _ in range(10):
            await asyncio.sleep(0)

    asyncio.run(race())
    assert codes == [0] and server.closing


def test_shutdown_and_exit_in_one_write_end_the_process() -> None:
    """A real server, shutdown and exit sent back to back (as clients do): the reply, then exit code 0."""
    process = subprocess.Popen(SERVER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    try:
        process.stdin.write(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                   "params": {"processId": None, "rootUri": None, "capabilities": {}}}))
        process.stdin.flush()
        assert read_message(process.stdout)["id"] == 1
        process.stdin.write(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}})
                            + frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
                            + frame({"jsonrpc": "2.0", "method": "exit"}))
        process.stdin.flush()  # stdin stays open: the server must not wait for its end
        assert read_message(process.stdout)["id"] == 2
        assert process.wait(30) == 0
    finally:
        process.kill()
