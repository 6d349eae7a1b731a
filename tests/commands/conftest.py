"""Fixtures of the command tests: peft LoRA adapters on the tiny Llama, and generate-adapter's model for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

TARGETS = ["q_proj", "v_proj", "down_proj"]


def modelmill_home(factory: pytest.TempPathFactory) -> Path:
    return factory.getbasetemp() / "mmhome"


@pytest.fixture(autouse=True)
def _home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs cache under the test session, never in the developer's ~/.cache/modelmill."""
    monkeypatch.setenv("MODELMILL_HOME", str(modelmill_home(tmp_path_factory)))


def save_adapter(base: Path, out: Path, seed: int, rank: int = 4, targets: list[str] | None = None,
                 **extra: object) -> Path:
    """A peft LoRA adapter with random (not zero) B matrices, so it changes the model's outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    config = LoraConfig(r=rank, lora_alpha=16, target_modules=targets or TARGETS, init_lora_weights=False, **extra)
    get_peft_model(model, config).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def lora_adapter(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_adapter(tiny_llama_dir, tmp_path_factory.mktemp("lora_adapter"), seed=1)


@pytest.fixture(scope="session")
def other_adapter(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second adapter on the same base, of another rank."""
    return save_adapter(tiny_llama_dir, tmp_path_factory.mktemp("other_adapter"), seed=2, rank=8)


@pytest.fixture(scope="session")
def adapter_model(tiny_llama_dir: Path, lora_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`capture-onnx-graph --use_model_builder --adapter_path` (LoRA inside the graph), then `generate-adapter`:
    the folder with the model taking LoRA inputs and adapter_weights.onnx_adapter. Also keeps the embedded build
    as adapter_model.parent / "embedded"."""
    from modelmill.cli import main

    root = tmp_path_factory.mktemp("adapter_model")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELMILL_HOME", str(modelmill_home(tmp_path_factory)))
        assert main(["capture-onnx-graph", "-m", str(tiny_llama_dir), "--use_model_builder", "--precision", "fp32",
                     "--adapter_path", str(lora_adapter), "-o", str(root / "embedded")]) == 0
        assert main(["generate-adapter", "-m", str(root / "embedded"), "-o", str(root / "generated")]) == 0
    yield root / "generated"


def greedy(folder: Path, adapter_file: Path | None, prompt: str = "### Question: What does len do?") -> list[int]:
    """10 greedy tokens from onnxruntime-genai, with ``adapter_file`` active (or the base model when None)."""
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    tokenizer = og.Tokenizer(model)
    ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 10, min_length=len(ids) + 10, do_sample=False)
    generator = og.Generator(model, params)
    if adapter_file is not None:
        adapters = og.Adapters(model)
        adapters.load(str(adapter_file), "a")
        generator.set_active_adapter(adapters, "a")
    generator.append_tokens(ids)
    tokens = []
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    return tokens


def read_onnx_adapter(path: Path) -> dict[str, object]:
    """An .onnx_adapter file's parameters as numpy arrays (onnxruntime's reader)."""
    import onnxruntime as ort

    adapter = ort.AdapterFormat.read_adapter(str(path))  # owns the (mapped) memory: copy before it goes
    return {name: value.numpy().copy() for name, value in adapter.get_parameters().items()}
