"""The command modules' contract: add_arguments/run each, stdlib-only tops, no import back into cli.py."""

from __future__ import annotations

import ast
import importlib
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import modelmill.commands
from modelmill.commands import COMMANDS
from modelmill.engine.runner import RunHandle

COMMANDS_DIR = Path(modelmill.commands.__file__).parent


@pytest.mark.parametrize("module_name", sorted({command.module for command in COMMANDS}))
def test_every_command_module_has_add_arguments_and_run(module_name: str) -> None:
    module = importlib.import_module(f"modelmill.commands.{module_name}")
    assert callable(module.add_arguments) and callable(module.run)


@pytest.mark.parametrize("path", sorted(COMMANDS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_command_module_imports_cli(path: Path) -> None:
    """cli.py imports the commands to build its parser; an import back would be a cycle."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        assert not any(name == "modelmill.cli" for name in names), f"{path.name} imports modelmill.cli"
        if isinstance(node, ast.ImportFrom) and node.module == "modelmill":
            assert "cli" not in {alias.name for alias in node.names}, f"{path.name} imports modelmill.cli"


def test_run_handle_wait_says_whether_the_run_finished() -> None:
    handle = RunHandle("r", SimpleNamespace(output_dir=None))  # type: ignore[arg-type]
    assert handle.wait(0.01) is False
    handle._finish(time.perf_counter())  # no run.finished event: the outcome is "failed", and the run is over
    assert handle.wait(0) is True and handle.done and handle.result(0).status == "failed"
