"""StaticLLM on the tiny Llama, built as Olive's StaticLLM test builds it: ModelBuilder (fp32) → GraphSurgeries
(AttentionMaskToSequenceLengths) → SplitModel (embeddings, one split per layer, lm_head) → StaticLLM. The static
components pass onnx.checker and load in ONNX Runtime; run by hand (embeddings → context → lm_head, then iterator
steps) they give the builder's model's logits; onnxruntime-genai runs the decoder-pipeline and generates what it
generates from the builder's model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import events, make_context
from modelmill.engine.context import Accelerator
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError, RunCancelled
from modelmill.passes.static_llm import StaticLLM

WINDOW = 16  # context_length of the fixture (the tiny Llama's genai max_length is 256)
ASSIGNMENTS = {"model.embed_tokens": 0, "model.attn_mask_reformat": 0, "model.layers.0": 1, "model.layers.1": 2,
               "lm_head": 3}
KV = [f"{layer}.{kind}" for layer in range(2) for kind in ("key", "value")]


def _run(pass_cls, model: ModelRef, tmp_path: Path, name: str, accelerator: Accelerator | None = None, **params):
    return pass_cls().run(model, pass_cls.Params(**params), make_context(tmp_path, name, accelerator))


@pytest.fixture(scope="module")
def chain(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelRef]:
    """The builder's model, its split composite and StaticLLM's output."""
    from modelmill.passes.graph_surgeries import GraphSurgeries
    from modelmill.passes.model_builder import ModelBuilder
    from modelmill.passes.split_model import SplitModel

    tmp = tmp_path_factory.mktemp("static_llm")
    built = _run(ModelBuilder, ModelRef(kind="hf", path=tiny_llama_dir), tmp, "build", precision="fp32")
    # the builder's SimplifiedLayerNormalization fails onnx.checker in the input already: not blamed on the surgery
    lengths = _run(GraphSurgeries, built, tmp, "surgery", surgeries=[{"surgeon": "AttentionMaskToSequenceLengths"}])
    split = _run(SplitModel, lengths, tmp, "split", split_assignments=ASSIGNMENTS)
    static = _run(StaticLLM, split, tmp, "static", context_length=WINDOW)
    return {"built": built, "split": split, "static": static}


def _sessions(model: ModelRef) -> dict[str, object]:
    import onnxruntime as ort

    return {str(c.attributes["component_name"]): ort.InferenceSession(str(c.model_file),
                                                                      providers=["CPUExecutionProvider"])
            for c in model.components}


def _cascade(sessions: list, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    values = dict(values)
    for sess in sessions:
        outputs = sess.run(None, {i.name: values[i.name] for i in sess.get_inputs()})
        values.update(zip([o.name for o in sess.get_outputs()], outputs))
    return values


def _past(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"past_key_values.{name}": values[f"present.{name}"] for name in KV}


def _empty_past(length: int) -> dict[str, np.ndarray]:
    return {f"past_key_values.{name}": np.zeros((1, 2, length, 16), np.float32) for name in KV}


def _dims(value) -> list[int | str]:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in value.type.tensor_type.shape.dim]


def _proto(component: ModelRef, weights: bool = False):
    import onnx

    return onnx.load(str(component.model_file), load_external_data=weights)


# ------------------------------------------------------------------ what Olive's test checks


def test_components_pipeline_and_genai_config_as_olive(chain: dict[str, ModelRef]) -> None:
    static, split = chain["static"], chain["split"]
    assert static.kind == "composite"
    assert [c.attributes["component_name"] for c in static.components] == [
        "embeddings", "context_0", "context_1", "iterator_0", "iterator_1", "lm_head"]
    assert static.attributes["llm_pipeline"] == {"embeddings": "embeddings", "context": ["context_0", "context_1"],
                                                 "iterator": ["iterator_0", "iterator_1"], "lm_head": "lm_head"}
    config = json.loads((static.path / "genai_config.json").read_text())
    decoder = config["model"]["decoder"]
    assert config["model"]["type"] == "decoder-pipeline" and "filename" not in decoder
    assert decoder["inputs"]["past_sequence_length"] == "past_seq_len"
    assert decoder["inputs"]["total_sequence_length"] == "total_seq_len" and "input_ids" in decoder["inputs"]
    assert decoder["sliding_window"] == {"window_size": WINDOW, "pad_value": 0, "alignment": "left",
                                         "slide_key_value_cache": False}
    [pipeline] = decoder["pipeline"]
    assert list(pipeline) == [c.attributes["component_name"] for c in static.components]
    assert pipeline["context_0"]["run_on_token_gen"] is False and "run_on_prompt" not in pipeline["context_0"]
    assert pipeline["iterator_1"]["run_on_prompt"] is False and pipeline["lm_head"]["is_lm_head"] is True
    assert pipeline["iterator_0"]["filename"] == "iterator_0.onnx" and "session_options" not in pipeline["context_0"]
    for component in static.components:  # inputs and outputs as the files declare them
        proto = _proto(component)
        entry = pipeline[component.attributes["component_name"]]
        assert entry["inputs"] == [v.name for v in proto.graph.input]
        assert entry["outputs"] == [v.name for v in proto.graph.output]
    # the context and iterator copies of a split read one weights file; the input's files are not carried along
    names = {p.name for p in static.path.iterdir()}
    assert {"transformer_0.onnx.data", "transformer_1.onnx.data", "embeddings.onnx.data", "lm_head.onnx.data",
            "tokenizer.json"} <= names
    assert not any(name.startswith(("split_", "context_0.onnx.", "iterator_0.onnx.")) for name in names)
    split_bytes = sum((split.path / f"split_{i}.onnx.data").stat().st_size for i in (1, 2))
    assert sum((static.path / f"transformer_{i}.onnx.data").stat().st_size for i in (0, 1)) == split_bytes


def test_components_pass_the_checker_and_load(chain: dict[str, ModelRef]) -> None:
    """onnx.checker (full, with shape inference) on every component. The builder puts ORT's contrib op
    SimplifiedLayerNormalization in the ONNX domain, which onnx does not know: the check moves it to ORT's
    com.microsoft domain first (the builder's own model fails the checker without that)."""
    import onnx
    import onnxruntime as ort

    for component in chain["static"].components:
        proto = _proto(component, weights=True)
        for node in proto.graph.node:
            if node.op_type == "SimplifiedLayerNormalization" and node.domain == "":
                node.domain = "com.microsoft"
        if not any(op.domain == "com.microsoft" for op in proto.opset_import):
            proto.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
        onnx.checker.check_model(proto, full_check=True)
        ort.InferenceSession(str(component.model_file), providers=["CPUExecutionProvider"])


def test_batch_and_sequence_dims_are_fixed(chain: dict[str, ModelRef]) -> None:
    static, split = chain["static"], chain["split"]
    by_name = {c.attributes["component_name"]: c for c in static.components}
    for group, length in (("context", WINDOW), ("iterator", 1)):
        for index in (0, 1):
            proto = _proto(by_name[f"{group}_{index}"])
            values = {v.name: _dims(v) for v in [*proto.graph.input, *proto.graph.output]}
            assert not {"batch_size", "sequence_length"} & {d for dims in values.values() for d in dims}, values
            hidden = [dims for name, dims in values.items() if name.startswith("/model/")]
            assert hidden and all(dims == [1, length, 64] for dims in hidden)
            assert values["past_seq_len"] == [1, 1] and values["total_seq_len"] == []
            # the KV cache: batch fixed; its length stays symbolic, as in Olive (the runtime sizes the cache)
            assert values[f"past_key_values.{index}.key"] == [1, 2, "past_sequence_length", "kv_cache_dim"]
            assert values[f"present.{index}.value"][:2] == [1, 2]
    # embeddings and lm_head keep their shapes
    for name, source in (("embeddings", 0), ("lm_head", 3)):
        static_proto, split_proto = _proto(by_name[name]), _proto(split.components[source])
        assert [_dims(v) for v in static_proto.graph.input] == [_dims(v) for v in split_proto.graph.input]
        assert "sequence_length" in _dims(static_proto.graph.input[0])


def test_fix_shape_learns_output_dims() -> None:
    """A symbolic output dim that the fixed inputs determine is added to the mapping (Olive's fix_shape), so the
    next component's input of that name is fixed too."""
    import onnx
    from modelmill.passes.static_llm import fix_shape
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b_out", "s_out"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    mapping = {"b": 1, "s": 8}
    fix_shape(model, mapping)
    onnx.checker.check_model(model, full_check=True)
    assert mapping == {"b": 1, "s": 8, "b_out": 1, "s_out": 8}
    assert _dims(model.graph.output[0]) == [1, 8]


# ------------------------------------------------------------------ the static models compute the model


def test_hand_run_matches_the_builder_model(chain: dict[str, ModelRef]) -> None:
    """As onnxruntime-genai runs the pipeline (alignment left: the prompt at the start of the window, pad tokens
    after it; past_seq_len counts the window, then the real tokens): the last prompt token's logits and each
    iterator step's equal the builder's dynamic model's, run on the unpadded prompt with an attention mask."""
    import onnxruntime as ort

    static = _sessions(chain["static"])
    builder = ort.InferenceSession(str(chain["built"].model_file), providers=["CPUExecutionProvider"])
    output_names = [o.name for o in builder.get_outputs()]
    prompt = [int(t) for t in np.random.default_rng(0).integers(4, 500, 5)]
    pad, total = 3, 48  # genai_config's pad_token_id; total_seq_len: genai's max_length, the cache buffer's size
    reference = dict(zip(output_names, builder.run(None, {
        "input_ids": np.array([prompt]), "attention_mask": np.ones((1, len(prompt)), np.int64), **_empty_past(0)})))
    window = np.array([prompt + [pad] * (WINDOW - len(prompt))])
    values = _cascade([static[n] for n in ("embeddings", "context_0", "context_1", "lm_head")], {
        "input_ids": window, "past_seq_len": np.array([[WINDOW - 1]], np.int32),
        "total_seq_len": np.array(total, np.int32), **_empty_past(total)})
    assert values["present.0.key"].shape == (1, 2, total, 16)
    logits, length = values["logits"][0, len(prompt) - 1], len(prompt)
    for _ in range(4):
        np.testing.assert_allclose(logits, reference["logits"][0, -1], atol=1e-4, rtol=1e-4)
        token = np.array([[int(logits.argmax())]])
        values = _cascade([static[n] for n in ("embeddings", "iterator_0", "iterator_1", "lm_head")], {
            "input_ids": token, "past_seq_len": np.array([[length]], np.int32),
            "total_seq_len": np.array(total, np.int32), **_past(values)})
        length += 1
        reference = dict(zip(output_names, builder.run(None, {
            "input_ids": token, "attention_mask": np.ones((1, length), np.int64), **_past(reference)})))
        logits = values["logits"][0, 0]
    np.testing.assert_allclose(logits, reference["logits"][0, -1], atol=1e-4, rtol=1e-4)


def test_left_padded_window_matches_the_dynamic_splits(chain: dict[str, ModelRef]) -> None:
    """A prompt left-padded to context_length, then iterator steps: the static components give the dynamic
    components' logits on the same inputs (the static graphs compute what the dynamic ones did)."""
    static, dynamic = _sessions(chain["static"]), _sessions(chain["split"])
    prompt = [int(t) for t in np.random.default_rng(1).integers(4, 500, 6)]
    feeds = {"input_ids": np.array([[0] * (WINDOW - len(prompt)) + prompt]),
             "past_seq_len": np.array([[WINDOW - 1]], np.int32), "total_seq_len": np.array(WINDOW, np.int32),
             **_empty_past(0)}
    ours = _cascade([static[n] for n in ("embeddings", "context_0", "context_1", "lm_head")], feeds)
    theirs = _cascade(list(dynamic.values()), feeds)
    for step in range(3):
        np.testing.assert_allclose(ours["logits"][:, -1], theirs["logits"][:, -1], atol=1e-5, rtol=1e-5)
        token = np.array([[int(ours["logits"][0, -1].argmax())]])
        step_feeds = {"input_ids": token, "past_seq_len": np.array([[WINDOW + step]], np.int32),
                      "total_seq_len": np.array(WINDOW + step + 1, np.int32)}
        ours = _cascade([static[n] for n in ("embeddings", "iterator_0", "iterator_1", "lm_head")],
                        {**step_feeds, **_past(ours)})
        theirs = _cascade(list(dynamic.values()), {**step_feeds, **_past(theirs)})
    np.testing.assert_allclose(ours["logits"], theirs["logits"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length", [5, WINDOW, 2 * WINDOW + 5])  # one window, a full one, three windows
def test_onnxruntime_genai_runs_the_pipeline(chain: dict[str, ModelRef], length: int) -> None:
    """onnxruntime-genai loads the decoder-pipeline on CPU and generates, greedily, the builder's model's tokens."""
    og = pytest.importorskip("onnxruntime_genai")

    def generate(folder: Path) -> list[int]:
        model = og.Model(str(folder))
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=64, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(np.random.default_rng(length).integers(4, 500, (1, length)).astype(np.int32))
        tokens = []
        for _ in range(6):
            generator.generate_next_token()
            tokens.append(int(generator.get_next_tokens()[0]))
        return tokens

    assert generate(chain["static"].path) == generate(chain["built"].path)


# ------------------------------------------------------------------ parameters, refusals, progress, cancel


def test_group_session_options_go_to_context_and_iterator(chain: dict[str, ModelRef], tmp_path: Path) -> None:
    options = {"intra_op_num_threads": 2, "provider_options": [{"qnn": {"backend_path": "QnnHtp.dll"}}]}
    out = _run(StaticLLM, chain["split"], tmp_path, "options", batch_size=1, context_length=8,
               group_session_options=options)
    [pipeline] = json.loads((out.path / "genai_config.json").read_text())["model"]["decoder"]["pipeline"]
    assert all(pipeline[name]["session_options"] == options for name in ("context_0", "iterator_1"))
    assert "session_options" not in pipeline["embeddings"] and "session_options" not in pipeline["lm_head"]
    assert _dims(_proto(out.components[1]).graph.input[0]) == [1, 8, 64]


def test_after_a_pass_run_per_split(chain: dict[str, ModelRef], tmp_path: Path) -> None:
    """A pass between SplitModel and StaticLLM runs per split (split_N/model.onnx, each with its companions): the
    static components are made from those, and genai_config.json from the first split's folder."""
    from modelmill.engine.composite import run_per_component
    from modelmill.passes.dynamic_quantization import OnnxDynamicQuantization

    quantized = run_per_component(OnnxDynamicQuantization(), chain["split"], OnnxDynamicQuantization.Params(),
                                  make_context(tmp_path, "quantize"))
    assert quantized.components[1].onnx_file == "model.onnx" and not (quantized.path / "genai_config.json").exists()
    out = _run(StaticLLM, quantized, tmp_path, "static", context_length=8)
    assert not any(path.is_dir() for path in out.path.iterdir())  # the split folders are not copied along
    [pipeline] = json.loads((out.path / "genai_config.json").read_text())["model"]["decoder"]["pipeline"]
    assert list(pipeline) == ["embeddings", "context_0", "context_1", "iterator_0", "iterator_1", "lm_head"]
    sessions = _sessions(out)
    values = _cascade([sessions[n] for n in ("embeddings", "context_0", "context_1", "lm_head")], {
        "input_ids": np.arange(4, 12)[None], "past_seq_len": np.array([[7]], np.int32),
        "total_seq_len": np.array(8, np.int32), **_empty_past(0)})
    assert values["logits"].shape == (1, 8, 512) and np.isfinite(values["logits"]).all()


def test_defaults_are_olives() -> None:
    params = StaticLLM.Params()
    assert (params.batch_size, params.context_length, params.group_session_options) == (1, 64, None)


def test_progress_and_cancel(chain: dict[str, ModelRef], tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "progress")
    StaticLLM().run(chain["split"], StaticLLM.Params(context_length=8), ctx)
    fractions = [event["fraction"] for event in events(ctx, "pass.progress")]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 5
    assert ctx.reports["llm_pipeline"]["context"] == ["context_0", "context_1"]
    cancelled = make_context(tmp_path, "cancelled")
    cancelled.cancel.set()
    with pytest.raises(RunCancelled):
        StaticLLM().run(chain["split"], StaticLLM.Params(), cancelled)


def test_what_it_refuses(chain: dict[str, ModelRef], tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    from modelmill.passes.split_model import SplitModel

    qnn_gpu = Accelerator(device="gpu", execution_provider="QNNExecutionProvider")
    with pytest.raises(PassError, match="QNNExecutionProvider on a GPU") as info:
        _run(StaticLLM, chain["built"], tmp_path, "qnn_gpu", qnn_gpu)
    assert "onnxruntime-qnn" in str(info.value)
    with pytest.raises(PassError, match="at least 3 ONNX components") as info:
        _run(StaticLLM, chain["built"], tmp_path, "single")
    assert "SplitModel" in (info.value.fix or "")
    two = _run(SplitModel, chain["built"], tmp_path, "two", split_assignments={"model.layers.0": 0, "lm_head": 1})
    with pytest.raises(PassError, match="a composite of 2"):
        _run(StaticLLM, two, tmp_path, "two_static")
    # an export without GroupQueryAttention (OnnxConversion's attention ops)
    plain = _run(SplitModel, tiny_llama_onnx, tmp_path, "plain",
                 split_assignments="model.embed_tokens=0;model.layers.0=1;model.layers.1=2;lm_head=3")
    with pytest.raises(PassError, match="GroupQueryAttention") as info:
        _run(StaticLLM, plain, tmp_path, "plain_static")
    assert "ModelBuilder" in (info.value.fix or "")


# ------------------------------------------------------------------ a workflow run


def test_olive_recipe_runs_as_a_workflow(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """Olive's QNN recipe shape (CaptureSplitInfo with unique embeddings/lm_head splits → ModelBuilder →
    GraphSurgeries → SplitModel → StaticLLM) validates without warnings about the pass and runs: the output folder
    holds the pipeline, genai_config.json and the manifest."""
    from modelmill.cli import main

    passes = {"cs": {"type": "CaptureSplitInfo", "num_splits": 2, "unique_embeds_lm_head_splits": True},
              "mb": {"type": "ModelBuilder", "precision": "fp32"},
              "gs": {"type": "GraphSurgeries", "surgeries": [{"surgeon": "AttentionMaskToSequenceLengths"}]},
              "sp": {"type": "SplitModel"},
              "st": {"type": "StaticLLM", "batch_size": 1, "context_length": WINDOW}}
    config = {"input_model": {"type": "HfModel", "model_path": str(tiny_llama_dir)}, "passes": passes,
              "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["run", "--config", str(path)]) == 0
    out = tmp_path / "out"
    manifest = json.loads((out / "modelmill_run.json").read_text())
    assert manifest["passes"][-1]["type"] == "StaticLLM"
    assert {"embeddings.onnx", "context_0.onnx", "iterator_1.onnx", "lm_head.onnx", "transformer_1.onnx.data",
            "genai_config.json"} <= set(manifest["files"])
    assert not list(out.parent.glob(".out.partial-*"))
    config = json.loads((out / "genai_config.json").read_text())
    assert config["model"]["type"] == "decoder-pipeline"
    assert set(config["model"]["decoder"]["pipeline"][0]) == {"embeddings", "context_0", "context_1", "iterator_0",
                                                              "iterator_1", "lm_head"}
