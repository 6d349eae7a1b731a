"""Goals with Olive's semantics, acceptance and the search objective (no models needed)."""

from __future__ import annotations

import pytest

from modelmill.evaluate import EvaluationResult, MetricValue, accepted, goal_met, objective
from modelmill.evaluate.goals import goal_target


def _value(value: float, higher: bool, goal_type: str | None = None, goal_value: float = 0.0, priority: int = 1,
           metric: str = "m", sub_type: str = "s") -> MetricValue:
    goal = {"type": goal_type, "value": goal_value} if goal_type else None
    return MetricValue(metric, sub_type, value, higher_is_better=higher, priority=priority, goal=goal)


@pytest.mark.parametrize(("goal_type", "goal_value", "higher", "baseline", "value", "expected"), [
    # threshold: at least as good as the goal value in the metric's direction; no baseline needed
    ("threshold", 0.9, True, None, 0.91, True),
    ("threshold", 0.9, True, None, 0.9, True),
    ("threshold", 0.9, True, None, 0.89, False),
    ("threshold", 10.0, False, None, 9.5, True),
    ("threshold", 10.0, False, None, 10.5, False),
    # min-improvement: improved by at least value
    ("min-improvement", 0.05, True, 0.80, 0.85, True),
    ("min-improvement", 0.05, True, 0.80, 0.84, False),
    ("min-improvement", 2.0, False, 10.0, 8.0, True),
    ("min-improvement", 2.0, False, 10.0, 8.5, False),
    # percent-min-improvement: by at least value % of the baseline
    ("percent-min-improvement", 20, False, 10.0, 7.9, True),
    ("percent-min-improvement", 20, False, 10.0, 8.1, False),
    ("percent-min-improvement", 10, True, 100.0, 110.0, True),
    ("percent-min-improvement", 10, True, 100.0, 109.0, False),
    # max-degradation: worsened by at most value
    ("max-degradation", 0.01, True, 0.90, 0.895, True),
    ("max-degradation", 0.01, True, 0.90, 0.885, False),
    ("max-degradation", 1.0, False, 10.0, 10.9, True),
    ("max-degradation", 1.0, False, 10.0, 11.1, False),
    ("max-degradation", 1.0, False, 10.0, 5.0, True),  # an improvement is fine
    # percent-max-degradation: by at most value %
    ("percent-max-degradation", 5, True, 0.80, 0.77, True),
    ("percent-max-degradation", 5, True, 0.80, 0.75, False),
    ("percent-max-degradation", 50, False, 10.0, 14.9, True),
    ("percent-max-degradation", 50, False, 10.0, 15.1, False),
])
def test_goal_types(goal_type: str, goal_value: float, higher: bool, baseline: float | None, value: float,
                    expected: bool) -> None:
    assert goal_met(_value(value, higher, goal_type, goal_value), baseline) is expected


def test_relative_goals_need_a_baseline() -> None:
    for goal_type in ("min-improvement", "percent-min-improvement", "max-degradation", "percent-max-degradation"):
        assert goal_met(_value(1.0, True, goal_type, 0.1), None) is None
    assert goal_met(_value(1.0, True), None) is True  # no goal at all
    assert goal_target(_value(1.0, False, "percent-min-improvement", 25), 8.0) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="unknown goal type"):
        goal_met(_value(1.0, True, "at-least", 1.0), 1.0)


def test_accepted_needs_all_goals() -> None:
    latency = _value(8.0, False, "percent-min-improvement", 10, metric="latency", sub_type="avg")
    acc = _value(0.89, True, "max-degradation", 0.02, priority=2, metric="accuracy", sub_type="accuracy_score")
    size = _value(1000, False, priority=-1, metric="size", sub_type="bytes")  # no goal
    baseline = {"latency-avg": 10.0, "accuracy-accuracy_score": 0.90}
    assert accepted([latency, acc, size], baseline)
    assert not accepted([latency, acc], {"latency-avg": 8.5, "accuracy-accuracy_score": 0.90})
    assert not accepted([latency, acc], {"latency-avg": 10.0})  # accuracy's baseline is missing
    assert accepted(EvaluationResult("m", [size]), None)
    base_values = [MetricValue("latency", "avg", 10.0), MetricValue("accuracy", "accuracy_score", 0.9)]
    assert accepted(EvaluationResult("c", [latency, acc]), EvaluationResult("b", base_values))


def test_objective_orders_by_priority_and_minimizes() -> None:
    values = [_value(0.9, True, priority=2, metric="accuracy"), _value(12.0, False, priority=1, metric="latency"),
              _value(5e6, False, priority=-1, metric="size"), _value(300.0, True, priority=3, metric="tput")]
    assert objective(values) == [12.0, -0.9, -300.0]
    assert objective(EvaluationResult("m", values[2:3])) == []
