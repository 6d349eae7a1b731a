"""A workflow with SplitModel: ONNX passes after it run on each split (as Olive runs them), ComposeOnnxModels joins
them, and the checks know which passes take a composite model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import run, token_feeds
from modelmill.cli import main
from modelmill.engine.model import ModelRef
from modelmill.passes.compose_onnx_models import ComposeOnnxModels
from modelmill.passes.dynamic_quantization import OnnxDynamicQuantization
from modelmill.passes.model_builder import ModelBuilder
from modelmill.passes.split_model import SplitModel


def test_which_passes_take_a_composite() -> None:
    assert OnnxDynamicQuantization.takes("composite") and OnnxDynamicQuantization.output_kind("composite") == "composite"
    assert ComposeOnnxModels.takes("composite") and ComposeOnnxModels.output_kind("composite") == "onnx"
    assert not SplitModel.takes("composite") or SplitModel.per_component()
    assert not ModelBuilder.takes("composite")


def _workflow(tmp_path: Path, model_dir: Path, passes: dict) -> Path:
    config = {"input_model": {"type": "HfModel", "model_path": str(model_dir)}, "passes": passes,
              "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_passes_after_split_run_per_component(tiny_llama_dir: Path, tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    passes = {"capture": {"type": "CaptureSplitInfo", "num_splits": 2}, "convert": {"type": "OnnxConversion"},
              "split": {"type": "SplitModel"}, "quantize": {"type": "OnnxDynamicQuantization"},
              "compose": {"type": "ComposeOnnxModels"}}
    assert main(["run", "--config", str(_workflow(tmp_path, tiny_llama_dir, passes))]) == 0
    out = tmp_path / "out"
    manifest = json.loads((out / "modelmill_run.json").read_text())
    assert [p["type"] for p in manifest["passes"]][-2:] == ["OnnxDynamicQuantization", "ComposeOnnxModels"]
    composed = ModelRef(kind="onnx", path=out)
    import onnx

    proto = onnx.load(str(composed.model_file), load_external_data=False)
    assert any(node.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for node in proto.graph.node)
    feeds = token_feeds(tiny_llama_onnx, batch=1, seq=6)
    quantized, reference = run(composed, feeds), run(tiny_llama_onnx, feeds)
    assert quantized.shape == reference.shape
    cosine = float((quantized * reference).sum() / np.linalg.norm(quantized) / np.linalg.norm(reference))
    assert cosine > 0.95


def test_a_split_output_folder_reads_back_as_composite(tiny_llama_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`modelmill evaluate` on SplitModel's output (split_N/model.onnx after a per-split pass) measures every split."""
    from modelmill.engine.composite import composite_in

    passes = {"capture": {"type": "CaptureSplitInfo", "num_splits": 2}, "convert": {"type": "OnnxConversion"},
              "split": {"type": "SplitModel"}, "quantize": {"type": "OnnxDynamicQuantization"}}
    assert main(["run", "--config", str(_workflow(tmp_path, tiny_llama_dir, passes))]) == 0
    out = tmp_path / "out"
    composite = composite_in(out)
    assert composite is not None and [c.onnx_file for c in composite.components] == ["model.onnx", "model.onnx"]
    assert [c.path.name for c in composite.components] == ["split_0", "split_1"]
    assert composite_in(tiny_llama_dir) is None
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = sum(path.stat().st_size for path in out.glob("split_*/model.onnx*"))
    assert result["model_kind"] == "composite" and result["metrics"] == {"size-bytes": float(expected)}


def test_a_pass_that_needs_one_model_is_refused_before_the_run(tiny_llama_dir: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    passes = {"capture": {"type": "CaptureSplitInfo", "num_splits": 2}, "convert": {"type": "OnnxConversion"},
              "split": {"type": "SplitModel"}, "split_again": {"type": "SplitModel"}}
    assert main(["run", "--config", str(_workflow(tmp_path, tiny_llama_dir, passes))]) != 0
    err = capsys.readouterr().err
    assert "SplitModel takes onnx" in err and "composite" in err and not (tmp_path / "out").exists()


def test_per_component_progress_never_goes_back(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    from helpers import events, make_context
    from modelmill.engine.composite import run_per_component
    from modelmill.passes.float16 import OnnxFloatToFloat16

    composite = SplitModel().run(tiny_llama_onnx, SplitModel.Params(split_assignments="model.layers.0=0;model.layers.1=1"),
                                 make_context(tmp_path, "split"))
    ctx = make_context(tmp_path, "fp16")
    out = run_per_component(OnnxFloatToFloat16(), composite, OnnxFloatToFloat16.Params(), ctx)
    assert out.kind == "composite" and [c.path.name for c in out.components] == ["split_0", "split_1"]
    fractions = [event["fraction"] for event in events(ctx, "pass.progress")]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
