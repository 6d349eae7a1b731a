"""Older Olive forms (Olive <= 0.9 and before data configs): read with a hint naming the current spelling,
rewritten by `modelmill migrate` as Olive's current examples write them; AzureML is unsupported-system."""

from __future__ import annotations

import json
from typing import Any

from config_helpers import CPU_ONLY
from modelmill.config import migrate_document, parse_document, validate_document

_MODEL = {"type": "ONNXModel", "model_path": "model.onnx"}


def _run(config: dict[str, Any], tmp_path) -> tuple[list[Any], dict[str, Any]]:
    (tmp_path / "model.onnx").write_bytes(b"")
    doc = parse_document(json.dumps(config, indent=2), str(tmp_path / "config.json"))
    diagnostics = validate_document(doc, CPU_ONLY)
    return diagnostics, json.loads(migrate_document(doc))


def _codes(diagnostics: list[Any]) -> dict[tuple[Any, ...], str]:
    return {d.path: d.code for d in diagnostics}


def test_num_samples_is_max_samples(tmp_path) -> None:
    config = {"input_model": _MODEL, "passes": {},
              "search_strategy": {"execution_order": "joint", "sampler": "random",
                                  "search_algorithm_config": {"num_samples": 3}}}
    diagnostics, flat = _run(config, tmp_path)
    [note] = [d for d in diagnostics if d.path[-1] == "num_samples"]
    assert note.code == "old-schema" and note.severity == "warning" and "max_samples" in note.hint
    assert note.data["replace_with"] == "max_samples"
    assert flat["search_strategy"] == {"execution_order": "joint", "sampler": "random", "max_samples": 3}
    assert not [d for d in diagnostics if d.path[-1] in ("num_samples", "max_samples") and d.severity == "error"]


def test_params_config_is_split_into_sections(tmp_path) -> None:
    config = {"input_model": _MODEL, "passes": {}, "data_configs": [{
        "name": "glue", "type": "HuggingfaceContainer",
        "params_config": {"data_name": "glue", "split": "validation", "model_name": "bert-base-uncased",
                          "input_cols": ["sentence1"], "label_cols": ["label"], "batch_size": 4}}]}
    diagnostics, flat = _run(config, tmp_path)
    assert _codes(diagnostics)[("data_configs", 0, "params_config")] == "old-schema"
    assert flat["data_configs"] == [{
        "name": "glue", "type": "HuggingfaceContainer",
        "load_dataset_config": {"data_name": "glue", "split": "validation"},
        "pre_process_data_config": {"model_name": "bert-base-uncased", "input_cols": ["sentence1"],
                                    "label_col": "label"},
        "dataloader_config": {"batch_size": 4}}]


def test_metric_user_config_data_keys_become_a_data_config(tmp_path) -> None:
    metric = {"name": "acc", "type": "accuracy", "sub_types": [{"name": "accuracy_score"}],
              "user_config": {"user_script": "user_script.py", "dataloader_func": "create_data", "batch_size": 8,
                              "data_dir": "data", "func_kwargs": {"dataloader_func": {"n": 3}},
                              "input_names": ["x"]}}
    config = {"input_model": _MODEL, "passes": {}, "evaluators": {"e": {"metrics": [metric]}}, "evaluator": "e"}
    (tmp_path / "user_script.py").write_text("")
    diagnostics, flat = _run(config, tmp_path)
    codes = _codes(diagnostics)
    at = ("evaluators", "e", "metrics", 0, "user_config")
    assert {codes[at + (key,)] for key in ("dataloader_func", "batch_size", "data_dir", "func_kwargs")} == \
        {"old-schema"}
    assert codes[at + ("input_names",)] == "ignored-key"  # Olive's validate_config drops it with a warning
    assert flat["data_configs"] == [{"name": "acc_data", "user_script": "user_script.py",
                                     "load_dataset_config": {"type": "create_data", "data_dir": "data", "n": 3},
                                     "dataloader_config": {"batch_size": 8}}]
    migrated = flat["evaluators"]["e"]["metrics"][0]
    assert migrated["data_config"] == "acc_data" and migrated["user_config"] == {"user_script": "user_script.py"}
    assert not [d for d in diagnostics if d.severity == "error"]


def test_pass_level_data_keys_become_a_data_config(tmp_path) -> None:
    config = {"input_model": _MODEL, "passes": {"quant": {
        "type": "OnnxStaticQuantization", "user_script": "user_script.py", "dataloader_func": "calib_reader",
        "data_dir": "data", "batch_size": 2}}}
    (tmp_path / "user_script.py").write_text("")
    diagnostics, flat = _run(config, tmp_path)
    codes = _codes(diagnostics)
    assert {codes[("passes", "quant", key)] for key in ("user_script", "dataloader_func", "data_dir",
                                                         "batch_size")} == {"old-schema"}
    assert flat["passes"]["quant"] == {"type": "OnnxStaticQuantization", "data_config": "quant_data"}
    assert flat["data_configs"] == [{"name": "quant_data", "user_script": "user_script.py",
                                     "load_dataset_config": {"type": "calib_reader", "data_dir": "data"},
                                     "dataloader_config": {"batch_size": 2}}]


def test_several_providers_become_one_system_each(tmp_path) -> None:
    config = {"input_model": _MODEL, "passes": {}, "target": "local", "systems": {"local": {
        "type": "LocalSystem",
        "accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider",
                                                                   "OpenVINOExecutionProvider"]}]}}}
    diagnostics, flat = _run(config, tmp_path)
    [note] = [d for d in diagnostics if d.code == "old-schema"]
    assert note.severity == "warning" and note.path == ("systems", "local", "accelerators", 0, "execution_providers")
    assert not [d for d in diagnostics if d.severity == "error"]
    assert flat["systems"] == {
        "local": {"type": "LocalSystem", "accelerators": [{"device": "cpu",
                                                           "execution_providers": ["CPUExecutionProvider"]}]},
        "local_openvino": {"type": "LocalSystem", "accelerators": [
            {"device": "cpu", "execution_providers": ["OpenVINOExecutionProvider"]}]}}


def test_azureml_is_unsupported_and_stays_as_written(tmp_path) -> None:
    config = {"azureml_client": {"subscription_id": "s"}, "input_model": _MODEL, "passes": {}, "host": "aml",
              "systems": {"aml": {"type": "AzureML", "aml_compute": "cluster"}}}
    diagnostics, flat = _run(config, tmp_path)
    errors = {d.path: d for d in diagnostics if d.severity == "error"}
    assert set(errors) == {("azureml_client",), ("systems", "aml", "type")}
    assert {d.code for d in errors.values()} == {"unsupported-system"}
    assert errors[("azureml_client",)].data == {"remove": True}
    # migrate cannot turn AzureML into something else: it stays as written
    assert flat["systems"]["aml"] == {"type": "AzureML", "aml_compute": "cluster"}
    assert flat["azureml_client"] == {"subscription_id": "s"}
