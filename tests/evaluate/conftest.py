"""Fixtures for the evaluation tests: a tiny ORT GenAI model and noise-perturbed copies of the tiny models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import built_model_once, make_context

from modelmill.engine.model import ModelRef


@pytest.fixture(scope="session")
def tiny_genai(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    """tiny_llama_dir built by ModelBuilder (int4) into an ORT GenAI folder."""
    from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams

    return built_model_once(tmp_path_factory, "eval_genai", lambda folder: ModelBuilder().run(
        ModelRef("hf", tiny_llama_dir), ModelBuilderParams(precision="int4"), make_context(folder, "model_builder")))


def _perturbed_hf(src: Path, out: Path, scale: float) -> Path:
    """A copy of an HF folder with Gaussian noise (scale * each tensor's std) added to every float weight."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, out, dirs_exist_ok=True)
    weights = out / "model.safetensors"
    tensors = load_file(str(weights))
    generator = torch.Generator().manual_seed(1)
    noisy = {}
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and tensor.numel() > 1:
            noise = torch.randn(tensor.shape, generator=generator) * float(tensor.float().std()) * scale
            tensor = (tensor.float() + noise).to(tensor.dtype)
        noisy[name] = tensor.contiguous()
    save_file(noisy, str(weights), metadata={"format": "pt"})
    return out


@pytest.fixture(scope="session")
def perturbed_llama_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _perturbed_hf(tiny_llama_dir, tmp_path_factory.mktemp("perturbed_llama"), scale=10.0)


@pytest.fixture(scope="session")
def perturbed_bert_onnx(tiny_bert_onnx: ModelRef, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    """tiny_bert_onnx with noise (0.5 x each weight's std) on its float initializers, in a new folder."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from modelmill.passes import onnx_io

    out = tmp_path_factory.mktemp("perturbed_bert_onnx")
    proto = onnx_io.load(tiny_bert_onnx)
    rng = np.random.default_rng(2)
    for init in proto.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype == np.float32 and array.size > 1:
            noisy = array + rng.standard_normal(array.shape).astype(np.float32) * array.std() * 0.5
            init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), init.name))
    onnx.checker.check_model(proto, full_check=False)
    onnx_io.save(proto, out)
    onnx_io.copy_companions(tiny_bert_onnx, out)
    return ModelRef("onnx", out)
