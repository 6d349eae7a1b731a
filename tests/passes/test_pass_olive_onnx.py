"""AddOliveMetadata, OnnxQuantization and MatMulNBitsToQDQ on tiny graphs built here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import cosine, events, make_context, run_pass
from modelmill.engine.model import ModelRef
from modelmill.errors import RunCancelled
from modelmill.passes.add_olive_metadata import AddOliveMetadata
from onnx import TensorProto, helper, numpy_helper


def _matmul_model(folder: Path, k: int = 64, n: int = 32, external: bool = True, seed: int = 0) -> ModelRef:
    """x[batch, k] @ w[k, n] + b, weights in a side file when ``external``."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "b")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
                               helper.make_node("Add", ["h", "b"], ["y"], name="add")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])], [weight, bias])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.metadata_props.add(key="kept", value="yes")
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(folder / "model.onnx"), save_as_external_data=external,
                    all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
    return ModelRef(kind="onnx", path=folder, onnx_file="model.onnx", attributes={"task": "feature-extraction"})


def _run(model: ModelRef, feeds: dict[str, np.ndarray], fuse_level: str | None = None,
         optimize: bool = True) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not optimize:  # run DequantizeLinear and MatMul as written
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if fuse_level is not None:
        # ORT's CPU EP fuses DequantizeLinear + MatMul back into MatMulNBits, by default with accuracy level 4
        # (int8 activations); level 0 computes in float as the MatMulNBits model without accuracy_level does.
        options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", fuse_level)
    session = ort.InferenceSession(str(model.model_file), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def test_add_olive_metadata(tmp_path: Path) -> None:
    source = _matmul_model(tmp_path / "in")
    (source.path / "config.json").write_text(json.dumps({"_name_or_path": "org/tiny"}))
    result, ctx = run_pass(AddOliveMetadata, source, tmp_path, graph_name="main_graph",
                           custom_metadata={"owner": "team", "version": 3})
    out = onnx.load(str(result.model_file), load_external_data=False)
    props = {entry.key: entry.value for entry in out.metadata_props}
    assert out.graph.name == "main_graph"
    assert props["kept"] == "yes" and props["owner"] == "team" and props["version"] == "3"
    assert props["hf_model_name"] == "org/tiny" and props["hf_task"] == "feature-extraction"
    assert props["olive_version"] and len(props["model_hash"]) == 16
    assert (result.path / "model.onnx.data").exists() and (result.path / "config.json").exists()
    x = np.ones((2, 64), np.float32)
    assert np.array_equal(_run(result, {"x": x}), _run(source, {"x": x}))
    assert events(ctx, "pass.progress")[-1]["fraction"] == 1.0
    # Same weights, same hash; no optimization info when asked not to.
    again, _ = run_pass(AddOliveMetadata, source, tmp_path, name="again", graph_name="g2",
                        add_optimization_info=False)
    props2 = {e.key: e.value for e in onnx.load(str(again.model_file), load_external_data=False).metadata_props}
    assert props2["model_hash"] == props["model_hash"] and "hf_task" not in props2


def test_add_olive_metadata_needs_graph_name_and_honours_cancel(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="graph_name"):
        AddOliveMetadata.Params()
    ctx = make_context(tmp_path, "cancelled")
    ctx.cancel.set()
    with pytest.raises(RunCancelled):
        AddOliveMetadata().run(_matmul_model(tmp_path / "in"), AddOliveMetadata.Params(graph_name="g"), ctx)


@pytest.mark.parametrize(("mode", "expected"), [("static", "QuantizeLinear"), ("dynamic", "DynamicQuantizeLinear")])
def test_onnx_quantization_modes(mode: str, expected: str, tmp_path: Path) -> None:
    from helpers import op_types
    from modelmill.passes.onnx_quantization import OnnxQuantization
    from modelmill.passes.registry import find_pass

    assert find_pass("onnxquantization") is OnnxQuantization
    source = _matmul_model(tmp_path / "in", external=False)
    # calibrate_method only matters in static mode: dynamic mode logs it as ignored.
    result, ctx = run_pass(OnnxQuantization, source, tmp_path, quant_mode=mode, calibrate_method="MinMax",
                           max_calibration_samples=4, quant_preprocess=False)
    assert op_types(result)[expected] > 0 and result.attributes["quant_mode"] == mode
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    reference = _run(source, {"x": x})
    assert cosine(_run(result, {"x": x}), reference) > 0.99
    messages = [e["message"] for e in events(ctx, "log")]
    assert any(f"quant_mode {mode}: running Onnx{mode.title()}Quantization" in m for m in messages)
    assert any("ignoring the static-only parameters calibrate_method" in m for m in messages) == (mode == "dynamic")
    assert events(ctx, "pass.progress")[-1]["fraction"] == 1.0


def test_onnx_quantization_params() -> None:
    from modelmill.passes.onnx_quantization import OnnxQuantization

    params = OnnxQuantization.Params()
    assert params.quant_mode == "static" and params.precision == "int8" and params.quant_format == "QDQ"
    assert {"quant_mode", "calibrate_method", "precision", "per_channel"} <= set(params.searchable_fields())
    with pytest.raises(ValueError, match="needs quant_mode static"):
        OnnxQuantization.Params(quant_mode="dynamic", precision="int16")


def _nbits_model(folder: Path, bits: int = 4, block_size: int = 32, symmetric: bool = False, k: int = 96,
                 seed: int = 0) -> ModelRef:
    """The MatMul model quantized at test time with onnxruntime's MatMulNBitsQuantizer (bias kept as Add)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    source = _matmul_model(folder / "float", k=k, external=False, seed=seed)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(source.model_file)), bits=bits, block_size=block_size,
                                     is_symmetric=symmetric)
    quantizer.process()
    out = folder / "nbits"
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(quantizer.model.model, str(out / "model.onnx"))
    return ModelRef(kind="onnx", path=out)


@pytest.mark.parametrize(("bits", "block_size", "symmetric", "options"), [
    (4, 32, False, {}),
    (4, 32, True, {"use_signed_int": True}),
    (4, 32, True, {"use_int4": True, "add_zero_point": True, "use_transpose_op": True}),
    (4, 128, False, {}),  # one block over K (96 < 128): a per-axis DequantizeLinear
    (8, 32, False, {"use_signed_int": True}),
])
def test_matmul_nbits_to_qdq_matches_ort(bits: int, block_size: int, symmetric: bool, options: dict,
                                         tmp_path: Path) -> None:
    from helpers import op_types
    from modelmill.passes.mnb_to_qdq import MatMulNBitsToQDQ

    source = _nbits_model(tmp_path / "in", bits, block_size, symmetric)
    assert op_types(source)["MatMulNBits"] == 1
    result, ctx = run_pass(MatMulNBitsToQDQ, source, tmp_path, **options)
    out = onnx.load(str(result.model_file))
    onnx.checker.check_model(out)
    ops = op_types(result)
    assert "MatMulNBits" not in ops and ops["DequantizeLinear"] == 1 and ops["MatMul"] == 1
    assert ops.get("Transpose", 0) == int(bool(options.get("use_transpose_op")))
    [dq] = [node for node in out.graph.node if node.op_type == "DequantizeLinear"]
    weight = next(t for t in out.graph.initializer if t.name == dq.input[0])
    signed = options.get("use_signed_int") or options.get("use_int4")
    assert weight.data_type == {(4, False): TensorProto.UINT4, (4, True): TensorProto.INT4,
                                (8, False): TensorProto.UINT8, (8, True): TensorProto.INT8}[(bits, bool(signed))]
    has_zero_point = not (symmetric and signed) or options.get("add_zero_point", False)
    assert (len(dq.input) == 3) == has_zero_point
    assert next(o.version for o in out.opset_import if o.domain == "") >= 21
    x = np.random.default_rng(2).standard_normal((3, 96)).astype(np.float32)
    expected = _run(source, {"x": x})
    np.testing.assert_allclose(_run(result, {"x": x}, fuse_level="0"), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_run(result, {"x": x}, optimize=False), expected, rtol=1e-4, atol=1e-4)
    assert events(ctx, "pass.progress")[-1]["fraction"] == 1.0


def test_matmul_nbits_to_qdq_exclusion_and_errors(tmp_path: Path) -> None:
    from modelmill.errors import PassError
    from modelmill.passes.mnb_to_qdq import MatMulNBitsToQDQ, pack_flat, unpack_rows

    codes = np.array([[1, 15, 7, 0, 3]], np.uint8)
    assert np.array_equal(unpack_rows(pack_flat(codes, 4).reshape(1, -1), 4)[:, :5], codes)
    source = _nbits_model(tmp_path / "in")
    name = next(n.name for n in onnx.load(str(source.model_file)).graph.node if n.op_type == "MatMulNBits")
    with pytest.raises(PassError, match="no MatMulNBits node"):
        run_pass(MatMulNBitsToQDQ, source, tmp_path, nodes_to_exclude=[name])
    ctx = make_context(tmp_path, "cancelled")
    ctx.cancel.set()
    with pytest.raises(RunCancelled):
        MatMulNBitsToQDQ().run(source, MatMulNBitsToQDQ.Params(), ctx)
