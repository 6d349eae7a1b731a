"""Starting ModelMill in a hostile folder runs none of its files (the folder is kept off sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("argv", [["-m", "modelmill", "lsp"], ["-m", "modelmill.lsp"], ["-m", "modelmill", "schema"]])
def test_a_planted_module_in_the_working_folder_is_not_imported(tmp_path: Path, argv: list[str]) -> None:
    marker = tmp_path / "ran.txt"
    for name in ("attr.py", "lsprotocol.py", "pydantic.py", "yaml.py"):  # what the server imports after start-up
        (tmp_path / name).write_text(f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}  # as a user's shell starts it
    subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    assert not marker.exists(), marker.read_text()
