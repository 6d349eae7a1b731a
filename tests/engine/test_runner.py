"""The child-process runner: events stream in order, cancel is fast and clean, a killed child is reported."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from modelmill.engine.model import ModelRef
from modelmill.engine.plan import Plan, PlanStep
from modelmill.engine.runner import start_run
from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams


def _plan(model_dir: Path, tmp_path: Path, out: str = "out", precision: str = "int4") -> Plan:
    step = PlanStep("builder", ModelBuilder, ModelBuilderParams(precision=precision))
    return Plan(ModelRef("hf", model_dir), [step], tmp_path / out, tmp_path / "cache")


def _wait_for(handle, type_: str, timeout: float = 120) -> dict:
    for event in handle.events(timeout=timeout):
        if event["type"] == type_:
            return event
    raise AssertionError(f"no {type_} event")


def _leftovers(tmp_path: Path) -> list[str]:
    found = [p.name for p in tmp_path.iterdir() if ".partial-" in p.name]
    entries = tmp_path / "cache" / "entries"
    found += [p.name for p in entries.glob(".tmp-*")] if entries.exists() else []
    runs = tmp_path / "cache" / "runs"
    found += [p.name for p in runs.iterdir()] if runs.exists() else []
    return found


def test_two_runs_at_once_in_child_processes(tiny_llama_dir: Path, tmp_path: Path) -> None:
    seen: list[dict] = []
    first = start_run(_plan(tiny_llama_dir, tmp_path, "a"), "run-a", [seen.append])
    second = start_run(_plan(tiny_llama_dir, tmp_path, "b", precision="fp32"), "run-b")
    assert first.result(300).status == "succeeded" and second.result(300).status == "succeeded"
    assert (tmp_path / "a" / "model.onnx").exists() and (tmp_path / "b" / "model.onnx").exists()
    assert [e["seq"] for e in seen] == list(range(len(seen)))
    assert seen[0]["type"] == "run.started" and seen[-1]["type"] == "run.finished"
    assert [e["type"] for e in first.events()] == [e["type"] for e in seen]
    # All steps cached now: the rerun skips the child process and is reported as cached.
    again = start_run(_plan(tiny_llama_dir, tmp_path, "c"), "run-c")
    assert again.result(60).status == "succeeded" and again._process is None
    assert [e["cached"] for e in again.events() if e["type"] == "pass.finished"] == [True]


def test_cancel_stops_the_pass_under_way_and_leaves_nothing(tiny_llama_dir: Path, tmp_path: Path) -> None:
    handle = start_run(_plan(tiny_llama_dir, tmp_path), "run-cancel", in_process=False)
    _wait_for(handle, "pass.started")
    handle.cancel()
    outcome = handle.result(60)
    assert outcome.status == "cancelled"
    # Stopped, not waited for: the pass under way never finished, and the stream still ends with run.finished.
    events = list(handle.events())
    assert "pass.finished" not in [e["type"] for e in events]
    assert events[-1]["type"] == "run.finished" and events[-1]["status"] == "cancelled"
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_killed_child_is_reported_as_a_clear_error(tiny_llama_dir: Path, tmp_path: Path) -> None:
    handle = start_run(_plan(tiny_llama_dir, tmp_path), "run-kill", in_process=False)
    _wait_for(handle, "pass.started")
    os.kill(handle._process.pid, signal.SIGKILL)
    outcome = handle.result(10)
    assert outcome.status == "failed"
    assert outcome.error and "SIGKILL" in outcome.error["message"] and outcome.error["fix"]
    assert outcome.error["kind"] == "worker-lost"
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []
    events = list(handle.events())
    assert [e["seq"] for e in events] == list(range(len(events)))


def test_a_worker_takes_the_callers_environment_and_folder_at_its_start(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite forks workers from a warm forkserver (tests/conftest.py), started long before with the
    environment and folder of then; each run must still see the caller's, as a spawned worker does."""
    from modelmill.engine import runner
    from modelmill.testing.probe_run import ProbeRun

    for value in ("first", "second"):
        folder = tmp_path / value
        folder.mkdir()
        monkeypatch.setenv("MODELMILL_PROBE", value)
        monkeypatch.chdir(folder)
        handle = start_run(ProbeRun("MODELMILL_PROBE", tmp_path), f"probe-{value}")
        assert handle.result(60).status == "succeeded"
        seen = next(e for e in handle.events() if e["type"] == "run.finished")["results"]
        assert seen["value"] == value and seen["cwd"] == str(folder) and seen["pid"] != os.getpid()
    assert runner._worker_context is not None or os.name != "posix"  # the warm path is the one tested here
