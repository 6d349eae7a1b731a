"""QuarkQuantization: AMD Quark's ONNX quantizer on the tiny BERT; the Torch and NPU variants are refused.

Skipped where the extra is not installed (``pip install 'modelmill[quark]'``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from modelmill.engine.context import Accelerator
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.quark_quantization import QuarkQuantization, refuse_npu_options

from tests.helpers import make_context

needs_quark = pytest.mark.skipif(importlib.util.find_spec("quark") is None,
                                 reason="amd-quark is not installed (pip install 'modelmill[quark]')")


@needs_quark
@pytest.mark.slow
def test_quark_onnx_quantizes_bert(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    params = QuarkQuantization.Params(max_calibration_samples=4, calibration_sequence_length=16)
    out = QuarkQuantization().run(tiny_bert_onnx, params, make_context(tmp_path, "quark"))
    ops = {node.op_type for node in onnx.load(str(out.model_file)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    ids = np.arange(4, 20, dtype=np.int64)[None, :]
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}

    def hidden(model: ModelRef) -> np.ndarray:
        session = ort.InferenceSession(str(model.model_file), providers=["CPUExecutionProvider"])
        return session.run(None, feeds)[0].ravel()

    a, b = hidden(tiny_bert_onnx), hidden(out)
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.9


def test_quark_run_refuses_hf_input(tiny_bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="Quark-Torch"):
        QuarkQuantization().run(ModelRef("hf", tiny_bert_dir), QuarkQuantization.Params(), make_context(tmp_path, "q"))


def test_quark_npu_variants_say_what_they_need(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="Ryzen AI"):
        refuse_npu_options({"EnableNPUTransformer": True}, "CPUExecutionProvider")
    ctx = make_context(tmp_path, "npu", accelerator=Accelerator("npu", "VitisAIExecutionProvider"))
    with pytest.raises(PassError, match="onnxruntime-vitisai"):
        QuarkQuantization().run(tiny_bert_onnx, QuarkQuantization.Params(), ctx)
    refuse_npu_options({"ActivationSymmetric": True}, "CPUExecutionProvider")
