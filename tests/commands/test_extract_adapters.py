"""extract-adapters: every adapter under a model folder → one weights file each, named as the model's LoRA inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from commands.conftest import read_onnx_adapter, save_adapter
from modelmill.cli import main


def test_one_file_per_adapter_folder(tiny_llama_dir: Path, lora_adapter: Path, other_adapter: Path,
                                     tmp_path: Path) -> None:
    """Olive's layout: a model folder with one adapter per subfolder; each file is named after its folder."""
    model = Path(shutil.copytree(tiny_llama_dir, tmp_path / "model"))
    shutil.copytree(lora_adapter, model / "speech")
    shutil.copytree(other_adapter, model / "vision")
    assert main(["extract-adapters", "-m", str(model), "-f", "onnx_adapter", "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["speech.onnx_adapter", "vision.onnx_adapter"]
    speech = read_onnx_adapter(tmp_path / "out" / "speech.onnx_adapter")
    vision = read_onnx_adapter(tmp_path / "out" / "vision.onnx_adapter")
    assert speech.keys() == vision.keys() and len(speech) == 12
    assert speech["model.layers.1.attn.v_proj.lora_A.MatMul.weight"].shape == (64, 4)
    assert vision["model.layers.1.attn.v_proj.lora_A.MatMul.weight"].shape == (64, 8)
    # the same weights convert-adapters writes for that adapter
    assert main(["convert-adapters", "-a", str(lora_adapter), "-o", str(tmp_path / "c")]) == 0
    converted = read_onnx_adapter(tmp_path / "c.onnx_adapter")
    for name, value in converted.items():
        np.testing.assert_array_equal(speech[name], value)


def test_a_single_adapter_folder_is_named_default(lora_adapter: Path, tmp_path: Path) -> None:
    assert main(["extract-adapters", "-m", str(lora_adapter), "-f", "safetensors", "--dtype", "float16",
                 "-o", str(tmp_path / "out")]) == 0
    from safetensors.numpy import load_file

    weights = load_file(str(tmp_path / "out" / "default.safetensors"))
    assert len(weights) == 12 and all(v.dtype == np.float16 for v in weights.values())


def test_packed_projections_split_into_the_builders_modules(tmp_path: Path) -> None:
    """Phi-3 packs q/k/v into qkv_proj and gate/up into gate_up_proj; the builder (and Olive) split them."""
    import torch
    from safetensors.numpy import load_file
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    config = Phi3Config(vocab_size=128, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                        num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64, pad_token_id=0)
    model_dir = tmp_path / "phi3"
    Phi3ForCausalLM(config).save_pretrained(str(model_dir))
    save_adapter(model_dir, model_dir / "lora", seed=4, targets=["qkv_proj", "gate_up_proj"])
    assert main(["extract-adapters", "-m", str(model_dir), "-f", "safetensors", "-o", str(tmp_path / "out")]) == 0
    weights = load_file(str(tmp_path / "out" / "lora.safetensors"))
    prefix = "model.layers.0"
    assert sorted(weights) == sorted(f"{prefix}.{cls}.{m}.lora_{ab}.MatMul.weight"
                                     for cls, m in [("attn", "q_proj"), ("attn", "k_proj"), ("attn", "v_proj"),
                                                    ("mlp", "gate_proj"), ("mlp", "up_proj")] for ab in "AB")
    head = 32 // 4
    assert weights[f"{prefix}.attn.q_proj.lora_B.MatMul.weight"].shape == (4, 4 * head)
    assert weights[f"{prefix}.attn.k_proj.lora_B.MatMul.weight"].shape == (4, 2 * head)
    assert weights[f"{prefix}.mlp.up_proj.lora_B.MatMul.weight"].shape == (4, 48)
    peft = load_file(str(model_dir / "lora" / "adapter_model.safetensors"))
    packed_b = peft["base_model.model.model.layers.0.self_attn.qkv_proj.lora_B.weight"]  # [q + 2 kv, r]
    np.testing.assert_allclose(weights[f"{prefix}.attn.v_proj.lora_B.MatMul.weight"],
                               packed_b[6 * head:].T * 16 / 4, rtol=1e-6)
    shared_a = peft["base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight"].T
    for module in ("q_proj", "k_proj", "v_proj"):
        np.testing.assert_array_equal(weights[f"{prefix}.attn.{module}.lora_A.MatMul.weight"], shared_a)


def test_packed_projections_without_the_base_config_are_refused(tmp_path: Path, lora_adapter: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    adapter = Path(shutil.copytree(lora_adapter, tmp_path / "a"))
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "org/not-here"
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    save_file({k.replace("q_proj", "qkv_proj"): v for k, v in weights.items()}, str(adapter / "adapter_model.safetensors"))
    assert main(["extract-adapters", "-m", str(adapter), "-f", "numpy", "-o", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "qkv_proj" in err and "config.json" in err


@pytest.mark.parametrize("argv, expected", [(["--test"], "--test"), (["--model_script", "m.py"], "--model_script")])
def test_refusals_name_the_flag(lora_adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                argv: list[str], expected: str) -> None:
    assert main(["extract-adapters", "-m", str(lora_adapter), "-f", "numpy", "-o", str(tmp_path / "o"), *argv]) != 0
    assert expected in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_a_model_without_adapters_is_refused(tiny_llama_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract-adapters", "-m", str(tiny_llama_dir), "-f", "numpy", "-o", str(tmp_path / "o")]) != 0
    assert "no PEFT adapter" in capsys.readouterr().err
