"""run-pass: any pass by name with JSON parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.cli import main


def test_config_has_the_named_pass(tiny_llama_onnx, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run-pass", "--pass-name", "onnxdynamicquantization", "--pass-config", '{"precision": "uint8"}',
                 "-m", str(tiny_llama_onnx.path), "-o", str(tmp_path / "o"), "--dry_run"]) == 0
    out = capsys.readouterr().out
    config = json.loads(out[out.index("{"):])
    assert config["passes"] == {"onnxdynamicquantization": {"type": "OnnxDynamicQuantization", "precision": "uint8"}}


def test_unknown_pass_suggests_a_name(tiny_llama_onnx, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run-pass", "--pass-name", "OnnxDynamicQuantisation", "-m", str(tiny_llama_onnx.path)]) == 2
    assert "OnnxDynamicQuantization" in capsys.readouterr().err


def test_bad_json_names_the_flag(tiny_llama_onnx, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run-pass", "--pass-name", "OnnxPeepholeOptimizer", "--pass-config", "{oops",
                 "-m", str(tiny_llama_onnx.path)]) == 2
    assert "--pass-config" in capsys.readouterr().err


def test_catalogue_pass_is_refused_as_not_runnable(tiny_llama_onnx, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run-pass", "--pass-name", "OrtMixedPrecision", "-m", str(tiny_llama_onnx.path),
                 "-o", str(tmp_path / "o")])
    assert code != 0 and "cannot run it here" in capsys.readouterr().err


def test_list_passes_marks_runnable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run-pass", "--list-passes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("ModelBuilder") and "runs here" in line for line in lines)
    assert any(line.startswith("Gptq") and "Olive only" in line for line in lines)
