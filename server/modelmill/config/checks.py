"""Semantic checks: pure functions ``ConfigView -> list[Diagnostic]``.

Every check reads the flat (normalized) data defensively, since it also runs on configs
that failed schema validation: each reports what it can see and ignores the rest, so one
mistake yields one diagnostic (``validate`` drops checks' findings inside a section that
already has a schema error).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import ValidationError

from modelmill.config.accelerators import (
    DEFAULT_EP, DEVICE_EPS, EP_PACKAGES, EXECUTION_PROVIDERS, ep_runs_on, first_ep, infer_device,
)
from modelmill.config.diagnostics import Diagnostic, KeyPath
from modelmill.config.evaluation import DATA_COMPONENTS, DATA_CONTAINERS, METRIC_SUB_TYPES
from modelmill.config.input_models import OTHER_MODEL_TYPES
from modelmill.config.models import WorkflowConfig
from modelmill.config.pass_checks import PASS_CHECKS, pass_entries
from modelmill.config.pydantic_errors import choices_hint, did_you_mean, translate
from modelmill.config.view import ConfigView
from modelmill.samples import SAMPLE_PREFIX, SAMPLES

Check = Callable[[ConfigView], list[Diagnostic]]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def check_schema(view: ConfigView) -> list[Diagnostic]:
    """Structure, types and allowed values, against the pydantic models."""
    if not isinstance(view.data, dict):
        if view.doc.root is None:
            return []  # empty or unreadable: the syntax diagnostic says so
        return [view.diag((), "error", "invalid-type", "the config must be an object of keys such as input_model "
                          "and passes")]
    try:
        WorkflowConfig.model_validate(view.data)
    except ValidationError as exc:
        return translate(view, exc, WorkflowConfig, view.data, ())
    return []


# ------------------------------------------------------------------ references


def _names(view: ConfigView, section: str) -> list[str]:
    value = view.get((section,))
    if section == "data_configs":
        return [item["name"] for item in value if isinstance(item, dict) and isinstance(item.get("name"), str)] \
            if isinstance(value, list) else []
    return list(value) if isinstance(value, dict) else []


def _reference(view: ConfigView, at: KeyPath, section: str, what: str) -> Diagnostic | None:
    name = view.get(at)
    if not isinstance(name, str):
        return None
    defined = _names(view, section)
    if name in defined:
        return None
    suggestion = did_you_mean(name, defined)
    if suggestion:
        hint = f"did you mean '{suggestion}'?"
    elif defined:
        hint = f"defined {section}: {', '.join(defined)}"
    else:
        hint = f"add a '{section}' section that defines '{name}'"
    extra = {"replace_with": suggestion} if suggestion else {}
    return view.diag(at, "error", "undefined-reference", f"{what} '{name}' is not defined in {section}", hint,
                     **extra)


def _data_config_refs(value: Any, at: KeyPath) -> Iterator[KeyPath]:
    """Paths of every ``*data_config`` key holding a name (Olive resolves them all by name)."""
    if isinstance(value, dict):
        for key, child in value.items():
            if isinstance(key, str) and key.endswith("data_config") and isinstance(child, str):
                yield at + (key,)
            else:
                yield from _data_config_refs(child, at + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _data_config_refs(child, at + (index,))


def check_references(view: ConfigView) -> list[Diagnostic]:
    found = [_reference(view, ("host",), "systems", "system"), _reference(view, ("target",), "systems", "system"),
             _reference(view, ("evaluator",), "evaluators", "evaluator")]
    for _, at, entry in pass_entries(view):
        found.append(_reference(view, at + ("host",), "systems", "system"))
        if isinstance(entry.get("evaluator"), str):
            found.append(_reference(view, at + ("evaluator",), "evaluators", "evaluator"))
            found.append(view.diag(at + ("evaluator",), "warning", "olive-incompatible",
                                   "a pass-level evaluator name crashes Olive 0.13 (AttributeError); ModelMill "
                                   "accepts it", "use the top-level 'evaluator' to keep the config Olive-compatible"))
    data = view.data if isinstance(view.data, dict) else {}
    for key, value in data.items():
        if key != "data_configs":
            for at in _data_config_refs(value, (key,)):
                found.append(_reference(view, at, "data_configs", "data config"))
    return [diag for diag in found if diag is not None]


# ------------------------------------------------------------------ search and evaluation


def check_search(view: ConfigView) -> list[Diagnostic]:
    strategy = view.get(("search_strategy",))
    if not isinstance(strategy, dict):
        return []
    diagnostics = []
    if view.get(("evaluator",)) is None:
        evaluators = _names(view, "evaluators")
        hint = (f"add \"evaluator\": \"{evaluators[0]}\"" if len(evaluators) == 1 else
                f"add \"evaluator\" naming one of: {', '.join(evaluators)}" if evaluators else
                "define an evaluator under evaluators and name it in \"evaluator\"")
        diagnostics.append(view.diag(("search_strategy",), "error", "missing-required",
                                     "search_strategy needs an evaluator to compare candidates", hint, key=True))
    if strategy.get("execution_order") == "pass-by-pass":
        for key in ("stop_when_goals_met", "max_iter", "max_time"):
            if strategy.get(key) not in (None, False):
                diagnostics.append(view.diag(("search_strategy", key), "info", "invalid-value",
                                             f"{key} only applies to execution_order 'joint'; it is ignored",
                                             key=True, remove=True))
    return diagnostics


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


def _sub_metric(view: ConfigView, metric: dict[str, Any], sub: dict[str, Any], at: KeyPath,
                ranked: list[tuple[KeyPath, int]]) -> list[Diagnostic]:
    diagnostics = []
    metric_type, name = metric.get("type"), sub.get("name")
    allowed = METRIC_SUB_TYPES.get(metric_type) if isinstance(metric_type, str) else None
    if metric_type == "accuracy" and metric.get("backend") == "huggingface_metrics":
        allowed = None  # any `evaluate` metric name
    if allowed is not None and isinstance(name, str) and name not in allowed:
        hint, replacement = choices_hint(name, list(allowed))
        extra = {"replace_with": replacement} if replacement is not None else {}
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
    extra = {"replace_with": replacement} if replacement is not None else {}
    return [view.diag(at, "error", "invalid-value", f"unknown {what} '{value}'", hint, **extra)]


# ------------------------------------------------------------------ systems and accelerators


def _systems(view: ConfigView) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    named = view.get(("systems",))
    if isinstance(named, dict):
        for name, system in named.items():
            if isinstance(system, dict):
                yield ("systems", name), system
    for key in ("host", "target"):
        if isinstance(view.get((key,)), dict):
            yield (key,), view.get((key,))


def check_accelerators(view: ConfigView) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for at, system in _systems(view):
        accelerators = system.get("accelerators")
        if not isinstance(accelerators, list):
            continue
        for index, accelerator in enumerate(accelerators):
            if isinstance(accelerator, dict):
                diagnostics.extend(_accelerator(view, system, accelerator, at + ("accelerators", index)))
    return diagnostics


def _accelerator(view: ConfigView, system: dict[str, Any], accelerator: dict[str, Any],
                 at: KeyPath) -> list[Diagnostic]:
    device, ep = accelerator.get("device"), first_ep(accelerator)
    if ep is None:
        if isinstance(device, str) and device not in DEFAULT_EP and device != "any":
            return [view.diag(at + ("device",), "error", "missing-required",
                              f"device '{device}' needs execution_providers",
                              f"add \"execution_providers\": [\"{DEVICE_EPS.get(device, ('',))[0]}\"]"
                              if device in DEVICE_EPS else "add execution_providers")]
        return []
    ep_path = at + ("execution_providers", 0)
    if not ep.endswith("ExecutionProvider"):
        return []  # a schema error
    if ep not in EXECUTION_PROVIDERS:
        hint, replacement = choices_hint(ep, list(EXECUTION_PROVIDERS))
        extra = {"replace_with": replacement} if replacement is not None else {}
        return [view.diag(ep_path, "warning", "invalid-value", f"unknown execution provider '{ep}' (names are "
                          "case-sensitive)", hint, **extra)]
    diagnostics = []
    if isinstance(device, str) and not ep_runs_on(ep, device):
        right = DEFAULT_EP.get(device) or DEVICE_EPS[device][0]
        diagnostics.append(view.diag(
            ep_path, "warning", "ep-device-mismatch",
            f"{ep} does not run on device '{device}': Olive drops it and falls back to CPUExecutionProvider",
            f"for {device} use one of: {', '.join(DEVICE_EPS[device])}; or set \"device\": \"{infer_device(ep)}\"",
            replace_with=right))
    if system.get("type") == "LocalSystem":
        diagnostics.extend(_installed(view, ep, ep_path))
    return diagnostics


def _installed(view: ConfigView, ep: str, at: KeyPath) -> list[Diagnostic]:
    installed = view.env.installed_eps
    if installed is not None and ep in installed:
        return []
    package = EP_PACKAGES.get(ep)
    if installed is None:
        message = f"onnxruntime is not installed here, so {ep} is not available"
    else:
        message = f"{ep} is not available in the installed onnxruntime (it has: {', '.join(sorted(installed))})"
    hint = f"pip install {package} (instead of other onnxruntime packages)" if package else None
    return [view.diag(at, "warning", "ep-not-installed", message, hint, **({"install": package} if package else {}))]


# ------------------------------------------------------------------ input model


def check_input_model(view: ConfigView) -> list[Diagnostic]:
    model = view.get(("input_model",))
    if not isinstance(model, dict):
        return []
    if model.get("type") in OTHER_MODEL_TYPES:
        return [view.diag(("input_model", "type"), "warning", "unsupported-model-type",
                          f"ModelMill does not run {model['type']} models (Olive does)",
                          "use HfModel, PyTorchModel or ONNXModel")]
    path = model.get("model_path")
    if not isinstance(path, str) or model.get("type") not in ("HfModel", "PyTorchModel", "ONNXModel"):
        return []
    at = ("input_model", "model_path")
    if path.startswith(SAMPLE_PREFIX):
        name = path.removeprefix(SAMPLE_PREFIX)
        if name.lower() in SAMPLES:
            return []
        hint, replacement = choices_hint(name, list(SAMPLES))
        extra = {"replace_with": SAMPLE_PREFIX + replacement} if replacement else {}
        return [view.diag(at, "error", "invalid-value", f"unknown sample '{name}'", hint, **extra)]
    local = view.resolve_path(path)
    if local is not None:
        if model["type"] == "HfModel" and local.is_dir() and not (local / "config.json").exists():
            return [view.diag(at, "warning", "path-not-found", f"'{path}' has no config.json: it is not a "
                              "Hugging Face model folder")]
        return []
    if model["type"] == "HfModel" and _HUB_ID.match(path):
        return [view.diag(at, "warning", "hub-id-not-local",
                          f"'{path}' looks like a Hugging Face hub id and is not found locally",
                          "pass a local folder, or sample:smollm2", replace_with="sample:smollm2")]
    return [view.diag(at, "warning", "path-not-found", f"model_path '{path}' does not exist")]


SEMANTIC_CHECKS: tuple[Check, ...] = (check_input_model, check_references, check_search, check_metrics,
                                      check_data_configs, check_accelerators, *PASS_CHECKS)


def run_checks(view: ConfigView) -> list[Diagnostic]:
    """Schema errors, then semantic findings that are not inside a section with a schema error."""
    schema = check_schema(view)
    broken = [d.path for d in schema if d.severity == "error"]
    found = list(schema)
    for check in SEMANTIC_CHECKS:
        for diag in check(view):
            if not any(diag.path[:len(path)] == path for path in broken):
                found.append(diag)
    return found
