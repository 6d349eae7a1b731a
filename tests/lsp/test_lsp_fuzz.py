"""Fuzzing: random edits and truncations of real configs never crash the analysis, and every request to the
real server is answered. The bulk (thousands of cases) calls the pure analysis functions directly; a few
hundred edits and requests go through a server process."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
import pytest_lsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsp_helpers import DATA, REPO, dumps, flat_config, open_document, replace_document, server_config
from lsprotocol import types
from pytest_lsp import LanguageClient

from modelmill.config import Environment, validate_document
from modelmill.lsp.code_actions import code_actions
from modelmill.lsp.completion import CompletionEnv, complete
from modelmill.lsp.diagnostics import to_lsp
from modelmill.lsp.documents import Snapshot
from modelmill.lsp.hover import hover
from modelmill.lsp.settings import Settings
from modelmill.lsp.symbols import document_symbols

ENV = Environment(frozenset({"CPUExecutionProvider"}))
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
    diagnostics = to_lsp(found, snap, Settings())
    assert all(d.range.start.line <= d.range.end.line for d in diagnostics)
    line = text.count("\n", 0, cursor)
    character = cursor - (text.rfind("\n", 0, cursor) + 1)
    position = snap.codec.position(line, character)
    result = complete(snap, position.line, position.character, CompletionEnv(ENV.installed_eps))
    assert isinstance(result, types.CompletionList)
    hover(snap, position.line, position.character, ENV.installed_eps)
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
def test_fast_json_parse_equals_the_config_parser(value: object, indent: object, ascii_only: bool) -> None:
    """On valid JSON the fast path must build exactly the tree and data the tolerant parser builds."""
    import json

    from modelmill.config import parse_document
    from modelmill.lsp.fastparse import parse

    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)  # type: ignore[arg-type]
    fast, slow = parse(text, "x.json"), parse_document(text, "x.json")
    _same(fast.root, slow.root)
    assert fast.data == slow.data and [(d.code, d.range) for d in fast.syntax] == \
        [(d.code, d.range) for d in slow.syntax]


def _same(a: object, b: object) -> None:
    from modelmill.config.positions import ArrayNode, ObjectNode

    assert type(a) is type(b)
    if a is None:
        return
    assert a.range == b.range  # type: ignore[attr-defined]
    if isinstance(a, ObjectNode):
        assert [(e.key, e.key_range) for e in a.entries] == [(e.key, e.key_range) for e in b.entries]  # type: ignore
        for x, y in zip(a.entries, b.entries):  # type: ignore[attr-defined]
            _same(x.value, y.value)
    elif isinstance(a, ArrayNode):
        assert len(a.items) == len(b.items)  # type: ignore[attr-defined]
        for x, y in zip(a.items, b.items):  # type: ignore[attr-defined]
            _same(x, y)
    else:
        assert a.value == b.value and type(a.value) is type(b.value)  # type: ignore[attr-defined]


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
