"""--test: a randomly initialized 2-layer copy of the model's architecture replaces the model (Olive's meaning)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modelmill.cli import main


@pytest.fixture(scope="module")
def four_layer_llama(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_llama_dir's architecture with 4 layers (so shrinking to 2 shows), its tokenizer, and a shard index."""
    import torch
    from transformers import AutoConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("llama4") / "model"
    config = AutoConfig.from_pretrained(tiny_llama_dir)
    config.num_hidden_layers = 4
    torch.manual_seed(5)
    LlamaForCausalLM(config).save_pretrained(str(out))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy2(tiny_llama_dir / name, out / name)
    (out / "model.safetensors.index.json").write_text('{"weight_map": {}}')  # must not reach the test model
    return out


def _dry(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main([*argv, "--dry_run"]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_dir_gets_a_two_layer_random_copy_that_is_reused(four_layer_llama: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.numpy import load_file
    from transformers import AutoConfig

    test_dir = tmp_path / "small"
    config = _dry(["auto-opt", "-m", str(four_layer_llama), "-o", str(tmp_path / "o"), "--test", str(test_dir)],
                  capsys)
    assert config["input_model"]["model_path"] == str(test_dir)
    assert AutoConfig.from_pretrained(test_dir).num_hidden_layers == 2
    assert json.loads((test_dir / "olive_test_model.json").read_text())["type"] == "olive_hf_test_model"
    assert (test_dir / "tokenizer.json").exists() and not (test_dir / "model.safetensors.index.json").exists()
    small = load_file(str(test_dir / "model.safetensors"))
    big = load_file(str(four_layer_llama / "model.safetensors"))
    assert "model.layers.1.mlp.up_proj.weight" in small and "model.layers.2.mlp.up_proj.weight" not in small
    name = "model.layers.0.self_attn.q_proj.weight"
    assert small[name].shape == big[name].shape and not (small[name] == big[name]).all()  # random, not a slice
    made = (test_dir / "model.safetensors").stat().st_mtime_ns
    _dry(["quantize", "-m", str(four_layer_llama), "-o", str(tmp_path / "q"), "--test", str(test_dir)], capsys)
    assert (test_dir / "model.safetensors").stat().st_mtime_ns == made  # reused, not made again


def test_bare_test_keys_the_cache_by_the_source(four_layer_llama: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    other = Path(shutil.copytree(four_layer_llama, tmp_path / "elsewhere" / "model"))
    first = _dry(["auto-opt", "-m", str(four_layer_llama), "-o", str(tmp_path / "a"), "--test"], capsys)
    second = _dry(["auto-opt", "-m", str(other), "-o", str(tmp_path / "b"), "--test"], capsys)
    paths = {first["input_model"]["model_path"], second["input_model"]["model_path"]}
    assert len(paths) == 2  # same folder name, different models: two test models
    assert all((Path(p) / "olive_test_model.json").exists() for p in paths)


def test_a_folder_that_is_not_a_test_model_is_refused(four_layer_llama: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["auto-opt", "-m", str(four_layer_llama), "-o", str(tmp_path / "o"), "--test", str(tmp_path / "mine"),
                 "--dry_run"]) != 0
    assert "olive_test_model.json" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_an_onnx_model_is_refused(tiny_llama_onnx, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quantize", "-m", str(tiny_llama_onnx.path), "-o", str(tmp_path / "o"), "--test"]) != 0
    assert "--test" in capsys.readouterr().err


@pytest.mark.slow
def test_capture_exports_the_two_layer_model(four_layer_llama: Path, tmp_path: Path) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort

    out = tmp_path / "onnx"
    assert main(["capture-onnx-graph", "-m", str(four_layer_llama), "-o", str(out), "--test",
                 str(tmp_path / "small")]) == 0
    model_file = next(out.glob("*.onnx"))
    names = {n.name for n in onnx.load(str(model_file), load_external_data=False).graph.node}
    assert any("layers.1" in n for n in names) and not any("layers.2" in n for n in names)
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.ones((1, 5), dtype=np.int64) for i in session.get_inputs()}
    assert session.run(None, feeds)[0].shape[:2] == (1, 5)
