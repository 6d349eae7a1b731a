"""CaptureSplitInfo → OnnxConversion/ModelBuilder → SplitModel → ComposeOnnxModels on the tiny Llama: the splits pass
onnx.checker and, run in cascade in ONNX Runtime, give the unsplit model's logits; the composed model too."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import make_context, run, token_feeds
from modelmill.engine.context import Accelerator
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import split_metadata
from modelmill.passes.capture_split_info import CaptureSplitInfo, split_by_count
from modelmill.passes.compose_onnx_models import ComposeOnnxModels
from modelmill.passes.onnx_conversion import OnnxConversion
from modelmill.passes.split_model import SplitModel


def _run(pass_cls, model: ModelRef, tmp_path: Path, name: str, accelerator: Accelerator | None = None, **params):
    return pass_cls().run(model, pass_cls.Params(**params), make_context(tmp_path, name, accelerator))


def _cascade(composite: ModelRef, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the components in order, each reading the model inputs and the earlier components' outputs by name."""
    import onnxruntime as ort

    values = dict(feeds)
    for component in composite.components:
        sess = ort.InferenceSession(str(component.model_file), providers=["CPUExecutionProvider"])
        outputs = sess.run(None, {i.name: values[i.name] for i in sess.get_inputs()})
        values.update(zip([o.name for o in sess.get_outputs()], outputs))
    return values


def _io(model: ModelRef) -> tuple[list[str], list[str]]:
    import onnx

    proto = onnx.load(str(model.model_file), load_external_data=False)
    return [v.name for v in proto.graph.input], [v.name for v in proto.graph.output]


@pytest.fixture(scope="module")
def split_llama(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRef, ModelRef]:
    """(the unsplit ONNX export, its SplitModel output) for CaptureSplitInfo(num_splits=2)."""
    tmp = tmp_path_factory.mktemp("split_llama")
    captured = _run(CaptureSplitInfo, ModelRef(kind="hf", path=tiny_llama_dir), tmp, "capture", num_splits=2)
    onnx_model = _run(OnnxConversion, captured, tmp, "convert")
    return onnx_model, _run(SplitModel, onnx_model, tmp, "split")


# ------------------------------------------------------------------ CaptureSplitInfo


def test_num_splits_assigns_the_layers(tiny_llama_dir: Path, tmp_path: Path) -> None:
    hf = ModelRef(kind="hf", path=tiny_llama_dir)
    out = _run(CaptureSplitInfo, hf, tmp_path, "two", num_splits=2)
    assert out.kind == "hf" and out.base_model_path == tiny_llama_dir and out.hf_config()["num_hidden_layers"] == 2
    assert json.loads((out.path / "split_assignments.json").read_text()) == out.attributes["split_assignments"]
    assert out.attributes["split_assignments"] == {"model.layers.0": 0, "model.layers.1": 1}
    unique = _run(CaptureSplitInfo, hf, tmp_path, "unique", num_splits=2, unique_embeds_lm_head_splits=True)
    assert unique.attributes["split_assignments"] == {"model.embed_tokens": 0, "model.layers.0": 1,
                                                      "model.layers.1": 2, "lm_head": 3}


class _Custom:
    """Olive's test module: before_layer, 4 layers, 2 after_layers."""

    @staticmethod
    def build():
        import torch

        module = torch.nn.Module()
        module.before_layer = torch.nn.Linear(2, 4)
        module.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(4)])
        module.after_layers = torch.nn.ModuleList([torch.nn.Linear(4, 2) for _ in range(2)])
        return module


@pytest.mark.parametrize(("block", "num_splits", "expected"), [
    ("layers", 2, {"layers.0": 0, "layers.1": 0, "layers.2": 1, "layers.3": 1}),
    ("layers", 3, {"layers.0": 0, "layers.1": 0, "layers.2": 1, "layers.3": 2}),  # uneven: the first take more
    ("", 3, {"before_layer": 0, "layers": 1, "after_layers": 2}),
    (["layers", "after_layers"], 2, {"layers.0": 0, "layers.1": 0, "layers.2": 0, "layers.3": 1,
                                     "after_layers.0": 1, "after_layers.1": 1}),
])
def test_block_to_split(block, num_splits: int, expected: dict[str, int]) -> None:
    assert split_by_count(_Custom.build(), num_splits, block, unique=False, is_hf=False) == expected


def _cost_model(model_dir: Path, tmp_path: Path) -> Path:
    from modelmill.commands.generate_cost_model import module_costs

    path = tmp_path / "cost.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["module", "num_params", "num_bytes", "num_flops"])
        for name, (params, nbytes, flops) in module_costs(model_dir, "fp16", False).items():
            writer.writerow([name, params, int(nbytes), flops])
    return path


def test_cost_model_splits_follow_the_memory(tiny_llama_dir: Path, tmp_path: Path) -> None:
    cost = _cost_model(tiny_llama_dir, tmp_path)
    rows = {row["module"]: int(row["num_bytes"]) for row in csv.DictReader(cost.open())}
    hf = ModelRef(kind="hf", path=tiny_llama_dir)
    counts = []
    for memory in (10**4, 10**5, 10**9):
        out = _run(CaptureSplitInfo, hf, tmp_path, f"m{memory}", Accelerator(memory=memory), cost_model=str(cost))
        assignments = out.attributes["split_assignments"]
        assert next(iter(assignments)) == "model.embed_tokens" and assignments["model.embed_tokens"] == 0
        per_split: dict[int, list[int]] = {}
        for name, split in assignments.items():
            per_split.setdefault(split, []).append(rows[name])
        # every split fits the memory, unless one module alone is larger
        assert all(sum(sizes) <= memory or len(sizes) == 1 for sizes in per_split.values())
        assert sorted(per_split) == list(range(len(per_split)))
        counts.append(len(per_split))
    assert counts[0] > counts[1] >= counts[2] >= 2, counts  # less memory, more splits
    unique = _run(CaptureSplitInfo, hf, tmp_path, "unique", Accelerator(memory=10**9), cost_model=str(cost),
                  unique_embeds_lm_head_splits=True).attributes["split_assignments"]
    assert unique["model.embed_tokens"] == 0 and unique["lm_head"] == max(unique.values())


def test_cost_model_splits_run_in_cascade(split_llama: tuple[ModelRef, ModelRef], tiny_llama_dir: Path,
                                          tmp_path: Path) -> None:
    """Assignments from a cost model and a memory: SplitModel makes that many splits, and they compute the model."""
    onnx_model, _ = split_llama
    cost = _cost_model(tiny_llama_dir, tmp_path)
    captured = _run(CaptureSplitInfo, ModelRef(kind="hf", path=tiny_llama_dir), tmp_path, "capture",
                    Accelerator(memory=10**5), cost_model=str(cost))
    assignments = captured.attributes["split_assignments"]
    out = _run(SplitModel, onnx_model, tmp_path, "split", split_assignments=assignments)
    assert len(out.components) == len(set(assignments.values())) > 2
    feeds = token_feeds(onnx_model, batch=1, seq=5)
    np.testing.assert_allclose(_cascade(out, feeds)["logits"], run(onnx_model, feeds), atol=1e-4, rtol=1e-4)


def test_cost_model_path_and_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative cost_model resolves against the folder the run starts from (passes run in a scratch folder);
    its content is part of the cache key."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cost.csv").write_text("module,num_params,num_bytes,num_flops\nlm_head,1,2,3\n")
    params = CaptureSplitInfo.Params(cost_model="cost.csv")
    assert params.cost_model == str(tmp_path / "cost.csv")
    before = CaptureSplitInfo.cache_context(params)
    (tmp_path / "cost.csv").write_text("module,num_params,num_bytes,num_flops\nlm_head,1,4,3\n")
    assert before and CaptureSplitInfo.cache_context(params) != before
    assert CaptureSplitInfo.cache_context(CaptureSplitInfo.Params(num_splits=2)) is None


def test_cost_model_needs_memory_and_one_of_the_two(tiny_llama_dir: Path, tmp_path: Path) -> None:
    hf = ModelRef(kind="hf", path=tiny_llama_dir)
    with pytest.raises(PassError, match="accelerator memory is required"):
        _run(CaptureSplitInfo, hf, tmp_path, "nomem", cost_model=str(tmp_path / "cost.csv"))
    with pytest.raises(PassError, match="one of num_splits or cost_model"):
        _run(CaptureSplitInfo, hf, tmp_path, "none")
    with pytest.raises(PassError, match="does not exist") as info:
        _run(CaptureSplitInfo, hf, tmp_path, "nofile", Accelerator(memory=1000), cost_model=str(tmp_path / "x.csv"))
    assert "generate-cost-model" in (info.value.fix or "")


# ------------------------------------------------------------------ SplitModel


def test_conversion_records_the_assignments(split_llama: tuple[ModelRef, ModelRef]) -> None:
    import onnx

    onnx_model, _ = split_llama
    proto = onnx.load(str(onnx_model.model_file), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["split_assignments"] == "model.layers.0=0;model.layers.1=1"
    assert any(node.name.startswith("/model/layers.0/") for node in proto.graph.node)  # the HF module names


def test_splits_run_in_cascade_like_the_whole_model(split_llama: tuple[ModelRef, ModelRef]) -> None:
    import onnx

    onnx_model, composite = split_llama
    assert composite.kind == "composite"
    assert [c.onnx_file for c in composite.components] == ["split_0.onnx", "split_1.onnx"]
    names = {p.name for p in composite.path.iterdir()}
    assert {"split_0.onnx", "split_0.onnx.data", "split_1.onnx", "split_1.onnx.data", "tokenizer.json",
            "config.json"} <= names and "model.onnx" not in names
    for component in composite.components:
        onnx.checker.check_model(str(component.model_file), full_check=True)
    (first_in, first_out), (second_in, second_out) = (_io(c) for c in composite.components)
    assert set(first_in) <= {"input_ids", "attention_mask"} and second_out == ["logits"]
    assert set(second_in) - {"input_ids", "attention_mask"} <= set(first_out)
    for batch, seq in [(1, 5), (3, 17)]:
        feeds = token_feeds(onnx_model, batch=batch, seq=seq)
        np.testing.assert_allclose(_cascade(composite, feeds)["logits"], run(onnx_model, feeds), atol=1e-4, rtol=1e-4)


def test_split_assignments_param_overrides_the_metadata(split_llama: tuple[ModelRef, ModelRef],
                                                        tmp_path: Path) -> None:
    onnx_model, _ = split_llama
    out = _run(SplitModel, onnx_model, tmp_path, "four",
               split_assignments="model.embed_tokens=0;model.layers.0=1;model.layers.1=2;lm_head=3")
    assert [c.onnx_file for c in out.components] == [f"split_{i}.onnx" for i in range(4)]
    feeds = token_feeds(onnx_model, batch=2, seq=6)
    np.testing.assert_allclose(_cascade(out, feeds)["logits"], run(onnx_model, feeds), atol=1e-4, rtol=1e-4)


def test_qdq_model_splits_at_quantized_tensors(split_llama: tuple[ModelRef, ModelRef], tmp_path: Path) -> None:
    """QuantizeLinear stays with its producer and DequantizeLinear goes with its consumers: the splits exchange
    quantized tensors (as Olive's SplitModel does), and compute the QDQ model."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    onnx_model, _ = split_llama

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([token_feeds(onnx_model, batch=1, seq=8, seed=seed) for seed in range(3)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    folder = tmp_path / "qdq"
    folder.mkdir()
    quantize_static(str(onnx_model.model_file), str(folder / "model.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    use_external_data_format=True)
    qdq = ModelRef(kind="onnx", path=folder)
    out = _run(SplitModel, qdq, tmp_path, "split")  # the assignments travel in the metadata
    (_, first_out), (second_in, _) = (_io(c) for c in out.components)
    crossing = set(second_in) & set(first_out)
    assert crossing and all(name.endswith("_QuantizeLinear_Output") for name in crossing)
    feeds = token_feeds(onnx_model, batch=2, seq=7)
    np.testing.assert_allclose(_cascade(out, feeds)["logits"], run(qdq, feeds), atol=1e-5)


def test_no_assignments_is_a_clear_error(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="no split assignments") as info:
        _run(SplitModel, tiny_llama_onnx, tmp_path, "none")
    assert "CaptureSplitInfo" in (info.value.fix or "")
    with pytest.raises(PassError, match="name1=0;name2=1"):
        _run(SplitModel, tiny_llama_onnx, tmp_path, "bad", split_assignments="model.layers.0:0")


def _custom_onnx(tmp_path: Path) -> ModelRef:
    """Olive's SplitModel test model: before_layer → layers.0 + layers.1 → after_layer (TorchScript export)."""
    import torch

    class Custom(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.before_layer = torch.nn.Linear(2, 4)
            self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
            self.after_layer = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.before_layer(x)
            return self.after_layer(self.layers[0](x) + self.layers[1](x))

    folder = tmp_path / "custom"
    folder.mkdir()
    torch.onnx.export(Custom(), (torch.randn(1, 2),), str(folder / "model.onnx"), input_names=["input"],
                      output_names=["output"], dynamo=False)
    return ModelRef(kind="onnx", path=folder)


@pytest.mark.parametrize(("assignments", "middle"), [
    ({"layers.0": 0, "layers.1": 1}, ["/before_layer/Gemm_output_0", "/layers.0/Gemm_output_0"]),  # vertical
    ("layers.0=0;layers.1=1", ["/before_layer/Gemm_output_0", "/layers.0/Gemm_output_0"]),
    ({"before_layer": 0, "layers.0": 1, "layers.1": 1}, ["/before_layer/Gemm_output_0"]),  # horizontal
    ("layers.0=0;layers.1=0;after_layer=1", ["/Add_output_0"]),
])
def test_split_points_as_olive(assignments, middle: list[str], tmp_path: Path) -> None:
    model = _custom_onnx(tmp_path)
    out = _run(SplitModel, model, tmp_path, "split", split_assignments=assignments)
    (first_in, first_out), (second_in, second_out) = (_io(c) for c in out.components)
    assert (first_in, first_out) == (["input"], middle)
    assert (second_in, second_out) == (middle, ["output"])
    feeds = {"input": np.random.default_rng(0).standard_normal((1, 2)).astype(np.float32)}
    np.testing.assert_allclose(_cascade(out, feeds)["output"], run(model, feeds), atol=1e-6)


def test_metadata_form() -> None:
    text = split_metadata.encode({"model.layers.0": 0, "lm_head": 3})
    assert text == "model.layers.0=0;lm_head=3"
    assert split_metadata.decode(text) == {"model.layers.0": 0, "lm_head": 3}


# ------------------------------------------------------------------ ComposeOnnxModels and the engine


def test_compose_round_trips(split_llama: tuple[ModelRef, ModelRef], tmp_path: Path) -> None:
    import onnx

    onnx_model, composite = split_llama
    composed = _run(ComposeOnnxModels, composite, tmp_path, "compose")
    assert composed.kind == "onnx" and "components" not in composed.attributes
    onnx.checker.check_model(str(composed.model_file), full_check=True)
    assert _io(composed) == _io(onnx_model)
    feeds = token_feeds(onnx_model, batch=2, seq=9)
    np.testing.assert_allclose(run(composed, feeds), run(onnx_model, feeds), atol=1e-5, rtol=1e-5)


def test_compose_refuses_what_cpu_cannot_compose(split_llama: tuple[ModelRef, ModelRef], tmp_path: Path) -> None:
    onnx_model, composite = split_llama
    with pytest.raises(PassError, match="llm_pipeline"):
        _run(ComposeOnnxModels, composite.with_attributes(llm_pipeline={"context": ["split_0"]}), tmp_path, "pipe")
    with pytest.raises(PassError, match="composite model"):
        _run(ComposeOnnxModels, onnx_model, tmp_path, "plain")


def test_size_and_unmeasurable_metrics(split_llama: tuple[ModelRef, ModelRef]) -> None:
    from modelmill.evaluate.evaluator import evaluate_model
    from modelmill.evaluate.runtime import EvaluationError

    _, composite = split_llama
    expected = sum((composite.path / name).stat().st_size
                   for name in ("split_0.onnx", "split_0.onnx.data", "split_1.onnx", "split_1.onnx.data"))
    result = evaluate_model(composite, [{"name": "size", "type": "size_on_disk",
                                         "sub_types": [{"name": "bytes"}]}])
    assert [value.value for value in result.values] == [float(expected)]
    with pytest.raises(EvaluationError, match="cannot run on the composite model") as info:
        evaluate_model(composite, [{"name": "lat", "type": "latency", "sub_types": [{"name": "avg"}]}])
    assert "ComposeOnnxModels" in (info.value.fix or "")


@pytest.mark.slow
def test_model_builder_records_and_splits(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """ModelBuilder (fp32) names its nodes /model/layers.N/...: CaptureSplitInfo's assignments match them."""
    import onnx

    from modelmill.passes.model_builder import ModelBuilder

    captured = _run(CaptureSplitInfo, ModelRef(kind="hf", path=tiny_llama_dir), tmp_path, "capture", num_splits=2)
    built = _run(ModelBuilder, captured, tmp_path, "build", precision="fp32")
    props = {p.key: p.value for p in onnx.load(str(built.model_file), load_external_data=False).metadata_props}
    assert props["split_assignments"] == "model.layers.0=0;model.layers.1=1"
    composite = _run(SplitModel, built, tmp_path, "split")
    assert len(composite.components) == 2
    for index, component in enumerate(composite.components):  # each split holds its own layer's KV cache
        inputs, outputs = _io(component)
        assert {f"past_key_values.{index}.key", f"past_key_values.{index}.value"} <= set(inputs)
        assert {f"present.{index}.key", f"present.{index}.value"} <= set(outputs)
    feeds = _builder_feeds(built, batch=1, seq=5)
    values = _cascade(composite, feeds)
    import onnxruntime as ort

    whole = ort.InferenceSession(str(built.model_file), providers=["CPUExecutionProvider"])
    for name, expected in zip([o.name for o in whole.get_outputs()], whole.run(None, feeds)):
        np.testing.assert_allclose(values[name], expected, atol=1e-4, rtol=1e-4)


def _builder_feeds(model: ModelRef, batch: int, seq: int) -> dict[str, np.ndarray]:
    """Prompt inputs for a builder model: token ids, a full mask and empty past key/values."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model.model_file), providers=["CPUExecutionProvider"])
    feeds: dict[str, np.ndarray] = {}
    for meta in sess.get_inputs():
        if meta.name == "input_ids":
            feeds[meta.name] = np.random.default_rng(0).integers(0, 500, (batch, seq), dtype=np.int64)
        elif meta.name == "attention_mask":
            feeds[meta.name] = np.ones((batch, seq), dtype=np.int64)
        else:  # past_key_values.N.key/value: (batch, kv heads, 0, head size)
            config = model.hf_config() or {}
            head_size = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
            shape = [batch, meta.shape[1], 0, head_size]
            feeds[meta.name] = np.zeros(shape, dtype=np.float32)
    return feeds


@pytest.mark.slow
def test_dynamo_export_splits_too(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """The dynamo exporter names nodes node_<op>_N: OnnxConversion puts the module path in front (from the
    exporter's name_scopes), so the assignments find the layers."""
    captured = _run(CaptureSplitInfo, ModelRef(kind="hf", path=tiny_llama_dir), tmp_path, "capture", num_splits=2)
    onnx_model = _run(OnnxConversion, captured, tmp_path, "convert", use_dynamo_exporter=True)
    composite = _run(SplitModel, onnx_model, tmp_path, "split")
    assert len(composite.components) == 2
    feeds = token_feeds(onnx_model, batch=2, seq=7)
    np.testing.assert_allclose(_cascade(composite, feeds)["logits"], run(onnx_model, feeds), atol=1e-4, rtol=1e-4)
