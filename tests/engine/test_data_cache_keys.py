"""The data a pass reads through a data config is an input of its output: edited calibration data must never be
served the old model from the cache, and the same data must still hit it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelmill.cli import main
from modelmill.config import load_workflow, parse_document
from modelmill.engine.cache import Cache
from modelmill.engine.chain import step_keys
from modelmill.engine.model import ModelRef
from modelmill.engine.plan import plan_from_config


def _rows(marker: str, count: int = 6) -> str:
    return "\n".join(json.dumps({"text": f"{marker} calibration sample {i} " * 6}) for i in range(count))


def _config(model: ModelRef, data: dict[str, Any], inline: bool = False, cache: str = "cache") -> dict[str, Any]:
    data_config = {"name": "calib", "type": "HuggingfaceContainer",
                   "load_dataset_config": {"type": "local_dataset", "params": {"text_cols": "text", **data}}}
    static = {"type": "OnnxStaticQuantization", "max_calibration_samples": 2, "calibration_sequence_length": 8,
              "data_config": data_config if inline else "calib"}
    config: dict[str, Any] = {"input_model": {"type": "ONNXModel", "model_path": str(model.path)},
                              "passes": {"q": static}, "cache_dir": cache, "output_dir": "out"}
    if not inline:
        config["data_configs"] = [data_config]
    return config


def _keys(config: dict[str, Any]) -> list[str]:
    plan = plan_from_config(load_workflow(parse_document(json.dumps(config), "<t>.json")))
    return step_keys(plan, Cache(plan.cache_dir))


@pytest.mark.parametrize("inline", [False, True])
def test_an_edited_data_file_changes_the_step_key(tiny_llama_onnx: ModelRef, tmp_path: Path, inline: bool) -> None:
    data = tmp_path / "calib.jsonl"
    data.write_text(_rows("alpha"))
    config = _config(tiny_llama_onnx, {"data_files": str(data)}, inline, cache=str(tmp_path / "cache"))
    first = _keys(config)
    assert _keys(config) == first  # the same data: the same key
    data.write_text(_rows("beta"))
    assert _keys(config) != first


def test_a_file_in_the_data_folder_changes_the_step_key(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    folder = tmp_path / "data" / "nested"
    folder.mkdir(parents=True)
    (folder / "calib.jsonl").write_text(_rows("alpha"))
    config = _config(tiny_llama_onnx, {"data_dir": str(tmp_path / "data"), "data_files": "nested/calib.jsonl"},
                     cache=str(tmp_path / "cache"))
    first = _keys(config)
    (folder / "calib.jsonl").write_text(_rows("alpha") + "\n")
    assert _keys(config) != first


def test_the_data_configs_content_is_in_the_key(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    data = tmp_path / "calib.jsonl"
    data.write_text(_rows("alpha"))
    config = _config(tiny_llama_onnx, {"data_files": str(data)}, cache=str(tmp_path / "cache"))
    first = _keys(config)
    config["data_configs"][0]["load_dataset_config"]["params"]["text_cols"] = "other"
    assert _keys(config) != first


def test_a_pass_without_data_keeps_its_key(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    """Keys of passes that read no data config stay as they were: existing caches stay valid."""
    config = {"input_model": {"type": "ONNXModel", "model_path": str(tiny_llama_onnx.path)},
              "passes": {"q": {"type": "OnnxDynamicQuantization"}}, "cache_dir": str(tmp_path / "c"),
              "output_dir": "out", "data_configs": [{"name": "unused", "type": "DummyDataContainer"}]}
    with_unused = _keys(config)
    del config["data_configs"]
    assert _keys(config) == with_unused


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4), which=st.integers(min_value=0),
       flip=st.integers(1, 255))
def test_any_edit_of_a_data_file_changes_the_key(tiny_llama_onnx: ModelRef, rows: list[str], which: int,
                                                 flip: int) -> None:
    """Edits in place, of the same size, right after the previous key was computed (the same mtime tick):
    the fingerprint memo must not hide them."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "calib.jsonl"
        payload = "\n".join(json.dumps({"text": row}) for row in rows).encode()
        data.write_bytes(payload)
        config = _config(tiny_llama_onnx, {"data_files": str(data)}, cache=str(root / "cache"))
        first = _keys(config)
        changed = bytearray(payload)
        changed[which % len(changed)] ^= flip
        data.write_bytes(bytes(changed))
        assert _keys(config) != first
        data.write_bytes(payload)
        assert _keys(config) == first


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "modelmill_run.json").read_text())


@pytest.mark.slow
def test_rerun_with_changed_calibration_data_runs_the_pass_again(tiny_llama_onnx: ModelRef, tmp_path: Path) -> None:
    data = tmp_path / "calib.jsonl"
    data.write_text(_rows("alpha"))
    config = _config(tiny_llama_onnx, {"data_files": str(data)}, cache=str(tmp_path / "cache"))
    config_file = tmp_path / "workflow.json"

    def run(out: str) -> dict[str, Any]:
        config_file.write_text(json.dumps({**config, "output_dir": str(tmp_path / out)}))
        assert main(["run", "--config", str(config_file)]) == 0
        return _manifest(tmp_path / out)

    first = run("one")
    assert first["passes"][0]["cached"] is False
    assert run("same")["passes"][0]["cached"] is True  # identical data: served from the cache
    data.write_text("\n".join(json.dumps({"text": f"{n * 977} {'!' * (n % 7)} ~~ {n}"}) for n in range(40)))
    changed = run("two")
    assert changed["passes"][0]["cached"] is False
    assert changed["passes"][0]["cache_key"] != first["passes"][0]["cache_key"]
    assert changed["files"]["model.onnx"]["sha256"] != first["files"]["model.onnx"]["sha256"] or \
        changed["files"].get("model.onnx.data") != first["files"].get("model.onnx.data")


@pytest.mark.parametrize("inline", [False, True])
def test_a_cached_evaluation_follows_its_metrics_data(tiny_llama_onnx: ModelRef, tmp_path: Path,
                                                      inline: bool) -> None:
    """Evaluations are cached per model and metric spec: the metric's data is part of that key too."""
    from helpers import RecordingBus

    from modelmill.engine.candidate import evaluate_cached

    data = tmp_path / "eval.jsonl"
    data.write_text(_rows("alpha"))
    data_config = {"name": "evaldata", "type": "HuggingfaceContainer",
                   "load_dataset_config": {"type": "local_dataset",
                                           "params": {"data_files": str(data), "text_cols": "text"}}}
    metric = {"name": "latency", "type": "latency", "data_config": data_config if inline else "evaldata",
              "sub_types": [{"name": "avg", "metric_config": {"warmup_num": 0, "repeat_test_num": 1}}]}
    config: dict[str, Any] = {"input_model": {"type": "ONNXModel", "model_path": str(tiny_llama_onnx.path)},
                              "evaluators": {"e": {"metrics": [metric]}}, "evaluator": "e",
                              "cache_dir": str(tmp_path / "cache"), "output_dir": "out"}
    if not inline:
        config["data_configs"] = [data_config]
    plan = plan_from_config(load_workflow(parse_document(json.dumps(config), "<t>.json")))

    def cached() -> bool:
        bus = RecordingBus("r")
        evaluate_cached(plan, Cache(plan.cache_dir), bus, plan.input_model, "model-key", "input")
        return all(event.get("cached") for event in bus.of_type("metric.measured"))

    assert not cached()
    assert cached()  # the same data: served from the cache
    data.write_text(_rows("beta"))
    assert not cached()


def test_sd_lora_training_images_by_name_and_class_images_are_in_the_key(tmp_path: Path) -> None:
    from modelmill.engine.data_inputs import data_context
    from modelmill.passes.sd_lora import SDLoRA

    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"png-1")
    (images / "a.txt").write_text("a photo of sks dog")
    configs = {"imgs": {"name": "imgs", "load_dataset_config": {"type": "image_folder_dataset",
                                                                "params": {"data_dir": str(images)}}}}
    params = SDLoRA.Params(train_data_config="imgs", class_data_dir=str(tmp_path / "class"))
    index = tmp_path / "cache" / "fingerprints.json"
    before, class_before = data_context(params, configs, index), SDLoRA.cache_context(params)
    (images / "a.txt").write_text("a photo of sks cat")
    assert data_context(params, configs, index) != before
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "c.png").write_bytes(b"class")
    assert SDLoRA.cache_context(params) != class_before


def test_a_freshly_written_file_is_known_to_the_index_and_still_hashed(tmp_path: Path) -> None:
    """A file hashed within its mtime tick stays in the index (a rerun finds its cached steps) but is hashed
    again on look-up, so an edit of the same size in the same tick is seen."""
    from modelmill.engine.cache import fingerprint, known_fingerprint

    model, index = tmp_path / "m", tmp_path / "cache" / "fingerprints.json"
    model.mkdir()
    (model / "w.bin").write_bytes(b"1")
    first = fingerprint(model, index)
    assert known_fingerprint(model, index) == first
    (model / "w.bin").write_bytes(b"2")
    second = fingerprint(model, index)
    assert second != first and known_fingerprint(model, index) == second
