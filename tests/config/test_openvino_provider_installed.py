"""OpenVINOExecutionProvider counts as installed once modelmill[openvino] is (ModelMill runs OpenVINO targets with the
OpenVINO runtime itself, never with onnxruntime-openvino), so validation stops warning that it is not."""

from __future__ import annotations

import importlib.util
import json

import pytest

from modelmill.config import Environment, parse_document, validate_document
from modelmill.config.accelerators import installed_execution_providers

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
CONFIG = {
    "input_model": {"type": "HfModel", "model_path": "sample:smollm2"},
    "systems": {"local_system": {"type": "LocalSystem", "accelerators": [
        {"device": "cpu", "execution_providers": ["OpenVINOExecutionProvider"]}]}},
    "passes": {"ov": {"type": "OpenVINOOptimumConversion", "ov_quant_config": {"weight_format": "int4"}}},
    "target": "local_system",
    "output_dir": "out",
}


def _not_installed() -> list:
    installed_execution_providers.cache_clear()
    try:
        env = Environment.current()
        diagnostics = validate_document(parse_document(json.dumps(CONFIG, indent=2), "config.json"), env)
    finally:
        installed_execution_providers.cache_clear()
    return [d for d in diagnostics if d.code == "ep-not-installed"]


@pytest.mark.skipif(not HAS_OPENVINO, reason="the OpenVINO extra is not installed (pip install 'modelmill[openvino]')")
def test_no_warning_with_the_openvino_extra() -> None:
    assert _not_installed() == []


@pytest.mark.skipif(HAS_OPENVINO, reason="the OpenVINO extra is installed here")
def test_warning_names_the_extra_without_it() -> None:
    [diag] = _not_installed()
    assert diag.severity == "warning" and diag.data == {"install": "modelmill[openvino]"}
