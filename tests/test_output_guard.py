"""A run replaces only a folder ModelMill wrote; every other non-empty target is refused before any work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelmill.output_guard import MANIFEST_NAME, output_refusal


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)


def _modelmill_output(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    manifest = {"files": {name: {"bytes": len(text)} for name, text in files.items()},
                "reports": {"html": "report.html"}}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


@pytest.mark.parametrize("target", [".", "..", "~", "/"])
def test_precious_folders_are_refused_even_with_overwrite(target: str) -> None:
    refusal = output_refusal(Path(target), overwrite=True)
    assert refusal is not None and refusal.always
    assert "choose a new folder" in refusal.fix


def test_the_input_model_and_the_config_folder_are_protected(tmp_path: Path) -> None:
    model = tmp_path / "models" / "llama"
    model.mkdir(parents=True)
    protected = [(model, "the input model"), (tmp_path / "configs", "the config's folder")]
    assert "the input model" in output_refusal(model, protected=protected).message
    assert "contains the input model" in output_refusal(tmp_path / "models", protected=protected).message
    assert "the config's folder" in output_refusal(tmp_path / "configs", protected=protected).message
    assert output_refusal(tmp_path / "models" / "out", protected=protected) is None


def test_a_folder_of_user_files_is_refused_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "results"
    target.mkdir()
    (target / "thesis.tex").write_text("years of work")
    refusal = output_refusal(target)
    assert refusal is not None and not refusal.always
    assert "thesis.tex" in refusal.message and "--overwrite" in refusal.fix
    assert output_refusal(target, overwrite=True) is None


def test_new_empty_and_own_folders_may_be_replaced(tmp_path: Path) -> None:
    assert output_refusal(tmp_path / "new") is None
    (tmp_path / "empty").mkdir()
    assert output_refusal(tmp_path / "empty") is None
    _modelmill_output(tmp_path / "previous", {"model.onnx": "x", "report.html": "<html>"})
    assert output_refusal(tmp_path / "previous") is None


def test_a_modelmill_output_with_a_file_added_by_the_user_is_refused(tmp_path: Path) -> None:
    _modelmill_output(tmp_path / "previous", {"model.onnx": "x"})
    (tmp_path / "previous" / "my-notes.md").write_text("findings")
    refusal = output_refusal(tmp_path / "previous")
    assert refusal is not None and "my-notes.md" in refusal.message and "did not write" in refusal.message


def test_links_and_files_are_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link", target_is_directory=True)
    refusal = output_refusal(tmp_path / "link", overwrite=True)
    assert refusal is not None and "symbolic link" in refusal.message
    (tmp_path / "file").write_text("x")
    assert "is an existing file" in output_refusal(tmp_path / "file", overwrite=True).message


def test_place_checks_again_and_keeps_files_that_appeared_during_the_run(tmp_path: Path) -> None:
    from modelmill.engine.output import place
    from modelmill.errors import ConfigError

    target = tmp_path / "out"
    target.mkdir()  # empty when the run was planned...
    (target / "arrived.txt").write_text("copied in while the run went on")
    finished = tmp_path / ".out.partial-1"
    finished.mkdir()
    (finished / "model.onnx").write_text("new")
    with pytest.raises(ConfigError, match="arrived.txt"):
        place(finished, target)
    assert (target / "arrived.txt").read_text() == "copied in while the run went on"
