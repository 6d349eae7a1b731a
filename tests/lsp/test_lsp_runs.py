"""Runs from the editor: modelmill.optimize on a tiny Llama (ModelBuilder int4), streamed as work-done
progress and modelmill/runEvent notifications; cancel (command and progress); a killed worker; evaluate;
a client without work-done progress. The server keeps answering while runs go."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsp_helpers import complete, dumps, open_document, server_config, until, vscode_capabilities
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")
# The tests here build on each other's runs (STATE), in file order: `make test` gives pytest-xdist's workers whole
# files (--dist loadfile).
STATE: dict[str, Any] = {}


@pytest_lsp.fixture(scope="module", config=server_config())
async def client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lsp_runs")
    STATE["root"] = root
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=vscode_capabilities(), root_uri=root.as_uri(),
        client_info=types.ClientInfo(name="Visual Studio Code"),
        initialization_options={"trusted": True, "settings": {"diagnosticsDelayMs": 0}}))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(scope="module", config=server_config())
async def minimal_client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=types.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


def _config(model_dir: Path, name: str, **builder: Any) -> Path:
    root: Path = STATE["root"]
    config = {"input_model": {"type": "HfModel", "model_path": str(model_dir)},
              "passes": {"builder": {"type": "ModelBuilder", "precision": "int4", **builder}},
              "output_dir": f"out-{name}", "cache_dir": "cache"}
    path = root / f"{name}.json"
    path.write_text(dumps(config))
    return path


async def _command(client: LanguageClient, command: str, **argument: Any) -> Any:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=command, arguments=[argument]))


def _events(client: LanguageClient, run_id: str) -> list[dict[str, Any]]:
    return [event for event, _ in client.run_events if event["run_id"] == run_id]  # type: ignore[attr-defined]


async def _wait_event(client: LanguageClient, run_id: str, kind: str, timeout: float = 300) -> dict[str, Any]:
    found = await until(lambda: [e for e in _events(client, run_id) if e["type"] == kind], timeout,
                        f"{kind} of {run_id}")
    return found[0]


def _token(client: LanguageClient, run_id: str) -> str:
    return next(token for token in client.progress_reports if run_id in str(token))


async def test_optimize_streams_progress_events_and_output(client: LanguageClient, tiny_llama_dir: Path) -> None:
    path = _config(tiny_llama_dir, "int4")
    started = await _command(client, "modelmill.optimize", uri=path.as_uri())
    run_id = started["runId"]
    # the server answers editor requests while the run goes: the answers come before the run's last event
    open_document(client, path.as_uri(), path.read_text())
    items = await complete(client, path.as_uri(), types.Position(line=1, character=2))
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=path.as_uri()), position=types.Position(line=7, character=17)))
    assert items and hover is not None
    assert "run.finished" not in [e["type"] for e in _events(client, run_id)]
    finished = await _wait_event(client, run_id, "run.finished")
    assert finished["status"] == "succeeded", _events(client, run_id)
    events = _events(client, run_id)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.finished"
    assert {"pass.started", "pass.progress", "pass.finished"} <= {e["type"] for e in events}
    assert all(e["v"] == 1 for e in events)
    output = Path(finished["output_dir"])
    assert output == STATE["root"] / "out-int4" and (output / "model.onnx").exists()
    reports = client.progress_reports[_token(client, run_id)]
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
    assert reports[0].title == "ModelMill: int4.json"
    middle = [r for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    assert middle and any("builder (ModelBuilder)" in (r.message or "") for r in middle)
    percentages = [r.percentage for r in middle if r.percentage is not None]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    assert isinstance(reports[-1], types.WorkDoneProgressEnd) and "succeeded" in reports[-1].message
    # streamed as they happen, not sent at the end: run.started reached the client before the run finished
    arrivals = [arrived for event, arrived in client.run_events if event["run_id"] == run_id]
    assert arrivals == sorted(arrivals) and arrivals[0] < finished["ts"]
    runs = await _command(client, "modelmill.runs")
    assert {"runId": run_id, "status": "succeeded", "outputDir": str(output)}.items() <= \
        next(r for r in runs if r["runId"] == run_id).items()
    STATE["output"] = output
    STATE["config"] = path


async def test_cancel_command_stops_the_run(client: LanguageClient, tiny_llama_dir: Path) -> None:
    path = _config(tiny_llama_dir, "int8", precision="int8")
    run_id = (await _command(client, "modelmill.optimize", uri=path.as_uri()))["runId"]
    await _wait_event(client, run_id, "pass.started")
    assert (await _command(client, "modelmill.cancel", runId=run_id)) == {"cancelled": True}
    finished = await _wait_event(client, run_id, "run.finished", timeout=30)
    assert finished["status"] == "cancelled"
    assert isinstance(client.progress_reports[_token(client, run_id)][-1], types.WorkDoneProgressEnd)
    assert not (STATE["root"] / "out-int8").exists()
    assert (await _command(client, "modelmill.cancel", runId=run_id)) == {"cancelled": False}


async def test_cancel_from_the_progress_ui(client: LanguageClient, tiny_llama_dir: Path) -> None:
    path = _config(tiny_llama_dir, "block64", int4_block_size=64)
    run_id = (await _command(client, "modelmill.optimize", uri=path.as_uri()))["runId"]
    await _wait_event(client, run_id, "pass.started")
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=_token(client, run_id)))
    finished = await _wait_event(client, run_id, "run.finished", timeout=30)
    assert finished["status"] == "cancelled"


async def test_killed_worker_leaves_the_server_answering(client: LanguageClient, tiny_llama_dir: Path) -> None:
    import psutil

    path = _config(tiny_llama_dir, "fp32", precision="fp32")
    run_id = (await _command(client, "modelmill.optimize", uri=path.as_uri()))["runId"]
    await _wait_event(client, run_id, "pass.started")
    server_pid = (await _command(client, "modelmill.debugInfo"))["pid"]
    workers = [p for p in psutil.Process(server_pid).children(recursive=True)
               if "multiprocessing" in " ".join(p.cmdline())]
    assert workers
    for worker in workers:
        worker.kill()
    finished = await _wait_event(client, run_id, "run.finished", timeout=30)
    error = next(e for e in _events(client, run_id) if e["type"] == "error")
    assert finished["status"] == "failed" and error["kind"] == "worker-lost" and "SIGKILL" in error["message"]
    assert any("ModelMill run failed" in m.message for m in client.messages)
    # still answering
    assert await complete(client, STATE["config"].as_uri(), types.Position(line=1, character=2))
    result = await _command(client, "modelmill.validate", uri=path.as_uri())
    assert result["errors"] == 0


async def test_evaluate_runs_in_a_worker(client: LanguageClient) -> None:
    run_id = (await _command(client, "modelmill.evaluate", path=str(STATE["output"]), metrics=["size"]))["runId"]
    finished = await _wait_event(client, run_id, "run.finished", timeout=120)
    assert finished["status"] == "succeeded", _events(client, run_id)
    events = _events(client, run_id)
    measured = [e for e in events if e["type"] == "metric.measured"]
    assert [e["key"] for e in measured] == ["size-bytes"] and measured[0]["value"] > 0
    assert finished["results"]["model"]
    assert [e["seq"] for e in events] == list(range(len(events))) and events[0]["type"] == "run.started"
    assert [e["type"] for e in events if e["type"].startswith(("evaluation", "candidate"))] == \
        ["evaluation.started", "candidate.evaluated"]


async def test_cancel_an_evaluate_run(client: LanguageClient, tiny_llama_dir: Path) -> None:
    """Evaluate goes through the engine's runner: cancel ends it as it ends an optimize run."""
    run_id = (await _command(client, "modelmill.evaluate", path=str(tiny_llama_dir), metrics=["perplexity"]))["runId"]
    await _wait_event(client, run_id, "evaluation.started")
    assert (await _command(client, "modelmill.cancel", runId=run_id)) == {"cancelled": True}
    finished = await _wait_event(client, run_id, "run.finished", timeout=60)
    assert finished["status"] == "cancelled"
    assert "candidate.evaluated" not in [e["type"] for e in _events(client, run_id)]
    assert isinstance(client.progress_reports[_token(client, run_id)][-1], types.WorkDoneProgressEnd)


async def test_client_without_progress_gets_log_lines(minimal_client: LanguageClient) -> None:
    started = await _command(minimal_client, "modelmill.optimize", uri=STATE["config"].as_uri())
    run_id = started["runId"]
    finished = await _wait_event(minimal_client, run_id, "run.finished", timeout=120)
    assert finished["status"] == "succeeded"
    assert not minimal_client.progress_reports
    lines = [m.message for m in minimal_client.log_messages if run_id in m.message]
    assert any("%" in line and "builder (ModelBuilder)" in line for line in lines), lines
    assert any("succeeded" in line for line in lines)


@pytest.mark.parametrize("output_dir", [".", ".."])
async def test_optimize_into_the_workspace_is_refused_and_deletes_nothing(client: LanguageClient, tiny_llama_dir: Path,
                                                                         output_dir: str) -> None:
    from pygls.exceptions import JsonRpcException

    root: Path = STATE["root"]
    path = _config(tiny_llama_dir, "wipe")
    config = path.read_text().replace('"out-wipe"', f'"{output_dir}"')
    path.write_text(config)
    (root / "keep.txt").write_text("the user's work")
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(JsonRpcException) as refused:
        await _command(client, "modelmill.optimize", uri=path.as_uri())
    assert "unsafe-output-dir" in str(refused.value) and "workspace" in str(refused.value)
    assert sorted(p.name for p in root.iterdir()) == before and (root / "keep.txt").read_text() == "the user's work"


async def test_optimize_refuses_a_missing_provider_as_the_cli_does(client: LanguageClient, tiny_llama_dir: Path) -> None:
    """engine/prepare.py: a run stops before any work when onnxruntime lacks the provider; Show Plan still plans."""
    from pygls.exceptions import JsonRpcException

    from modelmill.config.accelerators import installed_execution_providers

    if "CUDAExecutionProvider" in (installed_execution_providers() or ()):
        pytest.skip("this onnxruntime has CUDA")
    path = _config(tiny_llama_dir, "cuda")
    config = json.loads(path.read_text())
    config.update(systems={"gpu": {"type": "LocalSystem", "accelerators": [
        {"device": "gpu", "execution_providers": ["CUDAExecutionProvider"]}]}}, target="gpu")
    path.write_text(dumps(config))
    with pytest.raises(JsonRpcException) as refused:
        await _command(client, "modelmill.optimize", uri=path.as_uri())
    assert "CUDAExecutionProvider (device gpu) is not available in this onnxruntime" in str(refused.value)
    plan = await _command(client, "modelmill.plan", uri=path.as_uri())
    assert plan["executionProvider"] == "CUDAExecutionProvider"
