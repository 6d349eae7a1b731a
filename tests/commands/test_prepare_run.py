"""engine/prepare.py: the one run preparation of the CLI and the editor (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.config import Environment, parse_document
from modelmill.engine.prepare import RunDefaults, prepare_run
from modelmill.errors import ConfigError


def _document(tmp_path: Path) -> object:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"")
    config = {"input_model": {"type": "ONNXModel", "model_path": "m/model.onnx"},
              "passes": {"q": {"type": "OnnxDynamicQuantization"}}, "output_dir": "out"}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    return parse_document(path.read_text(), str(path))


def _env(cwd: Path) -> Environment:
    return Environment(Environment.current().installed_eps, cwd)


def test_the_editor_places_folders_in_the_workspace(tmp_path: Path) -> None:
    document = _document(tmp_path)
    plan = prepare_run(document, None, tmp_path, env=_env(tmp_path), check_providers=False).plan
    assert plan.output_dir == tmp_path / "out"
    assert plan.cache_dir == (tmp_path / ".olive-cache").resolve()
    assert plan.input_model.path == (tmp_path / "m").resolve()


def test_caller_overrides_win_over_the_placement(tmp_path: Path) -> None:
    document = _document(tmp_path)
    plan = prepare_run(document, {"cache_dir": str(tmp_path / "c2")}, tmp_path, env=_env(tmp_path),
                       check_providers=False).plan
    assert plan.cache_dir == (tmp_path / "c2").resolve()


def test_a_run_refuses_a_missing_provider_before_any_work(tmp_path: Path) -> None:
    """The CLI's error, in the editor too: a run stops at preparation; a plan preview (no check) still plans."""
    document = _document(tmp_path)
    if "CUDAExecutionProvider" in (Environment.current().installed_eps or ()):
        pytest.skip("this onnxruntime has CUDA")
    defaults = RunDefaults(device="gpu", provider="CUDAExecutionProvider")
    with pytest.raises(ConfigError, match=r"CUDAExecutionProvider \(device gpu\) is not available in this onnxruntime"):
        prepare_run(document, None, tmp_path, env=_env(tmp_path), defaults=defaults)
    plan = prepare_run(document, None, tmp_path, env=_env(tmp_path), defaults=defaults,
                       check_providers=False).plan
    assert plan.accelerator.execution_provider == "CUDAExecutionProvider"


def test_a_hub_data_set_is_refused_before_any_work(tmp_path: Path) -> None:
    """Olive's examples calibrate and measure on hub sets (google_bert_qdq.json: facebook/xnli); a run stops at
    preparation, naming the pass and the set, instead of after the passes before the one that reads it."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"")
    (tmp_path / "calib.jsonl").write_text('{"text": "hello"}\n')

    def document(data_name: str, metric: bool = False) -> object:
        config: dict = {"input_model": {"type": "ONNXModel", "model_path": "m/model.onnx"},
                        "data_configs": [{"name": "calib", "type": "HuggingfaceContainer",
                                          "load_dataset_config": {"data_name": data_name, "split": "validation"}}],
                        "passes": {"q": {"type": "OnnxStaticQuantization",
                                         **({} if metric else {"data_config": "calib"})}},
                        "output_dir": "out"}
        if metric:
            config["evaluators"] = {"e": {"metrics": [{"name": "lat", "type": "latency", "data_config": "calib",
                                                       "sub_types": [{"name": "avg"}]}]}}
            config["evaluator"] = "e"
        path = tmp_path / "c.json"
        path.write_text(json.dumps(config))
        return parse_document(path.read_text(), str(path))

    with pytest.raises(ConfigError, match=r"pass q \(data_config\) reads data_config 'calib', the Hugging Face hub "
                                          r"data set 'facebook/xnli'") as err:
        prepare_run(document("facebook/xnli"), None, tmp_path, env=_env(tmp_path))
    assert "local_dataset with data_files" in str(err.value.fix)
    # a plan preview (the editor's Show Plan) still plans
    preview = prepare_run(document("facebook/xnli"), None, tmp_path, env=_env(tmp_path), check_providers=False)
    assert preview.plan.steps[0].name == "q"
    # gte/config.json: a user script for pre-processing; the data still comes from the hub
    (tmp_path / "user_script.py").write_text("")
    with pytest.raises(ConfigError, match="'allenai/c4'"):
        doc = document("allenai/c4")
        doc.data["data_configs"][0]["user_script"] = "user_script.py"
        prepare_run(doc, None, tmp_path, env=_env(tmp_path))
    with pytest.raises(ConfigError, match="metric lat reads data_config 'calib'.*'glue'"):
        prepare_run(document("glue", metric=True), None, tmp_path, env=_env(tmp_path))
    # a missing local file is no hub set: the pass that reads it says it is not found
    assert prepare_run(document("data/missing.jsonl"), None, tmp_path, env=_env(tmp_path)).plan.steps
    # a local file (relative to the config's folder) and a loader name with data_files are read, not refused
    plan = prepare_run(document("calib.jsonl"), None, tmp_path, env=_env(tmp_path)).plan
    assert plan.steps[0].name == "q"
