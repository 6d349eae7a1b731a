"""Relative data paths made absolute at plan time, in every form a data config writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmill.engine.data_inputs import anchor_data_config, anchor_pass_params, data_paths, run_bases
from modelmill.passes.sd_lora import SDLoRA


def _load(**params: object) -> dict:
    return {"name": "d", "load_dataset_config": {"type": "local_dataset", "params": params}}


def test_data_files_resolve_against_the_first_base_that_holds_them(tmp_path: Path) -> None:
    first, second = tmp_path / "start", tmp_path / "config"
    first.mkdir()
    (second / "data").mkdir(parents=True)
    (second / "data" / "a.jsonl").write_text("{}")
    anchored = anchor_data_config(_load(data_files=["data/a.jsonl", "missing.jsonl"]), [first, second])
    assert anchored["load_dataset_config"]["params"]["data_files"] == [str(second / "data" / "a.jsonl"),
                                                                        str(first / "missing.jsonl")]


def test_files_inside_a_data_dir_stay_relative_to_it(tmp_path: Path) -> None:
    anchored = anchor_data_config(_load(data_dir="data", data_files="a.jsonl,b.jsonl"), [tmp_path])
    params = anchored["load_dataset_config"]["params"]
    assert params == {"data_dir": str(tmp_path / "data"), "data_files": "a.jsonl,b.jsonl"}


def test_flat_components_split_dicts_and_names_that_are_no_paths(tmp_path: Path) -> None:
    (tmp_path / "local_set").mkdir()
    flat = {"name": "d", "load_dataset_config": {"type": "huggingface_dataset", "data_name": "local_set",
                                                 "data_files": "train.jsonl"}}
    assert anchor_data_config(flat, [tmp_path])["load_dataset_config"] == {
        "type": "huggingface_dataset", "data_name": str(tmp_path / "local_set"), "data_files": "train.jsonl"}
    split = _load(data_name="json", data_files={"train": "t.jsonl", "validation": ["v.jsonl"]})
    assert anchor_data_config(split, [tmp_path])["load_dataset_config"]["params"]["data_files"] == {
        "train": str(tmp_path / "t.jsonl"), "validation": [str(tmp_path / "v.jsonl")]}
    for name in ("sample:instructions", "org/hub-dataset"):
        assert anchor_data_config(_load(data_name=name), [tmp_path]) == _load(data_name=name)
    absolute = _load(data_files=str(tmp_path / "x.jsonl"))
    assert anchor_data_config(absolute, [Path("/elsewhere")]) == absolute


def test_the_paths_a_config_reads(tmp_path: Path) -> None:
    assert data_paths(_load(data_dir=str(tmp_path), data_files=["a", "b"])) == [tmp_path / "a", tmp_path / "b"]
    assert data_paths(_load(data_dir=str(tmp_path))) == [tmp_path]
    assert data_paths(_load(data_name="org/hub-dataset")) == []


def test_path_params_and_inline_configs_of_a_pass(tmp_path: Path) -> None:
    params = SDLoRA.Params(train_data_config={"name": "i", "load_dataset_config": {
        "type": "image_folder_dataset", "params": {"data_dir": "images"}}}, class_data_dir="class")
    anchored = anchor_pass_params(params, [tmp_path])
    assert anchored.class_data_dir == str(tmp_path / "class")
    assert anchored.train_data_config["load_dataset_config"]["params"]["data_dir"] == str(tmp_path / "images")
    assert anchor_pass_params(anchored, [tmp_path]) is anchored


def test_the_command_line_starts_from_the_working_folder_and_the_editor_from_the_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config_dir, workspace = tmp_path / "ws" / "configs", tmp_path / "ws"
    assert run_bases(None, config_dir) == [tmp_path, config_dir]
    assert run_bases(None, Path(".")) == [tmp_path]
    assert run_bases(workspace, config_dir) == [config_dir, workspace]


def test_prepare_run_anchors_the_editors_data_in_the_configs_folder(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from modelmill.config import Environment, parse_document
    from modelmill.engine.prepare import prepare_run

    workspace, configs = tmp_path / "ws", tmp_path / "ws" / "configs"
    (workspace / "m").mkdir(parents=True)
    (workspace / "m" / "model.onnx").write_bytes(b"")
    configs.mkdir()
    (configs / "calib.jsonl").write_text("{}")
    (workspace / "shared.jsonl").write_text("{}")
    config = {"input_model": {"type": "ONNXModel", "model_path": "m/model.onnx"},
              "data_configs": [_load(data_files="calib.jsonl"), {**_load(data_files="shared.jsonl"), "name": "s"}],
              "passes": {"q": {"type": "OnnxStaticQuantization", "data_config": "d"}}, "output_dir": "out"}
    path = configs / "c.json"
    path.write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)  # the language server's own folder plays no part
    plan = prepare_run(parse_document(path.read_text(), str(path)), None, workspace,
                       env=Environment(None, workspace), check_providers=False).plan
    files = {name: c["load_dataset_config"]["params"]["data_files"] for name, c in plan.data_configs.items()}
    assert files == {"d": str(configs / "calib.jsonl"), "s": str(workspace / "shared.jsonl")}
