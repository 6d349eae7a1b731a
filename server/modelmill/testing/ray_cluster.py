"""A real Ray cluster on loopback for the tests and bench/scale_out.py: a head node and more, one CPU each.

Each node is a ``ray start --block`` process in its own session: SIGTERM makes it stop every Ray process it
started (and a SIGKILL of its process group is the fallback), so a test session never stops Ray processes it
did not start (``ray stop`` would stop every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")
# No log monitor: nothing reads the workers' logs through the GCS (ModelMill's events have their own channel), and
# it is one more process per node to start on a 2-core machine.
NODE_FLAGS = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block",
              "--include-log-monitor", "false"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Ray 2.5x turns token authentication on by default once a token exists (~/.ray/auth_token): the test cluster
# uses its own token, set for its nodes and, through os.environ (see ``cluster_environment``), for the drivers.
AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_USAGE_STATS_ENABLED")


def ray_env() -> dict[str, str]:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


@contextlib.contextmanager
def cluster_environment() -> Iterator[None]:
    """This process and the runs it starts use a fresh cluster token and no usage stats; restored after."""
    saved = {name: os.environ.get(name) for name in AUTH_VARS}
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                       "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class LocalCluster:
    """One-CPU Ray nodes on loopback, each a ``ray start --block`` process in its own session."""

    address: str
    temp_dir: Path
    env: dict[str, str] = field(default_factory=ray_env)
    object_store_bytes: int = 100 << 20
    log_dir: Path | None = None  # node logs; default: the temp dir, removed by stop()
    processes: list[subprocess.Popen] = field(default_factory=list)
    startup_s: float = 0.0

    def add_node(self, head: bool = False) -> None:
        args = [RAY, "start", *(["--head", "--port", self.address.rsplit(":", 1)[1], "--include-dashboard",
                                 "false", "--temp-dir", str(self.temp_dir)] if head else
                                ["--address", self.address]), *NODE_FLAGS,
                "--object-store-memory", str(self.object_store_bytes)]
        logs = self.log_dir or self.temp_dir
        log = open(logs / f"node{len(self.processes)}.log", "w")  # noqa: SIM115 - closed with the process
        self.processes.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                               start_new_session=True))

    def wait_for_nodes(self, count: int, timeout: float = 90.0) -> None:
        """Until ``count`` nodes are alive, asked by one separate driver process that polls (a driver per poll
        paid Ray's import and connection, ~2 CPU-s, each time)."""
        probe = ("import ray, sys, time; ray.init(address=sys.argv[1], log_to_driver=False)\n"
                 "deadline = time.monotonic() + float(sys.argv[3])\n"
                 "while sum(1 for n in ray.nodes() if n['Alive']) < int(sys.argv[2]):\n"
                 "    if time.monotonic() > deadline: sys.exit(3)\n"
                 "    time.sleep(0.3)\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a ray node exited ({process.returncode}); see "
                                       f"{self.log_dir or self.temp_dir}/node*.log")
            left = deadline - time.monotonic()
            try:
                done = subprocess.run([sys.executable, "-c", probe, self.address, str(count), str(left)],
                                      capture_output=True, text=True, timeout=left + 30, env=self.env, check=False)
                if done.returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(1.0)  # the head was not ready for a driver yet: try again
        raise TimeoutError(f"the Ray cluster at {self.address} did not reach {count} nodes in {timeout}s")

    def stop(self) -> None:
        for process in reversed(self.processes):  # workers first, then the head
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                pass
            try:  # anything of that node still alive: its process group is ours alone
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_cluster(nodes: int = 2, env: dict[str, str] | None = None, object_store_bytes: int = 100 << 20,
                  log_dir: Path | None = None) -> LocalCluster:
    started = time.perf_counter()
    # Ray's socket paths must stay short: a temp dir directly under /tmp.
    cluster = LocalCluster(f"127.0.0.1:{free_port()}", Path(tempfile.mkdtemp(prefix="mmray", dir="/tmp")),
                           env if env is not None else ray_env(), object_store_bytes, log_dir)
    try:
        cluster.add_node(head=True)
        deadline = time.monotonic() + 60
        port = int(cluster.address.rsplit(":", 1)[1])
        while time.monotonic() < deadline:  # the head's GCS port, before another node can join
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        for _ in range(nodes - 1):
            cluster.add_node()
        cluster.wait_for_nodes(nodes)
    except BaseException:
        cluster.stop()
        raise
    cluster.startup_s = round(time.perf_counter() - started, 3)
    return cluster
