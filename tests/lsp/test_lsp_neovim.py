"""ModelMill's language server in a second editor: Neovim (Debian's 0.7.2), headless, scripted in Lua
(tests/lsp/nvim/modelmill_test.lua): attach, diagnostics at the right columns on a line with non-ASCII text under
UTF-8 and UTF-16 position encodings, completion, hover, a quick fix, ``modelmill.validate`` and a clean shutdown.
CI installs ``neovim`` (.ci/run, which also sets MODELMILL_REQUIRE_NVIM: there a missing nvim fails); elsewhere
without ``nvim`` on the PATH the test is skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "nvim" / "modelmill_test.lua"
NVIM = shutil.which("nvim")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_neovim_session(tmp_path: Path, encoding: str) -> None:
    if NVIM is None:
        assert not os.environ.get("MODELMILL_REQUIRE_NVIM"), "nvim is required here (.ci/run installs Debian's neovim)"
        pytest.skip("nvim is not installed (CI installs Debian's neovim)")
    result = tmp_path / "result.txt"
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    env = {**os.environ, "MM_SERVER": sys.executable, "MM_WORKSPACE": str(workspace), "MM_ENCODING": encoding,
           "MM_RESULT": str(result), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.setdefault("MODELMILL_HOME", str(tmp_path / "home"))
    process = subprocess.run([str(NVIM), "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {SCRIPT}"],
                             env=env, cwd=workspace, capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL)
    report = result.read_text() if result.exists() else ""
    assert report, f"nvim wrote no result (rc {process.returncode}): {process.stdout[-2000:]} {process.stderr[-2000:]}"
    failures = [line for line in report.splitlines() if not line.startswith("ok ")]
    assert not failures and process.returncode == 0, report
    assert report.count("ok ") == 9, report
