"""OrtTransformersOptimization: fused BERT, untouched numerics, ModelBuilder outputs still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import events, make_context, op_types, run, run_pass, session, token_feeds
from modelmill.engine.context import Accelerator
from modelmill.engine.data import dummy_feeds, model_dims, onnx_input_specs
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.transformers_optimization import OrtTransformersOptimization


def test_bert_fusions(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    result, ctx = run_pass(OrtTransformersOptimization, tiny_bert_onnx, tmp_path)  # model_type inferred: bert
    ops = op_types(result)
    assert ops["Attention"] == 2 and ops["SkipLayerNormalization"] > 0 and ops["EmbedLayerNormalization"] == 1
    feeds = token_feeds(tiny_bert_onnx)
    feeds["attention_mask"][0, 7:] = 0
    np.testing.assert_allclose(run(result, feeds), run(tiny_bert_onnx, feeds), atol=1e-4, rtol=1e-4)
    assert result.attributes["fused_operators"]["Attention"] == 2
    assert any("model_type=bert" in e["message"] for e in events(ctx, "log"))
    assert events(ctx, "pass.progress")[-1]["fraction"] == 1.0
    assert (result.path / "tokenizer.json").exists()


def test_llama_export_opt_level_99(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    result, _ = run_pass(OrtTransformersOptimization, tiny_llama_onnx, tmp_path, opt_level=99)
    assert op_types(result)["SimplifiedLayerNormalization"] > 0
    feeds = token_feeds(tiny_llama_onnx)
    np.testing.assert_allclose(run(result, feeds), run(tiny_llama_onnx, feeds), atol=1e-4, rtol=1e-4)


def test_model_builder_output_still_loads(tiny_llama_genai: ModelRef, tmp_path: Path) -> None:
    result, _ = run_pass(OrtTransformersOptimization, tiny_llama_genai, tmp_path)  # type from genai_config.json
    ops = op_types(result)
    assert ops["MatMulNBits"] > 0 and ops["GroupQueryAttention"] == 2
    assert (result.path / "genai_config.json").exists() and (result.path / "model.onnx.data").exists()
    feeds = dummy_feeds(onnx_input_specs(tiny_llama_genai.model_file), 1, 6, 0, model_dims(tiny_llama_genai))
    np.testing.assert_allclose(run(result, feeds), run(tiny_llama_genai, feeds), atol=1e-3, rtol=1e-3)


def test_float16_rejected_on_cpu(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="float16 is not supported with CPUExecutionProvider") as info:
        run_pass(OrtTransformersOptimization, tiny_bert_onnx, tmp_path, float16=True)
    assert "OnnxFloatToFloat16" in (info.value.fix or "")


def test_float16_on_gpu_target(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "fp16", accelerator=Accelerator("gpu", "CUDAExecutionProvider"))
    result, _ = run_pass(OrtTransformersOptimization, tiny_bert_onnx, tmp_path, ctx=ctx, float16=True)
    assert session(result).get_inputs()[0].type == "tensor(int64)"
    assert result.attributes["precision"] == "fp16"


def test_bad_inputs(tiny_bert_dir: Path, tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="needs an ONNX model"):
        run_pass(OrtTransformersOptimization, ModelRef(kind="hf", path=tiny_bert_dir), tmp_path)
    with pytest.raises(PassError, match="unknown model_type"):
        run_pass(OrtTransformersOptimization, tiny_bert_onnx, tmp_path, model_type="bertt")
    with pytest.raises(Exception, match="only_onnxruntime needs opt_level"):
        OrtTransformersOptimization.Params(only_onnxruntime=True)
    with pytest.raises(Exception, match="opt_level"):
        OrtTransformersOptimization.Params(opt_level=3)
