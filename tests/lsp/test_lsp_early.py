"""The first diagnostics are sent before pygls has loaded (modelmill/lsp/early.py): the same diagnostics as the
server sends once loaded, sent once; the session goes on as usual after the hand-over; and that path imports
neither pygls/lsprotocol nor a heavy library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from modelmill.testing.jsonrpc import JsonRpcClient, frame

# Problems of several kinds (unknown pass with a hint, old-schema form with a Deprecated tag, a bad value), some on
# lines with characters outside ASCII and the BMP, so that the position encodings differ.
CONFIG = """{
  "input_model": {"type": "HfModel", "model_path": "mödel-😀", "tåsk": "text-generation"},
  "systems": {"local": {"type": "LocalSystem", "accelerators": [{"device": "cpu",
              "execution_providers": ["CPUExecutionProvider"]}]}},
  "passes": {
    "q": {"type": "OnnxDynamicQuantizaton"},
    "b": {"type": "ModelBuilder", "precision": "int5", "😀": 1}
  },
  "engine": {"target": "local", "output_dir": "out"}
}
"""


def _session(tmp_path: Path, fast: bool, encodings: list[str] | None) -> tuple[list[dict[str, Any]], JsonRpcClient]:
    """Start a server, initialize, open the config; every publishDiagnostics of version 1 by the time two requests
    that only the loaded server answers have been answered one after the other (a validation of the replayed
    didOpen runs on the event loop before the second one is read)."""
    server = JsonRpcClient(tmp_path, env={"MODELMILL_LSP_FAST_INIT": "1" if fast else "0"})
    capabilities: dict[str, Any] = {"textDocument": {"publishDiagnostics": {"versionSupport": True}}}
    if encodings:
        capabilities["general"] = {"positionEncodings": encodings}
    server.initialize(tmp_path, settings=None, capabilities=capabilities)
    uri = (tmp_path / "model.olive.json").as_uri()
    server.open(uri, "json", CONFIG)
    server.diagnostics(uri, 1, wait=120)
    hover = server.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": {"line": 5, "character": 16}}, wait=120)
    assert "result" in hover
    assert server.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}}, wait=60)["result"]
    published = [m["params"] for m in list(server.notifications)
                 if m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri]
    return published, server


@pytest.mark.parametrize("encodings", [None, ["utf-8"]])
def test_early_diagnostics_equal_the_servers_and_are_sent_once(tmp_path: Path, encodings: list[str] | None) -> None:
    early, fast = _session(tmp_path, True, encodings)
    try:
        late, slow = _session(tmp_path, False, encodings)
        assert slow.close() == 0
    finally:
        assert fast.close() == 0
    assert len(early) == 1 and len(late) == 1, (early, late)
    assert early == late
    diagnostics = early[0]["diagnostics"]
    assert len(diagnostics) >= 3
    assert any(d.get("tags") for d in diagnostics) and all(d["source"] == "modelmill" for d in diagnostics)


def test_the_session_goes_on_after_the_hand_over(tmp_path: Path) -> None:
    published, server = _session(tmp_path, True, None)
    try:
        uri = published[0]["uri"]
        fixed = CONFIG.replace("OnnxDynamicQuantizaton", "OnnxDynamicQuantization")
        server.change(uri, 2, fixed)
        second = server.diagnostics(uri, 2)[1]["params"]
        assert any("OnnxDynamicQuantizaton" in d["message"] for d in published[0]["diagnostics"])
        assert not any("OnnxDynamicQuantizaton" in d["message"] for d in second["diagnostics"])
    finally:
        assert server.close() == 0


_EARLY_PATH = """
import json, sys, threading
from io import BytesIO
from pathlib import Path
import modelmill.lsp.launch
from modelmill.lsp.early import EarlySession, prepare_validation

prepare_validation()
ready = threading.Event()
ready.set()
out = BytesIO()
session = EarlySession(out, ready)
session.initialize({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
session.handle({"jsonrpc": "2.0", "method": "initialized", "params": {}})
text = Path(sys.argv[1]).read_text()
served = session.handle({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
    "uri": Path(sys.argv[1]).as_uri(), "languageId": "json", "version": 1, "text": text}}})
assert served and b"publishDiagnostics" in out.getvalue()
uri = Path(sys.argv[1]).as_uri()
for request_id, method in ((2, "textDocument/completion"), (3, "textDocument/hover")):
    assert session.handle({"jsonrpc": "2.0", "id": request_id, "method": method, "params": {
        "textDocument": {"uri": uri}, "position": {"line": 6, "character": 24}}})
assert session.adopted.answered == {2: "textDocument/completion", 3: "textDocument/hover"}
assert session.handle({"jsonrpc": "2.0", "id": 4, "method": "textDocument/documentSymbol", "params": {
    "textDocument": {"uri": uri}}}) and session.deferred == 1  # left to pygls; the session goes on
assert not session.handle({"jsonrpc": "2.0", "id": 5, "method": "workspace/executeCommand", "params": {
    "command": "modelmill.debugInfo", "arguments": [{}]}})  # not a document read: the session ends
assert b'"id": 2, "result": {"isIncomplete"' in out.getvalue() and b'"id": 3, "result": {"contents"' in out.getvalue()
print(json.dumps(sorted(m for m in ("pygls", "lsprotocol", "cattrs", "torch", "onnxruntime", "transformers", "onnx")
                        if m in sys.modules)))
"""


def test_the_early_path_imports_neither_pygls_nor_heavy_libraries(tmp_path: Path) -> None:
    config = tmp_path / "model.olive.json"
    config.write_text(CONFIG, encoding="utf-8")
    out = subprocess.run([sys.executable, "-c", _EARLY_PATH, str(config)], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == []


def test_the_server_and_the_run_driver_import_no_heavy_library() -> None:
    """The lasting guard of start-up time: the language server (all of it) and what a command-line run imports
    before a pass runs load no torch, onnxruntime, transformers or onnx."""
    code = ("import json, sys; import modelmill.lsp.server as s; s.create_server(); "
            "import modelmill.cli, modelmill.commands.driver, modelmill.engine.workflow, modelmill.engine.runner, "
            "modelmill.render; "
            "print(json.dumps([m for m in ('torch', 'onnxruntime', 'transformers', 'onnx', 'onnxruntime_genai') "
            "if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


@pytest.mark.parametrize("argv", [["lsp"], ["lsp", "--tcp", "5007", "--host", "0.0.0.0"], ["lsp", "--no-fast-init"],
                                  ["lsp", "--tcp=9", "--no-fast"]])
def test_modelmill_lsp_skips_the_full_parser_with_the_same_namespace(argv: list[str]) -> None:
    from modelmill.cli import build_parser, lsp_args

    assert vars(lsp_args(argv)) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", [[], ["run"], ["lsp", "-h"], ["lsp", "--help"], ["lsp", "--bogus"], ["lsp", "x"],
                                  ["--version"]])
def test_anything_else_goes_to_the_full_parser(argv: list[str]) -> None:
    from modelmill.cli import lsp_args

    assert lsp_args(argv) is None


def test_the_lsp_command_line_imports_no_other_command() -> None:
    code = ("import json, sys; from modelmill.cli import lsp_args; lsp_args(['lsp', '--tcp', '1']); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('modelmill.commands.') "
            "and m != 'modelmill.commands.lsp')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_the_early_session_hands_over_once_its_bytes_reach_a_messages_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every byte the early session reads is kept for the replay into pygls: a client that keeps sending
    notifications it serves must not grow that without bound, so it hands over at the per-message limit."""
    import io
    import threading
    import types as _types

    from modelmill.lsp import framing, launch

    body = json.dumps({"jsonrpc": "2.0", "method": "$/setTrace", "params": {"value": "x" * 900}}).encode()
    frame_bytes = b"Content-Length: %d\r\n\r\n" % len(body) + body
    stream = io.BytesIO(frame_bytes * 400)  # ~370 KB: several of the feed's 64 KB chunks

    class Session:
        served = 0

        def initialize(self, message: object) -> bool:
            self.served += 1
            return True

        def handle(self, message: object) -> bool:
            self.served += 1
            return True

    monkeypatch.setattr(framing, "MAX_MESSAGE_BYTES", 1000)
    session = Session()
    loader = _types.SimpleNamespace(server_ready=threading.Event(), go=threading.Event())
    replay = launch.serve_early(session, launch._Feed(stream), loader)
    assert 1000 < len(replay) < len(frame_bytes) * 400
    assert replay == (frame_bytes * 400)[:len(replay)]  # what was read, in order, for the replay
    assert session.served < 400


def test_first_completion_and_hover_are_answered_before_pygls_once_as_the_server_answers(tmp_path: Path) -> None:
    """A completion and a hover sent with the didOpen (as an editor sends them right after the first diagnostics)
    are answered by the early session while pygls loads, after the first diagnostics and once each (their replay
    into pygls is skipped); the loaded server answers the same requests with the same results. A document symbol
    request before them (an editor's outline) is left to pygls without ending the early session."""
    server = JsonRpcClient(tmp_path, env={"MODELMILL_LSP_FAST_INIT": "1"})
    try:
        capabilities = {"textDocument": {"completion": {"completionItem": {"snippetSupport": True}}}}
        server.initialize(tmp_path, settings=None, capabilities=capabilities,
                          initializationOptions={"triggerSuggestCommand": "editor.action.triggerSuggest"})
        uri = (tmp_path / "model.olive.json").as_uri()
        asks = [("textDocument/completion", {"line": 6, "character": 24}),   # a pass type's value
                ("textDocument/completion", {"line": 6, "character": 35}),   # a key inside a pass
                ("textDocument/hover", {"line": 6, "character": 24})]
        messages = [{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "json", "version": 1, "text": CONFIG}}}]
        messages.append({"jsonrpc": "2.0", "id": 9, "method": "textDocument/documentSymbol",
                         "params": {"textDocument": {"uri": uri}}})
        messages += [{"jsonrpc": "2.0", "id": 10 + n, "method": method,
                      "params": {"textDocument": {"uri": uri}, "position": position}}
                     for n, (method, position) in enumerate(asks)]
        server.send(b"".join(frame(message) for message in messages))  # one write: all read before pygls is
        early = [server.reply(10 + n, wait=120) for n in range(len(asks))]
        assert server.reply(9, wait=120)["result"]
        info = server.request("workspace/executeCommand", {"command": "modelmill.debugInfo", "arguments": [{}]},
                              wait=120)["result"]
        assert info["earlyAnswers"] == [[10 + n, method] for n, (method, _) in enumerate(asks)]
        late = [server.request(method, {"textDocument": {"uri": uri}, "position": position}, wait=60)
                for method, position in asks]
        order = [m.get("id", m.get("method")) for _, m in list(server.messages)]
    finally:
        assert server.close() == 0
    assert [reply["result"] for reply in early] == [reply["result"] for reply in late]
    assert early[0]["result"]["items"] and early[1]["result"]["items"] and early[2]["result"]["contents"]["value"]
    assert early[1]["result"]["items"][0]["insertTextFormat"] == 2  # snippets: the client's capabilities were read
    assert all(order.count(n) == 1 for n in range(9, 10 + len(asks)))  # one answer each
    assert order.index("textDocument/publishDiagnostics") < order.index(10)
