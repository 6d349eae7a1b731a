"""run's Olive flags: --tempdir reaches the run's worker; --model_script/--script_dir are refused with the fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelmill.cli import main


@pytest.fixture
def _restore_tmpdir() -> None:
    import tempfile

    before, saved = os.environ.get("TMPDIR"), tempfile.tempdir
    yield
    tempfile.tempdir = saved
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before


def test_tempdir_is_created_and_the_run_succeeds(tiny_bert_onnx, tmp_path: Path, _restore_tmpdir: None) -> None:
    import tempfile

    import onnxruntime as ort

    config = tmp_path / "c.json"
    config.write_text(json.dumps({"input_model": {"type": "ONNXModel", "model_path": str(tiny_bert_onnx.path)},
                                  "passes": {"p": {"type": "OnnxPeepholeOptimizer"}},
                                  "output_dir": str(tmp_path / "out")}))
    assert main(["run", "--config", str(config), "--tempdir", str(tmp_path / "scratch")]) == 0
    assert (tmp_path / "scratch").is_dir()
    assert os.environ["TMPDIR"] == str((tmp_path / "scratch").resolve())  # what the worker process inherits
    assert tempfile.gettempdir() == str((tmp_path / "scratch").resolve())
    assert ort.InferenceSession(str(next((tmp_path / "out").glob("*.onnx"))), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("flag", ["--model_script", "--script_dir"])
def test_script_models_are_refused_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"input_model": {"type": "PyTorchModel", "model_loader": "load"},
                                  "passes": {"c": {"type": "OnnxConversion"}}, "output_dir": str(tmp_path / "o")}))
    assert main(["run", "--config", str(config), flag, str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err
    assert flag in err and "torch.onnx.export" in err and not (tmp_path / "o").exists()
