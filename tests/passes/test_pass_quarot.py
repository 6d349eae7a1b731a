"""QuaRot on tiny decoder LLMs: the rotated model computes the same logits, its Hadamard matrices are Hadamard,
sizes without one are refused with the way out, and the output feeds rtn and ModelBuilder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import events, make_context
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError, RunCancelled
from modelmill.passes.quarot import (
    LAYER_NORM_REASON,
    QuaRot,
    QuaRotParams,
    check_model_type,
    hadamard_factor,
    hadamard_matrix,
    orthogonal_matrix,
)
from modelmill.quant.checkpoint import read_tensors

IDS = torch.tensor([[1, 50, 60, 70, 80, 90, 100, 7], [1, 5, 9, 200, 300, 400, 11, 12]])


def _logits(folder: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits


def _assert_same(rotated: torch.Tensor, original: torch.Tensor) -> None:
    assert (rotated - original).abs().max() < 1e-4 * original.abs().max()


@pytest.fixture(scope="module")
def rotated(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ModelRef, object]]:
    found = {}
    for mode in ("hadamard", "random"):
        ctx = make_context(tmp_path_factory.mktemp("quarot"), mode)
        found[mode] = (QuaRot().run(ModelRef("hf", tiny_llama_dir), QuaRotParams(rotate_mode=mode), ctx), ctx)
    return found


def test_hadamard_matrices_of_every_order_claimed() -> None:
    claimed = [n for n in range(1, 400) if hadamard_factor(n)]
    assert {12, 20, 24, 28, 36, 40, 44, 60, 64, 96, 108, 140}.issubset(claimed)
    for n in claimed:
        matrix = hadamard_matrix(n)
        assert torch.equal(matrix @ matrix.T, n * torch.eye(n, dtype=torch.float64)), n
        assert set(matrix.unique().tolist()) <= {-1.0, 1.0}
    # the hidden / head sizes of common models: K * 2^m
    assert hadamard_factor(576) == (36, 16)  # SmolLM2-135M: 36 = 2 (17 + 1), Paley II
    assert hadamard_factor(896) == (28, 32) and hadamard_factor(960) == (60, 16) and hadamard_factor(4096) == (1, 4096)
    for missing in (3, 6, 10, 52, 92, 100):
        assert hadamard_factor(missing) is None
        with pytest.raises(ValueError, match=f"order {missing}"):
            hadamard_matrix(missing)


@pytest.mark.parametrize("mode", ["hadamard", "random"])
def test_rotations_are_orthogonal_and_seeded(mode: str) -> None:
    first = orthogonal_matrix(72, mode, torch.Generator().manual_seed(1))
    assert torch.allclose(first @ first.T, torch.eye(72, dtype=torch.float64), atol=1e-12)
    assert torch.equal(first, orthogonal_matrix(72, mode, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, orthogonal_matrix(72, mode, torch.Generator().manual_seed(2)))


@pytest.mark.parametrize("mode", ["hadamard", "random"])
def test_rotated_model_has_the_same_logits_and_new_weights(tiny_llama_dir: Path, rotated: dict, mode: str) -> None:
    out, ctx = rotated[mode]
    _assert_same(_logits(out.path), _logits(tiny_llama_dir))
    before, after = read_tensors(tiny_llama_dir), read_tensors(out.path)
    assert set(after) == set(before)
    for name in ("model.embed_tokens.weight", "lm_head.weight", "model.layers.0.self_attn.v_proj.weight",
                 "model.layers.1.self_attn.o_proj.weight", "model.layers.1.mlp.down_proj.weight"):
        assert not torch.allclose(after[name], before[name], atol=1e-3), name
    assert torch.equal(after["model.norm.weight"], torch.ones(64))
    assert torch.equal(after["model.layers.0.input_layernorm.weight"], torch.ones(64))
    assert json.loads((out.path / "config.json").read_text())["tie_word_embeddings"] is False
    assert (out.path / "tokenizer.json").exists()
    report = ctx.reports["rotation"]
    assert report["rotate_mode"] == mode and report["layers_with_r2"] == 2
    progress = events(ctx, "pass.progress")
    messages = [e["message"] for e in progress]
    assert messages[0] == "loading the model" and "rotating layer 2/2" in messages and "saving" in messages[-2]
    fractions = [e["fraction"] for e in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def _tiny(folder: Path, config: object) -> Path:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # norm scales away from ones, so that fusing them matters
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.add_(torch.rand_like(parameter))
    model.save_pretrained(str(folder))
    return folder


def _configs() -> dict[str, object]:
    from transformers import (
        LlamaConfig,
        MistralConfig,
        Phi3Config,
        Qwen2Config,
        Qwen3Config,
    )

    shape = {"vocab_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 96}
    return {"llama_tied": LlamaConfig(hidden_size=48, tie_word_embeddings=True, **shape),  # 48 = 47 + 1, head 12
            "qwen2": Qwen2Config(hidden_size=64, tie_word_embeddings=True, **shape),
            "qwen3": Qwen3Config(hidden_size=64, head_dim=16, **shape),
            "mistral": MistralConfig(hidden_size=64, **shape),
            "phi3": Phi3Config(hidden_size=64, pad_token_id=0, **shape)}


@pytest.mark.parametrize("name", ["llama_tied", "qwen2", "qwen3", "mistral", "phi3"])
def test_each_supported_layout_keeps_its_logits(tmp_path: Path, name: str) -> None:
    source = _tiny(tmp_path / name, _configs()[name])
    ctx = make_context(tmp_path, "rot")
    out = QuaRot().run(ModelRef("hf", source), QuaRotParams(seed=3), ctx)
    _assert_same(_logits(out.path), _logits(source))
    # Qwen2's v_proj has a bias: as in Olive, no head rotation there
    assert ctx.reports["rotation"]["layers_with_r2"] == (0 if name == "qwen2" else 2)
    assert json.loads((out.path / "config.json").read_text())["tie_word_embeddings"] is False


def test_a_size_without_a_hadamard_matrix_is_refused_with_the_way_out(tmp_path: Path) -> None:
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=512, hidden_size=52, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64)
    source = _tiny(tmp_path / "h52", config)
    with pytest.raises(PassError, match="hidden_size 52") as caught:
        QuaRot().run(ModelRef("hf", source), QuaRotParams(), make_context(tmp_path, "had"))
    assert "rotate_mode: random" in str(caught.value.fix)
    out = QuaRot().run(ModelRef("hf", source), QuaRotParams(rotate_mode="random"), make_context(tmp_path, "rand"))
    _assert_same(_logits(out.path), _logits(source))


def test_unsupported_models_are_refused_by_name() -> None:
    with pytest.raises(PassError, match=f"gpt2: {LAYER_NORM_REASON}"):
        check_model_type({"model_type": "gpt2"})
    with pytest.raises(PassError, match="model type 'gemma'.*llama, mistral, qwen2, qwen3, phi3"):
        check_model_type({"model_type": "gemma"})
    with pytest.raises(PassError, match="not a quantized checkpoint"):
        check_model_type({"model_type": "llama", "quantization_config": {"quant_method": "olive"}})


def test_cancel_stops_before_writing(tiny_llama_dir: Path, tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "cancel")
    ctx.cancel.set()
    with pytest.raises(RunCancelled):
        QuaRot().run(ModelRef("hf", tiny_llama_dir), QuaRotParams(), ctx)
    assert not any(ctx.output_dir.iterdir())


def test_rtn_takes_the_rotated_model(rotated: dict, tmp_path: Path) -> None:
    from modelmill.passes.rtn import Rtn, RtnParams
    from modelmill.quant.checkpoint import load_model

    out = Rtn().run(rotated["hadamard"][0], RtnParams(group_size=32), make_context(tmp_path, "rtn"))
    assert len(load_model(out.path).locked) == 14


def test_workflow_quarot_then_model_builder_int4(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from modelmill.cli import main
    from modelmill.testing.genai_generate import greedy_tokens

    config = {"input_model": {"type": "HfModel", "model_path": str(tiny_llama_dir)},
              "passes": {"rotate": {"type": "QuaRot", "rotate_mode": "hadamard", "seed": 7},
                         "build": {"type": "ModelBuilder", "precision": "int4"}},
              "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(config))
    assert main(["validate", str(path)]) == 0
    assert main(["run", "--config", str(path)]) == 0
    manifest = json.loads((tmp_path / "out" / "modelmill_run.json").read_text())
    assert [p["type"] for p in manifest["passes"]] == ["QuaRot", "ModelBuilder"]
    assert len(greedy_tokens(tmp_path / "out", [1, 40, 41], max_length=8)) == 5


def test_config_values_are_checked() -> None:
    from modelmill.config import Environment, parse_document, validate_document

    def diagnostics(entry: dict) -> list:
        config = {"input_model": {"type": "HfModel", "model_path": "sample:smollm2"}, "passes": {"r": entry},
                  "output_dir": "out"}
        return validate_document(parse_document(json.dumps(config), "config.json"),
                                 Environment(frozenset({"CPUExecutionProvider"})))

    runnable = diagnostics({"type": "QuaRot", "rotate_mode": "random", "seed": 3})
    assert not [d for d in runnable if d.severity == "error" or d.code == "pass-not-runnable"]
    wrong = [d for d in diagnostics({"type": "QuaRot", "rotate_mode": "givens"}) if d.severity == "error"]
    assert [d.path[-1] for d in wrong] == ["rotate_mode"]
    assert QuaRotParams().rotate_mode == "hadamard" and QuaRotParams().seed == 0


def test_load_kwargs_float16_loads_and_stores_in_fp16(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """load_kwargs {torch_dtype: float16}: the rotation runs in float64, the checkpoint is stored in fp16."""
    half = ModelRef("hf", tiny_llama_dir, attributes={"torch_dtype": "float16"})
    out = QuaRot().run(half, QuaRotParams(), make_context(tmp_path, "half"))
    tensors = read_tensors(out.path)
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float16}
    # same function up to fp16 rounding of the rotated weights
    original = _logits(tiny_llama_dir)
    assert (_logits(out.path) - original).abs().max() < 2e-2 * original.abs().max()
