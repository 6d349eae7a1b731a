"""LLM metrics on the tiny Llama: genai prefill/decode, HF generate speed, perplexity (HF, ONNX, genai)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from modelmill.engine.model import ModelRef
from modelmill.evaluate import evaluate_model
from modelmill.evaluate.llm import perplexity

SPEED = {"prompt_length": 32, "new_tokens": 16, "warmup_num": 1, "repeat_test_num": 2}
PPL = {"max_length": 64, "max_samples": 4}


def _llm_metric(*names: str, config: dict[str, object]) -> dict[str, object]:
    return {"name": "llm", "type": "llm", "sub_types": [{"name": n, "metric_config": config} for n in names]}


def test_genai_prefill_and_decode(tiny_genai: ModelRef) -> None:
    assert tiny_genai.is_genai
    result = evaluate_model(tiny_genai, [_llm_metric("prefill_ms", "decode_tokens_per_s", config=SPEED)])
    values = result.by_key()
    assert values["llm-prefill_ms"].value > 0 and values["llm-prefill_ms"].unit == "ms"
    assert values["llm-decode_tokens_per_s"].value > 0 and values["llm-decode_tokens_per_s"].unit == "tokens/s"
    assert values["llm-decode_tokens_per_s"].higher_is_better and not values["llm-prefill_ms"].higher_is_better


def test_hf_and_plain_onnx_generate_speed(tiny_llama_dir: Path, tiny_llama_onnx: ModelRef) -> None:
    result = evaluate_model(ModelRef("hf", tiny_llama_dir),
                            [_llm_metric("prefill_ms", "decode_tokens_per_s", config=SPEED)])
    assert len(result.values) == 2 and all(value.value > 0 for value in result.values)
    # an ONNX causal LM without KV cache: greedy loop over the whole sequence
    small = {"prompt_length": 16, "new_tokens": 4, "warmup_num": 0, "repeat_test_num": 1}
    result = evaluate_model(tiny_llama_onnx, [_llm_metric("prefill_ms", "decode_tokens_per_s", config=small)])
    assert len(result.values) == 2 and all(value.value > 0 for value in result.values)


def test_perplexity_detects_perturbed_weights(tiny_llama_dir: Path, perturbed_llama_dir: Path,
                                               tiny_llama_onnx: ModelRef, tiny_genai: ModelRef) -> None:
    original = perplexity(ModelRef("hf", tiny_llama_dir), PPL)
    perturbed = perplexity(ModelRef("hf", perturbed_llama_dir), PPL)
    assert math.isfinite(original) and math.isfinite(perturbed)
    assert 1 < original < 2 * 512  # a random tiny model: near the vocabulary size, not exploding
    assert perturbed > original * 1.5
    # the ONNX export scores the same text the same way
    assert perplexity(tiny_llama_onnx, PPL) == pytest.approx(original, rel=1e-3)
    # the int4 genai model through a plain ORT session over its model.onnx (with empty past KV inputs)
    genai = evaluate_model(tiny_genai, [{"name": "acc", "type": "accuracy", "sub_types": [
        {"name": "perplexity", "metric_config": PPL}]}]).values[0]
    assert genai.key == "acc-perplexity" and not genai.higher_is_better
    assert genai.value == pytest.approx(original, rel=0.1)


def test_perplexity_on_local_text_file(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    (tmp_path / "held_out.txt").write_text("The quick brown fox jumps over the lazy dog. " * 20)
    data_config = {"name": "text", "load_dataset_config": {"type": "local_dataset",
                                                           "params": {"data_files": "held_out.txt"}}}
    result = evaluate_model(tiny_llama_onnx, [{"name": "llm", "type": "llm", "data_config": "text",
                                               "sub_types": [{"name": "perplexity", "metric_config": PPL}]}],
                            data_configs={"text": data_config}, base_dir=tmp_path)
    assert math.isfinite(result.values[0].value) and result.values[0].value > 1
    assert result.values[0].value != pytest.approx(perplexity(tiny_llama_onnx, PPL))
