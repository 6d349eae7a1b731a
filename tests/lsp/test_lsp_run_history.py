"""Runs you can come back to: ``modelmill.runEvents`` replays a run's events (the panel rebuilds its cards after
a window reload), and finished runs are kept on disk per workspace, bounded, so they survive a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from modelmill.lsp.run_history import MAX_RUNS, RunHistory, bounded
from modelmill.testing.jsonrpc import JsonRpcClient


def _run(index: int) -> dict[str, Any]:
    return {"runId": f"run-{index:03d}", "kind": "optimize", "status": "succeeded", "config": "c.json",
            "outputDir": "out", "started": 1000.0 + index, "finished": 1001.0 + index, "error": None}


def test_history_is_bounded_per_workspace_and_skips_broken_files(tmp_path: Path) -> None:
    mine = RunHistory(tmp_path / "a", root=tmp_path / "runs")
    other = RunHistory(tmp_path / "b", root=tmp_path / "runs")
    for index in range(MAX_RUNS + 5):
        mine.save(_run(index), [{"seq": 0, "type": "run.started"}, {"seq": 1, "type": "run.finished"}])
        time.sleep(0.002)  # distinct modification times: the oldest go first
    other.save(_run(999), [])
    (mine.folder / "broken.json").write_text("{not json")
    kept = mine.load()
    assert [run["runId"] for run, _ in kept] == [f"run-{i:03d}" for i in range(5, MAX_RUNS + 5)]
    assert kept[-1][1] == [{"seq": 0, "type": "run.started"}, {"seq": 1, "type": "run.finished"}]
    assert [run["runId"] for run, _ in other.load()] == ["run-999"]


def test_long_runs_keep_their_first_and_last_events() -> None:
    events = [{"seq": i} for i in range(10)]
    assert bounded(events, 4) == [{"seq": 0}, {"seq": 7}, {"seq": 8}, {"seq": 9}]
    assert bounded(events[:3], 4) == events[:3]


def _start(workspace: Path, home: Path) -> JsonRpcClient:
    server = JsonRpcClient(str(workspace), {"MODELMILL_HOME": str(home)})
    server.request("initialize", {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {}})
    server.notify("initialized", {})
    return server


def _command(server: JsonRpcClient, command: str, argument: dict[str, Any]) -> dict[str, Any]:
    reply = server.request("workspace/executeCommand", {"command": command, "arguments": [argument]}, wait=60)
    assert "result" in reply, reply
    return reply["result"]


def test_run_events_replay_and_survive_a_restart(tmp_path: Path) -> None:
    workspace, home = tmp_path / "ws", tmp_path / "home"
    workspace.mkdir()
    server = _start(workspace, home)
    try:
        run_id = _command(server, "modelmill.evaluate", {"path": str(workspace / "missing")})["runId"]
        deadline = time.monotonic() + 120
        while not (replay := _command(server, "modelmill.runEvents", {"runId": run_id}))["finished"]:
            assert time.monotonic() < deadline, replay
            time.sleep(0.1)
        types = [event["type"] for event in replay["events"]]
        assert replay["status"] == "failed" and types[-1] == "run.finished" and "error" in types
        live = [m["params"] for m in server.notifications if m.get("method") == "modelmill/runEvent"]
        assert replay["events"] == live  # the same events the client was sent, in order
        later = _command(server, "modelmill.runEvents", {"runId": run_id, "since": replay["events"][0]["seq"]})
        assert later["events"] == replay["events"][1:]
        unknown = server.request("workspace/executeCommand", {"command": "modelmill.runEvents",
                                                              "arguments": [{"runId": "nope"}]})
        assert unknown["error"]["code"] == -32803
    finally:
        server.close()
    server = _start(workspace, home)  # a new session in the same workspace
    try:
        listed = _command(server, "modelmill.runs", {})
        assert [run["runId"] for run in listed] == [run_id] and listed[0]["status"] == "failed"
        assert _command(server, "modelmill.runEvents", {"runId": run_id})["events"] == replay["events"]
    finally:
        server.close()
    server = _start(tmp_path, home)  # another workspace: not its runs
    try:
        assert _command(server, "modelmill.runs", {}) == []
    finally:
        server.close()


def test_a_client_that_asks_for_the_state_gets_the_reduced_run(tmp_path: Path) -> None:
    """``runNotifications: state`` (the VS Code extension): ``modelmill/runState`` with the run as run_state reduces
    it, no raw events; ``modelmill.runState`` answers the same state, also after a restart (rebuilt from the
    history)."""
    workspace, home = tmp_path / "ws", tmp_path / "home"
    workspace.mkdir()
    server = JsonRpcClient(str(workspace), {"MODELMILL_HOME": str(home)})
    try:
        server.request("initialize", {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {},
                                      "initializationOptions": {"runNotifications": "state"}})
        server.notify("initialized", {})
        run_id = _command(server, "modelmill.evaluate", {"path": str(workspace / "missing")})["runId"]
        deadline = time.monotonic() + 120
        while not (states := [m["params"] for m in server.notifications if m.get("method") == "modelmill/runState"]) \
                or states[-1]["status"] == "running":
            assert time.monotonic() < deadline, states
            time.sleep(0.1)
        assert not [m for m in server.notifications if m.get("method") == "modelmill/runEvent"]
        final = states[-1]
        assert (final["runId"], final["label"], final["status"]) == (run_id, "evaluate missing", "failed")
        assert final["error"]["message"] and final["step"].startswith("failed: ")
        assert [s["version"] for s in states] == sorted(s["version"] for s in states)
        assert _command(server, "modelmill.runState", {"runId": run_id}) == final
        unknown = server.request("workspace/executeCommand", {"command": "modelmill.runState",
                                                              "arguments": [{"runId": "nope"}]})
        assert unknown["error"]["code"] == -32803
        missing = server.request("workspace/executeCommand", {"command": "modelmill.runState", "arguments": [{}]})
        assert missing["error"]["code"] == -32602 and "missing argument 'runId'" in missing["error"]["message"]
    finally:
        server.close()
    server = _start(workspace, home)
    try:
        assert _command(server, "modelmill.runState", {"runId": run_id}) == final
    finally:
        server.close()


def _finished(server: JsonRpcClient, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while not (replay := _command(server, "modelmill.runEvents", {"runId": run_id}))["finished"]:
        assert time.monotonic() < deadline, replay
        time.sleep(0.2)
    return replay


def test_metrics_to_pick_and_runs_compared_side_by_side(tmp_path: Path, tiny_llama_dir: Path,
                                                        tiny_bert_dir: Path) -> None:
    """``modelmill.evaluateMetrics`` answers the presets for the model's kind; ``modelmill.compare`` puts two
    finished evaluations side by side (ratios against the first), also after a restart, and refuses what it cannot
    compare with a reason."""
    workspace, home = tmp_path / "ws", tmp_path / "home"
    workspace.mkdir()
    server = _start(workspace, home)
    try:
        picked = _command(server, "modelmill.evaluateMetrics", {"path": str(tiny_llama_dir)})
        assert picked["modelKind"] == "hf_causal"
        assert [o["name"] for o in picked["options"] if o["default"]] == ["llm", "perplexity", "size"]
        runs = [_command(server, "modelmill.evaluate", {"path": str(path), "metrics": ["size"]})["runId"]
                for path in (tiny_llama_dir, tiny_bert_dir)]
        assert all(_finished(server, run_id)["status"] == "succeeded" for run_id in runs)
        compared = _command(server, "modelmill.compare", {"sources": runs})
        [row] = compared["rows"]
        assert [c["label"] for c in compared["columns"]] == [tiny_llama_dir.name, tiny_bert_dir.name]
        assert row["key"] == "size-bytes" and not row["higherIsBetter"]
        llama, bert = (cell["value"] for cell in row["cells"])
        assert row["cells"][1]["ratio"] == bert / llama and row["cells"][0]["text"].endswith("KiB")
        assert [p["caption"] for p in compared["plots"]] == ["size-bytes"]
        for sources, said in [([runs[0]], "two or more"), ([runs[0], str(workspace)], "no metrics.json")]:
            refused = server.request("workspace/executeCommand", {"command": "modelmill.compare",
                                                                  "arguments": [{"sources": sources}]})
            assert refused["error"]["code"] == -32803 and said in refused["error"]["message"], refused
    finally:
        server.close()
    server = _start(workspace, home)  # the runs come back from the history, comparable again
    try:
        assert _command(server, "modelmill.compare", {"sources": runs[::-1]})["rows"][0]["cells"][1]["value"] == llama
    finally:
        server.close()
