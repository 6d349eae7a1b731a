"""GraphSurgeries: every Olive surgeon on a tiny graph it changes, checked with onnx.checker and run in ORT
against the input model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from helpers import events, make_context, run_pass
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.graph_surgeries import GraphSurgeries
from modelmill.passes.surgeons import all_surgeons
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
RNG = np.random.default_rng(0)


def _vi(name: str, shape: list[Any], elem: int = F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           inits: list[onnx.TensorProto] = (), opset: int = 17, msft: bool = False,
           value_info: list[onnx.ValueInfoProto] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits), value_info=list(value_info))
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if msft else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _w(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# Each case: (the model, feeds, the surgery, what must hold of the output proto, tolerance or None when the
# outputs legitimately differ (checked by the assertion instead)).
Case = tuple[onnx.ModelProto, dict[str, np.ndarray], dict[str, Any], Callable[[onnx.ModelProto], bool], float | None]


def _x(*shape: int) -> dict[str, np.ndarray]:
    return {"x": _w(*shape)}


def _ops(model: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in model.graph.node}


def _two_io() -> onnx.ModelProto:
    return _model([helper.make_node("Sub", ["a", "b"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
                  [_vi("a", [2]), _vi("b", [2])], [_vi("y", [2]), _vi("z", [2])])


def _rms(with_weight: np.ndarray) -> onnx.ModelProto:
    nodes = [helper.make_node("Pow", ["x", "two"], ["p"]), helper.make_node("ReduceMean", ["p", "ax"], ["m"]),
             helper.make_node("Add", ["m", "eps"], ["a"]), helper.make_node("Sqrt", ["a"], ["s"]),
             helper.make_node("Div", ["x", "s"], ["d"]), helper.make_node("Mul", ["d", "w"], ["y"])]
    inits = [_init("two", np.float32(2)), _init("ax", np.array([-1])), _init("eps", np.float32(1e-6)),
             _init("w", with_weight)]
    return _model(nodes, [_vi("x", [2, 3, 8])], [_vi("y", [2, 3, 8])], inits, opset=18)


def _sln(skip: bool) -> onnx.ModelProto:
    if skip:
        node = helper.make_node("SkipSimplifiedLayerNormalization", ["x", "r", "g"], ["y", "", "", "sum"],
                                domain="com.microsoft", epsilon=1e-5)
        return _model([node, helper.make_node("Relu", ["sum"], ["z"])], [_vi("x", [2, 3, 8]), _vi("r", [2, 3, 8])],
                      [_vi("y", [2, 3, 8]), _vi("z", [2, 3, 8])], [_init("g", _w(8))], msft=True)
    node = helper.make_node("SimplifiedLayerNormalization", ["x", "g"], ["y"], axis=-1, epsilon=1e-5)
    return _model([node], [_vi("x", [2, 3, 8])], [_vi("y", [2, 3, 8])], [_init("g", _w(8))])


def _qdq(on_input: bool = True) -> onnx.ModelProto:
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["dq"]),
             helper.make_node("Relu", ["dq"], ["y"])]
    return _model(nodes, [_vi("x", [4, 8])], [_vi("y", [4, 8])],
                  [_init("s", np.float32(0.02)), _init("zp", np.uint8(128))])


def _decoder(vocab: int = 16, hidden: int = 32, tied: bool = True) -> tuple[onnx.ModelProto, np.ndarray]:
    table = _w(vocab, hidden)
    head = table.T.copy() if tied else _w(hidden, vocab)
    nodes = [helper.make_node("Gather", ["embed.weight", "input_ids"], ["h"], name="/model/embed_tokens/Gather"),
             helper.make_node("Tanh", ["h"], ["t"]),
             helper.make_node("MatMul", ["t", "lm_head.weight"], ["logits"], name="/lm_head/MatMul")]
    model = _model(nodes, [_vi("input_ids", ["batch", "seq"], TensorProto.INT64)], [_vi("logits", ["batch", "seq", vocab])],
                   [_init("embed.weight", table), _init("lm_head.weight", head)], msft=True)
    return model, table


def _ids() -> dict[str, np.ndarray]:
    return {"input_ids": np.array([[1, 5, 15], [0, 2, 7]], dtype=np.int64)}




def _cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    io = _two_io()
    feeds_ab = {"a": _w(2), "b": _w(2)}
    cases["RenameInputs"] = (io, {**feeds_ab, "left": feeds_ab["a"]}, {"old_names": ["a"], "new_names": ["left"]},
                             lambda m: m.graph.input[0].name == "left", 0.0)
    cases["RenameOutputs"] = (io, feeds_ab, {"old_names": ["z"], "new_names": ["relu"]},
                              lambda m: m.graph.output[1].name == "relu", 0.0)
    cases["ReorderInputs"] = (io, feeds_ab, {"permutation": [1, 0]}, lambda m: m.graph.input[0].name == "b", 0.0)
    cases["RemoveInputs"] = (_model([helper.make_node("Sum", ["a", "b"], ["y"])], [_vi("a", [2]), _vi("b", [2])],
                                    [_vi("y", [2])]), feeds_ab, {"names": ["b"]},
                             lambda m: [i.name for i in m.graph.input] == ["a"], None)
    chain = _model([helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Neg", ["r"], ["y"])],
                   [_vi("x", [2, 3])], [_vi("y", [2, 3])])
    cases["ExposeOutputs"] = (chain, _x(2, 3), {"names": ["relu"]}, lambda m: len(m.graph.output) == 2, 0.0)
    cases["AddIntermediateTensorsToOutputs"] = (chain, _x(2, 3), {}, lambda m: len(m.graph.output) == 2, 0.0)
    cases["InferShapes"] = (chain, _x(2, 3), {}, lambda m: any(v.name == "r" for v in m.graph.value_info), 0.0)
    shaped = _model(list(chain.graph.node), list(chain.graph.input), list(chain.graph.output),
                    value_info=[_vi("r", [2, 3])])
    cases["RemoveShapes"] = (shaped, _x(2, 3), {}, lambda m: not m.graph.value_info, 0.0)
    cases["RemoveAllTensorValueShapes"] = (shaped, _x(2, 3), {},
                                           lambda m: not m.graph.value_info[0].type.tensor_type.HasField("shape"), 0.0)
    old_style = _model([helper.make_node("Add", ["x", "c"], ["y"])], [_vi("x", [2]), _vi("c", [2])], [_vi("y", [2])],
                       [_init("c", _w(2))])
    cases["RemoveInitializerFromInputs"] = (old_style, _x(2), {}, lambda m: len(m.graph.input) == 1, 0.0)
    dyn = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1, 4])], [_vi("y", ["n", 4])])
    cases["RenameOutputDims"] = (dyn, _x(1, 4), {"output_idx": 0, "dim_idx": 0, "dim_name": "rows"},
                                 lambda m: m.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "rows", 0.0)
    cases["RenameInputDims"] = (dyn, _x(1, 4), {"input_name": "x", "dim_idx": 0, "dim_name": "rows"},
                                lambda m: m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "rows", 0.0)
    cases["ZeroOutInput"] = (_model([helper.make_node("Add", ["x", "b"], ["y"], name="add")],
                                    [_vi("x", [2, 3]), _vi("b", [2, 3])], [_vi("y", [2, 3])]),
                             {"x": _w(2, 3), "b": _w(2, 3)}, {"node_name": "add", "input_idx": 1},
                             lambda m: m.graph.node[0].input[1] != "b", None)
    erf = _model([helper.make_node("Erf", ["x"], ["y"])], [_vi("x", [4, 8])], [_vi("y", [4, 8])])
    cases["ReplaceErfWithTanh"] = (erf, _x(4, 8), {}, lambda m: "Tanh" in _ops(m) and "Erf" not in _ops(m), 0.02)
    gelu = _model([helper.make_node("QuickGelu", ["x"], ["y"], domain="com.microsoft", alpha=1.702)],
                  [_vi("x", [4, 8])], [_vi("y", [4, 8])], msft=True)
    cases["DecomposeQuickGelu"] = (gelu, _x(4, 8), {}, lambda m: "QuickGelu" not in _ops(m), 1e-5)
    recip = _model([helper.make_node("Reciprocal", ["x"], ["r"]), helper.make_node("Mul", ["r", "a"], ["y"])],
                   [_vi("x", [4]), _vi("a", [4])], [_vi("y", [4])])
    cases["ReciprocalMulToDiv"] = (recip, {"x": _w(4) + 3, "a": _w(4)}, {},
                                   lambda m: _ops(m) == {"Div"}, 1e-6)
    dup = _model([helper.make_node("Cast", ["x"], ["c"], to=F, name="c1"),
                  helper.make_node("Cast", ["x"], ["c"], to=F, name="c2"), helper.make_node("Relu", ["c"], ["y"])],
                 [_vi("x", [3])], [_vi("y", [3])])
    cases["DeduplicateNodes"] = (dup, _x(3), {}, lambda m: len(m.graph.node) == 2, 0.0)
    then_graph = helper.make_graph([helper.make_node("Add", ["x", "k"], ["t"])], "then", [], [_vi("t", [3])],
                                   [_init("k", np.ones(3, np.float32))])
    else_graph = helper.make_graph([helper.make_node("Sub", ["x", "k"], ["e"])], "else", [], [_vi("e", [3])],
                                   [_init("k", np.ones(3, np.float32))])
    if_model = _model([helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)],
                      [_vi("x", [3]), _vi("cond", [], TensorProto.BOOL)], [_vi("y", [3])],
                      [_init("k", np.ones(3, np.float32))])
    cases["DeduplicateSubgraphInitializers"] = (
        if_model, {"x": _w(3), "cond": np.array(True)}, {},
        lambda m: not m.graph.node[0].attribute[0].g.initializer, 0.0)
    memcpy = _model([helper.make_node("MemcpyToHost", ["x"], ["h"], domain="com.microsoft"),
                     helper.make_node("Relu", ["h"], ["y"])], [_vi("x", [3])], [_vi("y", [3])], msft=True)
    cases["RemoveMemcpy"] = (memcpy, _x(3), {}, lambda m: _ops(m) == {"Relu"}, None)
    mask = _model([helper.make_node("Add", ["x", "m"], ["y"])], [_vi("x", [2, 3])], [_vi("y", [2, 3])],
                  [_init("m", np.array([0, np.finfo(np.float32).min, 0], np.float32))])
    cases["ReplaceAttentionMaskValue"] = (mask, _x(2, 3), {},
                                          lambda m: numpy_helper.to_array(m.graph.initializer[0]).min() == -1e4, None)
    cases["RMSNormToL2Norm"] = (_rms(_w(8)), _x(2, 3, 8), {}, lambda m: _ops(m) == {"LpNormalization", "Mul"}, 1e-4)
    cases["SimplifiedLayerNormToRMSNorm"] = (_sln(True), {"x": _w(2, 3, 8), "r": _w(2, 3, 8)}, {},
                                             lambda m: "SkipSimplifiedLayerNormalization" not in _ops(m), 1e-5)
    cases["SimplifiedLayerNormToL2Norm"] = (_sln(False), _x(2, 3, 8), {},
                                            lambda m: "LpNormalization" in _ops(m), 1e-4)
    lp = _model([helper.make_node("Pow", ["x", "two"], ["p"]), helper.make_node("ReduceSum", ["p", "ax"], ["s"]),
                 helper.make_node("Pow", ["s", "half"], ["n"]), helper.make_node("Div", ["x", "n"], ["y"])],
                [_vi("x", [2, 8])], [_vi("y", [2, 8])],
                [_init("two", np.float32(2)), _init("ax", np.array([-1])), _init("half", np.float32(0.5))])
    cases["PowReduceSumPowDiv2LpNorm"] = (lp, _x(2, 8), {}, lambda m: _ops(m) == {"LpNormalization"}, 1e-5)
    mm = _model([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
                [_vi("x", [2, 3, 4])], [_vi("y", [2, 3, 5])], [_init("w", _w(4, 5)), _init("b", _w(5))])
    cases["MatMulAddToGemm"] = (mm, _x(2, 3, 4), {}, lambda m: "Gemm" in _ops(m) and "MatMul" not in _ops(m), 1e-5)
    gemm = _model([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], [_vi("x", [3, 4])],
                  [_vi("y", [3, 5])], [_init("w", _w(5, 4)), _init("b", _w(5))])
    cases["GemmToMatMulAdd"] = (gemm, _x(3, 4), {}, lambda m: _ops(m) == {"MatMul", "Add"}, 1e-5)
    cases["RemoveQDQ"] = (_qdq(), _x(4, 8), {}, lambda m: _ops(m) == {"Relu"}, None)
    cases["QDQToClip"] = (_qdq(), _x(4, 8), {}, lambda m: _ops(m) == {"Clip", "Relu"}, 0.011)
    deq = _model([helper.make_node("DequantizeLinear", ["wq", "s", "zp"], ["w"]),
                  helper.make_node("MatMul", ["x", "w"], ["y"])], [_vi("x", [2, 4])], [_vi("y", [2, 3])],
                 [_init("wq", RNG.integers(0, 255, (4, 3)).astype(np.uint8)), _init("s", np.float32(0.05)),
                  _init("zp", np.uint8(128))])
    cases["RemoveDeqLin"] = (deq, _x(2, 4), {}, lambda m: _ops(m) == {"MatMul"}, 1e-5)
    exposed = _model([helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
                      helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"])], [_vi("x", [4])], [_vi("y", [4])],
                     [_init("s", np.float32(0.02)), _init("zp", np.uint8(128))])
    cases["ExposeQuantizedOutput"] = (exposed, _x(4), {"output_name": "y"},
                                      lambda m: m.graph.output[0].name == "q" and len(m.graph.output) == 3,
                                      None)
    nbits = _matmul_nbits()
    cases["RemoveGidxFromMatMulNBits"] = (nbits, _x(2, 32), {}, lambda m: len(m.graph.node[0].input) == 3, 1e-5)
    decoder, _ = _decoder()
    cases["TieWordEmbeddings"] = (decoder, _ids(), {},
                                  lambda m: not any(i.name == "lm_head.weight" for i in m.graph.initializer), 1e-5)
    cases["QuantizeEmbeddingInt8"] = (decoder, _ids(), {}, lambda m: "GatherBlockQuantized" in _ops(m), 0.2)
    cases["DecomposeRotaryEmbedding"] = _rotary()
    cases["RemoveRopeMultiCache"] = _rope_multi_cache()
    cases["Flatten"] = (_model([helper.make_node("Flatten", ["x"], ["y"])], [_vi("x", [1, 2, 3])], [_vi("y", [1, 6])]),
                        _x(1, 2, 3), {}, lambda m: _ops(m) == {"Reshape"}, None)
    squeeze = _model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Unsqueeze", ["r", "ax"], ["u"]),
                      helper.make_node("Squeeze", ["u", "ax"], ["s"]), helper.make_node("Neg", ["s"], ["y"])],
                     [_vi("x", [2, 3])], [_vi("y", [2, 3])], [_init("ax", np.array([0]))])
    cases["RemoveIntermediarySqueezeAndUnsqueeze"] = (squeeze, _x(2, 3), {}, lambda m: _ops(m) == {"Relu", "Neg"},
                                                      0.0)
    return cases


def _matmul_nbits() -> onnx.ModelProto:
    k, n, block = 32, 4, 32
    packed = RNG.integers(0, 255, (n, k // block, block // 2)).astype(np.uint8)
    node = helper.make_node("MatMulNBits", ["x", "w", "s", "", "g_idx"], ["y"], domain="com.microsoft", K=k, N=n,
                            bits=4, block_size=block)
    return _model([node], [_vi("x", [2, k])], [_vi("y", [2, n])],
                  [_init("w", packed), _init("s", np.full(n * (k // block), 0.1, np.float32)),
                   _init("g_idx", np.zeros(k, np.int32))], msft=True)


def _rotary() -> Case:
    batch, heads, seq, head = 2, 2, 3, 8
    cos = np.cos(np.arange(16)[:, None] * np.linspace(0.1, 1, head // 2)[None]).astype(np.float32)
    sin = np.sin(np.arange(16)[:, None] * np.linspace(0.1, 1, head // 2)[None]).astype(np.float32)
    node = helper.make_node("RotaryEmbedding", ["x", "pos", "cos", "sin"], ["y"], domain="com.microsoft")
    model = _model([node], [_vi("x", [batch, heads, seq, head]), _vi("pos", [batch, seq], TensorProto.INT64)],
                   [_vi("y", [batch, heads, seq, head])], [_init("cos", cos), _init("sin", sin)], msft=True)
    feeds = {"x": _w(batch, heads, seq, head), "pos": np.array([[0, 1, 2], [3, 4, 5]], np.int64)}
    return model, feeds, {}, lambda m: "RotaryEmbedding" not in _ops(m), 1e-5


def _rope_multi_cache() -> Case:
    small, large = _w(16, 4), _w(16, 4)
    branches = {}
    for branch, which in (("then_branch", "large"), ("else_branch", "small")):
        nodes = [helper.make_node("Identity", [f"cos_cache_{which}"], [f"cos_{which}"]),
                 helper.make_node("Identity", [f"sin_cache_{which}"], [f"sin_{which}"])]
        branches[branch] = helper.make_graph(nodes, branch, [], [_vi(f"cos_{which}", [16, 4]),
                                                                 _vi(f"sin_{which}", [16, 4])])
    nodes = [helper.make_node("Greater", ["n", "limit"], ["big"]),
             helper.make_node("If", ["big"], ["cos", "sin"], **branches),
             helper.make_node("RotaryEmbedding", ["x", "pos", "cos", "sin"], ["y"], domain="com.microsoft")]
    model = _model(nodes, [_vi("x", [1, 1, 2, 8]), _vi("pos", [1, 2], TensorProto.INT64), _vi("n", [], TensorProto.INT64)],
                   [_vi("y", [1, 1, 2, 8])], [_init("limit", np.int64(4)), _init("cos_cache_small", small),
                                              _init("sin_cache_small", _w(16, 4)), _init("cos_cache_large", large),
                                              _init("sin_cache_large", _w(16, 4))], msft=True)
    feeds = {"x": _w(1, 1, 2, 8), "pos": np.array([[0, 1]], np.int64), "n": np.array(1, np.int64)}
    return model, feeds, {}, lambda m: "If" not in _ops(m), 0.0


CASES = _cases()
# Inputs ORT refuses to load (the surgeon exists to repair them): the expected outputs, computed directly.
REFERENCE: dict[str, Callable[[dict[str, np.ndarray]], list[np.ndarray]]] = {
    "DeduplicateNodes": lambda feeds: [np.maximum(feeds["x"], 0)],
    # ORT fuses DequantizeLinear → MatMul into an integer MatMul that also quantizes x, so compare with numpy.
    "RemoveDeqLin": lambda feeds: [feeds["x"] @ ((numpy_helper.to_array(CASES["RemoveDeqLin"][0].graph.initializer[0])
                                                  .astype(np.float32) - 128) * np.float32(0.05))],
}


def _save(model: onnx.ModelProto, folder: Path) -> ModelRef:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    return ModelRef(kind="onnx", path=folder, onnx_file="model.onnx")


def _run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feeds.items() if k in names})


def test_every_olive_surgeon_is_registered_and_covered() -> None:
    surgeons = all_surgeons().values()
    runnable = {s.name for s in surgeons if not s.refused}
    assert len(list(surgeons)) == 56
    assert runnable - set(CASES) == {"ShareEmbeddingLmHead", "AttentionMaskToSequenceLengths"}  # tested below
    for s in surgeons:
        assert s.summary and (s.refused is None or "drop" in s.refused)


@pytest.mark.parametrize("name", sorted(CASES))
def test_surgeon(name: str, tmp_path: Path) -> None:
    model, feeds, spec, holds, tolerance = CASES[name]
    source = _save(model, tmp_path / "in")
    result, ctx = run_pass(GraphSurgeries, source, tmp_path, surgeries=[{"surgeon": name.lower(), **spec}],
                           remove_duplicate_initializers=False)
    out = onnx.load(str(result.model_file))
    onnx.checker.check_model(out)
    assert holds(out), name
    after = _run(result.model_file, feeds)
    if tolerance is not None:
        before = REFERENCE[name](feeds) if name in REFERENCE else _run(source.model_file, feeds)
        for expected, actual in zip(before, after):
            np.testing.assert_allclose(actual, expected, atol=tolerance, rtol=tolerance)
    assert events(ctx, "pass.progress")[-1]["fraction"] == 1.0


def test_share_embedding_lm_head_after_int8_embedding(tmp_path: Path) -> None:
    """QuantizeEmbeddingInt8 then ShareEmbeddingLmHead: the lm_head reads the int8 table; logits match the
    dequantized table's to int8 precision."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    decoder, _ = _decoder(tied=True)
    expected = _run(_save(decoder, tmp_path / "fp32").model_file, _ids())[0]
    quantizer = MatMulNBitsQuantizer(decoder, block_size=32, is_symmetric=False, bits=4)
    quantizer.process()
    source = _save(quantizer.model.model, tmp_path / "in")
    result, _ = run_pass(GraphSurgeries, source, tmp_path, surgeries=[
        {"surgeon": "QuantizeEmbeddingInt8"}, {"surgeon": "ShareEmbeddingLmHead"}])
    out = onnx.load(str(result.model_file))
    onnx.checker.check_model(out)
    head = next(n for n in out.graph.node if n.op_type == "MatMulNBits")
    assert helper.get_attribute_value(next(a for a in head.attribute if a.name == "bits")) == 8
    assert len(out.graph.initializer) < len(quantizer.model.model.graph.initializer) + 2
    actual = _run(result.model_file, _ids())[0]
    assert np.abs(actual - expected).max() < 0.3


def test_tie_word_embeddings_skips_untied(tmp_path: Path) -> None:
    decoder, _ = _decoder(tied=False)
    result, _ = run_pass(GraphSurgeries, _save(decoder, tmp_path / "in"), tmp_path,
                         surgeries=[{"surgeon": "TieWordEmbeddings"}])
    assert any(i.name == "lm_head.weight" for i in onnx.load(str(result.model_file)).graph.initializer)


def test_attention_mask_to_sequence_lengths(tmp_path: Path) -> None:
    """The mask subgraph feeding GQA's seqlens_k/total_sequence_length becomes two int32 inputs (graph checked,
    not run: a GQA model needs a KV cache)."""
    nodes = [helper.make_node("ReduceSum", ["attention_mask", "one"], ["len"]),
             helper.make_node("Sub", ["len", "one"], ["k"]), helper.make_node("Cast", ["k"], ["seqlens"], to=6),
             helper.make_node("Shape", ["attention_mask"], ["shape"]),
             helper.make_node("Gather", ["shape", "one"], ["total64"], axis=0),
             helper.make_node("Cast", ["total64"], ["total"], to=6),
             helper.make_node("GroupQueryAttention", ["q", "", "", "", "", "seqlens", "total"], ["y"],
                              domain="com.microsoft", num_heads=2, kv_num_heads=2)]
    model = _model(nodes, [_vi("input_ids", ["b", "s"], TensorProto.INT64), _vi("q", ["b", "s", 24]),
                           _vi("attention_mask", ["b", "t"], TensorProto.INT64)], [_vi("y", ["b", "s", 8])],
                   [_init("one", np.array(1, np.int64))], msft=True)
    result, _ = run_pass(GraphSurgeries, _save(model, tmp_path / "in"), tmp_path,
                         surgeries=[{"surgeon": "AttentionMaskToSequenceLengths"}])
    out = onnx.load(str(result.model_file))
    assert [i.name for i in out.graph.input] == ["input_ids", "q", "past_seq_len", "total_seq_len"]
    assert _ops(out) == {"GroupQueryAttention"}


def test_params_reject_unknown_missing_and_refused_surgeons() -> None:
    with pytest.raises(ValueError, match="did you mean RemoveShapes"):
        GraphSurgeries.Params(surgeries=[{"surgeon": "RemoveShape"}])
    with pytest.raises(ValueError, match="ReorderInputs needs permutation"):
        GraphSurgeries.Params(surgeries=[{"surgeon": "ReorderInputs"}])
    with pytest.raises(ValueError, match="Non4DReshape is not supported: an NVIDIA DLA"):
        GraphSurgeries.Params(surgeries=[{"surgeon": "Non4DReshape"}])
    with pytest.raises(ValueError, match="needs a \"surgeon\" key"):
        GraphSurgeries.Params(surgeries=[{"name": "x"}])


def test_failing_surgery_names_it_and_cancel_is_honoured(tmp_path: Path) -> None:
    source = _save(_two_io(), tmp_path / "in")
    with pytest.raises(PassError, match=r"surgeries\[0\] \(RenameInputs\) failed: old_names: the model has no input"):
        run_pass(GraphSurgeries, source, tmp_path, surgeries=[{"surgeon": "RenameInputs", "old_names": ["nope"],
                                                               "new_names": ["x"]}])
    from modelmill.errors import RunCancelled

    ctx = make_context(tmp_path, "cancelled")
    ctx.cancel.set()
    with pytest.raises(RunCancelled):
        run_pass(GraphSurgeries, source, tmp_path, ctx=ctx, surgeries=[{"surgeon": "RemoveShapes"}])


def test_duplicate_initializers_merged(tmp_path: Path) -> None:
    weight = _w(4)
    model = _model([helper.make_node("Add", ["x", "a"], ["s"]), helper.make_node("Mul", ["s", "b"], ["y"])],
                   [_vi("x", [4])], [_vi("y", [4])], [_init("a", weight), _init("b", weight)])
    result, _ = run_pass(GraphSurgeries, _save(model, tmp_path / "in"), tmp_path,
                         surgeries=[{"surgeon": "InferShapes"}])
    assert len(onnx.load(str(result.model_file)).graph.initializer) == 1
