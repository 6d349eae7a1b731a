"""Search candidates on a real two-node Ray cluster on loopback (one CPU per node): same results as a local
run, events tagged with the node, the cache shared across workers, a killed worker's candidate retried,
cancel, and clear errors for an unusable cluster."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import psutil
import pytest
from modelmill.config import load_workflow, parse_document
from modelmill.engine.plan import Plan, plan_from_config
from modelmill.engine.runner import RunOutcome, start_run
from modelmill.engine.workflow import MANIFEST_NAME
from modelmill.testing.ray_cluster import LocalCluster, cluster_environment, free_port, start_cluster
from modelmill.testing.tiny_models import build_tiny_mlp_onnx

# One worker runs every test here (`make test` gives pytest-xdist's workers whole files): they share one two-node
# cluster, and two heads on one machine would compete for Ray's fixed ports (the client server's 10001, ...).
SIZE_METRIC = {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes", "priority": 1}]}
# Four candidates: each int4 block size gives a different size, so the best one is unambiguous.
BLOCK_SEARCH = {"builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": [16, 32, 64, 128]}}
# Two candidates: one per node, both running at once (the cancel test).
PAIR_SEARCH = {"builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": [16, 32]}}
# One candidate (a search of one value still runs on the cluster): the kill and time-limit tests need only one
# attempt to cut, and each attempt on a cold worker pays the builder's import (~6 CPU-s on this 2-core machine).
ONE_SEARCH = {"builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": [32]}}
# Two passes on an ONNX MLP: every candidate shares the fixed-shape model, then RTN differs (no builder: the
# test is about the cache, and a cold worker importing the builder costs ~6 CPU-s).
SHARED_PREFIX = {"fix": {"type": "DynamicToFixedShape", "dim_param": ["batch"], "dim_value": [2]},
                 "rtn": {"type": "OnnxBlockWiseRtnQuantization", "block_size": [32, 64, 128]}}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with cluster_environment():
        cluster = start_cluster(nodes=2)
        try:
            yield cluster
        finally:
            cluster.stop()


def _config(model_dir: Path, root: Path, passes: dict[str, Any], address: str | None, out: str,
            cache: str = "cache", model_type: str = "HfModel", **ray: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "input_model": {"type": model_type, "model_path": str(model_dir)},
        "passes": passes,
        "evaluators": {"main": {"metrics": [SIZE_METRIC]}},
        "evaluator": "main",
        "evaluate_input_model": False,
        "search_strategy": {"execution_order": "joint", "sampler": "sequential"},
        "output_dir": str(root / out),
        "cache_dir": str(root / cache),
    }
    if address is not None:
        config["systems"] = {"cluster": {"type": "Ray", "address": address, "num_cpus": 1,
                                         "max_concurrent_candidates": 2, "connect_timeout_s": 10, **ray}}
        config["host"] = "cluster"
    return config


def _plan(config: dict[str, Any]) -> Plan:
    return plan_from_config(load_workflow(parse_document(json.dumps(config), "ray.json")))


def _run(plan: Plan, run_id: str, on_event: Any = None, timeout: float = 300) -> tuple[RunOutcome, list[dict]]:
    events: list[dict] = []
    listeners = [events.append] + ([on_event] if on_event else [])
    handle = start_run(plan, run_id, listeners, in_process=False)
    return handle.result(timeout), events


def _of(events: list[dict], type_: str) -> list[dict]:
    return [e for e in events if e["type"] == type_]


def _manifest(plan: Plan) -> dict[str, Any]:
    return json.loads((plan.output_dir / MANIFEST_NAME).read_text())


def _leftovers(cache: Path) -> list[str]:
    entries = cache / "entries"
    found = [p.name for p in entries.glob(".tmp-*")] if entries.exists() else []
    found += [p.name for p in (cache / "evaluations").glob(".*.tmp")] if (cache / "evaluations").exists() else []
    runs = cache / "runs"
    return found + ([p.name for p in runs.iterdir()] if runs.exists() else [])


def _pid(event: dict[str, Any]) -> int:
    return int(event["worker"].rsplit("-", 1)[1])


def _gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_cluster_search_matches_local_run_and_reports_nodes(cluster: LocalCluster, tiny_llama_dir: Path,
                                                            tmp_path: Path) -> None:
    local_plan = _plan(_config(tiny_llama_dir, tmp_path, BLOCK_SEARCH, None, "local", cache="local-cache"))
    local, local_events = _run(local_plan, "local")
    ray_plan = _plan(_config(tiny_llama_dir, tmp_path, BLOCK_SEARCH, cluster.address, "ray"))
    remote, events = _run(ray_plan, "ray")
    assert local.status == remote.status == "succeeded", (local.error, remote.error)

    # Same seed and candidate set: the same candidates under the same ids, the same metrics, the same best.
    def summary(plan: Plan) -> tuple[Any, ...]:
        search = _manifest(plan)["search"]
        return search["best"], [(c["id"], c["params"], c["metrics"]) for c in search["candidates"]]

    assert summary(ray_plan) == summary(local_plan)
    assert len(summary(ray_plan)[1]) == 4
    assert (ray_plan.output_dir / "model.onnx").read_bytes() == (local_plan.output_dir / "model.onnx").read_bytes()

    connected = _of(events, "cluster.connected")
    assert len(connected) == 1 and len(connected[0]["nodes"]) == 2 and connected[0]["max_concurrent"] == 2
    node_ids = {n["node"] for n in connected[0]["nodes"]}
    started = _of(events, "candidate.started")
    assert sorted(e["candidate"] for e in started) == ["c1", "c2", "c3", "c4"]
    # Both one-CPU nodes ran candidates: two at once can only fit on two nodes.
    assert {e["node"] for e in started} == node_ids
    remote_passes = _of(events, "pass.finished")
    assert len(remote_passes) == 4 and all(e["node"] in node_ids and e["worker"] for e in remote_passes)
    assert all(e["node"] in node_ids for e in _of(events, "candidate.evaluated"))
    assert not any("node" in e for e in _of(local_events, "pass.finished"))
    # One stream: seq has no gaps, run.started first and run.finished last.
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.finished"
    assert _leftovers(tmp_path / "cache") == []

    # The cache is shared: a rerun (other output) takes every pass and evaluation from what the workers wrote.
    rerun_plan = _plan(_config(tiny_llama_dir, tmp_path, BLOCK_SEARCH, cluster.address, "rerun"))
    rerun, rerun_events = _run(rerun_plan, "rerun")
    assert rerun.status == "succeeded"
    assert [e["cached"] for e in _of(rerun_events, "pass.finished")] == [True] * 4
    assert all(e.get("cached") for e in _of(rerun_events, "metric.measured"))
    assert summary(rerun_plan) == summary(ray_plan)


def test_workers_share_one_prefix_without_corrupting_the_cache(cluster: LocalCluster, tmp_path: Path) -> None:
    # c1 and c2 start together on different nodes, both build the same fixed-shape model and race to commit it;
    # c3 then finds it in the cache whichever worker won.
    mlp = build_tiny_mlp_onnx(tmp_path / "mlp")
    plan = _plan(_config(mlp, tmp_path, SHARED_PREFIX, cluster.address, "out", model_type="ONNXModel"))
    outcome, events = _run(plan, "prefix")
    assert outcome.status == "succeeded", outcome.error
    builds = [e for e in _of(events, "pass.finished") if e["pass_name"] == "fix"]
    assert len(builds) == 3 and len({e["cache_key"] for e in builds}) == 1
    assert next(e for e in builds if e["candidate"] == "c3")["cached"] is True
    entry = Path(builds[0]["output"])
    meta = json.loads((entry / "entry.json").read_text())
    from modelmill.engine.cache import Cache

    assert Cache(tmp_path / "cache").get(meta["key"]) is not None  # every file present with its hash
    assert _leftovers(tmp_path / "cache") == []
    assert sorted(c["params"]["rtn.block_size"] for c in _manifest(plan)["search"]["candidates"]) == [32, 64, 128]


def test_a_killed_worker_gets_its_candidate_retried(cluster: LocalCluster, tiny_llama_dir: Path,
                                                    tmp_path: Path) -> None:
    plan = _plan(_config(tiny_llama_dir, tmp_path, ONE_SEARCH, cluster.address, "out"))
    killed: list[dict] = []

    def kill_first_worker(event: dict[str, Any]) -> None:
        # c1's worker is killed as soon as it starts its pass (a cold worker spends seconds importing).
        if not killed and event["type"] == "pass.started" and event.get("candidate") == "c1":
            killed.append(event)
            os.kill(_pid(event), signal.SIGKILL)

    outcome, events = _run(plan, "kill", kill_first_worker)
    assert killed, "c1 never started"
    assert outcome.status == "succeeded", outcome.error
    retried = _of(events, "candidate.retried")
    assert [(e["candidate"], e["attempt"], e["max_attempts"]) for e in retried] == [("c1", 2, 3)]
    assert retried[0]["worker"] == killed[0]["worker"] and retried[0]["reason"]
    restarted = [e for e in _of(events, "candidate.started") if e["candidate"] == "c1"]
    assert len(restarted) == 2 and restarted[1]["attempt"] == 2 and restarted[1]["worker"] != killed[0]["worker"]
    # Every candidate has its result; the killed attempt left nothing half-written behind.
    candidates = _manifest(plan)["search"]["candidates"]
    assert [c["id"] for c in candidates] == ["c1"] and candidates[0]["metrics"]["size-bytes"] > 0
    assert _leftovers(tmp_path / "cache") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out"]


def test_cancel_cancels_the_ray_tasks(cluster: LocalCluster, tiny_llama_dir: Path, tmp_path: Path) -> None:
    plan = _plan(_config(tiny_llama_dir, tmp_path, PAIR_SEARCH, cluster.address, "out"))
    events: list[dict] = []
    both_running = threading.Event()

    def watch(event: dict[str, Any]) -> None:
        events.append(event)
        if len({e["candidate"] for e in events if e["type"] == "pass.started"}) == 2:
            both_running.set()

    handle = start_run(plan, "cancel", [watch], in_process=False)
    assert both_running.wait(180), "two candidates never ran at once"
    workers = {_pid(e) for e in events if e["type"] == "pass.started"}
    handle.cancel()
    outcome = handle.result(60)
    assert outcome.status == "cancelled"
    cancelled = {e["candidate"] for e in _of(handle._events, "candidate.cancelled")}
    assert cancelled == {"c1", "c2"}
    # Cut, not waited for: neither cancelled candidate's pass finished.
    assert not [e for e in _of(handle._events, "pass.finished") if e.get("candidate") in cancelled]
    assert all(_gone(pid) for pid in workers), "a cancelled candidate's worker is still running"
    assert not plan.output_dir.exists() and _leftovers(tmp_path / "cache") == []


def test_infeasible_resources_are_a_clear_error(cluster: LocalCluster, tiny_llama_dir: Path, tmp_path: Path) -> None:
    plan = _plan(_config(tiny_llama_dir, tmp_path, BLOCK_SEARCH, cluster.address, "out", num_gpus=1))
    outcome, events = _run(plan, "gpu", timeout=120)
    assert outcome.status == "failed"
    error = _of(events, "error")[0]
    assert "no node of the Ray cluster can run a candidate" in error["message"] and "1 GPU" in error["message"]
    assert error["where"] == "systems.cluster" and "num_gpus" in error["fix"]
    assert not plan.output_dir.exists()


def test_unreachable_cluster_fails_fast(tiny_llama_dir: Path, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    plan = _plan(_config(tiny_llama_dir, tmp_path, BLOCK_SEARCH, address, "out", connect_timeout_s=2))
    outcome, events = _run(plan, "unreachable", timeout=120)
    assert outcome.status == "failed" and not _of(events, "candidate.started")
    error = _of(events, "error")[0]
    # The connection probe's error: ray.init (which retries for minutes on such an address) was never reached.
    assert f"no Ray cluster answers at {address}" in error["message"]
    assert error["where"] == "systems.cluster.address" and "ray start --head" in error["fix"]


def test_a_candidate_over_its_time_limit_is_cancelled_retried_then_failed(cluster: LocalCluster, tiny_llama_dir: Path,
                                                                         tmp_path: Path) -> None:
    # A cold worker needs seconds to import the builder: a 2 s limit cuts every attempt, so the driver must
    # cancel, retry once, give up and end the run instead of waiting.
    plan = _plan(_config(tiny_llama_dir, tmp_path, ONE_SEARCH, cluster.address, "out", candidate_timeout_s=2,
                         max_retries=1))
    outcome, events = _run(plan, "timeout", timeout=180)
    assert outcome.status == "failed" and not _of(events, "pass.finished")  # every attempt was cut
    retried = _of(events, "candidate.retried")
    assert [e["candidate"] for e in retried] == ["c1"]
    assert all(e["reason"].startswith("timed out after 2s") and e["attempt"] == 2 for e in retried)
    # The search's only candidate failed: the run's error says so (with several, each also gets a
    # candidate.failed event).
    [error] = _of(events, "error")
    assert "c1 was lost 2 time(s)" in error["message"] and "candidate_timeout_s" in error["fix"]
    assert error["where"] == "systems.cluster"
    assert not plan.output_dir.exists() and _leftovers(tmp_path / "cache") == []
