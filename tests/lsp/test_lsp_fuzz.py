"""Fuzzing: random edits and truncations of real configs never crash the analysis, and every request to the
real server is answered. The bulk (thousands of cases) calls the pure analysis functions directly; a few
hundred edits and requests go through a server process."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsp_helpers import DATA, REPO, dumps, flat_config, open_document, replace_document, server_config
from lsprotocol import converters, types
from pytest_lsp import LanguageClient

from modelmill.config import Environment, limits, validate_document
from modelmill.lsp.code_actions import code_actions
from modelmill.lsp.completion import CompletionEnv, complete
from modelmill.lsp.diagnostics import to_lsp
from modelmill.lsp.documents import Snapshot
from modelmill.lsp.hover import hover
from modelmill.lsp.settings import Settings
from modelmill.lsp.symbols import document_symbols

ENV = Environment(frozenset({"CPUExecutionProvider"}))
CONVERTER = converters.get_converter()
SOURCES = {
    "json": [(DATA / "tutorial_config.json").read_text(), dumps(flat_config()),
             *[p.read_text() for p in sorted((REPO / "examples").glob("*.json"))]],
    "yaml": [(DATA / "tutorial_config.yaml").read_text()],
}
ALPHABET = '{}[]:,"\' \n\t-#abcTy01.é😀\\'


@st.composite
def edited(draw: st.DrawFn, fmt: str) -> tuple[str, int]:
    """A real config after a few random inserts, deletions and maybe a truncation; plus a cursor offset."""
    text = draw(st.sampled_from(SOURCES[fmt]))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(st.text(ALPHABET, max_size=6)) + text[at:]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 12)):]
    if draw(st.integers(0, 3)) == 0:
        text = text[:draw(st.integers(0, len(text)))]
    return text, draw(st.integers(0, len(text)))


def _analyse(text: str, fmt: str, cursor: int) -> None:
    snap = Snapshot(f"file:///fuzz/olive_config.{fmt}", 1, text, fmt)
    found = validate_document(snap.doc, ENV)
    # Bounded output: each diagnostic costs the editor a squiggle and a code-action scan.
    assert sum(d.code == "syntax" for d in found) <= limits.MAX_SYNTAX_PROBLEMS + 1
    diagnostics = to_lsp(found, snap, Settings())
    assert all(d.range.start.line <= d.range.end.line for d in diagnostics)
    line = text.count("\n", 0, cursor)
    character = cursor - (text.rfind("\n", 0, cursor) + 1)
    position = snap.codec.position(line, character)
    result = complete(snap, position.line, position.character, CompletionEnv(ENV.installed_eps))
    # the JSON the client receives is a valid CompletionList / Hover (lsprotocol reads it back)
    assert isinstance(CONVERTER.structure(result, types.CompletionList), types.CompletionList)
    found_hover = hover(snap, position.line, position.character, ENV.installed_eps)
    assert found_hover is None or isinstance(CONVERTER.structure(found_hover, types.Hover), types.Hover)
    code_actions(snap, found, (0, 0), (10 ** 6, 0), Settings())
    document_symbols(snap)


@settings(max_examples=1200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(edited("json"))
def test_random_json_edits_never_crash_the_analysis(case: tuple[str, int]) -> None:
    _analyse(*case[:1], "json", case[1])


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(edited("yaml"))
def test_random_yaml_edits_never_crash_the_analysis(case: tuple[str, int]) -> None:
    _analyse(case[0], "yaml", case[1])


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(ALPHABET + "\u2028\x01", max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(ALPHABET, max_size=6), children,
                                                                       max_size=4),
    max_leaves=25)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(_JSON, st.sampled_from([None, 0, 2, "\t"]), st.booleans())
def test_valid_json_parses_to_json_loads_data_with_exact_ranges(value: object, indent: object,
                                                                ascii_only: bool) -> None:
    """On valid JSON the tolerant parser reports nothing, builds the data json.loads builds, and every key's
    and value's range spans exactly its own text, at the right line and column."""
    import json

    from modelmill.config.positions import ArrayNode, ObjectNode, Range, parse_json, to_data

    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)  # type: ignore[arg-type]
    root, issues = parse_json(text)
    assert issues == [] and to_data(root) == json.loads(text)

    def source(rng: Range) -> object:
        start, end = rng.start.offset, rng.end.offset
        assert (rng.start.line, rng.start.col) == (text.count("\n", 0, start), start - text.rfind("\n", 0, start) - 1)
        return json.loads(text[start:end])

    stack: list[object] = [root]
    while stack:
        node = stack.pop()
        assert source(node.range) == to_data(node)  # type: ignore[union-attr, arg-type]
        if isinstance(node, ObjectNode):
            assert [source(e.key_range) for e in node.entries] == [e.key for e in node.entries]
            stack.extend(e.value for e in node.entries)
        elif isinstance(node, ArrayNode):
            stack.extend(node.items)


# ------------------------------------------------------------------ through the server



@pytest_lsp.fixture(scope="module", config=server_config())
async def client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lsp_fuzz")
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=pytest_lsp.client_capabilities("visual-studio-code"), root_uri=root.as_uri(),
        initialization_options={"settings": {"diagnosticsDelayMs": 20}}))
    lsp_client.fuzz_root = root  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def _mutate(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text) + 1)
    if rng.random() < 0.5:
        return text[:at] + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 4))) + text[at:]
    if rng.random() < 0.1:
        return text[:at]
    return text[:at] + text[at + rng.randint(1, 8):]


@pytest.mark.asyncio(loop_scope="module")
async def test_random_edits_through_the_server_are_all_answered(client: LanguageClient) -> None:
    rng = random.Random(20261126)
    root: Path = client.fuzz_root  # type: ignore[attr-defined]
    requests = 0
    for fmt in ("json", "yaml"):
        uri = (root / f"fuzz_olive.{fmt}").as_uri()
        base = SOURCES[fmt][0]
        text = base
        open_document(client, uri, text, fmt)
        for version in range(2, 77):
            text = _mutate(rng, text) if rng.random() < 0.9 else base
            replace_document(client, uri, text, version)
            lines = text.split("\n")
            line = rng.randrange(len(lines))
            position = types.Position(line=line, character=rng.randint(0, len(lines[line])))
            document = types.TextDocumentIdentifier(uri=uri)
            await asyncio.wait_for(asyncio.gather(
                client.text_document_completion_async(types.CompletionParams(text_document=document,
                                                                             position=position)),
                client.text_document_hover_async(types.HoverParams(text_document=document, position=position)),
                client.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=document)),
                client.text_document_code_action_async(types.CodeActionParams(
                    text_document=document, range=types.Range(start=position, end=position),
                    context=types.CodeActionContext(diagnostics=[])))), 30)
            requests += 4
    info = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="modelmill.debugInfo", arguments=[{}]))
    assert requests >= 600 and info["heavyModulesLoaded"] == []
    errors = [m.message for m in client.log_messages if m.type == types.MessageType.Error]
    assert errors == []


# ------------------------------------------------------------------ hostile inputs

_ANCHORS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
HOSTILE = {
    "alias bomb": ("yaml", _ANCHORS),
    "six-level bomb": ("yaml", "\n".join(_ANCHORS.splitlines()[:6]) + "\ninput_model: *f\npasses: {}\n"),
    "merge bomb": ("yaml", "x0: &x0 {k0: v, k1: v, k2: v, k3: v, k4: v, k5: v, k6: v, k7: v, k8: v, k9: v}\n" + "".join(
        f"x{i}: &x{i} {{<<: [{', '.join(['*x' + str(i - 1)] * 10)}]}}\n" for i in range(1, 7))),
    "deep json": ("json", '{"passes": ' + "[" * 10_000 + "]" * 10_000 + "}"),
    "deep json, unclosed": ("json", '{"passes": ' + "[{" * 5_000),
    "deep yaml": ("yaml", "passes: " + "[" * 10_000 + "]" * 10_000),
    "deep yaml blocks": ("yaml", "passes:\n" + "".join(" " * (i + 1) + "- \n" for i in range(900))),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_documents_are_analysed_fast(name: str) -> None:
    import time

    fmt, text = HOSTILE[name]
    for cursor in (0, len(text) // 2, len(text)):
        started = time.process_time()  # this process's CPU time: what other processes on the machine do not inflate
        _analyse(text, fmt, cursor)
        assert time.process_time() - started < 1.5, name


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(sorted(HOSTILE)), st.data())
def test_random_edits_of_hostile_documents_never_crash_the_analysis(name: str, data: st.DataObject) -> None:
    fmt, text = HOSTILE[name]
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + data.draw(st.text(ALPHABET + "&*<", max_size=6)) + text[at + data.draw(st.integers(0, 6)):]
    _analyse(text, fmt, data.draw(st.integers(0, len(text))))


def test_hostile_traffic_gets_every_request_answered(tmp_path: Path) -> None:
    """Through a server process: hostile documents, files that are /dev/zero, broken frames and wrong parameter
    types, interleaved with ordinary requests; each ordinary request must be answered."""
    from modelmill.testing.jsonrpc import BROKEN, JsonRpcClient, frame

    (tmp_path / "zero.json").symlink_to("/dev/zero")
    (tmp_path / "bomb.yaml").write_text(HOSTILE["alias bomb"][1])
    rng = random.Random(12)
    server = JsonRpcClient(str(tmp_path))
    try:
        server.initialize(tmp_path.as_uri())
        uris = []
        for index, (name, (fmt, text)) in enumerate(sorted(HOSTILE.items())):
            uri = (tmp_path / f"olive_{index}.{fmt}").as_uri()
            uris.append((uri, text))
            server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": fmt, "version": 1,
                                                                    "text": text}})
        wrong_params: list[Any] = [{"textDocument": {"uri": 5}, "position": {"line": "x", "character": 0}}, [1],
                                   None, {"position": {"line": -1, "character": 2 ** 40}}]
        sent: list[int] = []
        for step in range(120):
            uri, text = rng.choice(uris)
            choice = rng.random()
            message_id = 10_000 + step
            if choice < 0.25:
                server.send(rng.choice(list(BROKEN.values()))({"jsonrpc": "2.0", "id": f"x{step}",
                                                               "method": "textDocument/hover", "params": {}}))
            elif choice < 0.45:
                method = rng.choice(["textDocument/hover", "textDocument/completion", "textDocument/documentSymbol"])
                server.send(frame({"jsonrpc": "2.0", "id": message_id, "method": method,
                                   "params": rng.choice(wrong_params)}))
                sent.append(message_id)
            elif choice < 0.6:
                target = rng.choice(["zero.json", "bomb.yaml"])
                server.send(frame({"jsonrpc": "2.0", "id": message_id, "method": "workspace/executeCommand",
                                   "params": {"command": rng.choice(["modelmill.validate", "modelmill.plan"]),
                                              "arguments": [{"uri": (tmp_path / target).as_uri()}]}}))
                sent.append(message_id)
            else:
                lines = text.split("\n")
                line = rng.randrange(len(lines))
                server.send(frame({"jsonrpc": "2.0", "id": message_id, "method": rng.choice(
                    ["textDocument/hover", "textDocument/completion"]), "params": {
                        "textDocument": {"uri": uri},
                        "position": {"line": line, "character": rng.randint(0, len(lines[line]))}}}))
                sent.append(message_id)
        for message_id in sent:  # each one answered (NoReply if the server ends or stalls for 30 s)
            server.reply(message_id, wait=30)
        assert server.request("workspace/executeCommand", {"command": "modelmill.runs", "arguments": [{}]})["result"] \
            == []
    finally:
        assert server.close() == 0
