"""ExtractAdapters: base + adapter built by ModelBuilder → the base model plus a run-time .onnx_adapter file."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import op_types, run_pass
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.genai import ChatModel
from modelmill.passes.extract_adapters import ADAPTER_FILE, ExtractAdapters
from modelmill.passes.model_builder import ModelBuilder

PROMPT = "### Question: What does len do?"


@pytest.fixture(scope="module")
def adapter_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A peft LoRA adapter on the tiny Llama with random (not zero) B matrices, so it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("adapter")
    get_peft_model(model, config).save_pretrained(str(out))
    return out


def with_adapter(base: Path, adapter: Path) -> ModelRef:
    return ModelRef("hf", adapter, attributes={"base_model_path": str(base), "adapter_path": "."})


def lora_ops(model: ModelRef) -> dict[str, int]:
    import collections

    import onnx

    graph = onnx.load(str(model.model_file), load_external_data=False).graph
    return dict(collections.Counter(n.op_type for n in graph.node if "/lora_A/" in n.name or "/lora_B/" in n.name))


def greedy(folder: Path, adapter: bool | None) -> list[int]:
    model = ChatModel(folder, adapter=adapter)
    og = model.og
    ids = model.tokenizer.encode(PROMPT)
    params = og.GeneratorParams(model.model)
    params.set_search_options(max_length=len(ids) + 10, min_length=len(ids) + 10, do_sample=False)
    generator = og.Generator(model.model, params)
    if model.adapters is not None:
        generator.set_active_adapter(model.adapters, "adapter")
    generator.append_tokens(ids)
    tokens = []
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    return tokens


@pytest.mark.parametrize("precision", ["fp32", "int4"])
def test_separate_adapter_matches_the_embedded_one_and_the_base(tiny_llama_dir: Path, adapter_dir: Path,
                                                               tmp_path: Path, precision: str) -> None:
    embedded, _ = run_pass(ModelBuilder, with_adapter(tiny_llama_dir, adapter_dir), tmp_path, "embedded",
                           precision=precision)
    # The builder's LoRA branches stay float (quantizing them would cost the adapter's precision).
    assert lora_ops(embedded) == {"MatMul": 3 * 2 * 2}  # 3 modules x 2 layers x (A, B)
    if precision == "int4":
        assert op_types(embedded)["MatMulNBits"] > 0
    base, _ = run_pass(ModelBuilder, ModelRef("hf", tiny_llama_dir), tmp_path, "base", precision=precision)
    split, ctx = run_pass(ExtractAdapters, embedded, tmp_path, "split")
    assert (split.path / ADAPTER_FILE).stat().st_size > 0 and (split.path / "genai_config.json").exists()

    with_file, without = greedy(split.path, None), greedy(split.path, False)
    assert with_file == greedy(embedded.path, False)
    assert without == greedy(base.path, False)
    assert with_file != without


def test_a_model_without_lora_branches_is_refused(tiny_llama_genai: ModelRef, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="no LoRA branches"):
        run_pass(ExtractAdapters, tiny_llama_genai, tmp_path)


def test_chat_model_rejects_a_missing_adapter_file(tiny_llama_genai: ModelRef, tmp_path: Path) -> None:
    from modelmill.errors import ModelMillError

    with pytest.raises(ModelMillError, match="does not exist"):
        ChatModel(tiny_llama_genai.path, adapter=tmp_path / "nope.onnx_adapter")
