"""Commands that write outside the run engine follow its rules: never replace what ModelMill did not write."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelmill.cli import main


def test_init_never_replaces_an_existing_config(tiny_llama_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.json").write_text('{"mine": true}')
    code = main(["init", "-m", str(tiny_llama_dir), "-o", str(tmp_path), "--device", "cpu", "--precision", "int4",
                 "-y"])
    assert code != 0 and "already exists" in capsys.readouterr().err
    assert (tmp_path / "config.json").read_text() == '{"mine": true}'


@pytest.mark.parametrize("where", ["work", "source", "link"])
def test_generate_model_package_refuses_precious_targets_even_with_overwrite(tiny_llama_onnx, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch,
                                                                             where: str) -> None:
    import shutil

    # Named with the package suffix, which the command adds to -o when it is missing (as Olive does).
    work = tmp_path / "work.ortpackage"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data.csv").write_text("1")
    (tmp_path / "link.ortpackage").symlink_to(elsewhere, target_is_directory=True)
    source = tmp_path / "src.ortpackage"
    shutil.copytree(tiny_llama_onnx.path, source)
    target = {"work": work, "source": source, "link": tmp_path / "link.ortpackage"}[where]
    before = sorted(p.name for p in Path(target).iterdir())
    code = main(["generate-model-package", "-s", str(source), "-o", str(target), "--overwrite"])
    assert code != 0
    assert sorted(p.name for p in Path(target).iterdir()) == before
    assert (work / "notes.txt").read_text() == "mine" and (elsewhere / "data.csv").read_text() == "1"


def test_generate_model_package_writes_and_then_needs_overwrite(tiny_llama_onnx, tmp_path: Path) -> None:
    target = tmp_path / "pkg.ortpackage"
    for out in ("pkg", "pkg.ortpackage"):  # the suffix is added when missing
        assert main(["generate-model-package", "-s", str(tiny_llama_onnx.path), "-o", str(tmp_path / out),
                     *(["--overwrite"] if out != "pkg" else [])]) == 0
        assert (target / "manifest.json").exists()
    assert main(["generate-model-package", "-s", str(tiny_llama_onnx.path), "-o", str(target)]) != 0
    assert (target / "manifest.json").exists() and not list(tmp_path.glob(".pkg.*"))
    assert not (tmp_path / "pkg").exists()
