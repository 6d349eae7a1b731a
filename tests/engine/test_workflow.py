"""The workflow runner: output renamed into place only when complete, a manifest, ordered events."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from helpers import RecordingBus

from modelmill.engine.model import ModelRef
from modelmill.engine.plan import Plan, PlanStep
from modelmill.engine.workflow import MANIFEST_NAME, run_plan
from modelmill.errors import RunCancelled
from modelmill.errors import ConfigError, PassError
from modelmill.passes.dynamic_quantization import OnnxDynamicQuantization
from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams


def _plan(model_dir: Path, tmp_path: Path, *steps: PlanStep) -> Plan:
    return Plan(ModelRef("hf", model_dir), list(steps), tmp_path / "out", tmp_path / "cache")


def _int4_step() -> PlanStep:
    return PlanStep("builder", ModelBuilder, ModelBuilderParams(precision="int4"))


def test_run_writes_output_manifest_and_ordered_events(tiny_llama_dir: Path, tmp_path: Path) -> None:
    bus = RecordingBus("run-1")
    plan = _plan(tiny_llama_dir, tmp_path, _int4_step())
    result = run_plan(plan, bus)

    assert result.output_dir == plan.output_dir and (plan.output_dir / "model.onnx").exists()
    manifest = json.loads((plan.output_dir / MANIFEST_NAME).read_text())
    assert manifest["passes"][0]["type"] == "ModelBuilder" and manifest["passes"][0]["params"]["precision"] == "int4"
    assert manifest["files"]["model.onnx.data"]["bytes"] == (plan.output_dir / "model.onnx.data").stat().st_size
    assert len(manifest["files"]["model.onnx"]["sha256"]) == 64
    assert manifest["libraries"]["onnxruntime-genai"]

    types = [event["type"] for event in bus.events]
    assert types[0] == "run.started" and types[-1] == "run.finished"
    assert types.index("pass.started") < types.index("pass.progress") < types.index("pass.finished")
    assert [event["seq"] for event in bus.events] == list(range(len(bus.events)))
    assert all(event["v"] == 1 and event["run_id"] == "run-1" for event in bus.events)
    assert bus.events[-1]["status"] == "succeeded"
    # No scratch folders are left next to the output or in the cache.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert not any((plan.cache_dir / "runs").iterdir())


def test_failed_run_keeps_previous_output_and_leaves_nothing_partial(tiny_llama_dir: Path, tmp_path: Path) -> None:
    plan = _plan(tiny_llama_dir, tmp_path, PlanStep("builder", ModelBuilder, ModelBuilderParams(precision="fp16")))
    plan.output_dir.mkdir(parents=True)
    (plan.output_dir / "previous.txt").write_text("kept")
    bus = RecordingBus("run-2")
    with pytest.raises(PassError):
        run_plan(plan, bus)
    assert (plan.output_dir / "previous.txt").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out"]
    error = bus.of_type("error")[0]
    assert "fp16" in error["message"] and error["fix"]
    assert bus.events[-1] == {**bus.events[-1], "type": "run.finished", "status": "failed"}


def test_cancel_before_a_pass_writes_no_output(tiny_llama_dir: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    bus = RecordingBus("run-3")
    plan = _plan(tiny_llama_dir, tmp_path, _int4_step())
    with pytest.raises(RunCancelled):
        run_plan(plan, bus, cancel)
    assert not plan.output_dir.exists()
    assert bus.events[-1]["status"] == "cancelled"


def test_plan_check_refuses_a_pass_that_cannot_take_the_model(tiny_llama_dir: Path, tmp_path: Path) -> None:
    plan = _plan(tiny_llama_dir, tmp_path, PlanStep("quant", OnnxDynamicQuantization,
                                                    OnnxDynamicQuantization.Params()))
    with pytest.raises(ConfigError) as info:
        plan.check()
    assert "passes.quant" == info.value.where and "OnnxConversion" in (info.value.fix or "")
    with pytest.raises(ConfigError, match="no passes"):
        _plan(tiny_llama_dir, tmp_path).check()
