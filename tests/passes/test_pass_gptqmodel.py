"""GptqModel: Olive's parameters, refused clearly without the gptqmodel extra, and (where the extra is installed:
a separate environment, see docs/quantization.md) a real gptqmodel run on a tiny Llama that ModelBuilder turns into
MatMulNBits with the checkpoint's codes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import make_context

from modelmill.config import load_document, load_workflow
from modelmill.engine.model import ModelRef
from modelmill.engine.plan import plan_from_config
from modelmill.errors import ConfigError, PassError
from modelmill.passes.gptqmodel import GptqModel, GptqModelParams
from modelmill.passes.registry import find_pass
from modelmill.testing.genai_generate import greedy_tokens

HAS_GPTQMODEL = importlib.util.find_spec("gptqmodel") is not None
needs_gptqmodel = pytest.mark.skipif(not HAS_GPTQMODEL, reason="the gptqmodel package is not installed: "
                                     "pip install 'modelmill[gptqmodel]' in a separate environment "
                                     "(docs/quantization.md) to run this test")


def test_olive_names_types_and_defaults() -> None:
    assert find_pass("GptqModel") is GptqModel and find_pass("olive.passes.pytorch.gptqmodel.GptqModel") is GptqModel
    params = GptqModelParams()
    assert (params.bits, params.group_size, params.damp_percent, params.damp_auto_increment) == (4, -1, 0.05, 0.01)
    assert (params.static_groups, params.true_sequential, params.desc_act, params.sym) == (False, True, True, True)
    assert (params.mse, params.lm_head, params.device, params.dynamic, params.rotation) == (0.0, False, "cpu", None,
                                                                                            None)
    with pytest.raises(ValueError, match="group_size"):
        GptqModelParams(group_size=0)


@pytest.mark.skipif(HAS_GPTQMODEL, reason="checks the error shown where gptqmodel is missing")
def test_without_the_extra_validation_plan_and_run_name_it(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from modelmill.config.validate import validate_document

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"input_model": {"type": "HfModel", "model_path": str(tiny_llama_dir)},
                                  "passes": {"q": {"type": "GptqModel", "bits": 4}},
                                  "output_dir": str(tmp_path / "out")}))
    [found] = [d for d in validate_document(load_document(config)) if d.code == "pass-not-runnable"]
    assert found.severity == "error" and "gptqmodel" in found.message and "modelmill[gptqmodel]" in found.hint
    with pytest.raises(ConfigError, match="needs the gptqmodel package") as raised:  # before any pass runs
        plan_from_config(load_workflow(load_document(config))).check()
    assert "modelmill[gptqmodel]" in str(raised.value)
    with pytest.raises(PassError, match="needs the gptqmodel package"):
        GptqModel().run(ModelRef("hf", tiny_llama_dir), GptqModelParams(), make_context(tmp_path, "q"))


@needs_gptqmodel
@pytest.mark.slow
def test_gptqmodel_checkpoint_becomes_matmulnbits_with_its_codes(tiny_llama_dir: Path, tmp_path: Path) -> None:
    import onnx
    import torch
    from onnx import numpy_helper

    from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams
    from modelmill.quant.checkpoint import read_quant_config, read_tensors

    ctx = make_context(tmp_path, "gptqmodel")
    params = GptqModelParams(bits=4, group_size=32, desc_act=False, sym=True, calibration_samples=8,
                             calibration_seq_len=64)
    quantized = GptqModel().run(ModelRef("hf", tiny_llama_dir), params, ctx)
    method, config = read_quant_config(quantized.path)
    assert method == "gptq" and config["bits"] == 4 and config["group_size"] == 32
    tensors = read_tensors(quantized.path)
    assert "model.layers.0.mlp.down_proj.qweight" in tensors and "model.layers.0.mlp.down_proj.weight" not in tensors

    out = ModelBuilder().run(quantized, ModelBuilderParams(precision="int4", int4_block_size=128,
                                                           int4_accuracy_level=1), make_context(tmp_path, "mb"))
    graph = onnx.load(str(out.model_file)).graph
    nbits = {n.name: {a.name: a.i for a in n.attribute} for n in graph.node if n.op_type == "MatMulNBits"}
    down = nbits["/model/layers.0/mlp/down_proj/MatMulNBits"]
    assert (down["bits"], down["block_size"]) == (4, 32)  # the checkpoint's groups, not the builder's 128

    # the MatMulNBits weight holds the very codes gptqmodel chose (GPTQ packs int32 along the input dim)
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    stored = weights["model.layers.0.mlp.down_proj.MatMulNBits.qweight"]  # (out, blocks, 16) uint8, 2 codes a byte
    onnx_codes = np.stack([stored & 0xF, stored >> 4], axis=-1).reshape(stored.shape[0], -1)
    packed = tensors["model.layers.0.mlp.down_proj.qweight"].to(torch.int32)  # (in / 8, out)
    shifts = torch.arange(0, 32, 4, dtype=torch.int32)
    gptq_codes = ((packed.unsqueeze(1) >> shifts.view(1, -1, 1)) & 0xF).reshape(-1, packed.shape[1]).T
    assert np.array_equal(onnx_codes, gptq_codes.numpy().astype(np.uint8))

    # and the model generates
    assert len(greedy_tokens(out.path, [1, 40, 41, 42], max_length=10)) == 6  # to max_length, no early stop
