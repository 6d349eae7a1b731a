"""Relative data paths resolve against the folder the run starts from (Olive's rule), never against the scratch
folder a pass runs in; the editor's runs take the config's folder first, then the workspace folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelmill.cli import main
from modelmill.engine.model import ModelRef


def _rows(marker: str, count: int = 6) -> str:
    return "\n".join(json.dumps({"text": f"{marker} sample {i} " * 6}) for i in range(count))


def _workflow(model: ModelRef, data_files: str, output: str) -> dict[str, Any]:
    return {"input_model": {"type": "ONNXModel", "model_path": str(model.path)},
            "data_configs": [{"name": "calib", "type": "HuggingfaceContainer",
                              "load_dataset_config": {"type": "local_dataset",
                                                      "params": {"data_files": data_files, "text_cols": "text"}}}],
            "passes": {"q": {"type": "OnnxStaticQuantization", "data_config": "calib", "max_calibration_samples": 2,
                             "calibration_sequence_length": 8}},
            "output_dir": output}


def test_run_config_reads_a_relative_data_file_from_the_folder_the_run_starts_in(
        tiny_llama_onnx: ModelRef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Config in one folder, the run started in another that holds data/calib.jsonl: Olive opens it from there."""
    configs, start = tmp_path / "configs", tmp_path / "start"
    (start / "data").mkdir(parents=True)
    configs.mkdir()
    (start / "data" / "calib.jsonl").write_text(_rows("alpha"))
    (configs / "wf.json").write_text(json.dumps(_workflow(tiny_llama_onnx, "data/calib.jsonl", "out")))
    monkeypatch.chdir(start)
    assert main(["run", "--config", str(configs / "wf.json")]) == 0
    assert (start / "out" / "model.onnx").exists()


def test_run_config_falls_back_to_the_configs_folder(tiny_llama_onnx: ModelRef, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Not in the starting folder but beside the config (where metrics' data has always been read from)."""
    configs, start = tmp_path / "configs", tmp_path / "start"
    configs.mkdir()
    start.mkdir()
    (configs / "calib.jsonl").write_text(_rows("alpha"))
    (configs / "wf.json").write_text(json.dumps(_workflow(tiny_llama_onnx, "calib.jsonl", "out")))
    monkeypatch.chdir(start)
    assert main(["run", "--config", str(configs / "wf.json"), "--dry_run"]) == 0
    assert main(["run", "--config", str(configs / "wf.json")]) == 0
    manifest = json.loads((start / "out" / "modelmill_run.json").read_text())
    assert manifest["passes"][0]["type"] == "OnnxStaticQuantization"


def test_a_missing_relative_data_file_names_the_absolute_path(tiny_llama_onnx: ModelRef, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "wf.json").write_text(json.dumps(_workflow(tiny_llama_onnx, "nowhere.jsonl", "out")))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--config", "wf.json"]) != 0
    assert str(tmp_path / "nowhere.jsonl") in capsys.readouterr().err


def test_quantize_d_with_a_relative_file(tiny_llama_onnx: ModelRef, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "calib.jsonl").write_text(_rows("alpha"))
    monkeypatch.chdir(tmp_path)
    assert main(["quantize", "-m", str(tiny_llama_onnx.path), "-o", "q", "--precision", "int8", "-d", "calib.jsonl",
                 "--text_field", "text", "--max_samples", "2", "--max_seq_len", "8"]) == 0
    assert (tmp_path / "q" / "model.onnx").exists()


@pytest.mark.slow
def test_finetune_d_with_a_relative_file(tiny_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"instruction": f"What is {i} + {i}?", "response": f"{2 * i}"} for i in range(12)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    monkeypatch.chdir(tmp_path)
    assert main(["finetune", "-m", str(tiny_llama_dir), "-d", "train.jsonl", "--text_template",
                 "Q: {instruction} A: {response}", "--max_steps", "1", "--lora_r", "2", "--max_seq_len", "32",
                 "-o", "ft"]) == 0
    assert (tmp_path / "ft" / "adapter" / "adapter_model.safetensors").exists()
