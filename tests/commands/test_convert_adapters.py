"""convert-adapters: a peft LoRA adapter → a weights file named as generate-adapter's model inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from commands.conftest import greedy, read_onnx_adapter, save_adapter
from modelmill.cli import main


def peft_tensors(adapter: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def load(path: Path, file_format: str) -> dict[str, np.ndarray]:
    if file_format == "onnx_adapter":
        return read_onnx_adapter(path)
    if file_format == "numpy":
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    if file_format == "safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    import torch

    return {key: value.numpy() for key, value in torch.load(path).items()}


@pytest.mark.parametrize("file_format, suffix", [("onnx_adapter", ".onnx_adapter"), ("numpy", ".npz"),
                                                 ("safetensors", ".safetensors"), ("pt", ".pt")])
def test_every_format_holds_transposed_scaled_weights(lora_adapter: Path, tmp_path: Path, file_format: str,
                                                      suffix: str) -> None:
    assert main(["convert-adapters", "-a", str(lora_adapter), "--adapter_format", file_format,
                 "-o", str(tmp_path / "w")]) == 0
    weights = load(tmp_path / f"w{suffix}", file_format)
    peft = peft_tensors(lora_adapter)
    assert len(weights) == len(peft) == 2 * 3 * 2  # layers x modules x (A, B)
    a = weights["model.layers.0.attn.q_proj.lora_A.MatMul.weight"]
    b = weights["model.layers.1.mlp.down_proj.lora_B.MatMul.weight"]
    assert a.shape == (64, 4) and b.shape == (4, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, peft["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].T)
    scale = 16 / 4  # lora_alpha / r
    np.testing.assert_allclose(b, peft["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"].T * scale,
                               rtol=1e-6)


def test_rslora_scales_by_sqrt_rank_and_float16(tiny_llama_dir: Path, tmp_path: Path) -> None:
    adapter = save_adapter(tiny_llama_dir, tmp_path / "rs", seed=3, rank=16, use_rslora=True)
    assert main(["convert-adapters", "-a", str(adapter), "--dtype", "float16", "--adapter_format", "numpy",
                 "-o", str(tmp_path / "w.npz")]) == 0
    assert not (tmp_path / "w.npz.npz").exists()
    weights = load(tmp_path / "w.npz", "numpy")
    b = weights["model.layers.0.attn.v_proj.lora_B.MatMul.weight"]
    peft_b = peft_tensors(adapter)["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"]
    assert b.dtype == np.float16
    np.testing.assert_allclose(b.astype(np.float32), peft_b.T * 16 / math.sqrt(16), rtol=2e-3, atol=1e-4)


def dequantize(packed: np.ndarray, scales: np.ndarray, zero_points: np.ndarray | None, rows: int,
               block: int) -> np.ndarray:
    """MatMulNBits' layout back to a float [rows, cols] matrix: packed [cols, blocks, block/2], low nibble first."""
    cols, blocks, _ = packed.shape
    low, high = packed & 0x0F, packed >> 4
    q = np.stack([low, high], axis=-1).reshape(cols, blocks, block).astype(np.float32)
    if zero_points is None:
        zp = np.full((cols, blocks), 8.0)
    else:
        nibbles = np.stack([zero_points & 0x0F, zero_points >> 4], axis=-1).reshape(cols, -1)[:, :blocks]
        zp = nibbles.astype(np.float32)
    values = (q - zp[..., None]) * scales.reshape(cols, blocks)[..., None].astype(np.float32)
    return values.reshape(cols, blocks * block)[:, :rows].T


@pytest.mark.parametrize("mode", ["symmetric", "asymmetric"])
def test_quantize_int4_round_trips_within_a_quantization_step(lora_adapter: Path, tmp_path: Path, mode: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert-adapters", "-a", str(lora_adapter), "--quantize_int4", "--int4_block_size", "16",
                 "--int4_quantization_mode", mode, "-o", str(tmp_path / "q")]) == 0
    assert "float LoRA weights" in capsys.readouterr().err  # says what consumes an int4 file
    weights = read_onnx_adapter(tmp_path / "q.onnx_adapter")
    float_weights = load(_convert(lora_adapter, tmp_path / "f"), "onnx_adapter")
    name = "model.layers.0.mlp.down_proj.lora_A.MatMul"  # [128, 4]: 8 blocks of 16 per column
    packed, scales = weights[f"{name}.quant.weight"], weights[f"{name}.quant.scale"]
    assert packed.dtype == np.uint8 and packed.shape == (4, 8, 8) and scales.shape == (32,)
    zero_points = weights.get(f"{name}.quant.zero_point")
    assert (zero_points is None) == (mode == "symmetric")
    assert not any(key.endswith(".MatMul.weight") for key in weights)
    original = float_weights[f"{name}.weight"]
    restored = dequantize(packed, scales, zero_points, 128, 16)
    step = np.abs(original).max()
    assert np.abs(restored - original).max() <= step / 7 + 1e-6  # within one int4 step of the largest block
    assert not np.allclose(restored, 0)


def _convert(adapter: Path, out: Path) -> Path:
    assert main(["convert-adapters", "-a", str(adapter), "-o", str(out)]) == 0
    return out.with_name(out.name + ".onnx_adapter")


def test_a_finetune_output_is_read_from_its_adapter_folder(lora_adapter: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(lora_adapter, tmp_path / "finetuned" / "adapter")
    converted = read_onnx_adapter(_convert(tmp_path / "finetuned", tmp_path / "w"))
    assert converted.keys() == read_onnx_adapter(_convert(lora_adapter, tmp_path / "v")).keys()


@pytest.mark.parametrize("change, expected", [({"use_dora": True}, "DoRA"), ({"peft_type": "LOHA"}, "LOHA")])
def test_non_lora_adapters_are_refused(lora_adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       change: dict, expected: str) -> None:
    import shutil

    adapter = Path(shutil.copytree(lora_adapter, tmp_path / "a"))
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, **change}))
    assert main(["convert-adapters", "-a", str(adapter), "-o", str(tmp_path / "w")]) != 0
    err = capsys.readouterr().err
    assert expected in err and "--adapter_path" in err and not list(tmp_path.glob("w*"))


def test_a_folder_without_an_adapter_is_refused(tiny_llama_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert-adapters", "-a", str(tiny_llama_dir), "-o", str(tmp_path / "w")]) != 0
    assert "adapter_config.json" in capsys.readouterr().err


@pytest.mark.slow
def test_the_file_activates_on_generate_adapters_model(adapter_model: Path, lora_adapter: Path, other_adapter: Path,
                                                       tmp_path: Path) -> None:
    """The converted weights are the model's LoRA inputs: same names and values as generate-adapter extracted from
    the graph, and another adapter (rank 8, the model's was built with 4) runs on the same model."""
    import onnx

    extracted = read_onnx_adapter(adapter_model / "adapter_weights.onnx_adapter")
    converted = read_onnx_adapter(_convert(lora_adapter, tmp_path / "same"))
    assert converted.keys() == extracted.keys()
    for name, value in extracted.items():
        np.testing.assert_allclose(converted[name], value, rtol=1e-5, atol=1e-6)
    graph = onnx.load(str(adapter_model / "model.onnx"), load_external_data=False).graph
    assert set(converted) <= {i.name for i in graph.input}

    other = _convert(other_adapter, tmp_path / "other")
    base, own, with_other = greedy(adapter_model, None), greedy(adapter_model, other.with_name("same.onnx_adapter")), \
        greedy(adapter_model, other)
    assert own == greedy(adapter_model.parent / "embedded", None)  # the converted file == the adapter built in
    assert with_other != base and with_other != own
