"""auto-opt's pass choice for LLMs, encoders and ONNX models."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmill.engine.autoopt import AutoOptRequest, build_config
from modelmill.errors import ConfigError


def _types(config: dict) -> list[str]:
    return [entry["type"] for entry in config["passes"].values()]


def test_llm_goes_through_the_model_builder(tiny_llama_dir: Path) -> None:
    config = build_config(AutoOptRequest(model=str(tiny_llama_dir), output_path="out"), tiny_llama_dir)
    assert _types(config) == ["ModelBuilder"]
    builder = config["passes"]["model_builder"]
    assert builder["precision"] == "int4" and builder["int4_accuracy_level"] == 4
    assert builder["int4_op_types_to_quantize"] == ["MatMul", "Gather"]
    assert config["systems"]["local_system"]["accelerators"] == [
        {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]


def test_fp16_llm_on_cpu_is_refused(tiny_llama_dir: Path) -> None:
    with pytest.raises(ConfigError, match="GPU execution provider"):
        build_config(AutoOptRequest(model="m", output_path="o", precision="fp16"), tiny_llama_dir)


@pytest.mark.parametrize(("precision", "last"), [("int8", "OnnxDynamicQuantization"),
                                                 ("int4", "OnnxBlockWiseRtnQuantization"),
                                                 ("fp16", "OnnxFloatToFloat16")])
def test_encoder_is_exported_optimized_and_quantized(tiny_bert_dir: Path, precision: str, last: str) -> None:
    config = build_config(AutoOptRequest(model="m", output_path="o", precision=precision), tiny_bert_dir)
    assert _types(config) == ["OnnxConversion", "OrtTransformersOptimization", last]
    assert config["passes"]["transformers_optimization"]["model_type"] == "bert"
    assert config["input_model"]["task"] == "feature-extraction"  # embeddings, not an LM head


def test_onnx_input_is_quantized_directly(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    config = build_config(AutoOptRequest(model=str(tmp_path), output_path="o", precision="int8"), tmp_path)
    assert config["input_model"]["type"] == "ONNXModel" and _types(config) == ["OnnxDynamicQuantization"]


def test_unknown_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no config.json"):
        build_config(AutoOptRequest(model="m", output_path="o"), tmp_path)
