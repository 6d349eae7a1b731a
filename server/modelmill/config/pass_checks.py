"""Checks on the ``passes`` section: types, parameters, and how the chain fits together."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from modelmill.config.accelerators import resolve_accelerator
from modelmill.config.architectures import expected_ort_model_type, input_model_info
from modelmill.config.diagnostics import Diagnostic, KeyPath, replacing
from modelmill.config.input_models import MODEL_KINDS
from modelmill.config.pass_values import split_params
from modelmill.config.pydantic_errors import choices_hint, translate
from modelmill.config.view import ConfigView
from modelmill.passes.base import Pass
from modelmill.passes.registry import all_passes, find_pass, suggest_pass

_ENTRY_KEYS = ("type", "host", "evaluator")
# Passes whose only job is graph fusion; running one on already-fused output does nothing useful.
# (Besides any pass that declares ``output_is_fused``.)
_FUSION_PASSES = frozenset({"OrtTransformersOptimization"})


def pass_entries(view: ConfigView, first_only: bool = False) -> Iterator[tuple[str, KeyPath, dict[str, Any]]]:
    """(pass name, flat path, entry) for every pass entry (alternatives too, unless ``first_only``)."""
    passes = view.get(("passes",))
    if not isinstance(passes, dict):
        return
    for name, value in passes.items():
        if isinstance(value, dict):
            yield name, ("passes", name), value
        elif isinstance(value, list):
            for index, item in enumerate(value[:1] if first_only else value):
                if isinstance(item, dict):
                    yield name, ("passes", name, index), item


def _pass_class(entry: dict[str, Any]) -> type[Pass] | None:
    pass_type = entry.get("type")
    return find_pass(pass_type) if isinstance(pass_type, str) else None


def search_on(view: ConfigView) -> bool:
    return isinstance(view.get(("search_strategy",)), dict)


def check_pass_types(view: ConfigView) -> list[Diagnostic]:
    diagnostics = []
    for _, at, entry in pass_entries(view):
        pass_type = entry.get("type")
        if isinstance(pass_type, str) and find_pass(pass_type) is None:
            suggestion = suggest_pass(pass_type)
            hint = f"did you mean '{suggestion}'?" if suggestion else f"known passes: {', '.join(all_passes())}"
            extra = replacing(suggestion)
            diagnostics.append(view.diag(at + ("type",), "error", "unknown-pass-type",
                                         f"unknown pass type '{pass_type}'", hint, **extra))
    return diagnostics


def check_pass_params(view: ConfigView) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    searching = search_on(view)
    for _, at, entry in pass_entries(view):
        cls = _pass_class(entry)
        if cls is not None:
            params = {key: value for key, value in entry.items() if key not in _ENTRY_KEYS}
            diagnostics.extend(_params(view, cls, params, at, searching))
    return diagnostics


def _params(view: ConfigView, cls: type[Pass], params: dict[str, Any], at: KeyPath,
            searching: bool) -> list[Diagnostic]:
    split = split_params(params, cls.Params, searching)
    diagnostics = [view.diag(at + (problem.param,), "error", problem.code, problem.message, problem.hint)
                   for problem in split.problems]
    precision = split.fixed.get("precision")
    bad_precision = cls.supported_precisions is not None and isinstance(precision, str) \
        and precision not in cls.supported_precisions
    if bad_precision:
        hint, replacement = choices_hint(precision, list(cls.supported_precisions or ()))
        extra = replacing(replacement)
        diagnostics.append(view.diag(at + ("precision",), "error", "unsupported-precision",
                                     f"{cls.name} does not support precision '{precision}'", hint, **extra))
    try:
        cls.Params.model_validate(split.fixed)
    except ValidationError as exc:
        found = translate(view, exc, cls.Params, split.fixed, at, section=f"for {cls.name}")
        diagnostics.extend(d for d in found if not (bad_precision and d.path[-1:] == ("precision",)))
    for param, candidates in split.candidates.items():
        diagnostics.extend(_candidates(view, cls, split.fixed, param, candidates, at))
    return diagnostics


def _candidates(view: ConfigView, cls: type[Pass], fixed: dict[str, Any], param: str, candidates: list[Any],
                at: KeyPath) -> list[Diagnostic]:
    """Each search candidate must be a valid value on its own (the first one was checked with the rest)."""
    diagnostics = []
    for index, candidate in enumerate(candidates[1:], start=1):
        try:
            cls.Params.model_validate({**fixed, param: candidate})
        except ValidationError as exc:
            own = [e for e in exc.errors(include_url=False) if e["loc"][:1] == (param,)]
            if own:
                diagnostics.append(view.diag(at + (param, index), "error", "invalid-value",
                                             f"search candidate {candidate!r} for '{param}': {own[0]['msg']}"))
    return diagnostics


def check_pass_flow(view: ConfigView) -> list[Diagnostic]:
    """Each pass must accept what the step before produces; fusion after fused output is redundant."""
    model = view.get(("input_model",))
    kind = MODEL_KINDS.get(str(model.get("type"))) if isinstance(model, dict) else None
    source = "the input model"
    fused_by: tuple[str, type[Pass]] | None = None
    diagnostics = []
    for name, at, entry in pass_entries(view, first_only=True):
        cls = _pass_class(entry)
        if cls is None:
            kind = None  # unknown pass: we cannot tell what flows on
            continue
        if kind is not None and kind not in cls.accepts:
            diagnostics.append(view.diag(
                at + ("type",), "error", "model-kind-mismatch",
                f"{cls.name} takes {' or '.join(sorted(cls.accepts))} models, but {source} is {kind}",
                "reorder the passes, or add a conversion pass before this one"))
        fuses = cls.output_is_fused or cls.name in _FUSION_PASSES
        if fused_by is not None and fuses:
            earlier_name, earlier = fused_by
            diagnostics.append(view.diag(
                at, "warning", "redundant-pass",
                f"pass '{name}' ({cls.name}) is redundant after '{earlier_name}' ({earlier.name}): its output "
                "already has fused attention and layer norms", f"remove pass '{name}'", key=True, remove=True))
        if cls.output_is_fused and fused_by is None:
            fused_by = (name, cls)
        kind, source = cls.produces, f"the output of '{name}'"
    return diagnostics


def check_model_type(view: ConfigView) -> list[Diagnostic]:
    """An explicit optimizer ``model_type`` must match the input model's architecture."""
    info = None
    diagnostics: list[Diagnostic] = []
    for _, at, entry in pass_entries(view):
        cls = _pass_class(entry)
        model_type = entry.get("model_type")
        if cls is None or "model_type" not in cls.Params.model_fields or not isinstance(model_type, str):
            continue
        info = info or input_model_info(view)
        if info is None:
            return diagnostics  # hub id, missing folder or unknown format: nothing to compare with
        known, expected = expected_ort_model_type(info)
        if not known or model_type == expected:
            continue
        arch = f"{info.architecture}, model_type {info.model_type}" if info.architecture else info.model_type
        hint = f"use \"model_type\": \"{expected}\"" if expected else (
            f"ORT's transformer optimizer has no model type for {info.model_type} models, so these fusions will not "
            f"match; ModelBuilder already fuses {info.model_type} models")
        diagnostics.append(view.diag(at + ("model_type",), "warning", "model-type-mismatch",
                                     f"model_type '{model_type}' does not match the input model ({arch})",
                                     hint, **replacing(expected)))
    return diagnostics


def check_target_support(view: ConfigView) -> list[Diagnostic]:
    """A pass that declares its execution providers should support the target's (Olive does not check)."""
    try:
        ep = resolve_accelerator(view.system(view.get(("target",)))).execution_provider
    except ValueError:
        return []  # reported by the accelerator checks
    diagnostics = []
    for _, at, entry in pass_entries(view):
        cls = _pass_class(entry)
        if cls is not None and cls.supported_providers is not None and ep not in cls.supported_providers:
            diagnostics.append(view.diag(at + ("type",), "warning", "unsupported-provider",
                                         f"{cls.name} does not support {ep}, the target's execution provider",
                                         f"supported: {', '.join(cls.supported_providers)}"))
    return diagnostics


PASS_CHECKS = (check_pass_types, check_pass_params, check_pass_flow, check_model_type, check_target_support)
