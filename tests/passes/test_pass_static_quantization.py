"""OnnxStaticQuantization: calibrated QDQ/QOperator int8 models close to the float model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import cosine, events, op_types, run, run_pass, token_feeds
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.static_quantization import OnnxStaticQuantization


def test_qdq_llama_default_calibration(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    result, ctx = run_pass(OnnxStaticQuantization, tiny_llama_onnx, tmp_path, max_calibration_samples=4)
    ops = op_types(result)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    feeds = token_feeds(tiny_llama_onnx)
    assert cosine(run(result, feeds), run(tiny_llama_onnx, feeds)) > 0.99
    messages = [e["message"] for e in events(ctx, "log")]
    assert any("keeping" in m and "in float" in m for m in messages)  # attention-mask nodes stay float
    progress = events(ctx, "pass.progress")
    assert any("calibration sample 4/4" in e["message"] for e in progress)
    assert progress[-1]["fraction"] == 1.0
    assert (result.path / "tokenizer.json").exists()


def test_qoperator_bert_with_named_local_dataset(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    data = tmp_path / "calib.jsonl"
    data.write_text("\n".join(json.dumps({"sentence": f"Example sentence number {i} about Python lists."})
                              for i in range(6)))
    data_configs = {"calib": {"name": "calib", "type": "HuggingfaceContainer",
                              "load_dataset_config": {"type": "local_dataset",
                                                      "params": {"data_files": str(data), "text_cols": "sentence"}}}}
    from helpers import make_context

    ctx = make_context(tmp_path, "static_bert", data_configs=data_configs)
    result, _ = run_pass(OnnxStaticQuantization, tiny_bert_onnx, tmp_path, ctx=ctx, data_config="calib",
                         quant_format="QOperator", activation_type="uint8", max_calibration_samples=3)
    ops = op_types(result)
    assert ops["QLinearMatMul"] > 0 or ops["MatMulInteger"] > 0
    feeds = token_feeds(tiny_bert_onnx)
    assert cosine(run(result, feeds), run(tiny_bert_onnx, feeds)) > 0.95
    assert any("3 samples" in e["message"] for e in events(ctx, "log"))


def test_unknown_data_config_lists_defined_names(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    from helpers import make_context

    ctx = make_context(tmp_path, "static_missing", data_configs={"wikitext": {}, "calib": {}})
    with pytest.raises(PassError, match="'nope' is not defined.*calib, wikitext"):
        run_pass(OnnxStaticQuantization, tiny_bert_onnx, tmp_path, ctx=ctx, data_config="nope")


def test_hf_input_rejected(tiny_bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="needs an ONNX model"):
        run_pass(OnnxStaticQuantization, ModelRef(kind="hf", path=tiny_bert_dir), tmp_path)


def test_params() -> None:
    with pytest.raises(Exception, match="calibrate_method"):
        OnnxStaticQuantization.Params(calibrate_method="KL")
    assert "quant_format" in OnnxStaticQuantization.Params.searchable_fields()
