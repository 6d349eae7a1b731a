"""Loading a model for evaluation: a broken file is named as such, with the right fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmill.engine.model import ModelRef
from modelmill.evaluate.runtime import EvaluationError, ort_session


def test_a_truncated_onnx_file_is_called_truncated(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    whole = (tiny_bert_onnx.path / tiny_bert_onnx.onnx_file).read_bytes()
    cut = tmp_path / "model.onnx"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(EvaluationError) as caught:
        ort_session(cut)
    assert "truncated" in caught.value.message and "export the model again" in (caught.value.fix or "")
