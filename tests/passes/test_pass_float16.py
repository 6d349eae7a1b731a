"""OnnxFloatToFloat16: fp16 initializers, runs on CPU, close to fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import cosine, events, run, run_pass, session, token_feeds
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.float16 import OnnxFloatToFloat16


def _initializer_types(model: ModelRef) -> set[int]:
    import onnx

    proto = onnx.load(str(model.model_file), load_external_data=False)
    return {init.data_type for init in proto.graph.initializer if init.dims and np.prod(init.dims) > 16}


def test_llama_fp16(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    import onnx

    result, ctx = run_pass(OnnxFloatToFloat16, tiny_llama_onnx, tmp_path)
    assert _initializer_types(result) == {onnx.TensorProto.FLOAT16}
    assert session(result).get_outputs()[0].type == "tensor(float16)"  # keep_io_types false
    feeds = token_feeds(tiny_llama_onnx)
    out = run(result, feeds)
    assert out.dtype == np.float16
    assert cosine(out, run(tiny_llama_onnx, feeds)) > 0.999
    data = result.path / "model.onnx.data"
    assert data.stat().st_size < (tiny_llama_onnx.path / "model.onnx.data").stat().st_size * 0.6
    assert events(ctx, "pass.progress")[-1]["fraction"] == 1.0
    assert result.attributes["precision"] == "fp16"


def test_keep_io_types_and_block_list(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    result, _ = run_pass(OnnxFloatToFloat16, tiny_bert_onnx, tmp_path, keep_io_types=True, op_block_list=["Softmax"])
    out = run(result, token_feeds(tiny_bert_onnx))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, run(tiny_bert_onnx, token_feeds(tiny_bert_onnx)), atol=2e-2)


def test_exclusive_lists() -> None:
    with pytest.raises(Exception, match="op_block_list and op_include_list"):
        OnnxFloatToFloat16.Params(op_block_list=["Add"], op_include_list=["MatMul"])
    with pytest.raises(Exception, match="node_block_list and node_include_list"):
        OnnxFloatToFloat16.Params(node_block_list=["a"], node_include_list=["b"])


def test_hf_input_rejected(tiny_bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="needs an ONNX model"):
        run_pass(OnnxFloatToFloat16, ModelRef(kind="hf", path=tiny_bert_dir), tmp_path)
