"""rtn and gptq on a tiny Llama: real quantization math, Olive-format checkpoints, ModelBuilder keeping the weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_context

from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.gptq import Gptq, GptqParams
from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams
from modelmill.passes.rtn import Rtn, RtnParams
from modelmill.quant import weights as qw
from modelmill.quant.checkpoint import load_model, read_tensors
from modelmill.testing.genai_generate import greedy_tokens


@pytest.fixture(scope="module")
def rtn_model(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    ctx = make_context(tmp_path_factory.mktemp("rtn"), "rtn")
    return Rtn().run(ModelRef("hf", tiny_llama_dir), RtnParams(group_size=32), ctx)


@pytest.fixture(scope="module")
def gptq_model(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRef, dict]:
    ctx = make_context(tmp_path_factory.mktemp("gptq"), "gptq")
    params = GptqParams(group_size=32, calibration_samples=8, calibration_seq_len=64)
    return Gptq().run(ModelRef("hf", tiny_llama_dir), params, ctx), ctx.reports


def test_weight_math_round_trips() -> None:
    torch.manual_seed(0)
    weight = torch.randn(8, 64)
    for spec in (qw.QuantSpec(4, False, 32), qw.QuantSpec(4, True, 16), qw.QuantSpec(8, False, -1)):
        stored = qw.QuantizedWeight.round_to_nearest(weight, spec)
        codes = stored.codes()
        assert codes.min() >= 0 and codes.max() <= spec.maxq
        assert torch.equal(qw.unpack(qw.pack(codes, spec.bits), spec.bits, 64), codes)
        step = stored.scales.repeat_interleave(64 // stored.scales.shape[1], dim=1)
        assert (stored.dequantize() - weight).abs().le(step / 2 + 1e-6).all()  # within half a step everywhere
    assert qw.QuantizedWeight.round_to_nearest(weight, qw.QuantSpec(4, True, 16)).qzeros is None


def test_rtn_checkpoint_is_olive_format_close_to_the_input(tiny_llama_dir: Path, rtn_model: ModelRef) -> None:
    config = json.loads((rtn_model.path / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "olive" and config["bits"] == 4 and config["group_size"] == 32
    tensors = read_tensors(rtn_model.path)
    assert tensors["model.layers.0.mlp.down_proj.qweight"].dtype == torch.uint8
    assert "model.layers.0.mlp.down_proj.weight" not in tensors and "lm_head.weight" in tensors  # lm_head stays
    original = load_model(tiny_llama_dir).model.state_dict()
    loaded = load_model(rtn_model.path)
    assert len(loaded.locked) == 14  # 2 layers x 7 Linear
    for name, stored in loaded.locked.items():
        before = original[f"{name}.weight"]
        relative = (stored.dequantize() - before).norm() / before.norm()
        assert 0 < relative < 0.15, (name, float(relative))
    assert (rtn_model.path / "tokenizer.json").exists()


def _hessian_error(tiny_llama_dir: Path, quantized: Path) -> float:
    """sum over Linear layers of tr(dW H dW^T) on the calibration text: what GPTQ minimises, layer inputs from the
    float model."""
    from modelmill.quant import calibration
    from modelmill.quant.gptq import Hessian

    base = load_model(tiny_llama_dir).model
    quant = load_model(quantized)
    batches = calibration.batches(tiny_llama_dir, None, 8, 64)
    hessians: dict[str, Hessian] = {}
    handles = [module.register_forward_hook(lambda m, i, o, n=name: hessians.setdefault(n, Hessian(m.in_features))
                                            .add(i[0])) for name, module in base.named_modules() if name in quant.locked]
    with torch.no_grad():
        for batch in batches:
            base(**batch)
    for handle in handles:
        handle.remove()
    total = 0.0
    for name, stored in quant.locked.items():
        delta = stored.dequantize() - base.get_submodule(name).weight.detach()
        total += float(torch.einsum("ij,jk,ik->", delta, hessians[name].matrix, delta))
    return total


def test_gptq_error_on_calibration_data_is_below_rtn(tiny_llama_dir: Path, rtn_model: ModelRef,
                                                     gptq_model: tuple[ModelRef, dict]) -> None:
    model, reports = gptq_model
    assert reports["quantization"]["algorithm"] == "gptq" and reports["gptq_output_error"]["modules"] == 14
    gptq_error, rtn_error = _hessian_error(tiny_llama_dir, model.path), _hessian_error(tiny_llama_dir, rtn_model.path)
    assert gptq_error < rtn_error, (gptq_error, rtn_error)


def test_rtn_after_gptq_adds_an_8bit_head_and_embeddings_and_keeps_the_rest(gptq_model: tuple[ModelRef, dict],
                                                                            tmp_path: Path) -> None:
    model, _ = gptq_model
    ctx = make_context(tmp_path, "rtn8")
    params = RtnParams(lm_head=True, embeds=True, group_size=32, overrides={"lm_head": {"bits": 8},
                                                                              "model.embed_tokens": {"bits": 8}})
    out = Rtn().run(model, params, ctx)
    config = json.loads((out.path / "config.json").read_text())["quantization_config"]
    assert config["overrides"] == {"lm_head": {"bits": 8}, "model.embed_tokens": {"bits": 8}}
    assert config["lm_head"] and config["embeds"]
    before, after = read_tensors(model.path), read_tensors(out.path)
    assert torch.equal(before["model.layers.1.self_attn.q_proj.qweight"], after["model.layers.1.self_attn.q_proj.qweight"])
    assert after["lm_head.qweight"].shape[1] == 64  # 8 bits: one code per byte
    assert ctx.reports["quantization"]["kept_from_input"] == 14


def test_gptq_refuses_a_quantized_model_and_hub_data(rtn_model: ModelRef, tiny_llama_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="already quantized"):
        Gptq().run(rtn_model, GptqParams(group_size=32), make_context(tmp_path, "again"))
    hub = {"load_dataset_config": {"data_name": "wikitext", "subset": "wikitext-2-raw-v1"}}
    with pytest.raises(PassError, match="never downloads"):
        Gptq().run(ModelRef("hf", tiny_llama_dir), GptqParams(group_size=32, data_config=hub),
                   make_context(tmp_path, "hub"))


def test_gptq_calibrates_on_a_local_data_config(tiny_llama_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "calib.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"line {i}: the quick brown fox jumps over the lazy dog " * 8})
                              for i in range(6)))
    ctx = make_context(tmp_path, "local")
    config = {"load_dataset_config": {"data_name": str(data)}, "pre_process_data_config": {"max_seq_len": 32}}
    Gptq().run(ModelRef("hf", tiny_llama_dir), GptqParams(group_size=32, data_config=config), ctx)
    [log] = [e["message"] for e in ctx.bus.of_type("log") if "GPTQ calibration" in e["message"]]
    assert "tokens from the data_config" in log


def test_model_builder_keeps_the_quantized_weights(tiny_llama_dir: Path, gptq_model: tuple[ModelRef, dict],
                                                   tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model, _ = gptq_model
    ctx = make_context(tmp_path, "mb")
    out = ModelBuilder().run(model, ModelBuilderParams(precision="int4", int4_block_size=128, int4_accuracy_level=1,
                                                       int4_nodes_to_exclude=["/lm_head/MatMul"]), ctx)
    graph = onnx.load(str(out.model_file)).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nbits = {node.name: {a.name: a.i for a in node.attribute} for node in graph.node if node.op_type == "MatMulNBits"}
    # the checkpoint's block size (32), not the builder's option (128): its codes, not a new quantization
    assert nbits["/model/layers.0/mlp/down_proj/MatMulNBits"]["block_size"] == 32
    tensors = read_tensors(model.path)
    stored = weights["model.layers.0.mlp.down_proj.MatMulNBits.qweight"]
    assert np.array_equal(stored.reshape(stored.shape[0], -1), tensors["model.layers.0.mlp.down_proj.qweight"].numpy())

    # ONNX logits match the PyTorch model with the dequantized weights (lm_head left in float)
    session = ort.InferenceSession(str(out.model_file), providers=["CPUExecutionProvider"])
    torch_model = load_model(model.path).model
    ids = np.array([[1, 50, 60, 70, 80, 90]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    for spec in session.get_inputs():
        if spec.name.startswith("past_key_values"):
            feeds[spec.name] = np.zeros((1, 2, 0, 16), dtype=np.float32)
    logits = session.run(["logits"], feeds)[0]
    with torch.no_grad():
        expected = torch_model(input_ids=torch.from_numpy(ids)).logits.numpy()
    assert np.abs(logits - expected).max() < 1e-3 * np.abs(expected).max() + 1e-4


def test_symmetric_rtn_with_quantized_embeddings_builds_and_generates(tiny_llama_dir: Path, tmp_path: Path) -> None:
    import onnxruntime_genai as og

    ctx = make_context(tmp_path, "sym")
    quantized = Rtn().run(ModelRef("hf", tiny_llama_dir), RtnParams(sym=True, group_size=32, lm_head=True,
                                                                    embeds=True), ctx)
    assert "model.embed_tokens.qweight" in read_tensors(quantized.path)
    out = ModelBuilder().run(quantized, ModelBuilderParams(precision="int4"), make_context(tmp_path, "sym_mb"))
    genai = og.Model(str(out.path))
    params = og.GeneratorParams(genai)
    params.set_search_options(max_length=10)
    generator = og.Generator(genai, params)
    generator.append_tokens(np.array([1, 40, 41, 42], dtype=np.int32))
    produced = 0
    while not generator.is_done():
        generator.generate_next_token()
        produced += 1
    assert produced == 6


@pytest.mark.parametrize("algorithm", ["k_quant_mixed", "snr", "iqe_relative", "kld_gradient"])
def test_selective_mixed_precision_then_gptq(tiny_llama_dir: Path, tmp_path: Path, algorithm: str) -> None:
    from modelmill.passes.selective_mixed_precision import SelectiveMixedPrecision, SelectiveMixedPrecisionParams

    ctx = make_context(tmp_path, "smp")
    params = SelectiveMixedPrecisionParams(algorithm=algorithm, ratio=0.65, group_size=32, calibration_samples=4,
                                           calibration_seq_len=32)
    out = SelectiveMixedPrecision().run(ModelRef("hf", tiny_llama_dir), params, ctx)
    info = out.attributes["mixed_precision_info"]
    assert json.loads((out.path / "mixed_precision_info.json").read_text()) == info
    assert info["overrides"] and all(o["bits"] == 8 for o in info["overrides"].values())
    for group in (("model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                   "model.layers.0.self_attn.v_proj"),):
        assert len({name in info["overrides"] for name in group}) == 1  # q/k/v promoted together or not at all
    if algorithm != "k_quant_mixed":
        fraction = ctx.reports["mixed_precision"]["default_precision_fraction"]
        assert fraction <= 0.65
    gptq_ctx = make_context(tmp_path, "gptq_mp")
    quantized = Gptq().run(out, GptqParams(group_size=32, calibration_samples=4, calibration_seq_len=32), gptq_ctx)
    config = json.loads((quantized.path / "config.json").read_text())["quantization_config"]
    linear_overrides = {name for name in info["overrides"] if name != "lm_head"}
    assert linear_overrides and set(config["overrides"]) == linear_overrides
    for name in linear_overrides:
        assert config["overrides"][name] == {"bits": 8}
        tensors = read_tensors(quantized.path)
        assert tensors[f"{name}.qweight"].shape[1] == 32 * tensors[f"{name}.scales"].shape[1]  # 8 bits: a byte each


def test_selective_mixed_precision_needs_a_ratio_for_scores() -> None:
    from pydantic import ValidationError

    from modelmill.passes.selective_mixed_precision import SelectiveMixedPrecisionParams

    with pytest.raises(ValidationError, match="needs ratio"):
        SelectiveMixedPrecisionParams(algorithm="kld_gradient")
    assert SelectiveMixedPrecisionParams(algorithm="k_quant_last").ratio is None


def _tied_copy(tiny_llama_dir: Path, out: Path) -> Path:
    """tiny_llama_dir with its LM head tied to the embeddings (as SmolLM2 and most small LLMs are)."""
    import shutil

    from transformers import AutoModelForCausalLM

    shutil.copytree(tiny_llama_dir, out)
    model = AutoModelForCausalLM.from_pretrained(str(out))
    model.config.tie_word_embeddings = True
    model.lm_head.weight = model.model.embed_tokens.weight
    (out / "model.safetensors").unlink()
    model.save_pretrained(str(out))
    return out


def _logits(model_file: Path, ids: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    for spec in session.get_inputs():
        if spec.name.startswith("past_key_values"):
            feeds[spec.name] = np.zeros((1, 2, 0, 16), dtype=np.float32)
    return session.run(["logits"], feeds)[0]


@pytest.mark.parametrize("sym", [False, True])
def test_recipe_tail_keeps_the_8bit_embedding_quantized_and_ties_it_to_the_lm_head(tiny_llama_dir: Path,
                                                                                   tmp_path: Path, sym: bool) -> None:
    """Olive's recipe tail: rtn 8-bit lm_head + embeddings -> ModelBuilder -> GraphSurgeries TieWordEmbeddings.
    The builder writes the stored embedding codes as GatherBlockQuantized (not a float table), and the surgeon
    then lets the LM head's MatMulNBits read them: one copy, same logits as the quantized PyTorch model."""
    import onnx
    from onnx import numpy_helper

    from modelmill.passes.graph_surgeries import GraphSurgeries, GraphSurgeriesParams

    source = ModelRef("hf", _tied_copy(tiny_llama_dir, tmp_path / "tied"))
    params = RtnParams(group_size=32, sym=sym, lm_head=True, embeds=True,
                       overrides={"lm_head": {"bits": 8}, "model.embed_tokens": {"bits": 8}})
    quantized = Rtn().run(source, params, make_context(tmp_path, "rtn"))
    built = ModelBuilder().run(quantized, ModelBuilderParams(precision="int4", int4_accuracy_level=1),
                               make_context(tmp_path, "mb"))
    graph = onnx.load(str(built.model_file)).graph
    [gather] = [n for n in graph.node if n.op_type == "GatherBlockQuantized"]
    assert {a.name: a.i for a in gather.attribute}["bits"] == 8
    stored = read_tensors(quantized.path)["model.embed_tokens.qweight"].numpy()
    weights = {init.name: init for init in graph.initializer}
    assert np.array_equal(numpy_helper.to_array(weights[gather.input[0]]), stored)
    assert not any(init.name.endswith("embed_tokens.weight") for init in graph.initializer)  # no float table

    tied = GraphSurgeries().run(built, GraphSurgeriesParams(surgeries=[{"surgeon": "TieWordEmbeddings"}]),
                                make_context(tmp_path, "tie"))
    tied_graph = onnx.load(str(tied.model_file)).graph
    [head] = [n for n in tied_graph.node if n.op_type == "MatMulNBits" and "lm_head" in n.name]
    producer = {out: n for n in tied_graph.node for out in n.output}[head.input[1]]
    assert producer.op_type == "Reshape" and producer.input[0] == gather.input[0]
    assert not any(init.name.startswith("lm_head.") for init in tied_graph.initializer)

    def size(model: ModelRef) -> int:
        return sum(p.stat().st_size for p in model.path.glob("model.onnx*"))

    assert size(built) - size(tied) >= stored.nbytes  # the LM head's copy of the codes is gone

    ids = np.array([[1, 50, 60, 70, 80, 90]], dtype=np.int64)
    with torch.no_grad():
        expected = load_model(quantized.path).model(input_ids=torch.from_numpy(ids)).logits.numpy()
    for model in (built, tied):
        assert np.abs(_logits(model.model_file, ids) - expected).max() < 1e-4 * np.abs(expected).max() + 1e-5
    assert len(greedy_tokens(tied.path, [1, 40, 41, 42], max_length=10)) == 6  # to max_length, no early stop


def test_load_kwargs_float16_is_honoured_computing_in_fp32(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """load_kwargs {torch_dtype: float16}: the passes read the weights in fp16 (rounded as Olive's are) and write
    fp16 float tensors and scales, while GPTQ and the KL gradients compute in fp32 on CPU."""
    from modelmill.passes.selective_mixed_precision import SelectiveMixedPrecision, SelectiveMixedPrecisionParams
    from modelmill.quant.checkpoint import load_dtype

    half = ModelRef("hf", tiny_llama_dir, attributes={"torch_dtype": "float16"})
    assert load_dtype(half.attributes, tiny_llama_dir) is torch.float16
    assert load_dtype({"torch_dtype": "torch.bfloat16"}, tiny_llama_dir) is torch.bfloat16
    assert load_dtype({}, tiny_llama_dir) is torch.float32
    smp = SelectiveMixedPrecision().run(half, SelectiveMixedPrecisionParams(
        algorithm="kld_gradient", ratio=0.5, group_size=32, calibration_samples=2, calibration_seq_len=32),
        make_context(tmp_path, "smp"))
    out = Gptq().run(smp, GptqParams(group_size=32, calibration_samples=4, calibration_seq_len=32),
                     make_context(tmp_path, "gptq"))
    assert out.attributes["torch_dtype"] == "float16"  # the following passes load in it too
    config = json.loads((out.path / "config.json").read_text())
    assert config["dtype"] == "float16"
    tensors = read_tensors(out.path)
    floats = {name: t.dtype for name, t in tensors.items() if t.is_floating_point()}
    assert floats and set(floats.values()) == {torch.float16}, floats
    assert "model.layers.0.mlp.down_proj.scales" in floats

    reloaded = load_model(out.path, torch.float16)
    assert reloaded.dtype == torch.float16 and "model.layers.0.mlp.up_proj" in reloaded.locked

    # rtn: the codes are those of the fp16-rounded weights against the fp16 scales the checkpoint stores
    rtn = Rtn().run(half, RtnParams(group_size=32), make_context(tmp_path, "rtn"))
    name = "model.layers.0.mlp.up_proj"
    fp32 = load_model(tiny_llama_dir).model.get_submodule(name).weight.detach()
    expected = qw.QuantizedWeight.round_to_nearest(fp32.half().float(), qw.QuantSpec(4, False, 32), torch.float16)
    stored = read_tensors(rtn.path)
    assert stored[f"{name}.scales"].dtype == torch.float16
    assert torch.equal(stored[f"{name}.scales"], expected.scales)
    assert torch.equal(stored[f"{name}.qweight"], expected.qweight)
