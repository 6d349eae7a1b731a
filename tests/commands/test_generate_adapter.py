"""generate-adapter: an ONNX model with LoRA inside → the model with LoRA inputs plus an .onnx_adapter file."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.conftest import greedy, read_onnx_adapter
from modelmill.cli import main


@pytest.mark.slow
def test_lora_weights_become_inputs_and_the_file_restores_the_adapter(adapter_model: Path) -> None:
    import onnx

    weights = read_onnx_adapter(adapter_model / "adapter_weights.onnx_adapter")
    assert len(weights) == 2 * 3 * 2
    graph = onnx.load(str(adapter_model / "model.onnx"), load_external_data=False).graph
    lora_inputs = {i.name: i for i in graph.input if ".lora_" in i.name}
    assert set(lora_inputs) == set(weights)
    rank_dim = lora_inputs["model.layers.0.attn.q_proj.lora_A.MatMul.weight"].type.tensor_type.shape.dim[1]
    assert rank_dim.dim_param  # dynamic rank: adapters of any rank fit

    with_file, base = greedy(adapter_model, adapter_model / "adapter_weights.onnx_adapter"), greedy(adapter_model, None)
    assert with_file == greedy(adapter_model.parent / "embedded", None)
    assert base != with_file


@pytest.mark.slow
@pytest.mark.parametrize("file_format, name", [("numpy", "adapter_weights.npz"),
                                               ("safetensors", "adapter_weights.safetensors"),
                                               ("pt", "adapter_weights.pt")])
def test_adapter_format_writes_the_same_weights_in_olives_formats(adapter_model: Path, tmp_path: Path,
                                                                  file_format: str, name: str) -> None:
    """--adapter_format numpy/safetensors/pt: Olive's save_format, the same named arrays as the onnx_adapter file."""
    import numpy as np

    out = tmp_path / file_format
    assert main(["generate-adapter", "-m", str(adapter_model.parent / "embedded"), "-o", str(out),
                 "--adapter_format", file_format]) == 0
    assert (out / name).is_file() and not (out / "adapter_weights.onnx_adapter").exists()
    if file_format == "numpy":
        loaded = dict(np.load(out / name))
    elif file_format == "safetensors":
        from safetensors.numpy import load_file

        loaded = load_file(str(out / name))
    else:
        import torch

        loaded = {k: v.numpy() for k, v in torch.load(out / name).items()}
    expected = read_onnx_adapter(adapter_model / "adapter_weights.onnx_adapter")
    assert set(loaded) == set(expected)
    assert all(np.array_equal(loaded[k], expected[k]) for k in expected)


def test_a_model_without_lora_is_refused(tiny_llama_onnx, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate-adapter", "-m", str(tiny_llama_onnx.path), "-o", str(tmp_path / "o")]) != 0
    assert "no LoRA branches" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--adapter_type", "dora"], "--adapter_type"),
    (["--account_name", "a"], "--account_name"),
])
def test_refusals_name_the_flag_and_the_fix(tiny_llama_onnx, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            argv: list[str], expected: str) -> None:
    assert main(["generate-adapter", "-m", str(tiny_llama_onnx.path), "-o", str(tmp_path / "o"), *argv]) != 0
    err = capsys.readouterr().err
    assert expected in err and "fix" in err and not (tmp_path / "o").exists()


def test_a_hugging_face_model_is_refused_with_the_build_step(tiny_llama_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate-adapter", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o")]) != 0
    assert "--adapter_path" in capsys.readouterr().err
