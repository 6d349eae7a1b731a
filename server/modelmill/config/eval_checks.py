"""Checks on evaluators, metrics and data configs (Olive's parse-time rules, reference §4)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from modelmill.config.diagnostics import Diagnostic, KeyPath, replacing
from modelmill.config.evaluation import DATA_COMPONENTS, DATA_CONTAINERS, METRIC_SUB_TYPES
from modelmill.config.pydantic_errors import choices_hint
from modelmill.config.view import ConfigView


def _evaluators(view: ConfigView) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    named = view.get(("evaluators",))
    if isinstance(named, dict):
        for name, evaluator in named.items():
            if isinstance(evaluator, dict):
                yield ("evaluators", name), evaluator
    if isinstance(view.get(("evaluator",)), dict):
        yield ("evaluator",), view.get(("evaluator",))


def _default_higher_is_better(metric_type: Any, sub_type: Any) -> bool | None:
    if metric_type == "accuracy":
        return sub_type != "wer"
    return {"latency": False, "throughput": True, "size_on_disk": False}.get(metric_type)


def check_metrics(view: ConfigView) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for at, evaluator in _evaluators(view):
        if evaluator.get("type") == "LMEvaluator":
            diagnostics.extend(_lm_evaluator(view, at, evaluator))
        metrics = evaluator.get("metrics")
        if not isinstance(metrics, list):
            continue
        seen: set[str] = set()
        ranked: list[tuple[KeyPath, int]] = []
        total = 0
        for index, metric in enumerate(metrics):
            if not isinstance(metric, dict):
                continue
            where = at + ("metrics", index)
            name = metric.get("name")
            if isinstance(name, str) and name in seen:
                diagnostics.append(view.diag(where + ("name",), "error", "duplicate-name",
                                             f"metric name '{name}' is used twice in this evaluator"))
            seen.add(name) if isinstance(name, str) else None
            sub_types = metric.get("sub_types")
            for sub_index, sub in enumerate(sub_types if isinstance(sub_types, list) else []):
                if isinstance(sub, dict):
                    total += 1
                    diagnostics.extend(_sub_metric(view, metric, sub, where + ("sub_types", sub_index), ranked))
        diagnostics.extend(_priorities(view, at, ranked, total))
    return diagnostics


_EVALUATOR_FIELDS = ("name", "type", "metrics", "user_script", "script_dir", "type_args")


def _lm_evaluator(view: ConfigView, at: KeyPath, evaluator: dict[str, Any]) -> list[Diagnostic]:
    """Olive's LMEvaluator: lm-eval ``tasks`` (names or task YAML files) and its options (evaluate/lm_eval_bridge.py);
    Olive ignores keys it does not know, so a misspelt one would silently change nothing."""
    from modelmill.evaluate.lm_eval_bridge import EVALUATOR_KEYS

    diagnostics = []
    tasks = evaluator.get("tasks")
    if tasks is None:
        diagnostics.append(view.diag(at + ("type",), "error", "missing-required", "an LMEvaluator needs tasks",
                                     'add "tasks": [...]: lm-eval task names or local task YAML files '
                                     "(docs/evaluate.md)"))
    elif not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) and t for t in tasks):
        diagnostics.append(view.diag(at + ("tasks",), "error", "invalid-value",
                                     "tasks must be a non-empty list of lm-eval task names or task YAML files"))
    for key in evaluator:
        if key not in EVALUATOR_KEYS and key not in _EVALUATOR_FIELDS:
            hint, replacement = choices_hint(key, list(EVALUATOR_KEYS))
            diagnostics.append(view.diag(at + (key,), "error", "unknown-key",
                                         f"'{key}' is not an LMEvaluator option (Olive would ignore it)", hint,
                                         key=True, **replacing(replacement)))
    return diagnostics


def _sub_metric(view: ConfigView, metric: dict[str, Any], sub: dict[str, Any], at: KeyPath,
                ranked: list[tuple[KeyPath, int]]) -> list[Diagnostic]:
    diagnostics = []
    metric_type, name = metric.get("type"), sub.get("name")
    allowed = METRIC_SUB_TYPES.get(metric_type) if isinstance(metric_type, str) else None
    if metric_type == "accuracy" and metric.get("backend") == "huggingface_metrics":
        allowed = None  # any `evaluate` metric name
    if allowed is not None and isinstance(name, str) and name not in allowed:
        hint, replacement = choices_hint(name, list(allowed))
        extra = replacing(replacement)
        diagnostics.append(view.diag(at + ("name",), "error", "invalid-value",
                                     f"'{name}' is not a {metric_type} sub type", hint, **extra))
    priority = sub.get("priority", -1)
    if isinstance(priority, int) and priority != -1:
        ranked.append((at + ("priority",), priority))
        if metric_type == "custom" and sub.get("higher_is_better") is None:
            diagnostics.append(view.diag(at + ("higher_is_better",), "error", "missing-required",
                                         "a ranked custom sub-metric needs higher_is_better", parent_key=True))
    goal = sub.get("goal")
    if isinstance(goal, dict):
        higher = sub.get("higher_is_better")
        higher = _default_higher_is_better(metric_type, name) if higher is None else higher
        diagnostics.extend(_goal(view, goal, higher, at + ("goal",)))
    return diagnostics


def _goal(view: ConfigView, goal: dict[str, Any], higher: bool | None, at: KeyPath) -> list[Diagnostic]:
    goal_type, value = goal.get("type"), goal.get("value")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or goal_type == "threshold":
        return []
    if value < 0:
        return [view.diag(at + ("value",), "error", "invalid-value", f"a {goal_type} goal value must be >= 0")]
    bounded = (goal_type == "percent-min-improvement" and higher is False) or \
              (goal_type == "percent-max-degradation" and higher is True)
    if value == 0 or (bounded and value >= 100):
        limits = "between 0 and 100 (exclusive)" if bounded else "greater than 0"
        return [view.diag(at + ("value",), "error", "invalid-value", f"a {goal_type} goal value must be {limits}")]
    return []


def _priorities(view: ConfigView, at: KeyPath, ranked: list[tuple[KeyPath, int]], total: int) -> list[Diagnostic]:
    """Olive: one sub-metric may go unranked; with several, priorities must be exactly 1..n."""
    if not ranked:
        if total > 1:
            return [view.diag(at, "error", "metric-priority", "priority must be specified when an evaluator has "
                              "several sub-metrics", "give each sub-metric a priority: 1, 2, ... (1 = most "
                              "important), or -1 to only report it", key=True)]
        return []
    expected = set(range(1, len(ranked) + 1))
    seen: set[int] = set()
    for path, priority in ranked:
        if priority not in expected or priority in seen:
            return [view.diag(path, "error", "metric-priority", f"priorities must be unique and run from 1 to "
                              f"{len(ranked)} (got {priority})", "-1 means report only")]
        seen.add(priority)
    return []


# ------------------------------------------------------------------ data configs


def check_data_configs(view: ConfigView) -> list[Diagnostic]:
    configs = view.get(("data_configs",))
    if not isinstance(configs, list):
        return []
    diagnostics = []
    seen: set[str] = set()
    for index, config in enumerate(configs):
        if not isinstance(config, dict):
            continue
        at = ("data_configs", index)
        name = config.get("name")
        if isinstance(name, str):
            if name in seen:
                diagnostics.append(view.diag(at + ("name",), "error", "duplicate-name",
                                             f"data config name '{name}' is used twice"))
            seen.add(name)
        if config.get("user_script"):
            continue  # a user script may register its own containers and components
        diagnostics.extend(_registered(view, at + ("type",), config.get("type"), DATA_CONTAINERS, "data container"))
        for section, components in DATA_COMPONENTS.items():
            component = config.get(section)
            if isinstance(component, dict):
                diagnostics.extend(_registered(view, at + (section, "type"), component.get("type"), components,
                                               f"{section} component"))
    return diagnostics


def _registered(view: ConfigView, at: KeyPath, value: Any, allowed: tuple[str, ...], what: str) -> list[Diagnostic]:
    if not isinstance(value, str) or value in allowed:
        return []
    hint, replacement = choices_hint(value, list(allowed))
    extra = replacing(replacement)
    return [view.diag(at, "error", "invalid-value", f"unknown {what} '{value}'", hint, **extra)]
