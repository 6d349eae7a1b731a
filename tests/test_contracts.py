"""The typed contracts (modelmill/contracts.py) and what is generated from them: the extension's TypeScript types,
docs/events.md's tables and the run states the extension's tests render. The recorded event streams
(extension/test/fixtures/*.events.jsonl, scripts/record_event_fixtures.py) must parse as the typed events, so a
change to an event type fails here until the fixtures are recorded again; every event the engine emits by name
names a declared type and fields."""

from __future__ import annotations

import ast
import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from modelmill import contracts, contracts_gen
from modelmill.contracts import (COMMAND_ARGS, EVENT_TYPES, ArgumentError, CancelArgs, CompareArgs, EvaluateArgs, OptimizeArgs,
                                 PassStartedEvent, RunEventsArgs, parse_event)
from modelmill.engine.events import EventBus
from modelmill.lsp.shared import SERVER_COMMANDS

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "extension" / "test" / "fixtures"
FIX = "run: python -m modelmill.contracts_gen --write"


def test_the_typescript_types_are_current() -> None:
    assert contracts_gen.TYPESCRIPT == ROOT / "extension" / "src" / "contracts.generated.ts"
    assert contracts_gen.TYPESCRIPT.read_text() == contracts_gen.typescript(), FIX


def test_the_events_doc_tables_are_current() -> None:
    text = contracts_gen.EVENTS_DOC.read_text()
    assert text == contracts_gen.events_doc(text), FIX
    for kind in EVENT_TYPES:
        assert f"| `{kind}` |" in text


def test_the_fixture_states_are_the_reducers() -> None:
    assert contracts_gen.STATES.read_text() == contracts_gen.fixture_states(), FIX


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.events.jsonl")))
def test_recorded_streams_parse_as_the_typed_events(name: str) -> None:
    """Recorded again by scripts/record_event_fixtures.py (a real tiny run) when an event type changes."""
    events = contracts_gen.read_events(FIXTURES / name)
    parsed = [parse_event(event) for event in events]
    assert [event.TYPE for event in parsed][0] == "run.started" and parsed[-1].TYPE == "run.finished"
    assert [event["seq"] for event in events] == list(range(len(events)))
    assert len({event["run_id"] for event in events}) == 1


def test_parse_event_says_what_is_wrong() -> None:
    base = {"v": 1, "type": "log", "run_id": "r", "ts": 1.0, "seq": 0, "level": "info", "message": "m"}
    assert parse_event(base).fields() == {"level": "info", "message": "m"}
    for broken, said in [({**base, "extra": 1}, "'extra' is not declared"), ({**base, "level": "loud"}, "log.level"),
                         ({**base, "seq": "0"}, "log.seq"), ({**base, "type": "nope"}, "unknown event type"),
                         ({k: v for k, v in base.items() if k != "message"}, "message"), ({**base, "v": 2}, "version")]:
        with pytest.raises(ValueError, match=said):
            parse_event(broken)


def test_emit_builds_the_typed_event_and_refuses_undeclared_fields() -> None:
    sent: list[dict] = []
    bus = EventBus("r", [sent.append])
    typed = bus.emit(PassStartedEvent(pass_name="q", pass_type="T", index=0, total=1, params={}, cache_key=None))
    named = bus.emit("pass.started", pass_name="q", pass_type="T", index=0, total=1, params={}, cache_key=None)
    assert {k: v for k, v in typed.items() if k not in ("ts", "seq")} == \
        {k: v for k, v in named.items() if k not in ("ts", "seq")}
    assert "candidate" not in typed and typed["cache_key"] is None  # optional: absent; nullable: null
    finished = bus.emit("run.finished", status="cancelled")
    assert {k: finished[k] for k in ("output_dir", "duration_s", "best_candidate")} == \
        {"output_dir": None, "duration_s": None, "best_candidate": None}
    with pytest.raises(TypeError, match="pass.progress.*unexpected keyword argument 'percent'"):
        bus.emit("pass.progress", pass_name="q", fraction=0.5, message="", percent=50)
    with pytest.raises(ValueError, match="unknown event type"):
        bus.emit("pass.paused", pass_name="q")
    assert [e["seq"] for e in sent] == [0, 1, 2]


_BY_NAME = {cls.__name__: cls for cls in EVENT_TYPES.values()}


def _emitted(tree: ast.AST):
    """(event class, call) for every ``emit("type", ...)`` and every ``SomeEvent(...)`` in a module."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = getattr(func, "attr", getattr(func, "id", None))
        if name == "emit" and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            yield EVENT_TYPES.get(node.args[0].value, node.args[0].value), node
        elif name in _BY_NAME:
            yield _BY_NAME[name], node


def test_every_event_emitted_is_declared() -> None:
    """``emit("type", field=...)`` and ``SomeEvent(field=...)`` anywhere in the package name a declared type and its
    fields (a callback that adds ``candidate`` or ``pass_name`` itself may leave those out)."""
    added_by_callbacks = {"candidate", "pass_name"}
    seen = set()
    for path in (ROOT / "server" / "modelmill").rglob("*.py"):
        if path.name == "contracts.py":
            continue
        for cls, node in _emitted(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            assert not isinstance(cls, str), f"{where}: {cls} is not an event type"
            fields = {f.name: f for f in dataclasses.fields(cls)}
            given = {k.arg for k in node.keywords if k.arg}
            assert given <= fields.keys(), f"{where}: {cls.TYPE} declares no {given - fields.keys()}"
            required = {name for name, f in fields.items()
                        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
            if not any(k.arg is None for k in node.keywords):
                assert required - given <= added_by_callbacks, f"{where}: {cls.TYPE} lacks {required - given}"
            seen.add(cls.TYPE)
    assert len(seen) >= 15, sorted(seen)


def test_command_arguments() -> None:
    assert {cls.COMMAND for cls in COMMAND_ARGS} <= SERVER_COMMANDS.keys()
    assert OptimizeArgs.from_json({"uri": "file:///c.json", "other": 1}) == OptimizeArgs("file:///c.json")
    assert CancelArgs.from_json({"runId": 5}).run_id == "5"
    assert RunEventsArgs.from_json({"runId": "r"}).since == -1
    assert EvaluateArgs.from_json({"path": "/m", "metrics": ["size"]}).metrics == ["size"]
    assert CompareArgs.from_json({"sources": ["r1", "/out"]}).sources == ["r1", "/out"]
    for cls, value, said in [(OptimizeArgs, {}, "missing argument 'uri'"), (OptimizeArgs, {"uri": 5}, "'uri' must be a string"),
                             (OptimizeArgs, {"uri": True}, "not true"), (CancelArgs, {"runId": [1]}, "string or number"),
                             (EvaluateArgs, {"path": "/m", "metrics": [1]}, "metrics must be a list of strings"),
                             (CompareArgs, {"sources": ["r1", 2]}, "sources must be a list of strings"),
                             (CompareArgs, {}, "missing argument 'sources'"),
                             (OptimizeArgs, [1], "one argument object")]:
        with pytest.raises(ArgumentError, match=said):
            cls.from_json(value)


def test_run_state_names_are_the_extensions() -> None:
    assert contracts.camel("duration_s") == "durationS" and contracts.camel("run_id") == "runId"
    assert contracts.to_json(contracts.TrainingView("lora"))["pass"] == "lora"


@pytest.mark.skipif(not (ROOT / "node_modules" / "typescript").exists() or not shutil.which("node"),
                    reason="the extension's node_modules are not installed (npm ci)")
def test_the_extension_compiles_with_the_generated_types() -> None:
    result = subprocess.run(["node", str(ROOT / "node_modules" / "typescript" / "bin" / "tsc"), "-p", str(ROOT),
                             "--noEmit"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
