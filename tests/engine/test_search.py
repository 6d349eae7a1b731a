"""Search: Optuna samplers over declared-searchable params (scored by a fake executor where only the sampler is
under test), goals, Pareto front, reproducibility and the cache (real ModelBuilder runs)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import RecordingBus

from modelmill.config import load_workflow, parse_document
from modelmill.engine.plan import plan_from_config
from modelmill.engine.search import Search
from modelmill.engine.workflow import MANIFEST_NAME, run_plan
from modelmill.testing.fake_executor import FakeExecutor, Score

SIZE_METRIC = {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes", "priority": 1}]}


def _config(model_dir: Path, tmp_path: Path, strategy: dict[str, Any] | None, passes: dict[str, Any],
            metrics: list[dict[str, Any]] | None = None, out: str = "out") -> dict[str, Any]:
    config: dict[str, Any] = {
        "input_model": {"type": "HfModel", "model_path": str(model_dir)},
        "passes": passes,
        "evaluators": {"main": {"metrics": metrics or [SIZE_METRIC]}},
        "evaluator": "main",
        "evaluate_input_model": False,
        "output_dir": str(tmp_path / out),
        "cache_dir": str(tmp_path / "cache"),
    }
    if strategy:
        config["search_strategy"] = strategy
    return config


def _run(config: dict[str, Any], run_id: str = "r") -> tuple[RecordingBus, dict[str, Any]]:
    document = parse_document(json.dumps(config), "search.json")
    plan = plan_from_config(load_workflow(document))
    bus = RecordingBus(run_id)
    result = run_plan(plan, bus)
    return bus, json.loads((result.output_dir / MANIFEST_NAME).read_text())


def _search(config: dict[str, Any], score: Score) -> tuple[Search, RecordingBus]:
    """The config's search with each candidate scored ``score(params)`` as its size: no pass runs (the passes'
    own runs are the other tests')."""
    plan = plan_from_config(load_workflow(parse_document(json.dumps(config), "search.json")))
    bus = RecordingBus("r")
    search = Search(plan, bus, threading.Event(), FakeExecutor(score))
    search.run(plan.search_space)
    return search, bus


def _params(bus: RecordingBus) -> list[dict[str, Any]]:
    return [e["params"] for e in bus.of_type("candidate.evaluated") if not e.get("is_input")]


BUILDER_SPACE = {"builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": [16, 32, 64],
                             "int4_accuracy_level": [1, 4]}}


def test_sequential_sampler_is_exhaustive_and_picks_the_smallest(tiny_llama_dir: Path, tmp_path: Path) -> None:
    def size(params: dict[str, Any]) -> float:  # six different sizes, the smallest in the middle of the grid
        return abs(params["builder.int4_block_size"] - 32) * 10 + params["builder.int4_accuracy_level"]

    search, bus = _search(_config(tiny_llama_dir, tmp_path, {"execution_order": "joint", "sampler": "sequential"},
                                  BUILDER_SPACE), size)
    params = _params(bus)
    assert len(params) == 6 and len({json.dumps(p, sort_keys=True) for p in params}) == 6
    sizes = {c.id: c.metrics()["size-bytes"] for c in search.candidates}
    best = search.best()
    assert best.id == min(sizes, key=sizes.get) and best.params == {"builder.int4_block_size": 32,
                                                                    "builder.int4_accuracy_level": 1}
    assert best in search.pareto_front()


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_seeded_samplers_are_reproducible(sampler: str, tiny_llama_dir: Path, tmp_path: Path) -> None:
    def size(params: dict[str, Any]) -> float:
        return params["builder.int4_block_size"] * 10 + params["builder.int4_accuracy_level"]

    strategy = {"execution_order": "joint", "sampler": sampler, "seed": 7, "max_samples": 4}
    _, first = _search(_config(tiny_llama_dir, tmp_path, strategy, BUILDER_SPACE, out="a"), size)
    _, second = _search(_config(tiny_llama_dir, tmp_path, strategy, BUILDER_SPACE, out="b"), size)
    assert _params(first) == _params(second) and 1 <= len(_params(first)) <= 4


def test_a_seeded_search_run_again_is_served_from_the_cache(tiny_llama_dir: Path, tmp_path: Path) -> None:
    strategy = {"execution_order": "joint", "sampler": "random", "seed": 7, "max_samples": 2}
    first, _ = _run(_config(tiny_llama_dir, tmp_path, strategy, BUILDER_SPACE, out="a"), "a")
    second, _ = _run(_config(tiny_llama_dir, tmp_path, strategy, BUILDER_SPACE, out="b"), "b")
    assert _params(first) == _params(second) and 1 <= len(_params(first)) <= 2
    assert all(e["cached"] for e in second.of_type("pass.finished"))
    assert all(e.get("cached") for e in second.of_type("metric.measured"))


def test_pass_by_pass_tunes_each_pass_in_turn(tiny_llama_dir: Path, tmp_path: Path) -> None:
    def size(params: dict[str, Any]) -> float:  # the builder's block 64 is best: not the first value tried
        return 1000 - params["builder.int4_block_size"] + params.get("rtn.block_size", 0)

    passes = {"builder": {"type": "ModelBuilder", "precision": "fp32", "int4_block_size": [16, 64]},
              "rtn": {"type": "OnnxBlockWiseRtnQuantization", "block_size": [32, 64]}}
    search, bus = _search(_config(tiny_llama_dir, tmp_path, {"execution_order": "pass-by-pass",
                                                             "sampler": "sequential"}, passes), size)
    params = _params(bus)
    first_pass = [p for p in params if "rtn.block_size" not in p]
    assert {p["builder.int4_block_size"] for p in first_pass} == {16, 64}
    best_block = min(first_pass, key=lambda p: next(c.metrics()["size-bytes"] for c in search.candidates
                                                    if c.params == p))
    assert best_block["builder.int4_block_size"] == 64
    assert {p["rtn.block_size"] for p in params if "rtn.block_size" in p} == {32, 64}
    assert all(p["builder.int4_block_size"] == best_block["builder.int4_block_size"]
               for p in params if "rtn.block_size" in p)


def test_goals_decide_acceptance_against_the_input_model(tiny_llama_dir: Path, tmp_path: Path) -> None:
    metrics = [{"name": "size", "type": "size_on_disk",
                "sub_types": [{"name": "bytes", "priority": 1,
                               "goal": {"type": "percent-min-improvement", "value": 50}}]}]
    config = _config(tiny_llama_dir, tmp_path, {"execution_order": "joint", "sampler": "sequential"},
                     {"builder": {"type": "ModelBuilder", "precision": ["int4", "fp32"]}}, metrics)
    config["evaluate_input_model"] = True
    bus, manifest = _run(config)
    verdicts = {tuple(e["params"].values()): e["accepted"] for e in bus.of_type("candidate.evaluated")
                if not e.get("is_input")}
    # int4 weights are far less than half the fp32 input's size; an fp32 build is not.
    assert verdicts == {("int4",): True, ("fp32",): False}
    assert manifest["search"]["baseline"]["metrics"]["size-bytes"] > 0
    best = next(c for c in manifest["search"]["candidates"] if c["id"] == manifest["search"]["best"])
    assert best["params"] == {"builder.precision": "int4"}
    # What a search run writes: the Pareto front, the reports, the best candidate in run.finished.
    assert manifest["search"]["pareto_front"] and manifest["search"]["best"] in manifest["search"]["pareto_front"]
    assert (tmp_path / "out" / "report.html").exists() and (tmp_path / "out" / "metrics.md").exists()
    assert bus.events[-1]["best_candidate"] == manifest["search"]["best"]


def test_a_failing_candidate_is_reported_and_the_search_goes_on(tiny_llama_dir: Path, tmp_path: Path) -> None:
    # RTN after an int4 build finds nothing left to quantize: those candidates fail, fp32 ones succeed.
    passes = {"builder": {"type": "ModelBuilder", "precision": ["int4", "fp32"]},
              "rtn": {"type": "OnnxBlockWiseRtnQuantization", "block_size": 32}}
    bus, manifest = _run(_config(tiny_llama_dir, tmp_path, {"execution_order": "joint", "sampler": "sequential"},
                                 passes))
    failed = bus.of_type("candidate.failed")
    assert [e["params"] for e in failed] == [{"builder.precision": "int4"}]
    assert "nothing" in failed[0]["message"] or "no MatMul" in failed[0]["message"]
    assert [c["params"] for c in manifest["search"]["candidates"]] == [{"builder.precision": "fp32"}]


def test_without_search_the_passes_run_once_and_are_evaluated(tiny_llama_dir: Path, tmp_path: Path) -> None:
    config = _config(tiny_llama_dir, tmp_path, None, {"builder": {"type": "ModelBuilder", "precision": "int4"}})
    bus, manifest = _run(config)
    assert len(_params(bus)) == 1 and manifest["search"]["candidates"][0]["metrics"]["size-bytes"] > 0
