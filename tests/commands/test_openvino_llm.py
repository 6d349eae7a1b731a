"""OpenVINO LLM outputs in `modelmill chat`/`generate` (openvino-genai), and auto-opt's OpenVINO path end to end.

The end-to-end tests need modelmill[openvino] and optimum-intel, which live in a separate environment
(docs/openvino.md); they skip with the reason elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from modelmill.openvino_genai import is_openvino_llm, llm_ir

needs_optimum = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("openvino", "openvino_genai", "nncf", "optimum"))
    or importlib.util.find_spec("optimum.intel") is None,
    reason="needs modelmill[openvino] and optimum-intel (a separate environment: docs/openvino.md)")


def _ir(folder: Path, stem: str) -> None:
    (folder / f"{stem}.xml").write_text("<net/>")
    (folder / f"{stem}.bin").write_bytes(b"")


def test_llm_ir_finds_the_renamed_model(tmp_path: Path) -> None:
    for stem in ("openvino_tokenizer", "openvino_detokenizer"):
        _ir(tmp_path, stem)
    assert llm_ir(tmp_path) is None  # tokenizers only
    _ir(tmp_path, "openvino_model_dy")  # what OpenVINOIoUpdate writes
    assert llm_ir(tmp_path) == tmp_path / "openvino_model_dy.xml"
    _ir(tmp_path, "other")
    assert llm_ir(tmp_path) is None  # two candidates: not guessed
    _ir(tmp_path, "openvino_model")
    assert llm_ir(tmp_path) == tmp_path / "openvino_model.xml"


def test_an_encoder_ir_with_tokenizer_irs_is_not_an_llm(tmp_path: Path) -> None:
    """optimum-intel writes tokenizer IRs for a BERT too: `run` must not offer `modelmill chat` for it."""
    for stem in ("openvino_tokenizer", "openvino_detokenizer", "openvino_model"):
        _ir(tmp_path, stem)
    assert is_openvino_llm(tmp_path)  # no config.json: the IR layout is all there is to go by
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    assert not is_openvino_llm(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    assert is_openvino_llm(tmp_path)


def test_llm_ir_needs_the_tokenizer_irs(tmp_path: Path) -> None:
    _ir(tmp_path, "openvino_model")
    assert llm_ir(tmp_path) is None


@needs_optimum
@pytest.mark.slow
def test_auto_opt_openvino_then_chat_and_generate(tiny_llama_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from modelmill.cli import main

    out = tmp_path / "out"
    assert main(["auto-opt", "-m", str(tiny_llama_dir), "-o", str(out), "--provider", "OpenVINOExecutionProvider",
                 "--precision", "int4"]) == 0
    manifest = json.loads((out / "modelmill_run.json").read_text())
    assert [p["type"] for p in manifest["passes"]] == ["OpenVINOOptimumConversion", "OpenVINOIoUpdate",
                                                       "OpenVINOEncapsulation"]
    # The EPContext model and the renamed IR it points at; openvino-genai alone would not find that IR.
    assert (out / "openvino_model_dy.onnx").exists() and llm_ir(out) == out / "openvino_model_dy.xml"
    assert "modelmill chat" in capsys.readouterr().err
    assert main(["generate", str(out), "The", "--max_new_tokens", "5", "--stats"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() != "" and "tokens/s" in captured.err
    assert main(["chat", str(out), "hello", "--max_new_tokens", "4"]) == 0
    assert capsys.readouterr().out.strip() != ""


@needs_optimum
@pytest.mark.slow
def test_chat_model_streams_and_counts(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from modelmill.engine.model import ModelRef
    from modelmill.genai import GenerationStats
    from modelmill.openvino_genai import OpenVINOChatModel
    from modelmill.passes.openvino_io_update import OpenVINOIoUpdate
    from modelmill.passes.openvino_optimum import OpenVINOOptimumConversion

    from tests.helpers import make_context

    exported = OpenVINOOptimumConversion().run(
        ModelRef("hf", tiny_llama_dir), OpenVINOOptimumConversion.Params(ov_quant_config={"weight_format": "int8"}),
        make_context(tmp_path, "export"))
    renamed = OpenVINOIoUpdate().run(exported, OpenVINOIoUpdate.Params(), make_context(tmp_path, "io"))
    assert renamed.onnx_file == "openvino_model_dy.xml"
    model = OpenVINOChatModel(renamed.path)
    stats = GenerationStats()
    pieces = list(model.stream("The", 6, stats))
    assert stats.new_tokens == 6 and stats.prompt_tokens >= 1 and stats.prefill_ms > 0
    assert "".join(pieces) == "".join(model.stream("The", 6))  # greedy: the same text again
    assert isinstance(model.chat("hello", 4), str)


@needs_optimum
@pytest.mark.slow
def test_group_size_that_does_not_divide_names_the_fallback(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from modelmill.engine.model import ModelRef
    from modelmill.errors import PassError
    from modelmill.passes.openvino_optimum import OpenVINOOptimumConversion

    from tests.helpers import make_context

    params = OpenVINOOptimumConversion.Params(ov_quant_config={"weight_format": "int4", "group_size": 48})
    with pytest.raises(PassError, match="group_size 48 does not divide") as caught:
        OpenVINOOptimumConversion().run(ModelRef("hf", tiny_llama_dir), params, make_context(tmp_path, "g48"))
    assert "group_size_fallback" in (caught.value.fix or "")
