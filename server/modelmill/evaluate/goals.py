"""Goals (Olive semantics), acceptance of a candidate, and the search objective.

A goal turns into a target value; a measurement meets it when it is at least as good as the
target in the metric's direction (``>=`` when higher is better, ``<=`` otherwise):

- ``threshold``: target = goal value.
- ``min-improvement``: target = baseline + value (higher is better) / baseline - value (lower is better).
- ``max-degradation``: target = baseline - value (higher is better) / baseline + value (lower is better).
- ``percent-min-improvement`` / ``percent-max-degradation``: the same with value% of |baseline|
  (Olive multiplies the baseline, which is the same for the usual positive baselines).

Goals relative to a baseline (the input model's value) are undecidable without it: ``goal_met`` returns None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Union

from modelmill.evaluate.results import EvaluationResult, MetricValue

GOAL_TYPES = ("threshold", "min-improvement", "percent-min-improvement", "max-degradation", "percent-max-degradation")

# Relative slack on comparisons, so that float rounding in baseline +/- value does not flip a verdict.
_TOLERANCE = 1e-9

Baselines = Union[EvaluationResult, Iterable[MetricValue], Mapping[str, Union[float, MetricValue]], None]


def _goal_fields(goal: Any) -> tuple[str, float]:
    if isinstance(goal, Mapping):
        return str(goal["type"]), float(goal["value"])
    return str(goal.type), float(goal.value)


def goal_target(value: MetricValue, baseline: float | None) -> float | None:
    """The value a measurement must reach to meet ``value.goal``; None without a goal or a needed baseline."""
    if value.goal is None:
        return None
    goal_type, amount = _goal_fields(value.goal)
    if goal_type not in GOAL_TYPES:
        raise ValueError(f"unknown goal type {goal_type!r}; use one of {', '.join(GOAL_TYPES)}")
    if goal_type == "threshold":
        return amount
    if baseline is None:
        return None
    sign = 1.0 if value.higher_is_better else -1.0
    if goal_type.startswith("percent-"):
        amount = abs(baseline) * amount / 100.0
    if goal_type.endswith("min-improvement"):
        return baseline + sign * amount
    return baseline - sign * amount


def goal_met(value: MetricValue, baseline: float | None) -> bool | None:
    """Whether ``value`` meets its goal: True/False, None when the goal needs a missing baseline.

    A value without a goal meets it trivially (True).
    """
    if value.goal is None:
        return True
    target = goal_target(value, baseline)
    if target is None:
        return None
    slack = _TOLERANCE * max(1.0, abs(target))  # 0.80 + 0.05 must accept 0.85
    return value.value >= target - slack if value.higher_is_better else value.value <= target + slack


def _baseline_map(baseline_values: Baselines) -> dict[str, float]:
    if baseline_values is None:
        return {}
    if isinstance(baseline_values, EvaluationResult):
        baseline_values = baseline_values.values
    if isinstance(baseline_values, Mapping):
        return {key: float(v.value if isinstance(v, MetricValue) else v) for key, v in baseline_values.items()}
    return {v.key: float(v.value) for v in baseline_values}


def accepted(values: EvaluationResult | Iterable[MetricValue], baseline_values: Baselines = None) -> bool:
    """True when every goal is met. A goal that needs a baseline which is missing counts as not met."""
    if isinstance(values, EvaluationResult):
        values = values.values
    baselines = _baseline_map(baseline_values)
    return all(goal_met(value, baselines.get(value.key)) is True for value in values)


def objective(values: EvaluationResult | Iterable[MetricValue]) -> list[float]:
    """Ranked values ordered by priority (1 first), negated where higher is better, so smaller is better.

    Report-only values (priority -1, or any priority below 1) are left out. Suits Optuna's ``minimize``.
    """
    if isinstance(values, EvaluationResult):
        values = values.values
    ranked = sorted((value for value in values if value.priority >= 1), key=lambda value: value.priority)
    return [-value.value if value.higher_is_better else value.value for value in ranked]
