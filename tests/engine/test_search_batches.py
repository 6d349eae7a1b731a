"""Several candidates in flight (a Ray cluster's executor): the proposals and the best candidate depend on the
sampler, the seed and the round size only, never on the order in which workers finish. Runs no passes: a fake
executor scores each candidate from its parameters."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import RecordingBus
from modelmill.config.evaluation import Metric
from modelmill.engine.model import ModelRef
from modelmill.engine.plan import Plan, PlanStep, SearchSpace
from modelmill.engine.search import Search
from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams
from modelmill.testing.fake_executor import FakeExecutor

SPACE = {(0, "int4_block_size"): [16, 32, 64, 128], (0, "int4_accuracy_level"): [1, 2, 4]}


def _size(params: dict[str, Any]) -> float:
    # Smallest at block 64 / level 2: a landscape TPE can learn from.
    return abs(params["builder.int4_block_size"] - 64) * 10 + abs(params["builder.int4_accuracy_level"] - 2) + 1


def _search(sampler: str, capacity: int, order: str, **strategy: Any) -> tuple[Search, FakeExecutor]:
    metric = Metric.model_validate({"name": "size", "type": "size_on_disk",
                                    "sub_types": [{"name": "bytes", "priority": 1}]})
    plan = Plan(ModelRef("hf", Path("/in")), [PlanStep("builder", ModelBuilder, ModelBuilderParams())], Path("/out"),
                Path("/tmp/modelmill-test-unused-cache"), metrics=[metric], evaluate_input_model=False,
                search={"execution_order": "joint", "sampler": sampler, "seed": 3, **strategy},
                search_space=SearchSpace(dict(SPACE)))
    executor = FakeExecutor(_size, capacity, order)
    search = Search(plan, RecordingBus("r"), threading.Event(), executor)
    search.run(plan.search_space)
    return search, executor


def _proposals(search: Search) -> list[tuple[str, tuple[Any, ...]]]:
    return [(c.id, tuple(sorted(c.params.items()))) for c in search.candidates]


@pytest.mark.parametrize(("sampler", "strategy"), [("sequential", {}), ("random", {"max_samples": 8})])
def test_history_free_samplers_propose_what_a_local_run_does(sampler: str, strategy: dict[str, Any]) -> None:
    local, _ = _search(sampler, 1, "fifo", **strategy)
    spread, executor = _search(sampler, 3, "lifo", **strategy)
    assert executor.most_in_flight == 3  # really several at once
    assert _proposals(spread) == _proposals(local) and len(local.candidates) >= 6
    assert spread.best().id == local.best().id
    # ids follow the proposal order; results are listed in it whatever the finish order
    assert [c.id for c in spread.candidates] == [f"c{i}" for i in range(1, len(spread.candidates) + 1)]
    assert len(_proposals(local)) == len(set(_proposals(local)))  # every combination once


def test_tpe_rounds_do_not_depend_on_the_finish_order() -> None:
    first, executor = _search("tpe", 3, "lifo", max_samples=12)
    second, _ = _search("tpe", 3, "fifo", max_samples=12)
    assert executor.most_in_flight == 3
    assert _proposals(first) == _proposals(second) and first.best().id == second.best().id
    evaluated = [e["candidate"] for e in first.bus.of_type("candidate.evaluated")]  # type: ignore[attr-defined]
    assert evaluated != sorted(evaluated, key=lambda c: int(c[1:]))  # they did finish out of order

