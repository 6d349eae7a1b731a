"""The command line never replaces a folder it did not write, and reruns with a relative cache_dir hit the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelmill.cli import main


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")


def _config(tmp_path: Path, model: Path, output_dir: str, cache_dir: str = "cache") -> Path:
    path = tmp_path / "project" / "workflow.json"
    path.write_text(json.dumps({"input_model": {"type": "HfModel", "model_path": str(model)},
                                "passes": {"builder": {"type": "ModelBuilder", "precision": "int4"}},
                                "output_dir": output_dir, "cache_dir": cache_dir}, indent=2))
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("output_dir", [".", "..", "~"])
def test_a_run_into_a_precious_folder_is_refused_and_touches_nothing(
        output_dir: str, tiny_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "project" / "thesis.tex").write_text("years of work")
    config = _config(tmp_path, tiny_llama_dir, output_dir)
    before = _snapshot(tmp_path)
    for argv in (["validate", str(config)], ["run", "--config", str(config), "--dry_run"],
                 ["run", "--config", str(config), "--overwrite"]):
        capsys.readouterr()
        assert main(argv) != 0, argv
        captured = capsys.readouterr()
        assert "unsafe-output-dir" in captured.out + captured.err, argv
    assert _snapshot(tmp_path) == before


def test_a_folder_with_user_files_needs_overwrite(tiny_llama_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "project" / "results"
    results.mkdir()
    (results / "notes.md").write_text("mine")
    config = _config(tmp_path, tiny_llama_dir, "results")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "notes.md" in err and "--overwrite" in err
    assert (results / "notes.md").read_text() == "mine"
    assert main(["run", "--config", str(config), "--overwrite"]) == 0
    assert (results / "model.onnx").exists() and not (results / "notes.md").exists()
    # ModelMill's own output is replaced by a rerun without any flag
    assert main(["run", "--config", str(config)]) == 0


def test_a_symlinked_output_is_refused(tiny_llama_dir: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "data.csv").write_text("1,2")
    os.symlink(real, tmp_path / "project" / "out", target_is_directory=True)
    assert main(["run", "--config", str(_config(tmp_path, tiny_llama_dir, "out")), "--overwrite"]) == 2
    assert (real / "data.csv").read_text() == "1,2" and (tmp_path / "project" / "out").is_symlink()


def test_auto_opt_refuses_an_existing_foreign_output(tiny_llama_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "project" / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    assert main(["auto-opt", "-m", str(tiny_llama_dir), "-o", str(out), "--precision", "int4"]) == 2
    assert "keep.txt" in capsys.readouterr().err and (out / "keep.txt").exists()


def test_a_rerun_with_a_relative_cache_dir_is_served_from_the_cache(tiny_llama_dir: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, tiny_llama_dir, "models/out", cache_dir="my-cache")
    runs = []
    for index in range(2):
        events = tmp_path / f"events-{index}.jsonl"
        assert main(["run", "--config", str(config), "--events", str(events)]) == 0
        runs.append([json.loads(line) for line in events.read_text().splitlines()])
    cached = [[e["cached"] for e in run if e["type"] == "pass.finished"] for run in runs]
    assert cached == [[False], [True]]
    assert (tmp_path / "project" / "my-cache" / "modelmill-cache.json").is_file()
