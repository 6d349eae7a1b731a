"""MixedPrecisionOverrides (Olive 0.13's QNN pass): 16-bit activation overrides reach the constants of element-wise
ops, shared constants are copied, and OnnxStaticQuantization quantizes those tensors to 16 bits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import make_context
from onnx import TensorProto, helper, numpy_helper

from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.mixed_precision_overrides import MixedPrecisionOverrides, MixedPrecisionOverridesParams
from modelmill.passes.registry import find_pass


def _model(folder: Path) -> ModelRef:
    """x → MatMul(W) → Add(B) = a (16-bit) ; Add(x, B) = c ; out = Add(a, c). B is shared by both Adds."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((4,)).astype(np.float32), "B")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"], name="matmul"),
             helper.make_node("Add", ["m", "B"], ["a"], name="add_a"),
             helper.make_node("Add", ["x", "B"], ["c"], name="add_c"),
             helper.make_node("Add", ["a", "c"], ["out"], name="add_out")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])], inits)
    folder.mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx"))
    return ModelRef(kind="onnx", path=folder, onnx_file="model.onnx")


def test_a_shared_constant_is_copied_and_the_overrides_reach_static_quantization(tmp_path: Path) -> None:
    import onnxruntime as ort

    from modelmill.passes.static_quantization import OnnxStaticQuantization, OnnxStaticQuantizationParams

    assert find_pass("olive.passes.onnx.mixed_precision_overrides.MixedPrecisionOverrides") is MixedPrecisionOverrides
    model = _model(tmp_path / "in")
    out = MixedPrecisionOverrides().run(model, MixedPrecisionOverridesParams(overrides_config={"a": "QUInt16"}),
                                        make_context(tmp_path, "mpo"))
    proto = onnx.load(str(out.model_file))
    add_a = next(n for n in proto.graph.node if n.name == "add_a")
    add_c = next(n for n in proto.graph.node if n.name == "add_c")
    assert list(add_a.input) == ["m", "B_MixedPrecision_copy"] and list(add_c.input) == ["x", "B"]
    assert out.attributes["mixed_precision_overrides"] == {"a": [{"quant_type": "QUInt16"}],
                                                           "B_MixedPrecision_copy": [{"quant_type": "QUInt16"}]}

    data = {"type": "DummyDataContainer", "load_dataset_config": {"input_names": ["x"], "input_shapes": [[1, 4]]}}
    quantized = OnnxStaticQuantization().run(out, OnnxStaticQuantizationParams(
        data_config=data, quant_format="QDQ", quant_preprocess=False, max_calibration_samples=4),
        make_context(tmp_path, "static"))
    qproto = onnx.load(str(quantized.model_file))
    dtypes = {init.name: init.data_type for init in qproto.graph.initializer}
    quantized_as = {n.input[0]: dtypes.get(n.input[2]) for n in qproto.graph.node if n.op_type == "QuantizeLinear"}
    assert quantized_as["a"] == TensorProto.UINT16 and quantized_as["c"] != TensorProto.UINT16
    assert dtypes["B_MixedPrecision_copy_quantized"] == TensorProto.UINT16
    assert dtypes["B_quantized"] != TensorProto.UINT16
    session = ort.InferenceSession(str(quantized.model_file), providers=["CPUExecutionProvider"])
    assert np.isfinite(session.run(None, {"x": np.ones((1, 4), np.float32)})[0]).all()


def test_overrides_config_is_required_and_checked(tmp_path: Path) -> None:
    model = _model(tmp_path / "in")
    with pytest.raises(PassError, match="overrides_config"):
        MixedPrecisionOverrides().run(model, MixedPrecisionOverridesParams(), make_context(tmp_path, "a"))
    with pytest.raises(PassError, match="QUInt16"):
        MixedPrecisionOverrides().run(model, MixedPrecisionOverridesParams(overrides_config={"a": "uint16"}),
                                      make_context(tmp_path, "b"))
