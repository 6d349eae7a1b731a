"""Hints that fit the model: the hub-id hint per kind of model (a sample only of the same kind), PyTorchModel
hub ids, and user_script / script_dir / model_script that do not exist (never imported)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from config_helpers import CPU_ONLY
from modelmill.config import parse_document, validate_document


def _diagnostics(config: dict[str, Any], folder: Path) -> list[Any]:
    doc = parse_document(json.dumps(config, indent=2), str(folder / "config.json"))
    return validate_document(doc, CPU_ONLY)


@pytest.mark.parametrize("model, kind, sample", [
    ({"type": "HfModel", "model_path": "meta-llama/Llama-3.2-1B", "task": "text-generation"},
     "text-generation model", "sample:smollm2"),
    ({"type": "HfModel", "model_path": "BAAI/bge-small-en-v1.5", "task": "feature-extraction"},
     "sentence encoder", "sample:minilm"),
    ({"type": "HfModel", "model_path": "google-bert/bert-base-uncased", "task": "text-classification"},
     "BERT-style encoder", None),
    ({"type": "HfModel", "model_path": "openai/clip-vit-base-patch32"}, "CLIP", None),
    ({"type": "PyTorchModel", "model_path": "stabilityai/stable-diffusion-2-1", "model_loader": "load"},
     "diffusion pipeline", None),
])
def test_hub_id_hint_fits_the_kind_of_model(tmp_path: Path, model: dict[str, Any], kind: str,
                                            sample: str | None) -> None:
    [hub] = [d for d in _diagnostics({"input_model": model, "passes": {}}, tmp_path) if d.code == "hub-id-not-local"]
    assert kind in hub.message and "local folders only" in hub.message
    assert f"huggingface-cli download {model['model_path']}" in hub.hint
    if sample is None:
        assert "sample:" not in hub.hint and "replace_with" not in hub.data
    else:
        assert sample in hub.hint and hub.data["replace_with"] == sample


def test_a_missing_model_file_is_not_a_hub_id(tmp_path: Path) -> None:
    model = {"type": "PyTorchModel", "model_path": "models/resnet.pt"}
    codes = {d.code for d in _diagnostics({"input_model": model, "passes": {}}, tmp_path)}
    assert "path-not-found" in codes and "hub-id-not-local" not in codes


def test_missing_scripts_are_reported_and_never_imported(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "here.py").write_text("raise SystemExit('imported during validation')\n")
    config = {
        "input_model": {"type": "ONNXModel", "model_path": "model.onnx"},
        "data_configs": [{"name": "d", "user_script": "gone.py", "script_dir": "no_such_dir"},
                         {"name": "e", "user_script": "here.py"}],
        "evaluators": {"ev": {"metrics": [{"name": "lat", "type": "latency", "sub_types": [{"name": "avg"}],
                                           "data_config": "e", "user_config": {"user_script": "metric.py"}}]}},
        "passes": {"conv": {"type": "OnnxConversion", "user_script": "conv.py"}},
        "evaluator": "ev"}
    found = {d.path: d for d in _diagnostics(config, tmp_path) if d.code == "path-not-found"}
    assert set(found) == {("data_configs", 0, "user_script"), ("data_configs", 0, "script_dir"),
                          ("evaluators", "ev", "metrics", 0, "user_config", "user_script"),
                          ("passes", "conv", "user_script")}
    assert "Olive fails when it loads it" in found[("data_configs", 0, "user_script")].message
