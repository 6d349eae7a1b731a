"""Start-up: `initialize` is answered before pygls has loaded, with exactly pygls's own answer; nothing
heavy is imported on that path; `--tcp` works; `modelmill lsp --help` stays light."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import converters, types

from modelmill.lsp.capabilities import initialize_result
from modelmill.lsp.capabilities_gen import compute
from modelmill.testing.jsonrpc import SERVER_COMMAND, frame, read_message


def _params(capabilities: types.ClientCapabilities) -> dict[str, Any]:
    unstructured = converters.get_converter().unstructure(capabilities)
    return {"processId": None, "rootUri": None, "capabilities": unstructured}


def _read(stream: Any) -> dict[str, Any]:
    message = read_message(stream)
    assert message is not None, "the server closed the stream"
    return message


def _initialize(params: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    process = subprocess.Popen(SERVER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    try:
        process.stdin.write(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}))
        process.stdin.flush()
        reply = _read(process.stdout)
        process.stdin.write(frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
        process.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
        process.stdin.flush()
        assert _read(process.stdout)["id"] == 2  # the replayed session works, and no duplicate reply came
        assert process.wait(30) == 0
    finally:
        process.kill()
    return reply


def test_fast_initialize_equals_pygls_answer() -> None:
    params = _params(pytest_lsp.client_capabilities("visual-studio-code"))
    fast = _initialize(params)
    slow = _initialize(params, {"MODELMILL_LSP_FAST_INIT": "0"})
    assert fast == slow
    # How fast is measured by bench/lsp_raw_latency.py, not asserted here (a loaded machine would fail it); that the
    # fast answer needs nothing heavy is test_nothing_heavy_on_the_initialize_path's check.


@pytest.mark.parametrize("encodings", [None, ["utf-8", "utf-16"], ["utf-32"], ["latin-1"]])
def test_precomputed_capabilities_match_pygls(encodings: list[str] | None) -> None:
    capabilities = pytest_lsp.client_capabilities("visual-studio-code")
    if encodings is not None:
        capabilities.general = types.GeneralClientCapabilities(position_encodings=encodings)
    params = _params(capabilities)
    assert initialize_result(params) == compute(params)
    assert initialize_result({}) == compute({"capabilities": {}})


def test_nothing_heavy_on_the_initialize_path() -> None:
    code = ("import sys, modelmill.cli, modelmill.lsp.launch, modelmill.lsp.capabilities as c; "
            "c.initialize_result({}); "
            "print(sorted(m for m in ('pygls', 'lsprotocol', 'torch', 'onnxruntime', 'transformers', "
            "'modelmill.config') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-X", "importtime", "-m", "modelmill", "lsp", "--help"],
                               capture_output=True, text=True, check=True)
    assert "--tcp PORT" in help_text.stdout and "pygls" not in help_text.stderr


def test_tcp_mode() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([*SERVER_COMMAND, "--tcp", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with connection:
            connection.sendall(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "processId": None, "rootUri": None, "capabilities": {}}}))
            reply = _read(connection.makefile("rb"))
        assert reply["result"]["serverInfo"]["name"] == "modelmill"
        assert "modelmill.optimize" in reply["result"]["capabilities"]["executeCommandProvider"]["commands"]
    finally:
        process.kill()
        process.wait()
