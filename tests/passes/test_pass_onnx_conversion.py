"""OnnxConversion: HF folders and torch.save'd modules exported to ONNX, numerics equal to PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import events, make_context, op_types, run, run_pass, session, token_feeds
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.onnx_conversion import OnnxConversion


def _torch_outputs(hf_dir: Path, feeds: dict[str, np.ndarray], causal: bool) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    model = (AutoModelForCausalLM if causal else AutoModel).from_pretrained(str(hf_dir)).eval()
    with torch.no_grad():
        kwargs = {name: torch.from_numpy(value) for name, value in feeds.items()}
        if causal:
            kwargs["use_cache"] = False
        return model(**kwargs)[0].numpy()


def test_llama_logits_match_pytorch(tiny_llama_dir: Path, tiny_llama_onnx: ModelRef) -> None:
    sess = session(tiny_llama_onnx)
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    for batch, seq in [(1, 5), (3, 17)]:  # dynamic axes: shapes other than the dummy export shape
        feeds = token_feeds(tiny_llama_onnx, batch=batch, seq=seq)
        np.testing.assert_allclose(run(tiny_llama_onnx, feeds), _torch_outputs(tiny_llama_dir, feeds, True),
                                   atol=1e-4, rtol=1e-4)


def test_llama_output_folder(tiny_llama_onnx: ModelRef) -> None:
    names = {p.name for p in tiny_llama_onnx.path.iterdir()}
    assert {"model.onnx", "model.onnx.data", "config.json", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json"} <= names
    assert not any(name.endswith(".safetensors") for name in names)
    assert op_types(tiny_llama_onnx)["MatMul"] > 0
    assert tiny_llama_onnx.kind == "onnx"
    assert tiny_llama_onnx.attributes["io_config"]["output_names"] == ["logits"]


def test_bert_last_hidden_state_matches_pytorch(tiny_bert_dir: Path, tiny_bert_onnx: ModelRef) -> None:
    sess = session(tiny_bert_onnx)
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in sess.get_outputs()] == ["last_hidden_state"]
    feeds = token_feeds(tiny_bert_onnx, batch=2, seq=9)
    feeds["attention_mask"][1, 6:] = 0
    np.testing.assert_allclose(run(tiny_bert_onnx, feeds), _torch_outputs(tiny_bert_dir, feeds, False),
                               atol=1e-4, rtol=1e-4)


def test_progress_events(tiny_llama_dir: Path, tmp_path: Path) -> None:
    result, ctx = run_pass(OnnxConversion, ModelRef(kind="hf", path=tiny_llama_dir), tmp_path, dynamic=False,
                           target_opset=17)
    fractions = [e["fraction"] for e in events(ctx, "pass.progress")]
    assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
    shape = session(result).get_inputs()[0].shape
    assert shape == [2, 8]  # dynamic=False keeps the dummy shape


@pytest.mark.parametrize("dynamo", [False, True])
def test_pytorch_module_with_io_config(tmp_path: Path, dynamo: bool) -> None:
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    path = tmp_path / "mlp.pt"
    torch.save(module, path)
    io_config = {"input_names": ["x"], "input_shapes": [[2, 16]], "input_types": ["float32"], "output_names": ["y"],
                 "dynamic_axes": {"x": {0: "batch"}, "y": {0: "batch"}}}
    # A whole pickled module loads only with the user's consent (tests/test_remote_code.py).
    ref = ModelRef(kind="pytorch", path=path, attributes={"io_config": io_config, "trust_remote_code": True})
    result, _ = run_pass(OnnxConversion, ref, tmp_path, use_dynamo_exporter=dynamo)
    assert session(result).get_inputs()[0].shape[0] == "batch"
    x = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session(result).run(["y"], {"x": x})[0], expected, atol=1e-5)


def test_pytorch_without_io_config_fails(tmp_path: Path) -> None:
    ref = ModelRef(kind="pytorch", path=tmp_path / "missing.pt")
    with pytest.raises(PassError, match="io_config") as info:
        run_pass(OnnxConversion, ref, tmp_path)
    assert info.value.fix


def test_onnx_input_rejected(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="already ONNX|needs a Hugging Face"):
        OnnxConversion().run(tiny_llama_onnx, OnnxConversion.Params(), make_context(tmp_path, "c"))


def test_params_reject_unknown_keys() -> None:
    with pytest.raises(Exception, match="target_opsett"):
        OnnxConversion.Params(target_opsett=17)
