"""Single-file outputs: written whole through a temporary file, and never replacing what they should not."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmill.engine.output import write_file_output
from modelmill.errors import ConfigError


def _write(text: str):
    return lambda tmp: tmp.write_text(text)


def test_writes_a_new_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "costs.csv"
    write_file_output(target, _write("a,b\n"))
    assert target.read_text() == "a,b\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["costs.csv"]


def test_an_existing_file_needs_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "costs.csv"
    target.write_text("mine")
    with pytest.raises(ConfigError, match="already exists") as info:
        write_file_output(target, _write("new"))
    assert "--overwrite" in (info.value.fix or "")
    assert target.read_text() == "mine"
    write_file_output(target, _write("new"), overwrite=True)
    assert target.read_text() == "new"


@pytest.mark.parametrize("kind", ["link", "folder", "input"])
def test_links_folders_and_inputs_are_refused_even_with_overwrite(tmp_path: Path, kind: str) -> None:
    real = tmp_path / "real.txt"
    real.write_text("precious")
    target = {"link": tmp_path / "link.txt", "folder": tmp_path / "dir", "input": real}[kind]
    if kind == "link":
        target.symlink_to(real)
    if kind == "folder":
        target.mkdir()
    with pytest.raises(ConfigError):
        write_file_output(target, _write("new"), overwrite=True, inputs=[real])
    assert real.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "adapter.safetensors"
    target.write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_file_output(target, fail, overwrite=True)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["adapter.safetensors"]


def test_a_users_file_with_the_old_temporary_name_is_untouched(tmp_path: Path) -> None:
    """The temporary name is unique (mkstemp), so a file named like the old fixed `.name.tmp` survives."""
    (tmp_path / ".costs.csv.tmp").write_text("mine")
    write_file_output(tmp_path / "costs.csv", _write("new"))
    assert (tmp_path / ".costs.csv.tmp").read_text() == "mine"
