"""optimize: Olive's flags become ModelMill's passes (or Olive's, which the run then refuses by name)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.cli import main


def _dry(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main([*argv, "--dry_run"]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_llm_defaults_to_model_builder(tiny_llama_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = _dry(["optimize", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--precision", "int4",
                   "--block_size", "64", "--extra_mb_options", "int4_is_symmetric=false"], capsys)
    assert config["passes"] == {"model_builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": 64,
                                                  "extra_options": {"int4_is_symmetric": "false"}}}


def test_onnx_int8_with_activations_is_static_qdq(tiny_llama_onnx, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = _dry(["optimize", "-m", str(tiny_llama_onnx.path), "-o", str(tmp_path / "o"), "--precision", "int8",
                   "--act_precision", "uint8", "--use_qdq_format"], capsys)
    types = [entry["type"] for entry in config["passes"].values()]
    assert types == ["OnnxPeepholeOptimizer", "OnnxStaticQuantization"]
    static = config["passes"]["onnx_static_quantization"]
    assert static["activation_type"] == "uint8" and static["quant_format"] == "QDQ"


def test_unpaired_dim_flags_are_refused(tiny_llama_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimize", "-m", str(tiny_llama_dir), "--dim_param", "batch"]) != 0
    assert "--dim_value" in capsys.readouterr().err


def test_dim_flags_fix_the_named_dimension(tiny_llama_onnx, tmp_path: Path) -> None:
    import onnx

    source = onnx.load(str(tiny_llama_onnx.path / tiny_llama_onnx.onnx_file), load_external_data=False).graph
    assert any(d.dim_param == "batch_size" for i in source.input for d in i.type.tensor_type.shape.dim)
    out = tmp_path / "o"
    code = main(["optimize", "-m", str(tiny_llama_onnx.path), "-o", str(out), "--dim_param", "batch_size",
                 "--dim_value", "1", "--precision", "fp32"])
    assert code == 0
    manifest = json.loads((out / "modelmill_run.json").read_text())
    assert "DynamicToFixedShape" in [p["type"] for p in manifest["passes"]]
    graph = onnx.load(str(out / "model.onnx"), load_external_data=False).graph
    dims = [d for i in graph.input for d in i.type.tensor_type.shape.dim]
    assert all(d.dim_param != "batch_size" for d in dims)
