"""ModelBuilder on a tiny Llama: real onnxruntime-genai builds, checked by op types and generation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import make_context

from modelmill.engine.context import Accelerator
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams, builder_options


def _build(tiny_llama_dir: Path, tmp_path: Path, **params: object) -> tuple[ModelRef, object]:
    ctx = make_context(tmp_path, "model_builder")
    out = ModelBuilder().run(ModelRef("hf", tiny_llama_dir), ModelBuilderParams(**params), ctx)
    return out, ctx


def _op_types(model: ModelRef) -> set[str]:
    return {node.op_type for node in onnx.load(str(model.model_file), load_external_data=False).graph.node}


def test_int4_build_has_matmulnbits_and_generates(tiny_llama_dir: Path, tmp_path: Path) -> None:
    import onnxruntime_genai as og

    out, ctx = _build(tiny_llama_dir, tmp_path, precision="int4", int4_op_types_to_quantize=["MatMul", "Gather"])
    ops = _op_types(out)
    assert "MatMulNBits" in ops and "GroupQueryAttention" in ops
    assert "GatherBlockQuantized" in ops  # the embedding table was quantized too
    for name in ("genai_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (out.path / name).exists(), name
    progress = [e["fraction"] for e in ctx.bus.of_type("pass.progress")]
    assert progress and progress == sorted(progress) and progress[-1] > 0.9

    model = og.Model(str(out.path))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=12)
    generator = og.Generator(model, params)
    generator.append_tokens(np.array([1, 40, 41, 42], dtype=np.int32))
    new_tokens = 0
    while not generator.is_done():
        generator.generate_next_token()
        assert 0 <= generator.get_next_tokens()[0] < 512
        new_tokens += 1
    assert new_tokens == 8


def test_fp32_build_matches_pytorch_logits(tiny_llama_dir: Path, tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForCausalLM

    out, _ = _build(tiny_llama_dir, tmp_path, precision="fp32")
    assert "MatMulNBits" not in _op_types(out)
    ids = np.array([[1, 50, 60, 70, 80]], dtype=np.int64)
    session = ort.InferenceSession(str(out.model_file), providers=["CPUExecutionProvider"])
    feeds: dict[str, np.ndarray] = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    for meta in session.get_inputs():
        if meta.name.startswith("past_key_values"):
            feeds[meta.name] = np.zeros((1, 2, 0, 16), dtype=np.float32)
    logits = session.run(["logits"], feeds)[0]
    reference = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    with torch.no_grad():
        expected = reference(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-3, rtol=1e-3)


def test_rejects_onnx_input_and_fp16_on_cpu(tiny_llama_dir: Path, tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "model_builder")
    with pytest.raises(PassError, match="Hugging Face model folder"):
        ModelBuilder().run(ModelRef("onnx", tmp_path), ModelBuilderParams(precision="int4"), ctx)
    with pytest.raises(PassError, match="fp16 is not supported on the CPU"):
        ModelBuilder().run(ModelRef("hf", tiny_llama_dir), ModelBuilderParams(precision="fp16"), ctx)
    ctx.accelerator = Accelerator("gpu", "ROCMExecutionProvider")
    with pytest.raises(PassError, match="cannot build for ROCMExecutionProvider"):
        ModelBuilder().run(ModelRef("hf", tiny_llama_dir), ModelBuilderParams(precision="int4"), ctx)


def test_builder_options_use_current_names() -> None:
    options = builder_options(ModelBuilderParams(precision="int4", int4_block_size=64, int4_accuracy_level=4,
                                                 int4_algo_config="k_quant", extra_options={"filename": "m.onnx"}))
    assert options["block_size"] == "64" and options["accuracy_level"] == "4"
    assert options["algo_config"] == "k_quant" and options["filename"] == "m.onnx"
    assert "int4_block_size" not in options
    assert "block_size" not in builder_options(ModelBuilderParams(precision="fp32"))


@pytest.mark.parametrize("precision", ["int4", "int8"])
def test_auto_opt_builder_options_are_pinned(tiny_llama_dir: Path, precision: str) -> None:
    """The exact --extra_options behind `auto-opt --precision int4|int8` on CPU (bench/README.md's lever table):
    symmetric RTN, block 32, int8 compute, tied embedding quantized with the LM head. Every int4 lever measured
    on sample:smollm2 (block 16/64/128, accuracy level 1, k_quant, asymmetric, int8 LM head, float LM head)
    was slower or no closer to fp32; int8 weights are the recipe within 2% of fp32 perplexity."""
    from modelmill.engine.autoopt import AutoOptRequest, build_config

    config = build_config(AutoOptRequest(model="m", output_path="o", precision=precision, tune_session=False),
                          tiny_llama_dir)
    params = {key: value for key, value in config["passes"]["model_builder"].items() if key != "type"}
    assert builder_options(ModelBuilderParams(**params)) == {
        "hf_token": "false", "hf_remote": "false", "block_size": "32", "accuracy_level": "4",
        "is_symmetric": "true", "op_types_to_quantize": "MatMul/Gather"}
    assert params["precision"] == precision


def test_producer_version_is_the_package_not_the_enclosing_checkout(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """The builder's `git rev-parse HEAD` would stamp the checkout its venv lives in (this repository's HEAD),
    changing model.onnx on every unrelated commit; ModelMill stamps the installed package's commit instead."""
    import onnxruntime_genai

    out, _ = _build(tiny_llama_dir, tmp_path, precision="int4")
    commit = getattr(onnxruntime_genai, "__commit__", None)
    expected = onnxruntime_genai.__version__ + (f"+{commit[:7]}" if commit else "")
    assert onnx.load(str(out.model_file), load_external_data=False).producer_version == expected
