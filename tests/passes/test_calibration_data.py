"""engine.data: input specs, dummy feeds and calibration data in Olive's data_config forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelmill.engine.data import InputSpec, calibration_feeds, dummy_feeds, onnx_input_specs, resolve_shape
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError


def test_default_uses_tokenizer_on_local_text(tiny_llama_onnx: ModelRef) -> None:
    from tokenizers import Tokenizer

    specs = onnx_input_specs(tiny_llama_onnx.model_file)
    samples = calibration_feeds(tiny_llama_onnx, None, specs, 3, sequence_length=20)
    assert len(samples) == 3
    ids = samples[0]["input_ids"]
    assert ids.shape == (1, 20) and ids.dtype == np.int64
    text = Tokenizer.from_file(str(tiny_llama_onnx.path / "tokenizer.json")).decode(ids[0].tolist())
    assert sum(ch.isalpha() for ch in text) > 20  # real text, not random ids
    assert (samples[0]["attention_mask"] == 1).all()


def test_random_ids_without_tokenizer(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    bare = ModelRef(kind="onnx", path=tmp_path)
    samples = calibration_feeds(bare, None, onnx_input_specs(tiny_llama_onnx.model_file), 2, sequence_length=8)
    assert samples[0]["input_ids"].shape == (1, 8) and samples[0]["input_ids"].max() < 256


def test_dummy_container(tiny_bert_onnx: ModelRef) -> None:
    specs = onnx_input_specs(tiny_bert_onnx.model_file)
    config = {"name": "d", "type": "TransformersTokenDummyDataContainer",
              "load_dataset_config": {"params": {"seq_len": 10, "max_samples": 2}}}
    samples = calibration_feeds(tiny_bert_onnx, config, specs, 5)
    assert len(samples) == 2 and samples[0]["input_ids"].shape == (1, 10)
    assert samples[0]["input_ids"].max() < 512 and (samples[0]["token_type_ids"] == 0).all()
    shaped = {"type": "DummyDataContainer", "load_dataset_config": {
        "params": {"input_names": ["input_ids", "attention_mask", "token_type_ids"],
                   "input_shapes": [[2, 6], [2, 6], [2, 6]]}}}
    assert calibration_feeds(tiny_bert_onnx, shaped, specs, 1)[0]["input_ids"].shape == (2, 6)


def test_local_txt_and_jsonl(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    specs = onnx_input_specs(tiny_llama_onnx.model_file)
    txt = tmp_path / "data.txt"
    txt.write_text("The first paragraph talks about lists and tuples in Python.\n\nThe second one is about dicts.")
    config = {"load_dataset_config": {"type": "local_dataset", "params": {"data_files": str(txt)}}}
    samples = calibration_feeds(tiny_llama_onnx, config, specs, 4, sequence_length=6)
    assert 1 <= len(samples) <= 2
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("\n".join(json.dumps({"body": "a fairly long sentence about the python language " * 3})
                               for _ in range(3)))
    config = {"load_dataset_config": {"type": "local_dataset", "params": {"data_files": str(jsonl),
                                                                          "text_field": "body"}}}
    assert len(calibration_feeds(tiny_llama_onnx, config, specs, 4, sequence_length=8)) == 3
    config["load_dataset_config"]["params"]["text_field"] = "missing"
    with pytest.raises(PassError, match="no field 'missing'"):
        calibration_feeds(tiny_llama_onnx, config, specs, 4)


def test_downloads_refused(tiny_llama_onnx: ModelRef) -> None:
    config = {"name": "wiki", "type": "HuggingfaceContainer",
              "load_dataset_config": {"type": "huggingface_dataset", "params": {"data_name": "wikitext"}}}
    with pytest.raises(PassError, match="download") as info:
        calibration_feeds(tiny_llama_onnx, config, onnx_input_specs(tiny_llama_onnx.model_file), 2)
    assert "local_dataset" in (info.value.fix or "")


def test_shapes_for_kv_cache_inputs() -> None:
    past = InputSpec("past_key_values.0.key", "float32", ("batch_size", 2, "past_sequence_length", "kv_cache_dim"))
    mask = InputSpec("attention_mask", "int64", ("batch_size", "total_sequence_length"))
    assert resolve_shape(past, 3, 7, 0, {"head_size": 16}) == (3, 2, 0, 16)
    assert resolve_shape(mask, 3, 7, 5) == (3, 12)
    feeds = dummy_feeds([past, mask, InputSpec("position_ids", "int64", ("batch", "seq"))], 1, 4, 0,
                        {"head_size": 16})
    assert feeds["position_ids"].tolist() == [[0, 1, 2, 3]]
