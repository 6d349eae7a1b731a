"""Evaluation: measure metrics on models, check goals, write reports.

Exports are loaded lazily so that importing ``modelmill.evaluate.catalog`` (the config schema does)
pulls in nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelmill.evaluate.evaluator import evaluate_model
    from modelmill.evaluate.goals import accepted, goal_met, objective
    from modelmill.evaluate.report import write_reports
    from modelmill.evaluate.results import EvaluationResult, MetricValue
    from modelmill.evaluate.runtime import EvaluationError

_EXPORTS = {
    "evaluate_model": "modelmill.evaluate.evaluator",
    "EvaluationResult": "modelmill.evaluate.results",
    "MetricValue": "modelmill.evaluate.results",
    "write_reports": "modelmill.evaluate.report",
    "goal_met": "modelmill.evaluate.goals",
    "accepted": "modelmill.evaluate.goals",
    "objective": "modelmill.evaluate.goals",
    "EvaluationError": "modelmill.evaluate.runtime",
}

__all__ = ["evaluate_model", "EvaluationResult", "MetricValue", "write_reports", "goal_met", "accepted", "objective",
           "EvaluationError"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modelmill.evaluate' has no attribute {name!r}")
