"""OnnxBlockWiseRtnQuantization (+ HQQ / k-quant variants): int4 MatMulNBits weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import cosine, events, op_types, run, run_pass, token_feeds
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.blockwise_rtn import OnnxBlockWiseRtnQuantization, OnnxHqqQuantization, OnnxKQuantQuantization
from modelmill.passes.registry import find_pass


def test_rtn_llama(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    result, ctx = run_pass(OnnxBlockWiseRtnQuantization, tiny_llama_onnx, tmp_path, block_size=32, accuracy_level=4)
    ops = op_types(result)
    assert ops["MatMulNBits"] == 15 and ops["MatMul"] == op_types(tiny_llama_onnx)["MatMul"] - 15
    feeds = token_feeds(tiny_llama_onnx)
    assert cosine(run(result, feeds), run(tiny_llama_onnx, feeds)) > 0.98
    assert result.attributes["precision"] == "int4"
    assert (result.path / "tokenizer.json").exists()
    assert any("15 of 15" in e["message"] for e in events(ctx, "log"))
    assert events(ctx, "pass.progress")[-1]["fraction"] == 1.0


def test_rtn_gather_and_exclusion(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    import onnx

    proto = onnx.load(str(tiny_llama_onnx.model_file), load_external_data=False)
    lm_head = [n.name for n in proto.graph.node if n.op_type == "MatMul"][-1]
    result, _ = run_pass(OnnxBlockWiseRtnQuantization, tiny_llama_onnx, tmp_path, op_types_to_quantize=["MatMul", "Gather"],
                         nodes_to_exclude=[lm_head], is_symmetric=False)
    ops = op_types(result)
    assert ops["MatMulNBits"] == 14 and ops["GatherBlockQuantized"] == 1
    feeds = token_feeds(tiny_llama_onnx)
    assert cosine(run(result, feeds), run(tiny_llama_onnx, feeds)) > 0.97


@pytest.mark.parametrize("pass_cls", [OnnxHqqQuantization, OnnxKQuantQuantization])
def test_hqq_and_kquant(pass_cls: type, tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    result, _ = run_pass(pass_cls, tiny_llama_onnx, tmp_path)
    assert op_types(result)["MatMulNBits"] == 15
    feeds = token_feeds(tiny_llama_onnx)
    assert cosine(run(result, feeds), run(tiny_llama_onnx, feeds)) > 0.98


def test_names_and_defaults() -> None:
    assert find_pass("onnxmatmul4quantizer") is OnnxBlockWiseRtnQuantization
    assert find_pass("OnnxHqqQuantization") is OnnxHqqQuantization
    assert OnnxKQuantQuantization.Params().block_size == 32
    assert OnnxHqqQuantization.Params().algorithm == "hqq"
    with pytest.raises(Exception, match="power of two"):
        OnnxBlockWiseRtnQuantization.Params(block_size=48)
    with pytest.raises(Exception, match="MatMul only"):
        OnnxHqqQuantization.Params(op_types_to_quantize=["MatMul", "Gather"])


def test_already_quantized_model_fails(tiny_llama_genai: ModelRef, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="no MatMul"):
        run_pass(OnnxBlockWiseRtnQuantization, tiny_llama_genai, tmp_path)


def test_hf_input_rejected(tiny_llama_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="needs an ONNX model"):
        run_pass(OnnxBlockWiseRtnQuantization, ModelRef(kind="hf", path=tiny_llama_dir), tmp_path)
