"""All pass modules: cheap to import, complete Params documentation, Olive names."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from modelmill.passes.base import Pass
from modelmill.passes.registry import all_passes, find_pass

HEAVY = ("torch", "onnxruntime", "transformers", "onnx", "onnxscript", "tokenizers")
MINE = ("OnnxConversion", "OrtTransformersOptimization", "OnnxDynamicQuantization", "OnnxStaticQuantization",
        "OnnxBlockWiseRtnQuantization", "OnnxHqqQuantization", "OnnxKQuantQuantization", "OnnxFloatToFloat16",
        "OnnxPeepholeOptimizer", "OrtSessionParamsTuning")


def test_registry_import_is_cheap() -> None:
    code = ("import json, sys; import modelmill.passes.registry as r; r.all_passes(); "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == []


@pytest.mark.parametrize("name", MINE)
def test_pass_declaration(name: str) -> None:
    cls = all_passes()[name]
    assert issubclass(cls, Pass) and find_pass(name.lower()) is cls
    assert cls.description and cls.accepts
    for field_name, info in cls.Params.model_fields.items():
        assert info.description, f"{name}.{field_name} has no description"
    cls.Params()  # every parameter has a default
    schema = cls.Params.model_json_schema()
    assert schema["additionalProperties"] is False
