"""A truncated or non-ONNX model file is named as such, with the right fix, before a pass runs
(it used to surface as a quantization failure with a hint about excluding nodes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.onnx_io import onnx_file_problem, require_onnx


def _model(path: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((32, 32), dtype="float32"), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_whole_model_passes(tmp_path: Path) -> None:
    assert onnx_file_problem(_model(tmp_path / "model.onnx")) is None


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_a_truncated_model_is_named_truncated_with_a_re_download_fix(tmp_path: Path, keep: float) -> None:
    data = _model(tmp_path / "whole.onnx").read_bytes()
    cut = tmp_path / "model.onnx"
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(PassError, match="is truncated") as info:
        require_onnx(ModelRef(kind="onnx", path=tmp_path, onnx_file=cut.name), "OnnxDynamicQuantization")
    assert "again" in (info.value.fix or "") and "nodes_to_exclude" not in str(info.value)


@pytest.mark.parametrize("content", [b"", b'{"not": "onnx"}', bytes(range(256))])
def test_empty_or_foreign_files_are_not_models(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    assert onnx_file_problem(path) is not None
