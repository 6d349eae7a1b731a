"""OnnxPeepholeOptimizer: fewer nodes, identical outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import events, op_types, run, run_pass, token_feeds
from modelmill.engine.data import dummy_feeds, model_dims, onnx_input_specs
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.peephole import OnnxPeepholeOptimizer


def test_llama_export_shrinks_and_matches(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    result, ctx = run_pass(OnnxPeepholeOptimizer, tiny_llama_onnx, tmp_path)
    before, after = sum(op_types(tiny_llama_onnx).values()), sum(op_types(result).values())
    assert after < before * 0.8
    assert op_types(result)["Constant"] < op_types(tiny_llama_onnx)["Constant"]
    for batch, seq in [(1, 3), (2, 19)]:
        feeds = token_feeds(tiny_llama_onnx, batch=batch, seq=seq)
        np.testing.assert_allclose(run(result, feeds), run(tiny_llama_onnx, feeds), atol=1e-5, rtol=1e-5)
    messages = [e["message"] for e in events(ctx, "log")]
    assert any(f"{before} → {after} nodes" in m for m in messages)
    assert (result.path / "config.json").exists()


def test_model_builder_output(tiny_llama_genai: ModelRef, tmp_path: Path) -> None:
    result, _ = run_pass(OnnxPeepholeOptimizer, tiny_llama_genai, tmp_path, fix_com_microsoft_opset=True)
    assert op_types(result)["GroupQueryAttention"] == 2
    feeds = dummy_feeds(onnx_input_specs(tiny_llama_genai.model_file), 1, 5, 0, model_dims(tiny_llama_genai))
    np.testing.assert_allclose(run(result, feeds), run(tiny_llama_genai, feeds), atol=1e-5)
    assert (result.path / "genai_config.json").exists()


def test_hf_input_rejected(tiny_bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="needs an ONNX model"):
        run_pass(OnnxPeepholeOptimizer, ModelRef(kind="hf", path=tiny_bert_dir), tmp_path)
