"""input_model.load_kwargs.torch_dtype reaches the PyTorch-level passes as the model's ``torch_dtype`` attribute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.config import load_document, load_workflow
from modelmill.engine.plan import resolve_input_model
from modelmill.errors import ConfigError


def _input(tmp_path: Path, model_dir: Path, load_kwargs: dict | None) -> object:
    entry: dict = {"type": "HfModel", "model_path": str(model_dir)}
    if load_kwargs is not None:
        entry["load_kwargs"] = load_kwargs
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"input_model": entry, "passes": {"r": {"type": "rtn"}}}))
    return resolve_input_model(load_workflow(load_document(path)))


def test_torch_dtype_becomes_an_attribute_only_when_set(tiny_llama_dir: Path, tmp_path: Path) -> None:
    assert _input(tmp_path, tiny_llama_dir, {"torch_dtype": "float16"}).attributes["torch_dtype"] == "float16"
    assert _input(tmp_path, tiny_llama_dir, {"torch_dtype": "torch.bfloat16"}).attributes["torch_dtype"] == "bfloat16"
    assert "torch_dtype" not in _input(tmp_path, tiny_llama_dir, None).attributes  # cache keys stay as they were


def test_an_unknown_torch_dtype_is_refused_naming_the_key(tiny_llama_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="float32, float16, bfloat16 or auto") as raised:
        _input(tmp_path, tiny_llama_dir, {"torch_dtype": "int8"})
    assert raised.value.where == "input_model.load_kwargs.torch_dtype"
