"""The command line: fast start-up, Olive's flags, clear errors with nonzero exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelmill.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative outputs (and an Olive config's default .olive-cache) land in the test's folder."""
    monkeypatch.chdir(tmp_path)


def test_startup_imports_no_heavy_library() -> None:
    code = ("import sys, modelmill.cli as c; c.build_parser().format_help(); "
            "print([m for m in ('torch', 'onnxruntime', 'transformers', 'onnx', 'rich', 'pydantic') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_olive_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "modelmill", "--help"], capture_output=True, text=True, check=True)
    for command in ("auto-opt", "run", "quantize", "capture-onnx-graph", "validate", "migrate", "schema", "samples",
                    "chat", "generate"):
        assert command in out.stdout


def test_hub_id_fails_before_any_work(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["auto-opt", "-m", "meta-llama/Llama-3.2-1B-Instruct", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0 and "not found locally" in err and "fix:" in err
    assert not (tmp_path / "out").exists()


def test_gpu_without_cuda_ep_is_refused_before_work(tiny_llama_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    code = main(["auto-opt", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "out"), "--device", "gpu",
                 "--precision", "fp16"])
    err = capsys.readouterr().err
    assert code != 0 and "CUDAExecutionProvider" in err and "onnxruntime-gpu" in err
    assert not (tmp_path / "out").exists()


def test_auto_opt_dry_run_prints_plan_and_config(tiny_llama_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["auto-opt", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "out"), "--dry_run"])
    captured = capsys.readouterr()
    assert code == 0 and "ModelBuilder" in captured.err
    config = json.loads(captured.out)
    assert config["passes"]["model_builder"]["precision"] == "int4"
    assert not (tmp_path / "out").exists()


def test_auto_opt_int4_then_chat_on_a_tiny_model(tiny_llama_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    events = tmp_path / "events.jsonl"
    assert main(["auto-opt", "-m", str(tiny_llama_dir), "-o", str(out), "--precision", "int4",
                 "--events", str(events)]) == 0
    assert (out / "genai_config.json").exists() and (out / "modelmill_run.json").exists()
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert lines[0]["type"] == "run.started" and lines[-1]["status"] == "succeeded"
    capsys.readouterr()
    assert main(["generate", str(out), "The", "--max_new_tokens", "5"]) == 0
    assert capsys.readouterr().out.strip() != ""


def test_run_config_with_old_schema_on_a_tiny_model(tiny_llama_dir: Path, tmp_path: Path) -> None:
    config = json.loads((ROOT / "examples" / "olive_tutorial_config.json").read_text())
    config["input_model"]["config"]["hf_config"]["model_name"] = str(tiny_llama_dir)
    config["engine"]["output_dir"] = str(tmp_path / "optimized")
    config["engine"]["cache_dir"] = str(tmp_path / "cache")
    path = tmp_path / "tutorial.json"
    path.write_text(json.dumps(config))
    assert main(["run", "--config", str(path)]) == 0
    manifest = json.loads((tmp_path / "optimized" / "modelmill_run.json").read_text())
    assert [p["type"] for p in manifest["passes"]] == ["ModelBuilder", "OrtTransformersOptimization"]


def test_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"input_model": {"type": "HfModel", "model_path": "sample:smollm2"},
                                "passes": {"b": {"type": "ModelBuilder", "precision": "int4"}}}))
    assert main(["validate", str(good)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "input_model": {"type": "HfModel", "model_path": "sample:smollm2"},\n'
                   '  "passes": {"b": {"type": "ModelBulder", "precision": "int4"}}\n}\n')
    capsys.readouterr()
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:3:" in out and "ModelBuilder" in out


def test_schema_and_migrate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "passes" in schema["properties"]
    target = tmp_path / "migrated.json"
    assert main(["migrate", str(ROOT / "examples" / "olive_tutorial_config.json"), "-o", str(target)]) == 0
    migrated = json.loads(target.read_text())
    assert migrated["input_model"]["type"] == "HfModel" and "engine" not in migrated
    assert migrated["search_strategy"]["sampler"] == "tpe"


def test_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "input_model": {"type": "HfModel", "model_path": "sample:smollm2"},\n'
                   '  "passes": {"b": {"type": "ModelBulder", "precision": "int4"}}\n}\n')
    capsys.readouterr()
    assert main(["validate", "--json", str(bad)]) == 1
    found = json.loads(capsys.readouterr().out)
    unknown = next(d for d in found if d["code"] == "unknown-pass-type")
    assert unknown["file"] == str(bad) and unknown["severity"] == "error"
    assert unknown["path"] == ["passes", "b", "type"]
    assert unknown["range"]["start"]["line"] == 2
    assert unknown["data"]["replace_with"] == "ModelBuilder"
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"input_model": {"type": "HfModel", "model_path": "sample:smollm2"},
                                "passes": {"b": {"type": "ModelBuilder", "precision": "int4"}}}))
    assert main(["validate", "--json", str(good)]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_an_onnx_folder_with_several_models_and_no_model_onnx_is_refused(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """SplitModel's output (split_0.onnx, split_1.onnx): taking the first file alone would optimize a third of the
    model and call it the model."""
    folder = tmp_path / "splits"
    folder.mkdir()
    for name in ("split_0.onnx", "split_1.onnx", "split_2.onnx"):
        (folder / name).write_bytes(b"")
    config = tmp_path / "olive.json"
    config.write_text(json.dumps({"input_model": {"type": "ONNXModel", "model_path": str(folder)},
                                  "passes": {"q": {"type": "OnnxDynamicQuantization"}},
                                  "output_dir": str(tmp_path / "out")}))
    assert main(["run", "--config", str(config)]) != 0
    err = capsys.readouterr().err
    assert "3 ONNX files (split_0.onnx, split_1.onnx, split_2.onnx)" in err and "onnx_file_name" in err
    assert not (tmp_path / "out").exists()
    assert main(["validate", str(config)]) != 0  # the editor's check says it too, as the config is typed
    assert "3 ONNX files" in capsys.readouterr().out
