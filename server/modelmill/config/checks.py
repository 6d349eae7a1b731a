"""Semantic checks: pure functions ``ConfigView -> list[Diagnostic]``.

Every check reads the flat (normalized) data defensively, since it also runs on configs
that failed schema validation: each reports what it can see and ignores the rest, so one
mistake yields one diagnostic (``validate`` drops checks' findings inside a section that
already has a schema error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pydantic import ValidationError

from modelmill.config.diagnostics import Diagnostic, KeyPath, replacing
from modelmill.config.eval_checks import check_data_configs, check_metrics
from modelmill.config.models import WorkflowConfig
from modelmill.config.output_checks import check_output_dir
from modelmill.config.pass_checks import PASS_CHECKS, pass_entries
from modelmill.config.pydantic_errors import did_you_mean, translate
from modelmill.config.remote_code_checks import check_remote_code
from modelmill.config.script_checks import check_scripts
from modelmill.config.system_checks import check_accelerators, check_input_model, check_ray
from modelmill.config.view import ConfigView

Check = Callable[[ConfigView], list[Diagnostic]]


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


def _reference(view: ConfigView, at: KeyPath, section: str, what: str,
               known: dict[str, tuple[list[str], frozenset[str]]]) -> Diagnostic | None:
    """``known``: each section's names, listed once per check (a config may hold hundreds of references)."""
    name = view.get(at)
    if not isinstance(name, str):
        return None
    if section not in known:
        listed = _names(view, section)
        known[section] = listed, frozenset(listed)
    defined, names = known[section]
    if name in names:
        return None
    suggestion = did_you_mean(name, defined)
    if suggestion:
        hint = f"did you mean '{suggestion}'?"
    elif defined:
        hint = f"defined {section}: {', '.join(defined)}"
    else:
        hint = f"add a '{section}' section that defines '{name}'"
    extra = replacing(suggestion)
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
    known: dict[str, tuple[list[str], frozenset[str]]] = {}
    found = [_reference(view, ("host",), "systems", "system", known),
             _reference(view, ("target",), "systems", "system", known),
             _reference(view, ("evaluator",), "evaluators", "evaluator", known)]
    for _, at, entry in pass_entries(view):
        found.append(_reference(view, at + ("host",), "systems", "system", known))
        if isinstance(entry.get("evaluator"), str):
            found.append(_reference(view, at + ("evaluator",), "evaluators", "evaluator", known))
            found.append(view.diag(at + ("evaluator",), "warning", "olive-incompatible",
                                   "a pass-level evaluator name crashes Olive 0.13 (AttributeError); ModelMill "
                                   "accepts it", "use the top-level 'evaluator' to keep the config Olive-compatible"))
    data = view.data if isinstance(view.data, dict) else {}
    for key, value in data.items():
        if key != "data_configs":
            for at in _data_config_refs(value, (key,)):
                found.append(_reference(view, at, "data_configs", "data config", known))
    return [diag for diag in found if diag is not None]


# ------------------------------------------------------------------ search


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


SEMANTIC_CHECKS: tuple[Check, ...] = (check_input_model, check_output_dir, check_references, check_search,
                                      check_metrics, check_data_configs, check_accelerators, check_ray, check_remote_code,
                                      check_scripts, *PASS_CHECKS)


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
