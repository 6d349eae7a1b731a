"""OnnxDynamicQuantization: int8 MatMulInteger graphs that stay close to the float model."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import cosine, events, op_types, run, run_pass, token_feeds
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.dynamic_quantization import OnnxDynamicQuantization


def test_int8_llama(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    result, ctx = run_pass(OnnxDynamicQuantization, tiny_llama_onnx, tmp_path)
    ops = op_types(result)
    assert ops["DynamicQuantizeLinear"] > 0 or ops["DynamicQuantizeMatMul"] > 0
    assert ops["MatMulInteger"] > 0 or ops["DynamicQuantizeMatMul"] > 0
    feeds = token_feeds(tiny_llama_onnx)
    assert cosine(run(result, feeds), run(tiny_llama_onnx, feeds)) > 0.99
    assert (result.path / "tokenizer.json").exists() and (result.path / "config.json").exists()
    assert result.model_file.stat().st_size + (result.path / "model.onnx.data").stat().st_size < \
        tiny_llama_onnx.model_file.stat().st_size + (tiny_llama_onnx.path / "model.onnx.data").stat().st_size
    assert events(ctx, "pass.progress")[-1]["fraction"] == 1.0
    assert not events(ctx, "warning")  # pre-processing (symbolic shape inference) worked


def test_uint8_per_channel_bert_without_preprocess(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    result, _ = run_pass(OnnxDynamicQuantization, tiny_bert_onnx, tmp_path, precision="uint8", per_channel=True,
                         quant_preprocess=False, op_types_to_exclude=["Gather"])
    ops = op_types(result)
    assert ops["MatMulInteger"] > 0 or ops["DynamicQuantizeMatMul"] > 0
    assert ops["Gather"] > 0
    feeds = token_feeds(tiny_bert_onnx)
    assert cosine(run(result, feeds), run(tiny_bert_onnx, feeds)) > 0.98


def test_hf_input_rejected(tiny_llama_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="needs an ONNX model") as info:
        run_pass(OnnxDynamicQuantization, ModelRef(kind="hf", path=tiny_llama_dir), tmp_path)
    assert "OnnxConversion" in (info.value.fix or "")


def test_precision_is_validated() -> None:
    with pytest.raises(Exception, match="precision"):
        OnnxDynamicQuantization.Params(precision="int4")
    assert OnnxDynamicQuantization.Params.searchable_fields()["precision"] == ["int8", "uint8"]
