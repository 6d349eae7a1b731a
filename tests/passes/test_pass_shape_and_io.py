"""DynamicToFixedShape (ORT's make_dynamic_shape_fixed) and OnnxIODataTypeConverter on tiny graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import events, run_pass
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.dynamic_to_fixed_shape import DynamicToFixedShape
from modelmill.passes.io_datatype_converter import OnnxIODataTypeConverter
from modelmill.passes.registry import find_pass
from onnx import TensorProto, helper, numpy_helper


def _save(model: onnx.ModelProto, folder: Path) -> ModelRef:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    return ModelRef(kind="onnx", path=folder, onnx_file="model.onnx")


def _dynamic(tmp_path: Path) -> ModelRef:
    weight = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 3])], [weight])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "in")


def _dims(value: onnx.ValueInfoProto) -> list[object]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def test_fix_named_dims(tmp_path: Path) -> None:
    result, ctx = run_pass(DynamicToFixedShape, _dynamic(tmp_path), tmp_path, dim_param=["batch", "seq"],
                           dim_value=[1, 5])
    out = onnx.load(str(result.model_file))
    assert _dims(out.graph.input[0]) == [1, 5, 4] and _dims(out.graph.output[0]) == [1, 5, 3]
    import onnxruntime as ort

    y = ort.InferenceSession(str(result.model_file)).run(None, {"x": np.ones((1, 5, 4), np.float32)})[0]
    assert y.shape == (1, 5, 3) and events(ctx, "pass.progress")[-1]["fraction"] == 1.0


def test_fix_whole_input_and_errors(tmp_path: Path) -> None:
    result, _ = run_pass(DynamicToFixedShape, _dynamic(tmp_path), tmp_path, input_name=["x"], input_shape=[[2, 3, 4]])
    assert _dims(onnx.load(str(result.model_file)).graph.input[0]) == [2, 3, 4]
    with pytest.raises(PassError, match="'nope' is not an input"):
        run_pass(DynamicToFixedShape, _dynamic(tmp_path), tmp_path, name="bad", input_name=["nope"],
                 input_shape=[[1]])
    with pytest.raises(ValueError, match="cannot both be set"):
        DynamicToFixedShape.Params(dim_param=["a"], dim_value=[1], input_name=["x"], input_shape=[[1]])
    with pytest.raises(ValueError, match="one value >= 0 per dim_param"):
        DynamicToFixedShape.Params(dim_param=["a", "b"], dim_value=[1])


def test_fp16_logits_become_float32(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Neg", ["h"], ["logits"])],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT16, [2, 3])])
    source = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "in")
    assert find_pass("OnnxIOFloat16ToFloat32") is OnnxIODataTypeConverter
    result, _ = run_pass(OnnxIODataTypeConverter, source, tmp_path)
    out = onnx.load(str(result.model_file))
    onnx.checker.check_model(out)
    assert out.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert out.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16  # "x" does not match "logits"
    import onnxruntime as ort

    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float16)
    y = ort.InferenceSession(str(result.model_file)).run(None, {"x": x})[0]
    assert y.dtype == np.float32 and np.array_equal(y, -np.maximum(x, 0).astype(np.float32))
    all_io, _ = run_pass(OnnxIODataTypeConverter, source, tmp_path, name="all", name_pattern="")
    assert onnx.load(str(all_io.model_file)).graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    with pytest.raises(ValueError, match="not an ONNX TensorProto data type"):
        OnnxIODataTypeConverter.Params(target_dtype=99)
