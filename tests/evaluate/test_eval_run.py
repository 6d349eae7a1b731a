"""Evaluation as a run kind of engine/runner.py (evaluate/job.py): the CLI and the editor start the same
``EvaluateRun``; cancel and a lost worker are reported as for any run; reports are placed whole."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from modelmill.cli import main
from modelmill.engine.runner import RunHandle, start_run
from modelmill.evaluate.job import EvaluateRun, model_ref


def _until(handle: RunHandle, type_: str) -> dict:
    for event in handle.events(timeout=300):
        if event["type"] == type_:
            return event
    raise AssertionError(f"no {type_} event: {[e['type'] for e in handle.events(timeout=0)]}")


def _staging(folder: Path) -> list[str]:
    return [p.name for p in folder.parent.iterdir() if ".partial-" in p.name]


def _onnx_folder(tiny_bert_onnx, tmp_path: Path, name: str = "bert") -> Path:
    folder = tmp_path / name
    shutil.copytree(tiny_bert_onnx.path, folder)
    return folder


def test_cli_evaluates_through_the_runner(tiny_bert_onnx, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = _onnx_folder(tiny_bert_onnx, tmp_path)
    report = tmp_path / "reports"
    assert main(["evaluate", str(model), "--metrics", "size", "--json", "--report", str(report)]) == 0
    out, err = capsys.readouterr()
    payload = json.loads(out)
    assert payload["model_path"] == str(model.resolve()) and payload["metrics"]["size-bytes"] > 0
    assert f"evaluating {model.resolve()}" in err and "size-bytes =" in err and "reports:" in err
    assert sorted(p.name for p in report.iterdir()) == ["metrics.json", "metrics.md", "report.html"]
    assert json.loads((report / "metrics.json").read_text())["candidates"]["model"]["metrics"]["size-bytes"] > 0
    assert _staging(report) == []
    # again into the same folder: ModelMill's own reports are replaced, the folder's other files stay
    (report / "notes.txt").write_text("mine")
    assert main(["evaluate", str(model), "--metrics", "size", "--compare", str(model), "--report", str(report)]) == 0
    out, _ = capsys.readouterr()
    assert "size-bytes" in out and (report / "notes.txt").read_text() == "mine"


def test_cli_refuses_to_replace_a_users_report_file(tiny_bert_onnx, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    model = _onnx_folder(tiny_bert_onnx, tmp_path)
    report = tmp_path / "mine"
    report.mkdir()
    (report / "metrics.json").write_text('{"my": "numbers"}')
    assert main(["evaluate", str(model), "--metrics", "size", "--report", str(report)]) == 2
    err = capsys.readouterr().err
    assert "metrics.json, which ModelMill did not write" in err and "fix:" in err
    assert (report / "metrics.json").read_text() == '{"my": "numbers"}' and _staging(report) == []


def test_a_missing_model_is_a_failed_run_with_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    handle = start_run(EvaluateRun(str(tmp_path / "missing")), "eval-missing")
    outcome = handle.result(300)
    events = list(handle.events())
    assert outcome.status == "failed" and "does not exist" in outcome.error["message"] and outcome.error["fix"]
    assert [e["type"] for e in events] == ["run.started", "error", "run.finished"]
    assert main(["evaluate", str(tmp_path / "missing")]) == 1
    assert "error: model path" in capsys.readouterr().err


def test_cancel_an_evaluation_run(tiny_bert_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "reports"
    job = EvaluateRun(str(tiny_bert_dir), compare=str(tiny_bert_dir), metrics="latency", report_dir=report)
    handle = start_run(job, "eval-cancel")
    started = _until(handle, "evaluation.started")
    assert started["candidate"] == "model" and started["metrics"][0].startswith("latency-")
    handle.cancel()
    outcome = handle.result(60)
    events = list(handle.events())
    assert outcome.status == "cancelled" and outcome.output_dir is None
    # stopped while the first model was being measured: nothing evaluated, and the stream ends as every run's does
    assert "candidate.evaluated" not in [e["type"] for e in events]
    assert events[-1]["type"] == "run.finished" and events[-1]["status"] == "cancelled"
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert not report.exists() and _staging(report) == []


def test_a_killed_evaluation_worker_is_reported(tiny_bert_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "reports"
    handle = start_run(EvaluateRun(str(tiny_bert_dir), metrics="latency", report_dir=report), "eval-kill")
    _until(handle, "evaluation.started")
    os.kill(handle._process.pid, signal.SIGKILL)
    outcome = handle.result(60)
    events = list(handle.events())
    assert outcome.status == "failed" and outcome.error["kind"] == "worker-lost"
    assert "SIGKILL" in outcome.error["message"] and "nothing was written" in outcome.error["fix"]
    assert [e["type"] for e in events[-2:]] == ["error", "run.finished"]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert not report.exists() and _staging(report) == []


def test_remote_code_needs_the_flag(tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "custom"
    shutil.copytree(tiny_bert_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    assert main(["evaluate", str(folder), "--metrics", "latency"]) == 1
    err = capsys.readouterr().err
    assert "modeling_custom.py" in err and "--trust_remote_code" in err
    assert model_ref(str(folder), trust_remote_code=True).attributes == {"trust_remote_code": True}
    assert model_ref(str(folder)).attributes == {}


def test_a_folder_of_several_onnx_models_is_not_evaluated_as_its_first_one(tmp_path: Path) -> None:
    from modelmill.errors import ModelMillError

    for name in ("decoder.onnx", "encoder.onnx"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ModelMillError, match=r"2 ONNX files \(decoder.onnx, encoder.onnx\)") as info:
        model_ref(str(tmp_path))
    assert "pass the .onnx file" in (info.value.fix or "")
    assert model_ref(str(tmp_path / "encoder.onnx")).onnx_file == "encoder.onnx"
