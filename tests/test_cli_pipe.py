"""`modelmill run ... 2>&1 | head -3`: when the reader closes the pipe, the CLI stops its worker and exits at once.

The subprocess tests tag the CLI's environment with a unique value, which its worker processes inherit, so
that any process left behind can be found in /proc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from modelmill.engine.model import ModelRef
from modelmill.engine.plan import Plan
from modelmill.engine.runner import RunHandle
from modelmill.pipes import EXIT_STATUS
from modelmill.render import PipeSafeConsole, ProgressRenderer

TAG = "MODELMILL_PIPE_TEST"
linux_only = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds processes through /proc")


def test_console_goes_quiet_on_a_closed_pipe_in_any_thread() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stream:
        console = PipeSafeConsole(file=stream)
        renderer = ProgressRenderer(console)
        failures: list[BaseException] = []

        def render() -> None:
            try:
                renderer({"type": "error", "message": "the worker failed " * 500, "fix": "x"})
            except BaseException as exc:  # noqa: BLE001 - rich's default raises SystemExit here
                failures.append(exc)

        thread = threading.Thread(target=render)
        thread.start()
        thread.join(10)
        assert failures == [] and console.output_closed.is_set()
        console.print("later output is dropped without an error")


def test_a_listener_raising_system_exit_does_not_stop_the_event_thread(tmp_path: Path) -> None:
    def exits(event: dict) -> None:
        raise SystemExit(1)

    handle = RunHandle("r", Plan(ModelRef("hf", tmp_path), [], tmp_path / "out", tmp_path / "cache"), [exits])
    handle._deliver({"type": "log", "seq": 0})
    assert [event["seq"] for event in handle._events] == [0]


def _tagged(tag: str) -> list[int]:
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _run_until(args: list[str], cwd: Path, stop_after: str, limit_s: float = 60) -> tuple[int, list[str]]:
    """Run the CLI with stdout+stderr on a pipe, read lines until one contains ``stop_after``, close the pipe.

    Returns the exit code and the lines read; asserts that the CLI exited by itself (it is killed after
    ``limit_s``: a hang) and that no process of the run is left.
    """
    tag = uuid.uuid4().hex
    env = {**os.environ, TAG: tag, "COLUMNS": "300"}
    process = subprocess.Popen([sys.executable, "-m", "modelmill", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env, cwd=cwd)
    watchdog = threading.Timer(limit_s, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for raw in process.stdout:
            lines.append(raw.decode(errors="replace"))
            if stop_after in lines[-1]:
                break
        process.stdout.close()  # what `head` does once it has its lines
        code = process.wait()
    finally:
        watchdog.cancel()
    assert code != -9, f"the CLI hung after its output pipe closed (killed after {limit_s}s); read: {lines}"
    deadline = time.monotonic() + 5
    while _tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _tagged(tag)
    for pid in left:
        os.kill(pid, 9)
    assert left == [], f"processes of the run were left running: {left}"
    return code, lines


def _config(tmp_path: Path, model_dir: Path, **builder: object) -> Path:
    config = {"input_model": {"type": "HfModel", "model_path": str(model_dir)},
              "passes": {"builder": {"type": "ModelBuilder", "precision": "int4", **builder}},
              "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


@linux_only
def test_failing_run_piped_into_head_exits_promptly(tmp_path: Path) -> None:
    # The worker fails at once (remote code not allowed); its error is written after the reader is gone.
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 1}))
    config = _config(tmp_path, model, extra_options={"hf_remote": True})
    code, lines = _run_until(["run", "--config", str(config)], tmp_path, "→")
    assert len(lines) == 3 and "plan" in lines[0]  # `head -3`
    assert code == EXIT_STATUS  # exited by itself, with the status of a closed pipe


@linux_only
@pytest.mark.slow  # a real ModelBuilder worker
def test_closed_pipe_stops_a_running_worker(tiny_llama_dir: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, tiny_llama_dir)
    # --log_level 1: the worker's first info line is the first write after the reader left.
    code, _ = _run_until(["run", "--config", str(config), "--log_level", "1"], tmp_path, "→")
    assert code == EXIT_STATUS
    assert not (tmp_path / "out").exists()  # cancelled, not run to its end: no output, as after Ctrl-C
    assert not list(tmp_path.glob("*.partial-*"))
