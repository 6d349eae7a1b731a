"""The OpenVINO passes on the tiny models: conversion, NNCF quantization, I/O update, EPContext encapsulation,
optimum-intel export with INT4 weight compression, and the OpenVINO runtime in evaluation.

Skipped where the extra is not installed (``pip install 'modelmill[openvino]'``; the optimum-intel test also needs
optimum-intel (docs/openvino.md)).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError

from tests.helpers import make_context

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None,
    reason="the OpenVINO extra is not installed (pip install 'modelmill[openvino]')")

needs_optimum = pytest.mark.skipif(importlib.util.find_spec("optimum") is None
                                   or importlib.util.find_spec("optimum.intel") is None,
                                   reason="optimum-intel is not installed (a separate environment: docs/openvino.md)")


@pytest.fixture(scope="module")
def bert_ir(tiny_bert_onnx: ModelRef, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    from modelmill.passes.openvino_conversion import OpenVINOConversion

    ctx = make_context(tmp_path_factory.mktemp("ov"), "convert")
    params = OpenVINOConversion.Params(static=False, compress_to_fp16=False)
    return OpenVINOConversion().run(tiny_bert_onnx, params, ctx)


def _ort_hidden(model: ModelRef, ids: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model.model_file), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return session.run(None, {k: v for k, v in feeds.items() if k in names})[0]


def _ov_hidden(model: ModelRef, ids: np.ndarray) -> np.ndarray:
    from modelmill.evaluate.openvino_runtime import ov_session

    session = ov_session(model)
    names = {i.name for i in session.get_inputs()}
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return session.run(None, {k: v for k, v in feeds.items() if k in names})[0]


def test_conversion_matches_onnx_runtime(bert_ir: ModelRef, tiny_bert_onnx: ModelRef) -> None:
    assert bert_ir.kind == "openvino" and bert_ir.onnx_file == "ov_model.xml"
    assert bert_ir.model_file.with_suffix(".bin").exists() and (bert_ir.path / "config.json").exists()
    ids = np.random.default_rng(0).integers(4, 100, size=(2, 12), dtype=np.int64)
    np.testing.assert_allclose(_ov_hidden(bert_ir, ids), _ort_hidden(tiny_bert_onnx, ids), atol=1e-4)


def test_conversion_static_shapes(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    import openvino as ov
    from modelmill.passes.openvino_conversion import OpenVINOConversion

    params = OpenVINOConversion.Params(input_shapes=[[1, 16], [1, 16], [1, 16]], model_name="bert")
    out = OpenVINOConversion().run(tiny_bert_onnx, params, make_context(tmp_path, "static"))
    assert out.onnx_file == "bert.xml"
    shapes = [port.get_partial_shape() for port in ov.Core().read_model(str(out.model_file)).inputs]
    assert all(shape.is_static and list(shape.to_shape()) == [1, 16] for shape in shapes)


def test_conversion_of_hf_folder(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from modelmill.passes.openvino_conversion import OpenVINOConversion

    out = OpenVINOConversion().run(ModelRef("hf", tiny_bert_dir), OpenVINOConversion.Params(static=False),
                                   make_context(tmp_path, "hf"))
    ids = np.arange(4, 20, dtype=np.int64)[None, :]
    assert _ov_hidden(out, ids).shape == (1, 16, 64)


def test_conversion_refuses_user_scripts(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    from modelmill.passes.openvino_conversion import OpenVINOConversion

    with pytest.raises(PassError, match="user code"):
        OpenVINOConversion().run(tiny_bert_onnx, OpenVINOConversion.Params(example_input_func="make"),
                                 make_context(tmp_path, "script"))


def test_quantization_of_ir_keeps_outputs_close(bert_ir: ModelRef, tmp_path: Path) -> None:
    from modelmill.passes.openvino_quantization import OpenVINOQuantization

    params = OpenVINOQuantization.Params(model_type="TRANSFORMER", max_calibration_samples=8,
                                         calibration_sequence_length=16)
    out = OpenVINOQuantization().run(bert_ir, params, make_context(tmp_path, "q"))
    assert out.kind == "openvino" and out.onnx_file == "ov_model_quant.xml"
    import openvino as ov

    types = {op.get_type_name() for op in ov.Core().read_model(str(out.model_file)).get_ops()}
    assert "FakeQuantize" in types
    ids = np.random.default_rng(1).integers(4, 100, size=(1, 16), dtype=np.int64)
    a, b = _ov_hidden(bert_ir, ids).ravel(), _ov_hidden(out, ids).ravel()
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.9


def test_quantization_of_onnx_gives_qdq_onnx(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    import onnx
    from modelmill.passes.openvino_quantization import OpenVINOQuantization

    params = OpenVINOQuantization.Params(max_calibration_samples=4, calibration_sequence_length=16)
    out = OpenVINOQuantization().run(tiny_bert_onnx, params, make_context(tmp_path, "qonnx"))
    assert out.kind == "onnx" and out.onnx_file.endswith("_quant.onnx")
    ops = {node.op_type for node in onnx.load(str(out.model_file)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert OpenVINOQuantization.output_kind("onnx") == "onnx"
    assert OpenVINOQuantization.output_kind("openvino") == "openvino"


def test_ignored_scope_pairs() -> None:
    from modelmill.passes.openvino_quantization import ignored_scope_kwargs

    assert ignored_scope_kwargs(["Softmax"], "types") == {"types": ["Softmax"]}
    assert ignored_scope_kwargs([["a"], ["MatMul"]], ["names", "types"]) == {"names": ["a"], "types": ["MatMul"]}
    with pytest.raises(PassError, match="together"):
        ignored_scope_kwargs(["Softmax"], None)
    with pytest.raises(PassError, match="list of lists"):
        ignored_scope_kwargs(["a"], ["names"])


def test_io_update_names_and_reshapes(bert_ir: ModelRef, tmp_path: Path) -> None:
    import openvino as ov
    from modelmill.passes.openvino_io_update import OpenVINOIoUpdate

    params = OpenVINOIoUpdate.Params(static=True, input_shapes=[[1, 8]] * 3, input_names=["ids", "mask", "types"])
    out = OpenVINOIoUpdate().run(bert_ir, params, make_context(tmp_path, "io"))
    assert out.onnx_file == "ov_model_st.xml"
    model = ov.Core().read_model(str(out.model_file))
    assert [port.get_any_name() for port in model.inputs] == ["ids", "mask", "types"]
    assert all(port.get_partial_shape().is_static for port in model.inputs)
    with pytest.raises(PassError, match="input_shapes"):
        OpenVINOIoUpdate().run(bert_ir, OpenVINOIoUpdate.Params(static=True), make_context(tmp_path, "io2"))


def test_encapsulation_writes_epcontext_model(bert_ir: ModelRef, tmp_path: Path) -> None:
    import onnx
    from modelmill.passes.openvino_encapsulation import OpenVINOEncapsulation

    out = OpenVINOEncapsulation().run(bert_ir, OpenVINOEncapsulation.Params(), make_context(tmp_path, "ep"))
    assert out.kind == "onnx" and out.onnx_file == "ov_model.onnx"
    proto = onnx.load(str(out.model_file))
    (node,) = proto.graph.node
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.op_type == "EPContext" and node.domain == "com.microsoft"
    assert attrs["ep_cache_context"] == b"ov_model.xml" and attrs["source"] == b"OpenVINOExecutionProvider"
    assert attrs["embed_mode"] == 0 and attrs["DeviceClass"] == b"CPU"
    assert (out.path / "ov_model.xml").exists() and (out.path / "ov_model.bin").exists()
    assert [i.name for i in proto.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "input_0_0"


def test_encapsulation_genai_config(tmp_path: Path) -> None:
    from modelmill.passes.openvino_encapsulation import write_genai_config

    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64, "num_attention_heads": 4,
                                                      "num_hidden_layers": 2, "model_type": "llama",
                                                      "max_position_embeddings": 256, "vocab_size": 300}))
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    assert write_genai_config(tmp_path, "m.onnx", ["input_ids", "beam_idx"], ["logits"], "npu",
                              {"search": {"max_length": 64}})
    config = json.loads((tmp_path / "genai_config.json").read_text())
    decoder = config["model"]["decoder"]
    assert decoder["head_size"] == 16 and decoder["inputs"] == {"input_ids": "input_ids"}
    assert decoder["session_options"]["provider_options"][0]["OpenVINO"]["device_type"] == "NPU"
    assert config["model"]["pad_token_id"] == 2 and config["search"]["max_length"] == 64


def test_latency_and_similarity_run_on_openvino(bert_ir: ModelRef, tiny_bert_dir: Path) -> None:
    from modelmill.evaluate import latency, similarity

    timings = latency.measure(bert_ir, {"warmup_num": 1, "repeat_test_num": 2, "batch_size": 2,
                                        "sequence_length": 8})
    assert len(timings.latencies_ms) == 2
    run_ov, run_hf = similarity.embedder(bert_ir), similarity.embedder(ModelRef("hf", tiny_bert_dir))
    ids = np.arange(4, 20, dtype=np.int64).reshape(2, 8)
    mask = np.ones_like(ids)
    np.testing.assert_allclose(run_ov(ids, mask), run_hf(ids, mask), atol=1e-3)


def test_plan_checks_follow_openvino_kinds() -> None:
    from modelmill.passes.registry import find_pass

    assert find_pass("openvinoconversion").produces == "openvino"
    assert "openvino" in find_pass("OpenVINOEncapsulation").accepts
    assert find_pass("OpenVINOQuantization").output_kind("openvino") == "openvino"


@needs_optimum
@pytest.mark.slow
def test_optimum_conversion_int4_runs_in_genai(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from modelmill.passes.openvino_optimum import OpenVINOOptimumConversion

    params = OpenVINOOptimumConversion.Params(ov_quant_config={"weight_format": "int4", "group_size": 16,
                                                                "ratio": 1.0})
    ctx = make_context(tmp_path, "optimum")
    out = OpenVINOOptimumConversion().run(ModelRef("hf", tiny_llama_dir), params, ctx)
    assert out.kind == "openvino" and out.onnx_file == "openvino_model.xml"
    assert (out.path / "openvino_tokenizer.xml").exists() and (out.path / "openvino_detokenizer.xml").exists()
    import openvino as ov

    types = {op.get_output_element_type(0).get_type_name()
             for op in ov.Core().read_model(str(out.model_file)).get_ops() if op.get_type_name() == "Constant"}
    assert types & {"i4", "u4"}
    from modelmill.openvino_genai import generate

    text, stats = generate(out.path, "hello world", max_new_tokens=4)
    assert isinstance(text, str) and stats["new_tokens"] >= 1


def test_optimum_conversion_refuses_hub_datasets() -> None:
    pytest.importorskip("optimum.intel")
    from modelmill.passes.openvino_optimum import quantization_config

    with pytest.raises(PassError, match="Hub dataset"):
        quantization_config("x", {"weight_format": "int4", "dataset": "wikitext2", "awq": True})
    with pytest.raises(PassError, match="no weight_format"):
        quantization_config("x", {"group_size": 64})
    with pytest.raises(PassError, match="quant_mode"):
        quantization_config("x", {"quant_mode": "int8"})


def test_a_hub_dataset_nncf_would_not_read_is_left_out_with_a_warning() -> None:
    """Olive's NPU recipes name wikitext2 with ratio 1 and no AWQ/scale estimation: NNCF never reads it there, so
    ModelMill runs them without it (saying so); where a setting reads it, the run is refused, naming the setting."""
    from modelmill.passes.openvino_optimum import dataset_readers

    npu = {"weight_format": "int4", "group_size": 128, "dataset": "wikitext2", "ratio": 1, "awq": False,
           "scale_estimation": False, "sym": True, "backup_precision": "int8_asym",
           "sensitivity_metric": "weight_quantization_error"}
    assert dataset_readers(npu) == []
    assert dataset_readers({**npu, "awq": True, "scale_estimation": True}) == ["awq", "scale_estimation"]
    assert dataset_readers({**npu, "ratio": 0.8, "sensitivity_metric": None}) == [
        "ratio 0.8 (data-aware mixed precision)"]
    assert dataset_readers({**npu, "ratio": 0.8}) == []  # the data-free metric: mixed precision without data
    assert dataset_readers({"weight_format": "int8", "ratio": 0.5, "dataset": "wikitext2"}) == []  # int8: ratio 1


def test_optimum_conversion_leaves_an_unread_hub_dataset_out() -> None:
    pytest.importorskip("optimum.intel")
    from modelmill.passes.openvino_optimum import quantization_config

    said: list[str] = []
    config = quantization_config("x", {"weight_format": "int4", "group_size": 128, "dataset": "wikitext2",
                                       "ratio": 1, "sym": True}, said.append)
    assert config.quantization_config.dataset is None and config.quantization_config.group_size == 128
    assert len(said) == 1 and "'wikitext2' is not downloaded" in said[0]
    with pytest.raises(PassError, match="awq, scale_estimation read it"):
        quantization_config("x", {"weight_format": "int4", "dataset": "wikitext2", "awq": True,
                                  "scale_estimation": True})


def test_user_code_is_refused_before_any_work(tmp_path: Path) -> None:
    """Olive's bert-base-multilingual-cased OpenVINO recipe names a transform_fn in its third pass: a run stops at
    preparation, naming the pass, instead of after the conversion and the I/O update have run."""
    from modelmill.config import Environment, parse_document
    from modelmill.engine.prepare import prepare_run
    from modelmill.errors import ConfigError

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"")
    (tmp_path / "user_script.py").write_text("")

    def document(quantize: dict) -> object:
        config = {"input_model": {"type": "ONNXModel", "model_path": "m/model.onnx"},
                  "passes": {"convert": {"type": "OpenVINOConversion", "static": False},
                             "quantize": {"type": "OpenVINOQuantization", **quantize}},
                  "output_dir": "out"}
        path = tmp_path / "c.json"
        path.write_text(json.dumps(config))
        return parse_document(path.read_text(), str(path))

    env = Environment(Environment.current().installed_eps, tmp_path)
    with pytest.raises(ConfigError, match=r"pass quantize: OpenVINOQuantization: user_script, transform_fn name "
                                          r"user code") as err:
        prepare_run(document({"user_script": "user_script.py", "transform_fn": "f"}), None, tmp_path, env=env)
    assert "data_config" in str(err.value.fix)
    assert prepare_run(document({}), None, tmp_path, env=env).plan.steps[1].name == "quantize"
